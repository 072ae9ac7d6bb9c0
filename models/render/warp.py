"""The warp renderer: animates a portrait by moving its pixels, no trained weights.

Once per portrait: a coarse grid over the head (cells of about 1/16 of the eye distance), every blendshape's
displacement field sampled on it (expressions.py), a soft head mask and a depth profile for head rotation, and
the eyes' irises lifted out (eyes.py). Per frame:

1. forward field on the grid: blendshape fields blended by their weights, then the head's rotation (a rounded
   depth profile, so a turn moves the nose more than the cheeks) and translation, faded out by the head mask so
   the background never moves;
2. invert it on the grid with a few Newton steps (the field stretches hard where the lips part, where simple
   fixed-point inversion fails), giving for every output pixel the source pixel to read;
3. upsample that to full resolution and cv2.remap the head's box; the rest of the frame is the portrait itself;
4. draw the mouth's interior and the eyes (iris, lids) at the warped positions of their keypoints.
"""
from __future__ import annotations

import cv2
import numpy as np

from backchannel.models.motion import BLENDSHAPES, BS, GAZE, HEAD_ROTATION, HEAD_TRANSLATION
from backchannel.models.render.base import Renderer, check_motion
from backchannel.models.render.expressions import expression_bases
from backchannel.models.render.eyes import Eye
from backchannel.models.render.face import EYE_DISTANCE_M, Face, smoothstep
from backchannel.models.render.mouth import Mouth
from backchannel.models.render.portrait import Portrait

CELLS_PER_EYE_DISTANCE = 16
NEWTON_STEPS = 4
# Head motion the warp shows before it would fold the image; larger values are held at these.
MAX_YAW, MAX_PITCH, MAX_ROLL = 0.5, 0.4, 0.35  # radians
MAX_SHIFT_M, MAX_DEPTH_M = 0.025, 0.06  # metres: sideways / up-down, towards the camera
CAMERA_DISTANCE_M = 0.6  # for the scale change when the head comes closer
MAX_GAZE = 0.6  # radians
GAZE_FROM_BLENDSHAPES = 0.5  # radians of eye rotation at EyeLook* = 1, when the gaze columns are zero


