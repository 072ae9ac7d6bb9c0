"""Blinks, frame by frame: the one blink process the generators share (the baseline draws every blink from it; the
model's network, sampled close to its likeliest motion, regresses blinks, which audio cannot time, to the mean and
never blinks, so its output stage draws them from here too).

A blink starts when its frame comes; the gap to the next is drawn then, so a frame's lids depend only on the frames
before it (streaming, causal). The gap is gamma-distributed, mean MEAN_GAP_S at rate 1, plus the length of a blink:
at rate 1 about 18 blinks a minute. Its shape, `regularity`, is 1 by default (exponential: a Poisson process with a
blink's length of dead time); higher, the gaps vary less (coefficient of variation 1 / sqrt(regularity)). A cue (a
gaze shift, a turn that ends) brings the next blink forward to the next frame: people blink at such moments.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.motion import FRAME_RATE

BLINK = np.array([0.45, 0.95, 1.0, 0.75, 0.4, 0.15], np.float32)  # lid closure, frame by frame: fast down, slower up
MEAN_GAP_S = 3.2  # the exponential part of the gap between blink starts, at rate 1
MIN_RATE = 0.05  # rate 0 still blinks now and then: eyes that never close look dead


class Blinks:
    """One face's blinks. `lid(k, rate)` for every frame k in order gives that frame's lid closure (0..1, both eyes);
    `rate` scales how often blinks come and may change from frame to frame (it applies from the next gap drawn).
    Draws from `rng` only when a blink starts (and once here, for the first gap)."""

    def __init__(self, rng: np.random.Generator, rate: float = 1.0, regularity: float = 1.0):
        self.rng, self.regularity = rng, float(regularity)
        self.next = self.gap(rate)  # frame the next blink starts
        self.starts: list[int] = []  # blinks under way

    def gap(self, rate: float) -> int:
        mean = MEAN_GAP_S / max(rate, MIN_RATE)  # (gamma of shape 1 draws what exponential draws)
        return int(self.rng.gamma(self.regularity, mean / self.regularity) * FRAME_RATE) + len(BLINK)

    def cue(self, k: int) -> None:
        """Frame k brings a blink: the next one starts at k + 1 (or sooner, if one was due)."""
        self.next = min(self.next, k + 1)

    def lid(self, k: int, rate: float = 1.0) -> float:
        if k >= self.next:
            self.starts.append(k)
            self.next = k + self.gap(rate)
        closure = sum(float(BLINK[k - s]) for s in self.starts if k - s < len(BLINK))  # a cued blink may overlap
        self.starts = [s for s in self.starts if k + 1 - s < len(BLINK)]
        return min(1.0, closure)
