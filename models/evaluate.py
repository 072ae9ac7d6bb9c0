"""Quality, measured: the metrics of DESIGN.md section 6 for any generator, side by side, on held-out clips.

Every metric reads generated motion against what the clip says happened (phones, who spoke when, the partner's
phrase ends), using the same definitions the corpus checks its own labels with (models.measures).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE
from .measures import bilabial_closure, mouth_openness, nod_frames, nods_after, spans_mask
from .motion import BLENDSHAPES, FRAME_RATE, HEAD_ROTATION, LISTENING, SPEAKING

MAX_SWITCH_S = 1.0  # a switch the generator has not followed within this long counts as this late


@dataclass
class EvalClip:
    """What the metrics need of a clip: both tracks and the facts of the conversation."""

    name: str
    self_audio: np.ndarray  # 16 kHz
    other_audio: np.ndarray
    state: np.ndarray  # (T,) reference role per frame
    self_phones: list  # (start, end, ipa)
    self_speech: list  # (start, end) spans of the avatar's own speech
    other_speech: list  # (start, end) spans of the partner's speech
    other_phrase_ends: list  # seconds
    motion: np.ndarray | None = None  # (T, 62) reference labels, when the clip has them
    meta: dict = field(default_factory=dict)


def speech_envelope(audio: np.ndarray, frames: int, window_s: float = 0.04) -> np.ndarray:
    """RMS amplitude in a window centred on each frame's time (T,)."""
    half = int(window_s * SAMPLE_RATE / 2)
    centres = (np.arange(frames) * SAMPLE_RATE / FRAME_RATE).astype(int)
    padded = np.pad(np.asarray(audio, np.float64), (half, half + 1))
    csum = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    return np.sqrt((csum[centres + 2 * half] - csum[centres]) / (2 * half))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def f1(pred: np.ndarray, ref: np.ndarray) -> float:
    tp = float((pred & ref).sum())
    return 2 * tp / max(1.0, float(pred.sum() + ref.sum()))


def switch_latencies(pred: np.ndarray, ref: np.ndarray) -> list[float]:
    """Seconds from each reference change into speaking or listening until the prediction agrees."""
    out = []
    changes = np.flatnonzero((ref[1:] != ref[:-1]) & np.isin(ref[1:], (SPEAKING, LISTENING))) + 1
    for k in changes:
        horizon = pred[k:k + int(MAX_SWITCH_S * FRAME_RATE)]
        hit = np.flatnonzero(horizon == ref[k])
        out.append(hit[0] / FRAME_RATE if len(hit) else MAX_SWITCH_S)
    return out


def clip_metrics(clip: EvalClip, motion: np.ndarray, state: np.ndarray, rng: np.random.Generator) -> dict:
    """Raw counts and sums for one clip; `summarise` turns a list of them into the reported figures."""
    n = min(len(motion), len(clip.state))
    motion, state, ref = motion[:n], np.asarray(state[:n]), np.asarray(clip.state[:n])
    opening = mouth_openness(motion)
    own = spans_mask(clip.self_speech, n)
    partner_only = spans_mask(clip.other_speech, n) & ~spans_mask(clip.self_speech, n, margin=0.2)
    env = speech_envelope(clip.self_audio, n)
    closed, bilabials = bilabial_closure(motion, clip.self_phones)
    nods = nod_frames(motion)
    ends = [t for t in clip.other_phrase_ends if t * FRAME_RATE < n - FRAME_RATE]
    after_end = spans_mask([(t, t + 1.0) for t in clip.other_phrase_ends], n)
    calm = np.flatnonzero((ref == LISTENING) & ~after_end)[: max(0, n - FRAME_RATE)]
    moments = rng.choice(calm, min(len(calm), max(len(ends), 20)), replace=False) / FRAME_RATE if len(calm) else []
    accel = np.abs(np.diff(motion, 2, axis=0)) if n > 2 else np.zeros((0, motion.shape[1]))
    return {
        "frames": n,
        "lip_pairs": (opening[own], env[own]),
        "bilabial": (closed, bilabials),
        "speaking": (state == SPEAKING, ref == SPEAKING),
        "listening": (state == LISTENING, ref == LISTENING),
        "switches": switch_latencies(state, ref),
        "leak": (float(opening[partner_only].sum()), int(partner_only.sum()), float(opening[own].sum()), int(own.sum())),
        "nods_after_ends": (int(nods_after(ends, nods).sum()), len(ends)),
        "nods_at_random": (int(nods_after(moments, nods).sum()), len(moments)),
        "jitter": (float(accel[:, BLENDSHAPES].sum()), float(accel[:, HEAD_ROTATION].sum()), len(accel)),
    }


def summarise(per_clip: list[dict]) -> dict:
    """Pool clips (frames weigh equally) into the reported figures."""
    cat = lambda key, i: np.concatenate([c[key][i] for c in per_clip])  # noqa: E731
    ratio = lambda key, i, j: sum(c[key][i] for c in per_clip) / max(1, sum(c[key][j] for c in per_clip))  # noqa: E731
    switches = [s for c in per_clip for s in c["switches"]]
    leak_partner = ratio("leak", 0, 1)
    leak_own = ratio("leak", 2, 3)
    jitter_frames = max(1, sum(c["jitter"][2] for c in per_clip))
    return {
        "lip_envelope_r": pearson(cat("lip_pairs", 0), cat("lip_pairs", 1)),
        "pbm_closure": ratio("bilabial", 0, 1),
        "role_f1": 0.5 * (f1(cat("speaking", 0), cat("speaking", 1)) + f1(cat("listening", 0), cat("listening", 1))),
        "switch_latency_ms": 1000 * float(np.median(switches)) if switches else float("nan"),
        "partner_leak": leak_partner / leak_own if leak_own > 0 else float("nan"),
        "nods_after_phrase_ends": ratio("nods_after_ends", 0, 1),
        "nods_at_random": ratio("nods_at_random", 0, 1),
        "jitter_blendshapes": sum(c["jitter"][0] for c in per_clip) / jitter_frames / 52,
        "jitter_head_deg": np.degrees(sum(c["jitter"][1] for c in per_clip) / jitter_frames / 3),
    }


def seed_diversity(generate_fn, clip: EvalClip, seeds=(0, 1)) -> dict:
    """How much two seeds differ in head motion (deg, mean abs) while lips still follow the speech."""
    runs = [generate_fn(clip, seed) for seed in seeds]
    n = min(len(m) for m, _ in runs)
    head = [m[:n, HEAD_ROTATION] for m, _ in runs]
    own = spans_mask(clip.self_speech, n)
    env = speech_envelope(clip.self_audio, n)
    lips = [pearson(mouth_openness(m[:n])[own], env[own]) if own.sum() > 2 else float("nan") for m, _ in runs]
    return {"head_diff_deg": float(np.degrees(np.abs(head[0] - head[1]).mean())), "lip_r_per_seed": lips}


# what each metric must reach (issue 4's targets) and which way is better
TARGETS = {
    "lip_envelope_r": (">=", 0.7),
    "pbm_closure": (">=", 0.9),
    "role_f1": (">=", 0.95),
    "switch_latency_ms": ("<=", 200.0),
    "partner_leak": ("<=", 0.15),
    "nods_after_phrase_ends": (">=", 0.6),
}
HIGHER_IS_BETTER = {"lip_envelope_r", "pbm_closure", "role_f1", "nods_after_phrase_ends", "head_diff_deg",
                    "nod_contrast"}
