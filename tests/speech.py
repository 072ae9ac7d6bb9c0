"""Real recorded speech for tests: a two-track dialogue composed from the shipped Allison prompts."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from backchannel.models.audio import SAMPLE_RATE, load_audio

from .corpus_fixtures import ALLISON


def prompt(name: str) -> tuple[np.ndarray, float, float]:
    """A prompt at 16 kHz and where its speech starts and ends (seconds; the files carry silence around it)."""
    x = load_audio(ALLISON / f"{name}.wav")
    frame = SAMPLE_RATE // 100
    rms = np.sqrt(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > 0.1 * rms.max())
    return x, loud[0] * frame / SAMPLE_RATE, (loud[-1] + 1) * frame / SAMPLE_RATE


@dataclass(frozen=True)
class Dialogue:
    self_audio: np.ndarray
    other_audio: np.ndarray
    self_segments: tuple[tuple[float, float], ...]  # speech extents, seconds
    other_segments: tuple[tuple[float, float], ...]

    @property
    def other_phrase_ends(self) -> list[float]:
        return [end for _, end in self.other_segments]


# (track, prompt, start second): the partner asks twice, the avatar answers twice, the partner closes
SCRIPT = (
    ("other", "agent-pass", 0.5),
    ("other", "privacy-prompt", 4.6),
    ("self", "conf-onlyperson", 9.0),
    ("self", "priv-introsaved", 12.8),
    ("other", "conf-roll-callcomplete", 18.0),
)


@lru_cache(maxsize=1)
def two_track_dialogue() -> Dialogue:
    total = int(23.0 * SAMPLE_RATE)
    tracks = {"self": np.zeros(total, np.float32), "other": np.zeros(total, np.float32)}
    segments = {"self": [], "other": []}
    for track, name, start in SCRIPT:
        x, on, off = prompt(name)
        i = int(start * SAMPLE_RATE)
        tracks[track][i:i + len(x)] += x
        segments[track].append((start + on, start + off))
    return Dialogue(tracks["self"], tracks["other"], tuple(segments["self"]), tuple(segments["other"]))
