"""Results as people read them: the markdown tables and the PNGs of `backchannel eval`."""
from __future__ import annotations

import numpy as np

from backchannel.models.evaluation.metrics import (
    HEAD_RANGE_DEG,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    NEAR_LIMIT_DEG,
    REPORTED_ONLY,
    TARGETS,
)
from backchannel.models.generator import parse_spec

COLUMNS = [
    ("lip_envelope_r", "lip-envelope r", "{:.3f}"),
    ("pbm_closure", "P/B/M closed", "{:.1%}"),
    ("vowel_closure", "vowels closed (lower: better)", "{:.1%}"),
    ("tongue_closure", "T/D/K/G/N closed (lower: better)", "{:.1%}"),
    ("place_discrimination", "place discrimination (points)", "{:.1f}"),
    ("rounding_contrast", "rounding contrast (x)", "{:.2f}"),
    ("rounded_lips", "pucker + funnel, rounded phones", "{:.3f}"),
    ("spread_lips", "pucker + funnel, spread vowels", "{:.3f}"),
    ("role_f1", "role F1", "{:.3f}"),
    ("switch_latency_ms", "switch latency (ms)", "{:.0f}"),
    ("partner_leak", "partner leak", "{:.3f}"),
    ("nods_after_phrase_ends", "nods after phrase ends", "{:.1%}"),
    ("nods_at_random", "nods at random moments", "{:.1%}"),
    ("nod_contrast", "nod contrast (x)", "{:.1f}"),
    ("head_diff_deg", "seed head diff (deg)", "{:.2f}"),
    ("lip_r_min_over_seeds", "lip r, worst seed", "{:.3f}"),
    ("jitter_blendshapes", "jitter, shapes", "{:.4f}"),
    ("jitter_head_deg", "jitter, head (deg)", "{:.3f}"),
    ("head_out_of_range", f"head beyond {HEAD_RANGE_DEG:.0f} deg (frames)", "{:.1%}"),
    ("head_near_limit", f"head within 10% of its limit, >= {NEAR_LIMIT_DEG:.1f} deg (frames)", "{:.1%}"),
    ("blinks_per_minute", "blinks a minute", "{:.1f}"),
    ("shapes_moving", "shapes that move (of 52)", "{:.0%}"),
]


# the lip metrics, which differ from voice to voice (voice_table, plot_voices)
VOICE_COLUMNS = [c for c in COLUMNS if c[0] in ("lip_envelope_r", "pbm_closure", "vowel_closure", "tongue_closure",
                                                "place_discrimination", "rounding_contrast")]


def table_cell(summary: dict, key: str, fmt: str) -> str:
    """A summary's figure as the tables show it: "-" where it has none, a rate over events with its counts."""
    value = summary.get(key, float("nan"))
    cell = fmt.format(value) if np.isfinite(value) else "-"
    counts = summary.get("counts", {})
    return cell + (" ({}/{})".format(*counts[key]) if key in counts else "")


