"""What each ARKit blendshape does to the portrait's pixels: one smooth displacement field per blendshape.

Each field is a function of position in face units (face.py) returning (dx, dy) in face units at weight 1, built
from compact bumps around the keypoints it moves, so it fades to exactly zero away from them. The warp renderer
samples every field once per portrait on its grid and blends them linearly per frame, as ARKit blends its shapes.
Shapes a 2D warp cannot show by moving skin (the lids closing over the eye, gaze, the tongue) are drawn by the
eye and mouth composites instead; their warp here, if any, is the skin motion that goes with them.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from backchannel.models.motion import BS
from backchannel.models.render.face import Face, bump, smoothstep

Field = Callable[[Face, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
JAW_DROP = 0.40  # face units the lower lip falls at JawOpen = 1 (about 25 mm)
SIDES = {"Left": ("left", 1.0), "Right": ("right", -1.0)}  # ARKit suffix -> our side name, sign of its face x


def _jaw(f: Face, x, y):
    """The lower face's share of a jaw motion: from the lower lip down, growing towards the chin as the jaw swings
    about its hinge (level with the eyes), fading out past the jaw line and down the neck. Along the lips it falls
    to zero at the corners, which stay joined, so the mouth opens as a lens."""
    seam = (f.p["upper_lip_bottom"][1] + f.p["lower_lip_top"][1]) / 2
    reach = f.p["chin"][1] - seam + 1.1
    hinge = np.clip(y / max(seam, 0.3), 0, None)
    lens = np.clip(1 - ((x - f.mouth_x) / (1.05 * f.mouth_half_width)) ** 2, 0, 1) ** 0.7
    below = smoothstep((y - seam) / (f.lower_lip_thickness + 0.35))
    return (f.below_lips(x, y) * hinge * (below + (1 - below) * lens)
            * bump(x, y, f.mouth_x, seam, 1.3 * f.jaw_half_width, reach))


def _lower_lip(f: Face, x, y, cx=None, rx=None):
    c = f.p["lower_lip_top"][1] + f.lower_lip_thickness / 2
    return f.below_lips(x, y) * bump(x, y, f.mouth_x if cx is None else cx, c,
                                     rx or 1.25 * f.mouth_half_width, f.lower_lip_thickness + 0.45)


def _upper_lip(f: Face, x, y, cx=None, rx=None):
    c = f.p["upper_lip_bottom"][1] - f.upper_lip_thickness / 2
    return (1 - f.below_lips(x, y)) * bump(x, y, f.mouth_x if cx is None else cx, c,
                                           rx or 1.25 * f.mouth_half_width, f.upper_lip_thickness + 0.3)


def _corner(f: Face, side: str, x, y, r=0.55):
    c = f.p[f"mouth_{side}"]
    return bump(x, y, c[0], c[1], r, 0.9 * r)


def _half_mouth(f: Face, sign: float) -> float:
    return f.mouth_x + sign * 0.5 * f.mouth_half_width


def jaw_open(f, x, y):
    return 0 * x, JAW_DROP * _jaw(f, x, y)


def jaw_side(sign):
    return lambda f, x, y: (sign * 0.12 * _jaw(f, x, y), 0 * y)


def jaw_forward(f, x, y):  # seen from the front, mostly a small drop of the chin
    return 0 * x, 0.05 * _jaw(f, x, y)


def mouth_close(f, x, y):  # lips together while the jaw hangs open: undo the jaw drop on the lower lip
    return 0 * x, -JAW_DROP * _lower_lip(f, x, y)


def lower_down(side, sign):
    return lambda f, x, y: (0 * x, 0.12 * _lower_lip(f, x, y, _half_mouth(f, sign), 0.9 * f.mouth_half_width))


def upper_up(side, sign):
    return lambda f, x, y: (0 * x, -0.09 * _upper_lip(f, x, y, _half_mouth(f, sign), 0.9 * f.mouth_half_width))


def corner_move(dx, dy, r=0.55):
    """A mouth corner pulled by (dx outward, dy down), both lips with it."""
    def make(side, sign):
        return lambda f, x, y: (sign * dx * _corner(f, side, x, y, r), dy * _corner(f, side, x, y, r))
    return make


def smile(side, sign):
    corner = corner_move(0.10, -0.09)(side, sign)

    def field(f, x, y):
        dx, dy = corner(f, x, y)
        eye = f.p[f"{side}_eye_outer"]
        c = f.p[f"mouth_{side}"]
        cheek = bump(x, y, (eye[0] + c[0]) / 2, 0.55 * c[1], 0.45, 0.4)  # the cheek rises under the eye
        return dx, dy - 0.04 * cheek
    return field


def pucker(f, x, y):
    dx = sum(-sign * 0.15 * _corner(f, side, x, y) for side, sign in SIDES.values())
    seam = (f.upper_inner(x) + f.lower_inner(x)) / 2
    fuller = 0.15 * (y - seam) * bump(x, y, f.mouth_x, seam, 1.1 * f.mouth_half_width, 0.5)
    return dx, fuller


def funnel(f, x, y):
    dx = sum(-sign * 0.13 * _corner(f, side, x, y) for side, sign in SIDES.values())
    narrow = 0.7 * f.mouth_half_width
    dy = -0.04 * _upper_lip(f, x, y, rx=narrow) + 0.08 * _lower_lip(f, x, y, rx=narrow)
    return dx, dy


def roll(upper: bool, amount=0.35, sign=0.0):
    """Lips rolled in or pressed: a lip thins towards its inner edge."""
    def field(f, x, y):
        cx = _half_mouth(f, sign) if sign else None
        rx = 0.8 * f.mouth_half_width if sign else None
        if upper:
            return 0 * x, -amount * (y - f.upper_inner(x)) * _upper_lip(f, x, y, cx, rx)
        return 0 * x, -amount * (y - f.lower_inner(x)) * _lower_lip(f, x, y, cx, rx)
    return field


def press(side, sign):
    up, low = roll(True, 0.25, sign), roll(False, 0.25, sign)
    return lambda f, x, y: (0 * x, up(f, x, y)[1] + low(f, x, y)[1])


def shrug_lower(f, x, y):  # lower lip and chin pushed up
    chin = (f.p["lower_lip_top"][1] + f.p["chin"][1]) / 2
    region = f.below_lips(x, y) * bump(x, y, f.mouth_x, chin, 1.1 * f.mouth_half_width + 0.2, 0.8)
    return 0 * x, -0.07 * region


def shrug_upper(f, x, y):
    return 0 * x, -0.05 * _upper_lip(f, x, y)


def mouth_side(sign):
    def field(f, x, y):
        seam = (f.p["upper_lip_bottom"][1] + f.p["lower_lip_top"][1]) / 2
        return sign * 0.10 * bump(x, y, f.mouth_x, seam, 1.6 * f.mouth_half_width, 0.55), 0 * y
    return field


def cheek_puff(f, x, y):
    dx = 0 * x
    for side, sign in SIDES.values():
        c = f.p[f"mouth_{side}"]
        dx = dx + sign * 0.06 * bump(x, y, c[0] + sign * 0.3, c[1] - 0.1, 0.45, 0.5)
    return dx, 0 * y


def cheek_squint(side, sign):
    def field(f, x, y):
        eye = (f.p[f"{side}_eye_outer"] + f.p[f"{side}_eye_inner"]) / 2
        return 0 * x, -0.04 * bump(x, y, eye[0], eye[1] + 0.4, 0.4, 0.3)
    return field


def nose_sneer(side, sign):
    def field(f, x, y):
        nose = f.p["nose_tip"]
        b = bump(x, y, nose[0] + sign * 0.15, nose[1] - 0.02, 0.22, 0.22)
        return sign * 0.01 * b, -0.05 * b
    return field


def brow(point: str, dx: float, dy: float, r=(0.32, 0.3), both=False):
    """A brow point moved by (dx towards the temple, dy down)."""
    def make(side, sign):
        def field(f, x, y):
            c = f.p[f"{side}_brow_{point}"]
            b = bump(x, y, c[0], c[1], *r)
            return sign * dx * b, dy * b
        return field
    if both:
        return lambda f, x, y: tuple(sum(parts) for parts in zip(*(make(s, g)(f, x, y) for s, g in SIDES.values())))
    return make


def eye_lid(lid: str, dy: float, above: float):
    """Skin of one lid moved by dy; `above` shifts the bump's centre up from the lid line (face units)."""
    def make(side, sign):
        def field(f, x, y):
            a, b = f.p[f"{side}_eye_outer"], f.p[f"{side}_eye_inner"]
            width = abs(a[0] - b[0])
            c = f.p[f"{side}_eye_{lid}"]
            return 0 * x, dy * bump(x, y, c[0], c[1] - above, 0.75 * width, 0.14)
        return field
    return make


