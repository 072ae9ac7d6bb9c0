"""The face around the lips, frame by frame, from cues every generator can read as it streams: the role, the own
voice's level and the smile. Shared by the rule baseline (which draws all of it) and the motion model's output
stage (whose network, sampled near its likeliest motion, leaves brows, dimples and the smile's lines still).

A quick rise of the voice over its slow average is emphasis (inner brows up, eyes wider); sustained loud speech is
effort (brows down, eyes narrowed, a little sneer, mouth corners down); listening while the partner talks is
attention (inner brows up); a smile brings the cheeks, squints, dimples and a little sneer with it. Small weights,
so no shape sits high for long; each face lopsided in its own way.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.motion import BS

SIDES = ("Left", "Right")
# the shapes `Expression` writes: a generator that draws some of them itself can keep the larger of the two
EXPRESSION_SHAPES = [BS[name] for name in ("BrowInnerUp", "CheekSquintLeft", "CheekSquintRight", "MouthDimpleLeft",
                                           "MouthDimpleRight")] + \
    [BS[f"{shape}{side}"] for shape in ("BrowDown", "EyeSquint", "NoseSneer", "MouthFrown", "EyeWide")
     for side in SIDES]


def clip01(x: float) -> float:
    """x within 0..1 (np.clip takes microseconds on a single number, and this runs every frame)."""
    return min(max(x, 0.0), 1.0)


class Expression:
    """One face's expression around the lips. Per frame, in order: `emphasise` with the own voice's level, then
    `brows`, then `smile_lines`; each adds to a motion row. Its lopsidedness is drawn from `rng` (two numbers)."""

    def __init__(self, rng: np.random.Generator):
        self.asymmetry = rng.uniform(0.8, 1.0, 2)  # left, right: no face is symmetric
        self.fast_db = self.slow_db = -80.0  # the own voice's level, followed fast and slow
        self.emphasis = 0.0  # a quick rise of the own voice over its slow average
        self.effort = 0.0  # slow average of the own voice's opening: sustained loud speech
        self.attention = 0.0  # grows while the partner speaks and the face listens

    def emphasise(self, db: float, speaking: bool) -> float:
        """Follows the own voice's level (dB, any frame); returns the emphasis, 0..1 (a head dip can follow it)."""
        self.fast_db += 0.5 * (db - self.fast_db)
        self.slow_db += 0.05 * (db - self.slow_db)
        rise = clip01((self.fast_db - self.slow_db - 4.0) / 10.0) if speaking else 0.0
        self.emphasis += 0.15 * (rise - self.emphasis)  # a brow lift takes a few frames, not one
        return self.emphasis

    def brows(self, row: np.ndarray, speaking: bool, listening: bool, partner: bool, opening: float,
              expressiveness: float) -> None:
        """Emphasis, effort and attention into `row`; `opening` is how far the own voice opens the mouth (0..1, its
        level against its running peak), `partner` whether the partner is talking."""
        ex = expressiveness
        row[BS["BrowInnerUp"]] += 0.3 * ex * self.emphasis
        self.effort += (0.04 if speaking else 0.02) * ((opening if speaking else 0.0) - self.effort)
        effort = clip01((self.effort - 0.25) / 0.35)
        self.attention += (0.03 if listening and partner else 0.05) * (float(listening and partner) - self.attention)
        row[BS["BrowInnerUp"]] += 0.12 * ex * self.attention
        for side, a in zip(SIDES, self.asymmetry):
            row[BS[f"BrowDown{side}"]] += 0.3 * ex * a * effort
            row[BS[f"EyeSquint{side}"]] += 0.12 * ex * a * effort
            row[BS[f"NoseSneer{side}"]] += 0.08 * ex * a * effort
            row[BS[f"MouthFrown{side}"]] += 0.12 * ex * a * effort
            row[BS[f"EyeWide{side}"]] += 0.2 * ex * self.emphasis

    def smile_lines(self, row: np.ndarray, smile: float) -> None:
        """What a smile (0..1) brings with it, lopsided as the face."""
        for side, a in zip(SIDES, self.asymmetry):
            row[BS[f"CheekSquint{side}"]] += 0.45 * a * smile
            row[BS[f"EyeSquint{side}"]] += 0.35 * a * smile
            row[BS[f"MouthDimple{side}"]] += 0.3 * a * smile
            row[BS[f"NoseSneer{side}"]] += 0.12 * a * smile
