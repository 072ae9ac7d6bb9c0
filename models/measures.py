"""Measurable facts about a motion track, defined once: the corpus checks its labels with them and the model
evaluation scores generated motion with them, so both are judged by the same rules.

- mouth openness and the "lips shut" predicate, from the ARKit weights alone;
- which frames lie inside a timed phone or speech segment;
- P/B/M closure: the share of bilabial phones during which the lips are shut on some frame;
- lip rounding (pucker + funnel) over a class of phones' frames;
- nods: downward head-pitch excursions that come back, and the share of events followed by one.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

from backchannel.models.motion import BS, FRAME_RATE, HEAD_ROTATION
from backchannel.models.phones import is_bilabial_closure

LIPS_SHUT_OPENNESS = 0.05  # openness below this: the lips touch (or nearly); the mouth reads as closed
NOD_MIN_DEPTH = 0.03  # rad (~1.7 degrees) of downward pitch, relative to the surrounding second and a half
NOD_WIDTH_S = (0.1, 1.2)  # a nod's down-and-up takes this long (at half depth)
NOD_WINDOW_S = 1.0  # a nod "answers" an event when its lowest point falls within this long after it


def mouth_openness(motion: np.ndarray) -> np.ndarray:
    """(T,) how far the lips are apart, ~0 closed .. ~1 wide open: the jaw's opening not cancelled by lip
    contact (ARKit MouthClose closes the lips against an open jaw) plus the lips drawn off the teeth."""
    m = np.asarray(motion, np.float32)
    jaw_gap = np.clip(m[:, BS["JawOpen"]] - m[:, BS["MouthClose"]], 0, 1)
    lower = (m[:, BS["MouthLowerDownLeft"]] + m[:, BS["MouthLowerDownRight"]]) / 2
    upper = (m[:, BS["MouthUpperUpLeft"]] + m[:, BS["MouthUpperUpRight"]]) / 2
    return jaw_gap + 0.5 * lower + 0.5 * upper


def lips_shut(motion: np.ndarray) -> np.ndarray:
    """(T,) bool: the lips are together on this frame."""
    return mouth_openness(motion) < LIPS_SHUT_OPENNESS


def span_frames(start: float, end: float, frames: int) -> np.ndarray:
    """Frame indices whose instant k / FRAME_RATE lies in [start, end]; a span shorter than a frame interval
    gets the frame nearest its middle, so every span has at least one frame (clipped to the track)."""
    ks = np.arange(int(np.ceil(start * FRAME_RATE - 1e-6)), int(np.floor(end * FRAME_RATE + 1e-6)) + 1)
    if len(ks) == 0:
        ks = np.array([int(round((start + end) / 2 * FRAME_RATE))])
    return ks[(ks >= 0) & (ks < frames)]


def spans_mask(spans, frames: int, margin: float = 0.0) -> np.ndarray:
    """(frames,) bool: frames inside any (start, end, ...) span widened by `margin` seconds on both sides."""
    mask = np.zeros(frames, bool)
    for span in spans:
        mask[span_frames(span[0] - margin, span[1] + margin, frames)] = True
    return mask


def answer_frames(times, frames: int) -> np.ndarray:
    """(frames,) bool: frames within NOD_WINDOW_S after any of the event `times` (s), where a nod would answer
    them (nods_after). Training weighs these frames (ModelConfig.reply_weight) and the eval keeps its random
    moments out of them, so both use this one window."""
    return spans_mask([(t, t + NOD_WINDOW_S) for t in times], frames)


def phone_frames(phones, frames: int, which=is_bilabial_closure) -> np.ndarray:
    """(frames,) bool: the frames of the phones in `phones` ((start, end, ipa) spans) that `which` picks, as
    phones_shut counts them. Training weighs these frames (ModelConfig.closure_weight)."""
    mask = np.zeros(frames, bool)
    for ks in frames_per_phone(phones, which, frames):
        mask[ks] = True
    return mask


def frames_per_phone(phones, which, frames: int) -> list[np.ndarray]:
    """The frame indices of each phone in `phones` ((start, end, ipa) spans) that `which` picks; phones with no
    frame in the track are left out."""
    spans = (span_frames(start, end, frames) for start, end, name in phones if which(name))
    return [ks for ks in spans if len(ks)]


def phones_shut(motion: np.ndarray, phones, which=is_bilabial_closure) -> tuple[int, int]:
    """(shut, total) over the phones in `phones` that `which` picks (by default the P/B/M closures): a phone counts
    as shut when the lips are together on at least one of its frames."""
    shut = lips_shut(motion)
    picked = frames_per_phone(phones, which, len(shut))
    return sum(bool(shut[ks].any()) for ks in picked), len(picked)


def lip_rounding(motion: np.ndarray) -> np.ndarray:
    """(T,) how rounded the lips are: ARKit MouthPucker (protruded, u, w) plus MouthFunnel (open rounding, o)."""
    m = np.asarray(motion, np.float32)
    return m[:, BS["MouthPucker"]] + m[:, BS["MouthFunnel"]]


def phones_mean(values: np.ndarray, phones, which) -> tuple[float, int]:
    """(sum, count) over the phones in `phones` that `which` picks of each phone's mean of the per-frame `values`
    (its frames as phones_shut reads them): sum / count weighs every phone equally."""
    picked = frames_per_phone(phones, which, len(values))
    return sum(float(np.mean(values[ks])) for ks in picked), len(picked)


def nod_frames(motion: np.ndarray) -> np.ndarray:
    """Frame indices of nods' lowest points (+pitch is down), found as peaks of head pitch above its 1.5 s
    moving average, at least NOD_MIN_DEPTH deep and of nod-like duration."""
    pitch = np.asarray(motion, np.float32)[:, HEAD_ROTATION.start]
    if len(pitch) < 3:
        return np.zeros(0, int)
    detrended = pitch - uniform_filter1d(pitch, int(1.5 * FRAME_RATE), mode="nearest")
    peaks, _ = find_peaks(detrended, prominence=NOD_MIN_DEPTH,
                          width=(NOD_WIDTH_S[0] * FRAME_RATE, NOD_WIDTH_S[1] * FRAME_RATE))
    return peaks


def nods_after(times, nods: np.ndarray, window: float = NOD_WINDOW_S) -> np.ndarray:
    """(len(times),) bool: a nod's lowest point falls within (t, t + window] of each event time t."""
    nod_t = np.asarray(nods, float) / FRAME_RATE
    return np.array([bool(((nod_t > t) & (nod_t <= t + window)).any()) for t in times], bool)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0
