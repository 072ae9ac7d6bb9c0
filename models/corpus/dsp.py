"""Signal measurements and conversions the corpus needs in bulk: polyphase resampling, per-frame loudness and
pitch at the motion frame rate.

(models.audio.Resampler is the streaming, chunking-invariant resampler of the live path; offline corpus work
resamples whole arrays, where scipy's polyphase filter is ~100x faster.)
"""
from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.frontend.features import frame_rms
from backchannel.models.motion import FRAME_RATE


def resample(x: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if rate_in == rate_out:
        return x.copy()
    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def loudness(x: np.ndarray, frames: int, range_db: float = 25.0) -> np.ndarray:
    """(frames,) level in [0, 1]: 1 at the track's loud speech (95th percentile), 0 `range_db` below it."""
    db = 20 * np.log10(frame_rms(x, frames) + 1e-6)
    ref = np.percentile(db, 95)
    return np.clip((db - (ref - range_db)) / range_db, 0, 1).astype(np.float32)


def frame_f0(x: np.ndarray, frames: int, fmin: float = 60.0, fmax: float = 450.0, window: float = 0.04
             ) -> np.ndarray:
    """Fundamental frequency (Hz) per motion frame from normalised autocorrelation; 0 where unvoiced or silent.
    Crude on purpose: head motion and brows only need the contour's ups and downs."""
    n = int(window * SAMPLE_RATE)
    x = np.pad(np.asarray(x, np.float32), (n // 2, n))
    starts = (np.arange(frames) * SAMPLE_RATE) // FRAME_RATE
    segs = x[starts[:, None] + np.arange(n)[None, :]]
    segs = segs - segs.mean(1, keepdims=True)
    energy = (segs ** 2).sum(1)
    spec = np.fft.rfft(segs * np.hanning(n)[None, :], 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :n]
    lo, hi = int(SAMPLE_RATE / fmax), int(SAMPLE_RATE / fmin)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    strength = ac[np.arange(frames), lag] / np.maximum(ac[:, 0], 1e-9)
    loud = energy > 1e-4 * max(float(energy.max()), 1e-9)
    return np.where((strength > 0.45) & loud, SAMPLE_RATE / lag, 0.0).astype(np.float32)


def stretch(x: np.ndarray, factor: float, window: float = 0.03, tolerance: float = 0.008) -> np.ndarray:
    """`x` made `factor` times longer at the same pitch (WSOLA): Hann-windowed segments overlap-added at a fixed
    output hop, each read from near where the slower time axis puts it, shifted by up to `tolerance` seconds so
    that it continues the previous segment's waveform (the best cross-correlation) rather than cutting a pitch
    period in two."""
    x = np.asarray(x, np.float32)
    w = int(window * SAMPLE_RATE) // 2 * 2
    hop, tol = w // 2, int(tolerance * SAMPLE_RATE)
    n_out = int(round(len(x) * factor))
    if len(x) < w or n_out <= len(x):  # too short to window, or nothing to add
        return x.copy()
    padded = np.pad(x, (tol, w + hop + tol))
    window_fn = np.hanning(w).astype(np.float32)
    out, weight = np.zeros(n_out + w, np.float32), np.zeros(n_out + w, np.float32)
    pos = 0  # where (in x) the last segment was read
    for k, at in enumerate(range(0, n_out, hop)):
        target = min(int(round(at / factor)), len(x) - 1)
        if k:
            follow = padded[tol + pos + hop: tol + pos + hop + w]  # what would continue the last segment
            lo = max(0, target - tol)
            search = padded[tol + lo: tol + target + tol + w]
            score = np.correlate(search, follow, "valid")
            target = lo + int(np.argmax(score))
        out[at:at + w] += window_fn * padded[tol + target: tol + target + w]
        weight[at:at + w] += window_fn
        pos = target
    return (out / np.maximum(weight, 1e-3))[:n_out]
