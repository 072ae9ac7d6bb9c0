"""Recording conditions for one track: level, the partner bleeding into the microphone, room reverb, bandwidth
(sample rate), background noise. Labels never change: augmentation only teaches the model to hear through it.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.dsp import resample


def _rms(x: np.ndarray) -> float:
    loud = np.abs(x) > 1e-3
    return float(np.sqrt(np.mean(x[loud] ** 2))) if loud.any() else 1e-4


def _room(rng, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: direct sound, then exponentially decaying noise (60 dB in rt60 s)."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.003 * SAMPLE_RATE)] = 0  # the first reflections arrive after a few ms
    ir = tail / np.sqrt((tail ** 2).sum())
    ir[0] = 1.0
    return ir.astype(np.float32)


def _colored_noise(rng, n: int, slope: float) -> np.ndarray:
    """Noise whose power falls as 1/f^slope (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    x = np.fft.irfft(spec / f ** (slope / 2), n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def augment(rng: np.random.Generator, x: np.ndarray, partner: np.ndarray, strength: float = 1.0
            ) -> tuple[np.ndarray, dict]:
    """Degrade one clean track; `partner` is the other clean track (for bleed). Returns (audio, what was done).
    `strength` 0 keeps the audio clean (only the level changes)."""
    y = np.asarray(x, np.float32).copy()
    applied: dict = {}
    speech_rms = _rms(y)
    if rng.random() < 0.4 * strength:
        level = float(rng.uniform(-32, -18))  # dB of the partner under this speaker
        y += partner * (speech_rms / _rms(partner)) * 10 ** (level / 20)
        applied["bleed_db"] = round(level, 1)
    if rng.random() < 0.4 * strength:
        rt60, wet = float(rng.uniform(0.15, 0.9)), float(rng.uniform(0.1, 0.5))
        y = (1 - wet) * y + wet * fftconvolve(y, _room(rng, rt60))[: len(y)].astype(np.float32)
        applied["reverb"] = {"rt60_s": round(rt60, 3), "wet": round(wet, 3)}
    if rng.random() < 0.3 * strength:
        rate = int(rng.choice([8000, 11025, 12000]))
        y = resample(resample(y, SAMPLE_RATE, rate), rate, SAMPLE_RATE)[: len(x)]
        y = np.pad(y, (0, len(x) - len(y)))
        applied["bandwidth_hz"] = rate // 2
    if rng.random() < 0.6 * strength:
        snr, slope = float(rng.uniform(5, 35)), float(rng.uniform(0, 2))
        noise = _colored_noise(rng, len(y), slope)
        if rng.random() < 0.2:  # mains hum
            t = np.arange(len(y)) / SAMPLE_RATE
            f = float(rng.choice([50.0, 60.0]))
            noise += sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)).astype(np.float32)
        y += noise / (np.std(noise) + 1e-12) * speech_rms * 10 ** (-snr / 20)
        applied["noise"] = {"snr_db": round(snr, 1), "slope": round(slope, 2)}
    gain = float(rng.uniform(-16, 2))  # level: quiet microphones to hot ones, speech peaking near full scale
    peak = np.abs(x).max()  # the speech's own peak: a silent track stays (nearly) silent
    if peak > 0:
        y *= 0.9 / peak * 10 ** (gain / 20)
    applied["gain_db"] = round(gain, 1)
    return np.clip(y, -1, 1).astype(np.float32), applied
