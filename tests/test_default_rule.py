"""The default rule (models/evaluation/rule.py): every target met, pooled over unseen real voices, and ahead of the
baseline and every peer on place discrimination, role F1 and nod contrast."""
import pytest

from backchannel.models.evaluation.metrics import TARGETS
from backchannel.models.evaluation.rule import default_verdict, rule_section, verdicts

# a model on every target (each a little past it) and two rivals behind it on the three rivalled metrics
MODEL = {"pbm_closure": 0.9, "tongue_closure": 0.1, "place_discrimination": 80.0, "vowel_closure": 0.05,
         "rounding_contrast": 2.5, "role_f1": 0.97, "switch_latency_ms": 33.0, "partner_leak": 0.01,
         "nods_after_phrase_ends": 0.75, "nod_contrast": 4.0, "blinks_per_minute": 18.0, "head_near_limit": 0.01,
         "lip_envelope_r": 0.2, "voices": {"recorded:ana": 3, "recorded:ben": 2}}
BASELINE = dict(MODEL, place_discrimination=-3.0, role_f1=0.92, nod_contrast=3.1, lip_envelope_r=0.9)
PEER = dict(MODEL, place_discrimination=17.0, role_f1=0.42, nod_contrast=0.0)


def test_the_model_that_meets_every_target_and_beats_every_rival_may_become_the_default():
    assert set(TARGETS) <= set(MODEL) and "lip_envelope_r" not in TARGETS  # reported, never judged: 0.2 passes
    verdict = default_verdict({"labels": dict(MODEL, role_f1=1.0), "baseline": BASELINE, "model": MODEL,
                               "pocketsphinx-openfacefx": PEER})
    assert verdict.default and verdict.failed == []
    assert verdict.rivals == ["baseline", "pocketsphinx-openfacefx"]  # the labels' ceiling is no rival
    assert str(verdict) == "model may become the default: every target met, ahead of baseline, pocketsphinx-openfacefx"


def test_each_missed_target_is_named_with_the_figure_and_the_goal():
    short = dict(MODEL, pbm_closure=0.817, tongue_closure=0.662, place_discrimination=15.5, vowel_closure=0.127,
                 rounding_contrast=float("nan"), blinks_per_minute=0.0, head_near_limit=0.02, nod_contrast=3.1)
    verdict = default_verdict({"baseline": BASELINE, "model": short})
    assert not verdict.default
    assert verdict.failed == ["P/B/M closed 81.7% < 85.0%", "T/D/K/G/N closed 66.2% > 20.0%",
                              "place discrimination 15.5 < 65.0", "vowels closed 12.7% > 8.0%",
                              "rounding contrast not measured", "blinks a minute 0.0 outside 10.0-25.0",
                              "head within 10% of its limit 2.0% >= 2.0%",
                              "nod contrast 3.1 not above baseline's 3.1"]  # a tie to the digits shown is no win
    assert str(verdict).startswith("model is not the default: P/B/M closed 81.7% < 85.0%; T/D/K/G/N closed")


def test_the_model_must_beat_every_peer_not_only_the_baseline():
    ahead_on_place = dict(PEER, place_discrimination=80.5)  # a peer whose lips tell place apart better
    results = {"baseline": BASELINE, "model": MODEL, "openfacefx-energy": PEER,
               "pocketsphinx-openfacefx": ahead_on_place}
    assert default_verdict(results).failed == ["place discrimination 80.0 not above pocketsphinx-openfacefx's 80.5"]
    results["pocketsphinx-openfacefx"] = dict(PEER, role_f1=0.99, nod_contrast=float("nan"))  # nan: nothing to beat
    assert default_verdict(results).failed == ["role F1 0.970 not above pocketsphinx-openfacefx's 0.990"]


def test_without_a_baseline_or_a_model_there_is_no_default():
    assert default_verdict({"model": MODEL, "openfacefx-energy": PEER}).failed == ["baseline not scored"]
    with pytest.raises(ValueError, match="no model among the scored generators"):
        default_verdict({"baseline": BASELINE})
    # a model spec with options is judged by name; another model spec is a candidate, not a rival
    verdict = default_verdict({"baseline[]": BASELINE, "model[sampler_steps=2]": MODEL, "model": BASELINE})
    assert verdict.candidate == "model[sampler_steps=2]" and verdict.default and verdict.rivals == ["baseline[]"]


def test_the_report_section_says_what_it_pools_and_judges_recorded_voices_only():
    results = {"baseline": BASELINE, "model": MODEL}
    section = rule_section(results, "test-real", verdicts(results))
    assert "Pooled over 2 self voices (recorded:ana, recorded:ben; 5 clips): counts summed across voices" in section
    assert "- **model may become the default: every target met, ahead of baseline**" in section
    synthetic = {name: dict(r, voices={"espeak:m1": 2, "recorded:ana": 1}) for name, r in
                 (("baseline", BASELINE), ("model", MODEL))}
    assert verdicts(synthetic) == {}
    section = rule_section(synthetic, "test", verdicts(synthetic))
    assert "Not judged: espeak:m1 is not a recorded voice" in section and "default:" not in section