class WarpRenderer(Renderer):
    name = "warp"

    def __init__(self, portrait: Portrait, cells_per_eye_distance: int = CELLS_PER_EYE_DISTANCE):
        super().__init__(portrait)
        self.cell = max(1, int(round(portrait.landmarks.eye_distance() / cells_per_eye_distance)))  # grid spacing, px
        face = self.face = Face(portrait.landmarks, min_band_px=1.5 * self.cell)
        self._build_grid()
        self.base = portrait.image.copy()  # the portrait with the irises painted out
        self.eyes = [Eye(face, self.base, side) for side in ("right", "left")]
        self.mouth = Mouth(face, portrait.image)
        # keypoints the composites follow through the warp, as one array of source pixels
        probes = [self.mouth.corners, self.mouth.upper, self.mouth.lower]
        for eye in self.eyes:
            probes += [eye.upper, eye.lower, eye.centre[None]]
        self.probe_sizes = [len(p) for p in probes]
        self.probes = self._grid_coords(np.concatenate(probes))

    # -- once per portrait -------------------------------------------------------------------------------------------

    def _build_grid(self) -> None:
        face, s, n = self.face, self.cell, self.size
        p = face.p
        # the head: an ellipse around the face oval, wide enough for hair; motion fades out over its outer ring
        self.head_centre = np.array([(p["right_cheek"][0] + p["left_cheek"][0]) / 2,
                                     (p["forehead"][1] + p["chin"][1]) / 2])
        self.head_radii = np.array([1.3 * face.jaw_half_width, 0.62 * (p["chin"][1] - p["forehead"][1])])
        fade_out = 2.0  # in head radii
        corners = face.to_pixels(self.head_centre + fade_out * self.head_radii * np.array(
            [[-1, -1], [1, -1], [1, 1], [-1, 1]]))
        lo = np.floor(corners.min(0)).astype(int)
        hi = np.ceil(corners.max(0)).astype(int)
        x0, y0 = np.clip(lo, 0, n - 1)
        x1, y1 = np.clip(hi, 1, n)
        nx, ny = -(-(x1 - x0) // s), -(-(y1 - y0) // s)
        self.roi = (int(x0), int(y0), int(min(x0 + nx * s, n)), int(min(y0 + ny * s, n)))
        self.grid_origin = np.array([x0 + 0.5 * s - 0.5, y0 + 0.5 * s - 0.5])  # pixel position of node (0, 0)
        gy, gx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        self.grid_xy = np.stack([gx, gy], -1)  # node positions in grid units (ny, nx, 2)
        nodes = face.to_face(self.grid_origin + s * self.grid_xy.reshape(-1, 2).astype(np.float64))
        self.nodes = nodes.astype(np.float32)  # (G, 2) face units
        self.channels, bases = expression_bases(face, nodes)
        self.bases = bases.reshape(len(self.channels), -1)  # (K, G * 2)
        r = np.hypot(*((nodes - self.head_centre) / self.head_radii).T)
        chin = p["chin"][1]
        neck = smoothstep((chin + 0.7 - nodes[:, 1]) / 0.6)  # keep the shoulders still under the chin
        self.mask = (smoothstep((fade_out - r) / (fade_out - 1.0)) * neck).astype(np.float32)
        self.from_head = (nodes - self.head_centre).astype(np.float32)
        depth_r = np.hypot(*((nodes - self.head_centre) / (1.3 * self.head_radii)).T)
        nose = p["nose_tip"]
        bump_r2 = np.sum(((nodes - nose) / 0.5) ** 2, 1)
        self.depth = (0.85 * face.jaw_half_width * np.clip(1 - depth_r ** 2, 0, None) ** 2
                      + 0.22 * np.clip(1 - bump_r2, 0, None) ** 3).astype(np.float32)
        # to go from face units to grid units: d_grid = d_face @ to_grid
        self.to_grid = ((face.unit / s) * np.stack([face.ex, face.ey])).astype(np.float32)
        x0r, y0r, x1r, y1r = self.roi
        yy, xx = np.mgrid[y0r:y1r, x0r:x1r].astype(np.float32)
        self.identity = np.stack([xx, yy], -1)

    def _grid_coords(self, pixels: np.ndarray) -> np.ndarray:
        return ((pixels - self.grid_origin) / self.cell).astype(np.float32)

    # -- per frame ---------------------------------------------------------------------------------------------------

    def forward_field(self, row: np.ndarray) -> np.ndarray:
        """Where each grid node's content moves to: displacement (ny, nx, 2) in grid units.

        Small products are spelled out rather than left to `@`: BLAS wakes its thread pool even for these, and on
        a busy machine that costs milliseconds a frame."""
        weights = np.clip(row[BLENDSHAPES][self.channels], 0, 1).astype(np.float32)
        expr = np.einsum("k,kn->n", weights, self.bases).reshape(-1, 2)  # face units
        limits = np.array([MAX_PITCH, MAX_YAW, MAX_ROLL])
        pitch, yaw, roll = np.clip(row[HEAD_ROTATION], -limits, limits)
        tx, ty, tz = np.clip(row[HEAD_TRANSLATION], -np.array([MAX_SHIFT_M, MAX_SHIFT_M, MAX_DEPTH_M]),
                             [MAX_SHIFT_M, MAX_SHIFT_M, MAX_DEPTH_M])
        total = expr
        if pitch or yaw or roll or tx or ty or tz:
            # rotate (x, y, depth) about the head centre, project, scale, shift: a linear map of the moved nodes
            scale = CAMERA_DISTANCE_M / (CAMERA_DISTANCE_M - tz)
            rot = scale * head_rotation(pitch, yaw, roll)[:2] - np.eye(2, 3)
            shift = np.array([tx, -ty]) / EYE_DISTANCE_M  # +x is the avatar's left (face x), +y is up
            total = expr + self.mask[:, None] * (linear(self.from_head + expr, rot[:, :2], shift)
                                                 + self.depth[:, None] * rot[:, 2].astype(np.float32))
        return linear(total, self.to_grid.T).reshape(self.grid_xy.shape)

    def backward_map(self, forward: np.ndarray) -> np.ndarray:
        """Invert the forward field: for each grid node, the grid position its content comes from (ny, nx, 2)."""
        dfdx = np.gradient(forward, axis=1)
        dfdy = np.gradient(forward, axis=0)
        packed = np.concatenate([forward, dfdx, dfdy], -1)  # fx, fy, dfx/dx, dfy/dx, dfx/dy, dfy/dy
        target = self.grid_xy
        u = target - forward
        for _ in range(NEWTON_STEPS):
            f = cv2.remap(packed, u, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            rx = u[..., 0] + f[..., 0] - target[..., 0]
            ry = u[..., 1] + f[..., 1] - target[..., 1]
            a, b, c, d = 1 + f[..., 2], f[..., 4], f[..., 3], 1 + f[..., 5]
            det = np.maximum(a * d - b * c, 0.05)
            step = np.stack([(d * rx - b * ry) / det, (a * ry - c * rx) / det], -1)
            u = (u - np.clip(step, -4, 4)).astype(np.float32)
        return u

    def sample_forward(self, forward: np.ndarray) -> np.ndarray:
        """Warped positions (pixels) of the probe points."""
        g = self.probes
        f = cv2.remap(forward, g[None], None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
        return self.grid_origin + self.cell * (g + f)

    def render_frame(self, row: np.ndarray) -> np.ndarray:
        row = check_motion(row)[0]
        forward = self.forward_field(row)
        source = self.backward_map(forward)
        offset = (source - self.grid_xy) * self.cell  # pixels, per grid node
        x0, y0, x1, y1 = self.roi
        if self.cell > 1:
            offset = cv2.resize(offset, (offset.shape[1] * self.cell, offset.shape[0] * self.cell),
                                interpolation=cv2.INTER_LINEAR)
        where = self.identity + offset[: y1 - y0, : x1 - x0]
        frame = self.base.copy()
        # what a turn pulls in from beyond the frame's edge is the picture mirrored there, not its edge row repeated
        # (a band of streaks where hair meets the top of a face framing)
        frame[y0:y1, x0:x1] = cv2.remap(self.base, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        self._composite(frame, row, self.sample_forward(forward))
        return frame

    def _composite(self, frame: np.ndarray, row: np.ndarray, probes: np.ndarray) -> None:
        parts = np.split(probes, np.cumsum(self.probe_sizes)[:-1])
        corners, upper, lower = parts[:3]
        bs = np.clip(row[BLENDSHAPES], 0, 1)
        self.mouth.draw(frame, corners, upper, lower, float(bs[BS["TongueOut"]]))
        for i, (eye, suffix) in enumerate(zip(self.eyes, ("Right", "Left"))):
            lid_top, lid_bottom, centre = parts[3 + 3 * i: 6 + 3 * i]
            eye.draw(frame, lid_top, lid_bottom, centre[0], float(bs[BS["EyeBlink" + suffix]]),
                     float(bs[BS["EyeSquint" + suffix]]), eye_gaze(row, suffix))


def linear(points: np.ndarray, matrix: np.ndarray, offset=(0.0, 0.0)) -> np.ndarray:
    """points (N, 2) @ matrix.T + offset, written out for 2 x 2 (see forward_field)."""
    x, y = points[:, 0], points[:, 1]
    m = np.asarray(matrix, np.float32)
    return np.stack([m[0, 0] * x + m[0, 1] * y + np.float32(offset[0]),
                     m[1, 0] * x + m[1, 1] * y + np.float32(offset[1])], -1)


def eye_gaze(row: np.ndarray, suffix: str) -> tuple[float, float]:
    """(yaw, pitch) of one eye in radians: the gaze columns, or the EyeLook* blendshapes when those are zero.
    +yaw looks to the avatar's left, +pitch looks down (motion.py)."""
    i = 0 if suffix == "Left" else 2
    yaw, pitch = row[GAZE][i], row[GAZE][i + 1]
    if yaw == 0 and pitch == 0:
        bs = np.clip(row[BLENDSHAPES], 0, 1)
        # the left eye looks to the avatar's left when it looks out; the right eye when it looks in
        out, inward = bs[BS["EyeLookOut" + suffix]], bs[BS["EyeLookIn" + suffix]]
        towards_left = out - inward if suffix == "Left" else inward - out
        yaw = GAZE_FROM_BLENDSHAPES * towards_left
        pitch = GAZE_FROM_BLENDSHAPES * (bs[BS["EyeLookDown" + suffix]] - bs[BS["EyeLookUp" + suffix]])
    return float(np.clip(yaw, -MAX_GAZE, MAX_GAZE)), float(np.clip(pitch, -MAX_GAZE, MAX_GAZE))


def head_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3x3 rotation in face axes (x to the avatar's left, y down, z towards the camera) for motion.py's signs:
    +yaw brings the nose to the avatar's left, +pitch brings it down, +roll tips the crown to the avatar's left."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # z (the nose) towards +x
    nod = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # z towards +y (down)
    tilt = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])  # -y (the crown) towards +x
    return tilt @ nod @ turn
