"""The inside of the mouth, drawn where the warp pulls the lips apart: dark cavity, upper and lower teeth, tongue.

The warp opens the mouth by stretching the thin band between the upper lip's inner edge and the lower lip's
(face.lip_band); this module follows both edges through the warp and paints the opening between them. It fades in
with how far the lips have parted beyond the portrait's own opening, so a portrait that already shows teeth keeps
its own until the mouth opens further.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.render.eyes import blend, feather, polygon_mask
from backchannel.models.render.face import Face, smoothstep

SAMPLES = 15  # points along each inner lip edge, corners excluded
IVORY = np.array([236, 230, 214], np.float32)
TONGUE_RED = np.array([196, 84, 92], np.float32)
FADE_IN = (0.015, 0.06)  # extra opening (face units) over which the painted interior fades in
LUT_SIZE = 256  # entries in the tables across the mouth


def _across_luts(size: int) -> np.ndarray:
    """Everything that depends only on the distance across the mouth from its middle (0) to a corner (1), tabled:
    cavity shade (darkest at the back of the throat), closeness to the middle, teeth span, teeth shade (the gaps
    between teeth: incisors wide, molars thin), and how far the upper teeth, lower teeth and tongue reach towards
    the corners."""
    a = np.linspace(0, 1, size)
    edges = np.array([0.0, 0.22, 0.4, 0.55, 0.68, 0.79])
    seams = 1 - 0.15 * np.exp(-((a[:, None] - edges) / 0.015) ** 2).sum(1)
    return np.stack([0.6 + 0.8 * a ** 2, 1 - a, np.sqrt(1 - a ** 2), 0.92 * (1 - 0.5 * a ** 1.5) * seams,
                     smoothstep((0.92 - a) / 0.1), smoothstep((0.7 - a) / 0.1), smoothstep((0.85 - a) / 0.15)],
                    -1).astype(np.float32)


ACROSS = _across_luts(LUT_SIZE)


def lip_gap(corners: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """How far apart the inner lip edges are, measured across the line between the corners (a sideways jaw
    shears the lips without parting them)."""
    across = corners[1] - corners[0]
    down = np.array([-across[1], across[0]]) / max(np.linalg.norm(across), 1e-6)
    return (lower - upper) @ down


class Mouth:
    def __init__(self, face: Face, image: np.ndarray):
        p = face.p
        self.unit = face.unit
        hw = face.mouth_half_width
        x = face.mouth_x + hw * np.cos(np.linspace(np.pi, 0, SAMPLES + 2))[1:-1]  # denser near the corners
        upper = face.upper_inner(x)
        lower = upper + face.lip_band(x)
        px = lambda xs, ys: face.to_pixels(np.stack([xs, ys], -1))  # noqa: E731
        self.corners = px(np.array([p["mouth_right"][0], p["mouth_left"][0]]),
                          np.array([p["mouth_right"][1], p["mouth_left"][1]]))
        self.upper, self.lower = px(x, upper), px(x, lower)  # (SAMPLES, 2) source pixels: the band's edges
        self.rest_opening = lip_gap(self.corners, self.upper, self.lower)
        outline = np.concatenate([px(x, face.upper_inner(x) - face.upper_lip_thickness),
                                  px(x, face.lower_inner(x) + face.lower_lip_thickness)[::-1]])
        inner = np.concatenate([px(x, face.upper_inner(x)), px(x, face.lower_inner(x))[::-1]])
        lips = (polygon_mask(image.shape[:2], outline) > 0.5) & (polygon_mask(image.shape[:2], inner) < 0.5)
        self.lip_colour = np.median(image[lips], 0).astype(np.float32) if lips.any() else np.float32([170, 90, 90])
        self.teeth_colour = self._teeth(image, inner)
        cavity = 0.3 * self.lip_colour
        tongue = 0.5 * self.lip_colour + 0.5 * TONGUE_RED
        self.palette = np.stack([cavity, tongue, self.teeth_colour, self.teeth_colour]).astype(np.float32)

    def _teeth(self, image: np.ndarray, inner: np.ndarray) -> np.ndarray:
        """The portrait's own teeth colour when it shows some, else ivory."""
        px = image[polygon_mask(image.shape[:2], inner) > 0.5].astype(np.float32)
        if len(px) < 6:
            return IVORY
        lum = px @ np.array([0.299, 0.587, 0.114], np.float32)
        bright = px[lum >= np.percentile(lum, 70)].mean(0)
        return bright if bright.mean() > 120 and bright.std() < 40 else IVORY

    def draw(self, frame: np.ndarray, corners: np.ndarray, upper: np.ndarray, lower: np.ndarray,
             tongue_out: float) -> None:
        """Paint the opening between the warped inner lip edges (pixels) into `frame` (uint8, in place)."""
        extra = (lip_gap(corners, upper, lower) - self.rest_opening).max() / self.unit
        strength = float(smoothstep((extra - FADE_IN[0]) / (FADE_IN[1] - FADE_IN[0])))
        if strength <= 0:
            return
        outline = np.concatenate([corners[:1], upper, corners[1:], lower[::-1]])
        h, w = frame.shape[:2]
        x0, y0 = np.maximum(np.floor(outline.min(0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(outline.max(0)).astype(int) + 2, (w, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        origin = np.array([x0, y0], np.float64)
        shape = (y1 - y0, x1 - x0)
        opening = feather(polygon_mask(shape, outline - origin), 0.006 * self.unit)
        # the mouth's own axes: s across (-1 right corner .. 1 left corner), t down from the upper edge
        across = corners[1] - corners[0]
        width = max(np.linalg.norm(across), 1.0)
        across /= width
        down = np.array([-across[1], across[0]])
        mid = corners.mean(0)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        rel_x, rel_y = xx - mid[0], yy - mid[1]
        s = (rel_x * across[0] + rel_y * across[1]) / (width / 2)
        t = rel_x * down[0] + rel_y * down[1]
        edge_s = np.concatenate([[-1], (upper - mid) @ across / (width / 2), [1]])
        top = np.interp(s, edge_s, np.concatenate([[0], (upper - mid) @ down, [0]]))
        bottom = np.interp(s, edge_s, np.concatenate([[0], (lower - mid) @ down, [0]]))
        gap = np.maximum(bottom - top, 1e-3)
        across_luts = ACROSS[np.minimum(np.abs(s) * (LUT_SIZE - 1), LUT_SIZE - 1).astype(np.intp)]  # (h, w, 7)
        cavity_shade, centre, span, tooth_shade, upper_reach, lower_reach, tongue_reach = np.moveaxis(
            across_luts, -1, 0)
        # tongue: a low mound on the floor of the mouth, rising towards the teeth as TongueOut grows
        surface = bottom - (0.35 + 0.45 * tongue_out) * gap
        tongue = smoothstep((t - surface) / np.maximum(0.25 * gap, 0.5)) * tongue_reach
        tongue_lit = 0.7 + 0.3 * smoothstep((t - surface) / np.maximum(0.5 * gap, 1.0)) * centre
        # teeth: bands hanging from the upper lip and standing on the lower one, narrowing into the cheeks
        tooth_h = np.minimum(0.16 * width, 0.5 * gap) * span
        recess = 0.75 + 0.25 * smoothstep((t - top) / np.maximum(0.35 * tooth_h, 0.5))  # the lip's shadow
        upper_teeth = smoothstep((top + tooth_h - t) / 0.8) * upper_reach
        lower_teeth = smoothstep((t - (bottom - 0.45 * tooth_h)) / 0.8) * lower_reach * (1 - tongue_out)
        # layers back to front (cavity, tongue, lower teeth, upper teeth): each one's visible share times its shade
        behind_upper = 1 - upper_teeth
        behind_lower = behind_upper * (1 - lower_teeth)
        weights = (behind_lower * (1 - tongue) * cavity_shade, behind_lower * tongue * tongue_lit,
                   behind_upper * lower_teeth * 0.85 * tooth_shade * recess, upper_teeth * tooth_shade * recess)
        colour = sum(w[..., None] * c for w, c in zip(weights, self.palette))  # (h, w, 3); `@` would wake BLAS
        patch = frame[y0:y1, x0:x1].astype(np.float32)
        blend(patch, colour, opening * strength)
        frame[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
