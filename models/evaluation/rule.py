"""The default rule: when the model may become the default face of `run`, `serve` and `make demo` (issue 34).

Pooled over real voices it never trained on (the `test-real` split: counts summed across voices, not a mean of
their rates), the model must meet every target in TARGETS and beat the baseline and every peer scored beside it on
what tells a viewer most: place discrimination, role F1 and nod contrast. Lip-envelope r is reported, never judged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backchannel.models.evaluation.metrics import TARGETS
from backchannel.models.evaluation.report import COLUMNS, meets
from backchannel.models.generator import parse_spec

# the metrics on which the model must beat every rival (higher is better on each)
RIVALLED = ("place_discrimination", "role_f1", "nod_contrast")
NOT_RIVALS = ("labels", "model")  # the corpus's ceiling and the candidates themselves; every other generator is one
# short names: "vowels closed", not "vowels closed (lower: better)"; "head within 10% of its limit", not its threshold
_LABEL = {key: (label.split(" (")[0].split(",")[0], fmt) for key, label, fmt in COLUMNS}
_FAILS = {">=": "<", "<=": ">", "<": ">="}  # the comparison a missed target shows


@dataclass
class Verdict:
    candidate: str
    rivals: list[str]
    failed: list[str] = field(default_factory=list)  # each condition not met, as people read it

    @property
    def default(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        if self.default:
            return f"{self.candidate} may become the default: every target met, ahead of {', '.join(self.rivals)}"
        return f"{self.candidate} is not the default: " + "; ".join(self.failed)


def shown(key: str, value: float) -> str:
    """A figure as the tables print it ("-" where there is none)."""
    return _LABEL[key][1].format(value) if np.isfinite(value) else "-"


def default_verdict(results: dict[str, dict], candidate: str | None = None) -> Verdict:
    """Judge `candidate` (a spec in `results`; by default the first named "model") by the default rule against the
    other generators in `results` (summaries pooled over unseen real voices). Its rivals are the baseline and every
    peer: each spec not named labels or model. A rival must have been scored: without a baseline the model fails.
    Ties to the digits the tables show are not wins; a rival without a figure (nan) is beaten by any figure."""
    if candidate is None:
        candidate = next((spec for spec in results if parse_spec(spec)[0] == "model"), None)
    if candidate not in results:
        raise ValueError(f"no model among the scored generators ({', '.join(results)}): nothing to judge")
    ours = results[candidate]
    rivals = [spec for spec in results if parse_spec(spec)[0] not in NOT_RIVALS]
    verdict = Verdict(candidate, rivals)
    for key, (op, goal) in TARGETS.items():
        value = ours.get(key, float("nan"))
        if meets(value, op, goal):
            continue
        label = _LABEL[key][0]
        if not np.isfinite(value):
            verdict.failed.append(f"{label} not measured")
        elif op == "in":
            verdict.failed.append(f"{label} {shown(key, value)} outside {shown(key, goal[0])}-{shown(key, goal[1])}")
        else:
            verdict.failed.append(f"{label} {shown(key, value)} {_FAILS[op]} {shown(key, goal)}")
    if not any(parse_spec(spec)[0] == "baseline" for spec in rivals):
        verdict.failed.append("baseline not scored")
    for key in RIVALLED:
        value = ours.get(key, float("nan"))
        for rival in rivals:
            theirs = results[rival].get(key, float("nan"))
            if not np.isfinite(theirs):
                continue
            if not np.isfinite(value) or shown(key, value) == shown(key, theirs) or value < theirs:
                verdict.failed.append(f"{_LABEL[key][0]} {shown(key, value)} not above {rival}'s {shown(key, theirs)}")
    return verdict


def synthetic_voices(results: dict[str, dict]) -> list[str]:
    """The self voices pooled in `results` that are not recorded speakers: the rule does not judge on them."""
    return [v for v in next(iter(results.values())).get("voices", {}) if not v.startswith("recorded:")]


def verdicts(results: dict[str, dict]) -> dict[str, Verdict]:
    """The verdict on every model spec in `results`; none where any pooled voice is synthetic (not judged)."""
    if synthetic_voices(results):
        return {}
    return {spec: default_verdict(results, spec) for spec in results if parse_spec(spec)[0] == "model"}


def rule_section(results: dict[str, dict], split: str, judged: dict[str, Verdict]) -> str:
    """The report's verdicts (`judged`: verdicts(results)) on `split`, saying what its figures pool."""
    voices = next(iter(results.values())).get("voices", {})
    synthetic = synthetic_voices(results)
    lines = [f"### The default rule ({split})", "",
             f"Pooled over {len(voices)} self voice{'s' * (len(voices) != 1)} ({', '.join(voices) or 'none'}; "
             f"{sum(voices.values())} clips): counts summed across voices, not a mean of their rates. The model "
             "becomes the default when, pooled over real voices it never trained on, it meets every target and "
             f"beats the baseline and every peer on {', '.join(_LABEL[k][0] for k in RIVALLED)}.", ""]
    if synthetic:
        lines += [f"Not judged: {', '.join(synthetic)} {'is' if len(synthetic) == 1 else 'are'} not a recorded "
                  "voice (the rule reads real voices never trained on: the test-real split).", ""]
        return "\n".join(lines) + "\n"
    lines += [f"- **{verdict}**" for verdict in judged.values()] or ["- no model scored"]
    return "\n".join(lines) + "\n"
