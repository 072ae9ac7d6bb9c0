"""Lip labels: timed IPA phones -> articulatory parameters with coarticulation -> ARKit mouth and jaw curves.

Coarticulation follows the dominance model (Cohen & Massaro): every phone (and every silence) pulls each
articulatory parameter towards its target with a dominance that is flat inside the phone and decays
exponentially outside it, faster after than before; a frame's value is the dominance-weighted mean of the
targets. Phones that need a parameter (rounding on u/w, lip contact on p/b/m, the lower lip on f/v) claim
it strongly; phones that do not care barely do, so rounding spreads across consonants ("s" in "soon" is
rounded: anticipatory rounding) and the jaw follows the vowels.

Bilabial closure is then made physical: lips that must meet do meet, for at least one frame inside every p/b/m.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.measures import span_frames
from backchannel.models.motion import BS, FRAME_RATE, NUM_BLENDSHAPES
from backchannel.models.phones import PARAMS, articulations, is_bilabial_closure

P = {name: i for i, name in enumerate(PARAMS)}
_LIP_SHAPE = ("pucker", "funnel", "spread")

# Dominance a shape of each kind has over the jaw, and over lip parameters it does not itself need (target 0).
# Parameters a shape needs (target > 0) get NEEDED; lip contact for p/b/m is non-negotiable: CONTACT.
NEEDED, CONTACT = 1.0, 2.0
_JAW = {"vowel": 1.0, "sibilant": 1.0, "postalveolar": 0.9, "labiodental": 0.8, "dental": 0.7, "bilabial": 0.6,
        "labial": 0.5, "consonant": 0.6, "rounding": 0.5, "dorsal": 0.3, "glottal": 0.05}
_PASSIVE = {"vowel": 0.35, "sibilant": 0.15, "postalveolar": 0.15, "labiodental": 0.15, "dental": 0.1,
            "bilabial": 0.12, "labial": 0.12, "consonant": 0.07, "rounding": 0.1, "dorsal": 0.05, "glottal": 0.02}
_PASSIVE_CLOSURE = {"vowel": 1.0, "glottal": 0.05, "dorsal": 0.2}  # lips part for vowels; others: 0.3

# Time constants (s) of the dominance decay before a phone (anticipation) and after it (carry-over).
_TAU_BEFORE = np.array([0.05 if p not in _LIP_SHAPE else 0.12 for p in PARAMS], np.float32)
_TAU_AFTER = np.array([0.04 if p not in _LIP_SHAPE else 0.06 for p in PARAMS], np.float32)
_TAU_BEFORE[P["closure"]] = _TAU_AFTER[P["closure"]] = 0.015  # lips meet and part quickly
_TAU_BEFORE[P["press"]] = _TAU_AFTER[P["press"]] = 0.015

_REST = np.zeros(len(PARAMS), np.float32)
_REST[P["closure"]] = 1.0  # at rest the lips are together
_REST_FULL_S = 0.15  # a silence this long closes the mouth with full dominance

MIN_CLOSURE_S = 0.04  # a bilabial closure lasts at least this long (or the whole phone when shorter)
LOUDNESS_JAW = 0.4  # a vowel's jaw opening ranges over x(1 -/+ LOUDNESS_JAW / 2) from its quietest to loudest


def _targets(art) -> tuple[np.ndarray, np.ndarray]:
    target = np.zeros(len(PARAMS), np.float32)
    for name, value in art.targets.items():
        target[P[name]] = value
    dom = np.full(len(PARAMS), _PASSIVE.get(art.kind, 0.07), np.float32)
    dom[P["closure"]] = dom[P["press"]] = _PASSIVE_CLOSURE.get(art.kind, 0.3)
    dom[target > 0] = NEEDED
    if target[P["closure"]] >= 1.0:
        dom[P["closure"]] = dom[P["press"]] = CONTACT
    dom[P["jaw"]] = _JAW.get(art.kind, 0.3)
    return target, dom


def _segments(phones) -> tuple[np.ndarray, ...]:
    """Phones -> (starts, ends, targets, dominance, is_vowel) of every articulatory segment plus the silences
    between."""
    starts, ends, targets, doms, vowels = [], [], [], [], []

    def rest(a: float, b: float) -> None:
        starts.append(a)
        ends.append(b)
        targets.append(_REST)
        doms.append(np.full(len(PARAMS), min(1.0, (b - a) / _REST_FULL_S), np.float32))
        vowels.append(False)

    prev_end = -10.0
    for start, end, name in sorted(phones):
        if start - prev_end > 1e-3:
            rest(prev_end, start)
        t = start
        for share, art in articulations(name):
            d = share * (end - start)
            target, dom = _targets(art)
            starts.append(t)
            ends.append(t + d)
            targets.append(target)
            doms.append(dom)
            vowels.append(art.kind == "vowel")
            t += d
        prev_end = max(prev_end, end)
    rest(prev_end, prev_end + 1e6)
    return (np.array(starts, np.float32), np.array(ends, np.float32), np.array(targets, np.float32),
            np.array(doms, np.float32), np.array(vowels, bool))


def lip_params(phones, frames: int, scale: float = 1.0, loudness: np.ndarray | None = None,
               chunk: int = 256) -> np.ndarray:
    """(frames, len(PARAMS)) articulatory parameters at the frame instants k / FRAME_RATE.
    `scale` is the speaker's articulation (hypo < 1 < hyper) applied to jaw and lip shapes; `loudness` (frames,)
    in [0, 1] is the voice's level: louder (stressed, emphatic) vowels open the jaw wider."""
    starts, ends, targets, doms, vowel = _segments(phones)
    if loudness is not None and len(loudness):
        mid = np.clip(((starts + ends) / 2 * FRAME_RATE).round().astype(int), 0, len(loudness) - 1)
        targets[vowel, P["jaw"]] *= (1 - LOUDNESS_JAW / 2) + LOUDNESS_JAW * loudness[mid[vowel]]
    out = np.zeros((frames, len(PARAMS)), np.float32)
    t_all = np.arange(frames, dtype=np.float32) / FRAME_RATE
    for c in range(0, frames, chunk):
        t = t_all[c: c + chunk]
        near = (starts < t[-1] + 1.0) & (ends > t[0] - 1.0)  # farther segments have no measurable dominance
        before = np.clip(starts[near][None, :] - t[:, None], 0, None)[..., None]  # (t, n, 1)
        after = np.clip(t[:, None] - ends[near][None, :], 0, None)[..., None]
        d = doms[near][None] * np.exp(-before / _TAU_BEFORE - after / _TAU_AFTER)  # (t, n, params)
        out[c: c + chunk] = (d * targets[near][None]).sum(1) / np.maximum(d.sum(1), 1e-12)
    for name in ("jaw",) + _LIP_SHAPE:
        out[:, P[name]] = np.clip(out[:, P[name]] * scale, 0, 1)
    _close_bilabials(out, phones)
    return out