def markdown_table(results: dict[str, dict], title: str = "") -> str:
    lines = [f"### {title}", ""] if title else []
    names = list(results)
    lines.append("| metric | target | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for key, label, fmt in COLUMNS:
        target = TARGETS.get(key)
        cells = [table_cell(results[n], key, fmt) for n in names]
        lines.append(f"| {label} | {target_text(target, fmt, key)} | " + " | ".join(cells) + " |")
    # how each generator compares with the baseline, metric by metric; whether the model may become the default is the
    # default rule's to say (rule.py: targets, and ahead of the baseline and every peer on three metrics)
    baseline = next((n for n in names if parse_spec(n)[0] == "baseline"), None)  # "baseline", or with options
    if baseline:
        lines.append("")
        lines += [against_baseline(n, results[n], results[baseline]) for n in names
                  if parse_spec(n)[0] not in ("baseline", "labels")]
    return "\n".join(lines) + "\n"


def voice_table(results: dict[str, dict], title: str = "") -> str:
    """The lip metrics per self voice (results from evaluate(..., by_voice=True)): a row per voice and generator,
    then the figures pooled over every voice (counts summed across voices) for each generator."""
    lines = [f"### {title}, by voice", ""] if title else []
    lines.append("| voice | clips | generator | " + " | ".join(label for _, label, _ in VOICE_COLUMNS) + " |")
    lines.append("|---|---|---|" + "---|" * len(VOICE_COLUMNS))
    clips = {voice: row["clips"] for voice, row in next(iter(results.values()))["by_voice"].items()}
    pooled = f"pooled, {len(clips)} voice{'s' * (len(clips) != 1)}"
    for voice, n_clips in [*clips.items(), (pooled, sum(clips.values()))]:
        for n, (name, summary) in enumerate(results.items()):
            row = summary if voice == pooled else summary["by_voice"][voice]
            cells = [table_cell(row, key, fmt) for key, _, fmt in VOICE_COLUMNS]
            lines.append(f"| {voice if n == 0 else ''} | {n_clips if n == 0 else ''} | {name} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def against_baseline(name: str, ours: dict, baseline: dict) -> str:
    """A list: the metrics `name` is better and worse on than the baseline (as the table shows them: equal to
    the digits shown is a tie) and the targets it misses."""
    better, worse = [], []
    for key, label, fmt in COLUMNS:
        if key not in HIGHER_IS_BETTER | LOWER_IS_BETTER or not all(np.isfinite(r.get(key, np.nan))
                                                                       for r in (ours, baseline)):
            continue
        a, b = ours[key], baseline[key]
        if fmt.format(a) != fmt.format(b):
            (better if (a > b) == (key in HIGHER_IS_BETTER) else worse).append(label)
    missed = [label for key, label, _ in COLUMNS if key in TARGETS and not meets(ours.get(key, np.nan), *TARGETS[key])]
    listed = lambda items: "; ".join(items) or "none"  # noqa: E731 (labels hold commas)
    return (f"- **{name}** against the baseline\n  - better on {len(better)}: {listed(better)}\n"
            f"  - worse on {len(worse)}: {listed(worse)}\n  - targets missed: {listed(missed)}")


def target_text(target: tuple | None, fmt: str, key: str = "") -> str:
    if key in REPORTED_ONLY:
        return "reported only"
    if target is None:
        return ""
    op, goal = target
    return "-".join(fmt.format(g) for g in goal) if op == "in" else f"{op} {fmt.format(goal)}"


def meets(value: float, op: str, target) -> bool:
    """value against a TARGETS entry: >=, <=, < a number, or "in" a (low, high) range."""
    if not np.isfinite(value):
        return False
    if op == "in":
        return target[0] <= value <= target[1]
    return value >= target if op == ">=" else value <= target if op == "<=" else value < target


def plot_results(results: dict[str, dict], path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c for c in COLUMNS if any(c[0] in r for r in results.values())]
    cols = 4
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    names = list(results)
    colours = plt.cm.tab10(np.arange(len(names)) % 10)
    for ax, (key, label, _) in zip(axes.flat, keys):
        vals = [results[n].get(key, np.nan) for n in names]
        ax.bar(range(len(names)), vals, color=colours)
        if key in TARGETS:
            for goal in np.atleast_1d(TARGETS[key][1]):  # a range has two lines
                ax.axhline(goal, color="k", ls="--", lw=1)
        ax.set_title(label + (" (higher better)" if key in HIGHER_IS_BETTER else ""), fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title or "evaluation (dashed: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_voices(results: dict[str, dict], path, title: str = "") -> None:
    """The lip metrics per self voice (evaluate(..., by_voice=True)): a panel per metric, a group of bars per voice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    voices = list(next(iter(results.values()))["by_voice"])
    colours = plt.cm.tab10(np.arange(len(names)) % 10)
    size = (max(6.0, 0.375 * len(voices) * len(names)), 2.3 * len(VOICE_COLUMNS))
    fig, axes = plt.subplots(len(VOICE_COLUMNS), 1, figsize=size, squeeze=False)
    width = 0.8 / len(names)
    for ax, (key, label, _) in zip(axes[:, 0], VOICE_COLUMNS):
        for k, (name, colour) in enumerate(zip(names, colours)):
            vals = [results[name]["by_voice"][v].get(key, np.nan) for v in voices]
            ax.bar(np.arange(len(voices)) + (k - (len(names) - 1) / 2) * width, vals, width, color=colour, label=name)
        if key in TARGETS:
            for goal in np.atleast_1d(TARGETS[key][1]):  # a range has two lines
                ax.axhline(goal, color="k", ls="--", lw=1)
        ax.set_title(label + (" (higher better)" if key in HIGHER_IS_BETTER else ""), fontsize=9)
        ax.set_xticks(range(len(voices)), [v.split(":")[-1] for v in voices], fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=len(names), loc="lower right")
    fig.suptitle(f"{title}, by voice" if title else "by voice (dashed: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
