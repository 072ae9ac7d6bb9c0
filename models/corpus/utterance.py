"""One spoken utterance from any source: 16 kHz audio with its timed phones (IPA) and words."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE

Span = tuple[float, float, str]  # (start s, end s, label), times from the utterance's first sample


@dataclass
class Utterance:
    audio: np.ndarray  # (n,) float32 at SAMPLE_RATE
    phones: list[Span]  # IPA phone names; silences are gaps, not phones
    words: list[Span]
    text: str = ""
    info: dict = field(default_factory=dict)  # source details worth keeping in metadata (prompt name, ...)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def speech_span(self) -> tuple[float, float]:
        """From the first phone's start to the last phone's end (the whole audio when there are no phones)."""
        if not self.phones:
            return 0.0, self.duration
        return self.phones[0][0], self.phones[-1][1]

    def trimmed(self, margin: float = 0.05) -> "Utterance":
        """Drop leading and trailing silence beyond `margin` seconds around the phones."""
        a, b = self.speech_span
        start = max(0.0, a - margin)
        end = min(self.duration, b + margin)
        i, j = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
        t0 = i / SAMPLE_RATE
        shift = lambda spans: [(s - t0, e - t0, n) for s, e, n in spans]  # noqa: E731
        return Utterance(self.audio[i:j].copy(), shift(self.phones), shift(self.words), self.text, self.info)

    def cut(self, t: float, fade: float = 0.03) -> "Utterance":
        """Keep the first `t` seconds: the speaker stops (interrupted, or the clip ends). Words and phones that
        would be cut through are dropped; the audio stops at the last kept word's end with a short fade."""
        words = [w for w in self.words if w[1] <= t]
        end = words[-1][1] if words else min(t, self.phones[0][0] if self.phones else t)
        phones = [p for p in self.phones if p[1] <= end + 1e-6]
        n = int(round(end * SAMPLE_RATE))
        audio = self.audio[:n].copy()
        k = min(len(audio), int(fade * SAMPLE_RATE))
        if k:
            audio[-k:] *= np.linspace(1, 0, k, dtype=np.float32)
        return Utterance(audio, phones, words, " ".join(w[2] for w in words), {**self.info, "cut": True})
