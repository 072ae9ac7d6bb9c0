"""One spoken utterance from any source: 16 kHz audio with its timed phones (IPA) and words."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.dsp import stretch
from backchannel.models.phones import is_vowel

Span = tuple[float, float, str]  # (start s, end s, label), times from the utterance's first sample
PAUSE_S = 0.1  # a gap between phones at least this long is a pause the voice trails off into


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

    def phrase_final_vowels(self) -> list[tuple[int, int]]:
        """(index of its last vowel, index of its last phone) per phrase that has a vowel; a phrase ends at a pause
        (a gap of PAUSE_S between phones) or at the utterance's end."""
        if not self.phones:
            return []
        ends = [i for i, (p, q) in enumerate(zip(self.phones, self.phones[1:])) if q[0] - p[1] >= PAUSE_S]
        out, start = [], 0
        for end in ends + [len(self.phones) - 1]:
            vowels = [i for i in range(start, end + 1) if is_vowel(self.phones[i][2])]
            if vowels:
                out.append((vowels[-1], end))
            start = end + 1
        return out

    def lengthened(self, factor: float) -> "Utterance":
        """Each phrase's last vowel said `factor` times longer at the same pitch (dsp.stretch), later phones and
        words later by as much: people draw out the vowel before a pause (Allison's last vowels last 200-400 ms,
        the synthesisers' about half that)."""
        if factor <= 1.0:
            return self._with(self.audio.copy(), {})
        knots = [(0.0, 0.0)]  # (time before, time after): a piecewise-linear map of the timeline
        pieces, done = [], 0
        for vowel, _ in self.phrase_final_vowels():
            a, b = (int(round(t * SAMPLE_RATE)) for t in self.phones[vowel][:2])
            pieces += [self.audio[done:a], stretch(self.audio[a:b], factor)]
            shift = knots[-1][1] - knots[-1][0]
            knots += [(a / SAMPLE_RATE, a / SAMPLE_RATE + shift),
                      (b / SAMPLE_RATE, (a + len(pieces[-1])) / SAMPLE_RATE + shift)]
            done = b
        pieces.append(self.audio[done:])
        before, after = np.array(knots).T
        remap = lambda t: float(np.interp(t, before, after, right=t + after[-1] - before[-1]))  # noqa: E731
        timed = lambda spans: [(round(remap(s), 4), round(remap(e), 4), n) for s, e, n in spans]  # noqa: E731
        return Utterance(np.concatenate(pieces), timed(self.phones), timed(self.words), self.text,
                         {**self.info, "lengthened": round(factor, 3)})

    def trailing_off(self, depth_db: float) -> "Utterance":
        """The same speech trailing off into each pause as people's does: from the start of the phrase's last
        vowel to its last phone's end the level falls linearly in dB to -depth_db, and stays there through the
        pause. Synthesisers hold a vowel's level to its last sample; the recorded voice fades 10-25 dB over a
        phrase's last vowel, and a model that had not heard that shut the lips while the voice still sounded
        (docs/experiments.md "Voices that trail off"). Phones and words keep their times: the lips stay apart through
        the vowel, as they do while it sounds."""
        audio = self.audio.copy()
        if depth_db <= 0:
            return self._with(audio, {})
        for vowel, end in self.phrase_final_vowels():
            resume = self.phones[end + 1][0] if end + 1 < len(self.phones) else self.duration
            a, b, c = (int(round(t * SAMPLE_RATE)) for t in (self.phones[vowel][0], self.phones[end][1], resume))
            db = np.full(max(c - a, 0), -depth_db, np.float32)
            db[: b - a] = np.linspace(0, -depth_db, b - a, dtype=np.float32)
            audio[a:c] *= 10 ** (db[: len(audio[a:c])] / 20)
        return self._with(audio, {"trails_off_db": depth_db})

    def _with(self, audio: np.ndarray, info: dict) -> "Utterance":
        """This utterance's timing with other audio (of the same length), and more info."""
        return Utterance(audio, list(self.phones), list(self.words), self.text, {**self.info, **info})
