"""The face's own coordinate frame and the curves the renderer builds from the keypoints.

Face units: the origin is midway between the eye centres, x runs from the subject's right eye to their left eye
(image right in a frontal portrait), y points down the face, and one unit is the distance between the eye centres
(about 63 mm on an adult). Working in these units makes every displacement scale and turn with the face.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.render.landmarks import Landmarks, eye_centre

EYE_DISTANCE_M = 0.063  # adult average, to turn head translation in metres into face units


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def bump(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """(1 - r^2)^3 inside the ellipse, 0 outside: smooth, compact, 1 at the centre."""
    r2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    return np.clip(1 - r2, 0, None) ** 3


def parabola(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray):
    """y(x) through three points (x increasing), held flat beyond the ends: lid and lip lines."""
    xs = np.array([p0[0], p1[0], p2[0]])
    ys = np.array([p0[1], p1[1], p2[1]])
    coef = np.polyfit(xs, ys, 2)

    def y(x: np.ndarray) -> np.ndarray:
        return np.polyval(coef, np.clip(x, xs[0], xs[2]))

    return y


class Face:
    """Keypoints in face units plus the derived lines (lips, lids) the expression fields and composites share."""

    def __init__(self, lm: Landmarks, min_band_px: float = 0.0):
        self.landmarks = lm
        right, left = eye_centre(lm, "right"), eye_centre(lm, "left")
        self.origin = (right + left) / 2
        self.unit = float(np.linalg.norm(left - right))  # pixels per face unit
        self.ex = (left - right) / self.unit
        self.ey = np.array([-self.ex[1], self.ex[0]])
        self.p = {name: self.to_face(xy) for name, xy in lm.points.items()}
        p = self.p
        # lips: the inner lines run corner - inner lip point - corner
        self.mouth_x = (p["mouth_right"][0] + p["mouth_left"][0]) / 2
        self.mouth_half_width = (p["mouth_left"][0] - p["mouth_right"][0]) / 2
        self.upper_inner = parabola(p["mouth_right"], p["upper_lip_bottom"], p["mouth_left"])
        self.lower_inner = parabola(p["mouth_right"], p["lower_lip_top"], p["mouth_left"])
        self.upper_lip_thickness = max(p["upper_lip_bottom"][1] - p["upper_lip_top"][1], 0.05)
        self.lower_lip_thickness = max(p["lower_lip_bottom"][1] - p["lower_lip_top"][1], 0.05)
        self.lid = {side: (parabola(*self._eye_row(side, "top")), parabola(*self._eye_row(side, "bottom")))
                    for side in ("right", "left")}
        self.jaw_half_width = (p["left_cheek"][0] - p["right_cheek"][0]) / 2
        # the thinnest lip band (face units): 0.06, or what the renderer's grid can resolve if that is more
        self.min_band = max(0.06, min_band_px / self.unit)

    def _eye_row(self, side: str, lid: str):
        a, b = self.p[f"{side}_eye_outer"], self.p[f"{side}_eye_inner"]
        left_to_right = (a, b) if a[0] < b[0] else (b, a)
        return left_to_right[0], self.p[f"{side}_eye_{lid}"], left_to_right[1]

    def to_face(self, xy: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> face units (..., 2)."""
        d = np.asarray(xy, np.float64) - self.origin
        return np.stack([d @ self.ex, d @ self.ey], -1) / self.unit

    def to_pixels(self, f: np.ndarray) -> np.ndarray:
        """Face units (..., 2) -> pixels (..., 2)."""
        f = np.asarray(f, np.float64)
        return self.origin + self.unit * (f[..., :1] * self.ex + f[..., 1:] * self.ey)

    def vector_to_pixels(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, np.float64)
        return self.unit * (d[..., :1] * self.ex + d[..., 1:] * self.ey)

    # -- the lip seam: where the jaw's displacement switches on ------------------------------------------------------

    def lip_band(self, x: np.ndarray) -> np.ndarray:
        """Height of the band under the upper lip over which the lower face's motion fades in: the source's own lip
        gap (teeth showing) where there is one, else min_band, pinching towards the corners; wider beyond them,
        where cheek skin rather than lips meets."""
        gap = np.maximum(self.lower_inner(x) - self.upper_inner(x), 0)
        across = np.abs(x - self.mouth_x) / self.mouth_half_width
        to_corner = np.sqrt(np.clip(1 - across ** 2, 0.04, 1))  # the band pinches towards the corners
        beyond = np.maximum(across - 1, 0) * self.mouth_half_width
        return np.maximum(gap, self.min_band * to_corner) + beyond

    def below_lips(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """0 on and above the upper lip's inner edge, 1 from the lower lip's inner edge down."""
        return smoothstep((y - self.upper_inner(x)) / self.lip_band(x))
