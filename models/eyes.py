"""The eyes, frame by frame: when they blink (Blinks) and where they look (Gaze, eye_shapes). The rule baseline draws
both from here; so does the motion model's output stage, as its network, sampled close to its likeliest motion,
regresses blinks and saccades, which audio cannot time, to the mean: it never blinks and its eyes barely move.

A blink starts when its frame comes; the gap to the next is drawn then, so a frame's lids depend only on the frames
before it (streaming, causal). The gap is gamma-distributed, mean MEAN_GAP_S at rate 1, plus the length of a blink:
at rate 1 about 18 blinks a minute. Its shape, `regularity`, is 1 by default (exponential: a Poisson process with a
blink's length of dead time); higher, the gaps vary less (coefficient of variation 1 / sqrt(regularity)). A cue (a
gaze shift, a turn that ends) brings the next blink forward to the next frame: people blink at such moments.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.motion import BS, FRAME_RATE

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


class Gaze:
    """Where the eyes look (yaw, pitch in radians, as motion.GAZE), frame by frame: fixations joined by saccades that
    cover most of the way in a frame. The gap to the next saccade is drawn when one starts (exponential, at least 8
    frames). Speaking, nearly half the looks go wide (speakers look away); listening, they stay near the partner.
    Draws from `rng` only when a saccade starts (and once here, for the first gap)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.next = self.gap()  # frame the next saccade starts
        self.target = np.zeros(2, np.float32)  # where the eyes are going: yaw, pitch
        self.now = np.zeros(2, np.float32)  # where they look at the frame just passed

    def gap(self) -> int:
        return int(self.rng.exponential(1.6) * FRAME_RATE) + 8

    def look(self, k: int, speaking: bool, listening: bool) -> bool:
        """Moves the eyes on to frame k (`now`); True where a saccade starts (a blink often comes with it)."""
        saccade = k >= self.next
        if saccade:
            wide = speaking and self.rng.random() < 0.45
            spread = (0.22, 0.1) if wide else (0.05, 0.03) if listening else (0.15, 0.08)
            self.target = (self.rng.uniform(-1, 1, 2) * spread).astype(np.float32)
            self.next = k + self.gap()
        self.now += 0.6 * (self.target - self.now)
        return saccade


def eye_shapes(row: np.ndarray, yaw: float, pitch: float) -> None:
    """ARKit eye-look shapes of a motion row from gaze (+yaw: the avatar's left, so the left eye looks out)."""
    h, v = min(abs(yaw) / 0.6, 1.0), min(abs(pitch) / 0.5, 1.0)  # (not np.clip: 5 us a call on a number)
    left_out = yaw > 0
    row[BS["EyeLookOutLeft" if left_out else "EyeLookInLeft"]] = h
    row[BS["EyeLookInRight" if left_out else "EyeLookOutRight"]] = h
    down = pitch > 0
    row[BS["EyeLookDownLeft" if down else "EyeLookUpLeft"]] = v
    row[BS["EyeLookDownRight" if down else "EyeLookUpRight"]] = v


EYE_LOOK_SHAPES = [BS[f"EyeLook{way}{side}"] for way in ("Down", "In", "Out", "Up") for side in ("Left", "Right")]
