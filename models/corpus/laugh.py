"""Laughter-like bursts, synthesised: a few "ha" calls (breathy onset, voiced open vowel through formant
resonators), falling in pitch and loudness, sometimes ending on an in-breath. No TTS engine laughs well, and
this gives every voice (recorded speakers too) a laugh with exact phone times.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.utterance import Utterance


def _resonator(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * freq / SAMPLE_RATE
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1.0 - r], a, x)


def _formants(x: np.ndarray, formants) -> np.ndarray:
    return sum(_resonator(x, f, b) * g for f, b, g in formants)


_VOWELS = {"a": [(750, 90, 1.0), (1250, 110, 0.6), (2600, 160, 0.25)],
           "ə": [(550, 90, 1.0), (1500, 110, 0.5), (2500, 160, 0.2)],
           "e": [(500, 90, 1.0), (1900, 110, 0.5), (2600, 160, 0.25)]}


def laugh(rng: np.random.Generator, f0: float = 180.0) -> Utterance:
    """One laugh (0.5-1.8 s): `f0` is the speaker's typical pitch; laughs sit well above it."""
    calls = int(rng.integers(2, 8))
    vowel = ["a", "ə", "e"][int(rng.integers(3))]
    pitch = f0 * rng.uniform(1.3, 1.9)
    period = rng.uniform(0.17, 0.26)
    pieces, phones, t = [], [], 0.0
    for i in range(calls):
        h_len = rng.uniform(0.03, 0.07) if i == 0 else rng.uniform(0.02, 0.05)
        v_len = max(0.05, period - h_len - rng.uniform(0.0, 0.05))
        gap = period - h_len - v_len
        amp = 0.35 * (0.85 ** i) * rng.uniform(0.8, 1.1)
        n_h, n_v, n_g = (int(d * SAMPLE_RATE) for d in (h_len, v_len, gap))
        breath = _formants(rng.normal(0, 1, n_h), _VOWELS[vowel]) * 0.15
        breath *= np.linspace(0.2, 1, n_h)
        f = pitch * (1 - 0.15 * i / calls) * np.linspace(1.05, 0.92, n_v)
        phase = np.cumsum(f / SAMPLE_RATE)
        pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)  # one pulse per glottal period
        source = lfilter([1.0], [1.0, -0.95], pulses) + rng.normal(0, 0.3, n_v)  # pulse train + aspiration
        voiced = _formants(source, _VOWELS[vowel]) * np.hanning(n_v) ** 0.5
        voiced *= 1.0 / (np.abs(voiced).max() + 1e-9)
        pieces += [amp * breath / (np.abs(breath).max() + 1e-9) * 0.3, amp * voiced, np.zeros(n_g)]
        phones += [(t, t + n_h / SAMPLE_RATE, "h"), (t + n_h / SAMPLE_RATE, t + (n_h + n_v) / SAMPLE_RATE, vowel)]
        t += (n_h + n_v + n_g) / SAMPLE_RATE
    if rng.random() < 0.4:  # the in-breath that ends a good laugh
        n = int(rng.uniform(0.15, 0.3) * SAMPLE_RATE)
        inhale = _formants(rng.normal(0, 1, n), _VOWELS["ə"]) * np.hanning(n)
        pieces.append(0.08 * inhale / (np.abs(inhale).max() + 1e-9))
        phones.append((t, t + n / SAMPLE_RATE, "h"))
    audio = np.concatenate(pieces).astype(np.float32)
    phones = [(round(a, 4), round(b, 4), n) for a, b, n in phones]
    return Utterance(audio, phones, [(phones[0][0], phones[-1][1], "(laugh)")], "(laugh)", {"synth": "laugh"})