def closure_window(start: float, end: float) -> tuple[float, float]:
    """When the lips are together during a p/b/m spanning [start, end]: from its start (the closure comes
    first; the release ends the phone) for 60% of it, at least MIN_CLOSURE_S."""
    return start, min(end, start + max(0.6 * (end - start), MIN_CLOSURE_S))


def _close_bilabials(params: np.ndarray, phones) -> None:
    """Lips together on every frame of each p/b/m closure (the nearest frame when it falls between two)."""
    for start, end, name in phones:
        if not is_bilabial_closure(name):
            continue
        ks = span_frames(*closure_window(start, end), len(params))
        params[ks, P["closure"]] = 1.0
        params[ks, P["press"]] = np.maximum(params[ks, P["press"]], 0.3)


def lips_to_blendshapes(params: np.ndarray) -> np.ndarray:
    """Articulatory parameters -> (T, 52) ARKit weights (mouth, jaw and tongue columns; others 0).
    Lips in contact with the jaw open is MouthClose = JawOpen (Apple's convention), so openness cancels."""
    g = {name: params[:, P[name]] for name in PARAMS}
    open_lips = 1.0 - g["closure"]
    bs = np.zeros((len(params), NUM_BLENDSHAPES), np.float32)
    bs[:, BS["JawOpen"]] = g["jaw"]
    bs[:, BS["MouthClose"]] = g["jaw"] * g["closure"]
    for side in ("Left", "Right"):
        bs[:, BS[f"MouthPress{side}"]] = 0.6 * g["press"] * g["closure"]
        bs[:, BS[f"MouthStretch{side}"]] = 0.45 * g["spread"] * open_lips
        bs[:, BS[f"MouthLowerDown{side}"]] = (0.35 * g["jaw"] + 0.3 * g["raise"] + 0.2 * g["spread"]) * open_lips
        bs[:, BS[f"MouthUpperUp{side}"]] = (0.25 * g["raise"] + 0.2 * g["tuck"] + 0.15 * g["spread"]) * open_lips
    bs[:, BS["MouthPucker"]] = g["pucker"]
    bs[:, BS["MouthFunnel"]] = g["funnel"] * open_lips
    bs[:, BS["MouthRollLower"]] = 0.6 * g["tuck"]
    bs[:, BS["MouthShrugUpper"]] = 0.2 * g["tuck"]
    bs[:, BS["TongueOut"]] = 0.3 * g["tongue"]
    return np.clip(bs, 0, 1)
