"""Eyes drawn over the warped frame: the iris moved by gaze and clipped by the lids, the lids closing in a blink.

Once per portrait each iris is lifted out (an RGBA patch, its hidden top filled with its own colour) and painted
over in the base image with the surrounding white of the eye, so it can be put back anywhere in the opening.
Per frame the opening comes from the lid lines after the warp; a blink slides the upper lid line down to the
lower one and fills what it covers with lid skin plus a lash line.
"""
from __future__ import annotations

import cv2
import numpy as np

from backchannel.models.render.face import Face, smoothstep

SAMPLES = 9  # points along each lid line
EYEBALL_RADIUS = 0.19  # face units (12 mm): how far the iris travels per radian of gaze
SUBPIXEL = 4  # fillPoly fractional bits


def polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (float32 0..1) of a polygon given in pixel coordinates of the canvas."""
    canvas = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(points) * (1 << SUBPIXEL)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, SUBPIXEL)
    return canvas.astype(np.float32) / 255


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Soften a coverage mask's edge by a Gaussian of `sigma` pixels (nothing to do below half a pixel)."""
    return cv2.GaussianBlur(mask, (0, 0), sigma) if sigma >= 0.5 else mask


def blend(dst: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """dst = dst * (1 - alpha) + colour * alpha, in place on a float32 patch; colour is (3,) or like dst."""
    a = alpha[..., None]
    dst *= 1 - a
    dst += a * colour


class Eye:
    """One eye of the portrait: its lid lines, lifted iris and colours."""

    def __init__(self, face: Face, image: np.ndarray, side: str):
        self.side = side
        lm = face.landmarks
        outer, inner = face.p[f"{side}_eye_outer"], face.p[f"{side}_eye_inner"]
        x = np.linspace(min(outer[0], inner[0]), max(outer[0], inner[0]), SAMPLES)
        upper_f, lower_f = face.lid[side]
        self.upper = face.to_pixels(np.stack([x, upper_f(x)], -1))  # (SAMPLES, 2) source pixels
        self.lower = face.to_pixels(np.stack([x, lower_f(x)], -1))
        self.centre = np.asarray(lm[f"{side}_iris"], np.float64)
        self.radius = max(float(lm.iris_radius[side]), 1.0)
        self.travel = EYEBALL_RADIUS * face.unit
        self.width = float(np.linalg.norm(self.upper[-1] - self.upper[0]))
        unit = face.unit
        above = lambda d: face.to_pixels(np.stack([x, upper_f(x) - d], -1))  # noqa: E731 - a lid line raised
        band = np.concatenate([above(0.16), above(0.06)[::-1]])
        self.lid_colour = self._median(image, band)
        around_lid = np.concatenate([above(0.03), above(-0.02)[::-1]])
        self.lash_colour = self._percentile_colour(image, around_lid, 10)
        self.lash_width = max(1, int(round(0.01 * unit)))
        self.soft = 0.008 * unit  # edge feather of the lids, pixels
        self.iris = self._lift_iris(image)  # None when the eye shows no white to move an iris across

    @staticmethod
    def _pixels_in(image: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        mask = polygon_mask(image.shape[:2], polygon) > 0.5
        return image[mask].reshape(-1, 3).astype(np.float32)

    def _median(self, image, polygon) -> np.ndarray:
        px = self._pixels_in(image, polygon)
        return np.median(px, 0) if len(px) else np.full(3, 128, np.float32)

    def _percentile_colour(self, image, polygon, q) -> np.ndarray:
        px = self._pixels_in(image, polygon)
        if not len(px):
            return np.full(3, 40, np.float32)
        lum = px @ np.array([0.299, 0.587, 0.114], np.float32)
        return px[lum <= np.percentile(lum, q)].mean(0)

    def _lift_iris(self, image: np.ndarray):
        """Cut the iris out as an RGBA patch and paint the white of the eye over it in `image` (in place)."""
        r = self.radius
        half = int(np.ceil(1.3 * r)) + 2
        cx, cy = int(round(self.centre[0])), int(round(self.centre[1]))
        x0, y0 = cx - half, cy - half
        h, w = image.shape[:2]
        if x0 < 0 or y0 < 0 or x0 + 2 * half + 1 > w or y0 + 2 * half + 1 > h:
            return None
        patch = image[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1]
        self.iris_centre = self.centre - (x0, y0)  # in the patch: off its middle pixel by the centre's fraction
        yy, xx = np.mgrid[0:patch.shape[0], 0:patch.shape[1]].astype(np.float32)
        dist = np.hypot(xx + x0 - self.centre[0], yy + y0 - self.centre[1])
        disc = np.clip(r + 0.5 - dist, 0, 1)
        # what is painted over and carried with the iris reaches a little past the landmarks' radius, which can
        # miss the iris's own soft rim: painted over but not carried, that rim showed as a pale ring at rest
        reach = r + 1.5
        carried = np.clip(reach + 0.5 - dist, 0, 1)
        opening = polygon_mask(patch.shape[:2], np.concatenate([self.upper, self.lower[::-1]]) - (x0, y0))
        white = (opening > 0.5) & (dist > reach)
        visible = (disc > 0.5) & (opening > 0.5)
        if white.sum() < 4 or visible.sum() < 4:
            return None
        unknown = np.where(white, 0, 255).astype(np.uint8)
        filled = cv2.inpaint(np.ascontiguousarray(patch), unknown, 3, cv2.INPAINT_TELEA)
        rgba = np.zeros(patch.shape[:2] + (4,), np.float32)
        rgba[..., :3] = patch
        under_lids = opening <= 0.5
        rgba[under_lids & (carried > 0), :3] = filled[under_lids & (carried > 0)]  # white past the rim, not lid
        rgba[under_lids & (disc > 0), :3] = np.median(patch[visible], 0)  # the lids hide the iris's top: complete it
        rgba[..., 3] = carried
        cover = (dist <= reach) & ~under_lids  # the lids and lashes stay as they are
        patch[cover] = filled[cover]
        return rgba

    def draw(self, frame: np.ndarray, upper: np.ndarray, lower: np.ndarray, centre: np.ndarray,
             closure: float, squint: float, gaze: tuple[float, float]) -> None:
        """Paint this eye into `frame` (uint8, in place) given its warped lid lines and iris centre (pixels)."""
        margin = self.radius + 3
        pts = np.concatenate([upper, lower])
        x0, y0 = np.floor(pts.min(0) - margin).astype(int)
        x1, y1 = np.ceil(pts.max(0) + margin).astype(int)
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        origin = np.array([x0, y0], np.float64)
        shape = (y1 - y0, x1 - x0)
        across = upper[-1] - upper[0]
        across /= max(np.linalg.norm(across), 1e-6)
        down = np.array([-across[1], across[0]])
        closed_upper = upper + closure * (lower - upper)
        raised_lower = lower + 0.25 * squint * (closed_upper - lower)
        opening = polygon_mask(shape, np.concatenate([closed_upper, raised_lower[::-1]]) - origin)
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        if self.iris is not None:
            yaw, pitch = gaze
            dx = np.clip(self.travel * np.sin(yaw), -0.5 * self.width + 0.6 * self.radius,
                         0.5 * self.width - 0.6 * self.radius)
            dy = np.clip(self.travel * np.sin(pitch), -self.radius, self.radius)
            at = centre + dx * across + dy * down - origin
            # where the iris is drawn, to the sub-pixel: at rest it lands where it was cut (half a pixel off shifted
            # the small irises of a whole-picture framing by up to 125 levels)
            move = np.float32([[1, 0, at[0] - self.iris_centre[0]], [0, 1, at[1] - self.iris_centre[1]]])
            iris = cv2.warpAffine(self.iris, move, shape[::-1], flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            blend(roi, iris[..., :3], iris[..., 3] * opening)
        # The lids slide over the eye carrying their skin: the upper one starts above its lash line (the old lashes
        # go under as it closes) and brings the skin above it, the lower one the skin below it.
        tall = int(np.ceil(np.max(np.linalg.norm(lower - upper, axis=1)))) + self.lash_width + 1
        raised = upper - self.lash_width * smoothstep(closure / 0.3) * down
        for amount, edge, line, shift in ((closure, raised, closed_upper, -tall), (squint, raised_lower, lower, tall)):
            if amount > 0.01:
                cover = feather(polygon_mask(shape, np.concatenate([edge, line[::-1]]) - origin), self.soft)
                skin = 0.7 * shifted(frame, x0, y0 + shift, shape) + 0.3 * self.lid_colour
                blend(roi, skin * lid_shade(shape, origin, edge, line)[..., None], cover)
        if closure > 0.05:
            line = np.zeros(shape, np.uint8)
            pts = np.round((closed_upper - origin) * (1 << SUBPIXEL)).astype(np.int32)
            cv2.polylines(line, [pts], False, 255, self.lash_width, cv2.LINE_AA, SUBPIXEL)
            blend(roi, self.lash_colour, line.astype(np.float32) / 255 * min(0.85, 3 * closure))
        frame[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)


def lid_shade(shape: tuple[int, int], origin: np.ndarray, edge: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Shading over a lid that has slid from `edge` to `line` (pixels): it curves into the eye socket and under
    its lashes, so it darkens from 0.92 at the fold to 0.75 at the lash line."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    xs += origin[0]
    ys += origin[1]
    order = np.argsort(edge[:, 0])
    y_edge = np.interp(xs, edge[order, 0], edge[order, 1])
    order = np.argsort(line[:, 0])
    y_line = np.interp(xs, line[order, 0], line[order, 1])
    along = np.clip((ys - y_edge) / np.where(np.abs(y_line - y_edge) < 0.5, 0.5, y_line - y_edge), 0, 1)
    return 0.92 - 0.17 * along


def shifted(frame: np.ndarray, x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """frame[y0:y0+h, x0:x0+w] as float32, rows clamped to the frame (y0 may lie outside it)."""
    rows = np.clip(np.arange(y0, y0 + shape[0]), 0, frame.shape[0] - 1)
    return frame[rows, x0:x0 + shape[1]].astype(np.float32)