def sided(make) -> dict[str, Field]:
    return {name: make(side, sign) for name, (side, sign) in SIDES.items()}


def _fields() -> dict[str, Field]:
    fields: dict[str, Field] = {"JawOpen": jaw_open, "JawLeft": jaw_side(1.0), "JawRight": jaw_side(-1.0),
                                "JawForward": jaw_forward, "MouthClose": mouth_close, "MouthPucker": pucker,
                                "MouthFunnel": funnel, "MouthRollUpper": roll(True), "MouthRollLower": roll(False),
                                "MouthShrugUpper": shrug_upper, "MouthShrugLower": shrug_lower,
                                "MouthLeft": mouth_side(1.0), "MouthRight": mouth_side(-1.0),
                                "CheekPuff": cheek_puff, "BrowInnerUp": brow("inner", 0.0, -0.08, both=True)}
    per_side = {
        "MouthSmile": smile, "MouthFrown": corner_move(0.02, 0.08, 0.5),
        "MouthStretch": corner_move(0.10, 0.03, 0.5), "MouthDimple": corner_move(0.05, -0.01, 0.45),
        "MouthPress": press, "MouthLowerDown": lower_down, "MouthUpperUp": upper_up,
        "CheekSquint": cheek_squint, "NoseSneer": nose_sneer,
        "BrowDown": brow("middle", -0.03, 0.07, (0.45, 0.28)), "BrowOuterUp": brow("outer", 0.0, -0.08),
        "EyeWide": eye_lid("top", -0.05, 0.0), "EyeBlink": eye_lid("top", 0.03, 0.1),
        "EyeSquint": eye_lid("bottom", -0.02, 0.0),
    }
    for stem, make in per_side.items():
        for suffix, field in sided(make).items():
            fields[stem + suffix] = field
    return fields


FIELDS: dict[str, Field] = _fields()
# Shown by the composites only: gaze (eyes.py reads the gaze columns, or these when those are zero) and the tongue.
COMPOSITE_ONLY = tuple(n for n in BS if n not in FIELDS)


def expression_bases(face: Face, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every field sampled at points (N, 2) in face units: ARKit columns (K,), displacements (K, N, 2) in face
    units."""
    x, y = points[:, 0], points[:, 1]
    names = sorted(FIELDS, key=BS.get)
    bases = [np.stack(np.broadcast_arrays(*FIELDS[name](face, x, y)), -1) for name in names]
    return np.array([BS[n] for n in names]), np.asarray(bases, np.float32)
