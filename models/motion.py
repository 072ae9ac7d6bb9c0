"""The motion representation every stage shares.

A motion track is a float32 array of shape (T, MOTION_DIM) at FRAME_RATE frames per second, laid out as

    [0:52)   ARKit blendshape weights in Apple's canonical order, each in [0, 1]
    [52:55)  head rotation: pitch, yaw, roll (radians; +pitch looks down, +yaw turns to the avatar's left,
             +roll tilts the top of the head to the avatar's left)
    [55:58)  head translation: x, y, z (metres, from the rest pose; +x avatar's left, +y up, +z forward)
    [58:62)  gaze: left eye yaw, left eye pitch, right eye yaw, right eye pitch (radians, same signs as the head)

plus an int8 state per frame (STATES). Arrays travel in bulk (MotionBlock); a single MotionFrame is only made
at the edges (wire messages, files).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FRAME_RATE = 30  # motion frames per second of audio

# Apple's ARFaceAnchor.BlendShapeLocation order, PascalCase as Unreal and Live Link Face use them.
ARKIT_NAMES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawLeft", "JawRight", "JawOpen",
    "MouthClose", "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight",
    "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight",
    "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
NUM_BLENDSHAPES = len(ARKIT_NAMES)
BS = {name: i for i, name in enumerate(ARKIT_NAMES)}  # name -> column

BLENDSHAPES = slice(0, 52)
HEAD_ROTATION = slice(52, 55)
HEAD_TRANSLATION = slice(55, 58)
# the most a head turns or tilts in conversation (the labels' 99.9th percentile is 7-12 degrees): the model bends its
# rotation softly towards it (models/infp/generator.py soft_limit), and eval counts the time spent close to it
HEAD_LIMIT_DEG = 11.0
HEAD_POSE = slice(52, 58)  # rotation and translation
GAZE = slice(58, 62)
MOTION_DIM = 62

HEAD_ROTATION_NAMES = ("HeadPitch", "HeadYaw", "HeadRoll")
HEAD_TRANSLATION_NAMES = ("HeadX", "HeadY", "HeadZ")
GAZE_NAMES = ("LeftEyeYaw", "LeftEyePitch", "RightEyeYaw", "RightEyePitch")
CHANNEL_NAMES: tuple[str, ...] = ARKIT_NAMES + HEAD_ROTATION_NAMES + HEAD_TRANSLATION_NAMES + GAZE_NAMES

STATES = ("idle", "speaking", "listening")
IDLE, SPEAKING, LISTENING = 0, 1, 2


def neutral(frames: int = 1) -> np.ndarray:
    """A rest-pose motion track: every blendshape, rotation, translation and gaze at zero."""
    return np.zeros((frames, MOTION_DIM), np.float32)


def frame_time(index: int | np.ndarray) -> float | np.ndarray:
    """Audio time (seconds since the session's start) that motion frame `index` answers."""
    return index / FRAME_RATE


def frame_count(seconds: float) -> int:
    """Frames in `seconds` of audio: frame k covers [k / FRAME_RATE, (k + 1) / FRAME_RATE), as in a video."""
    return max(0, int(np.ceil(seconds * FRAME_RATE - 1e-6)))


@dataclass
class MotionBlock:
    """Consecutive motion frames of one session: frame `first + i` is row i."""

    first: int
    motion: np.ndarray  # (n, MOTION_DIM) float32
    state: np.ndarray  # (n,) int8, indices into STATES
    latent: np.ndarray | None = None  # (n, latent_dim) when the generator works in a latent space

    def __post_init__(self) -> None:
        self.motion = np.asarray(self.motion, np.float32).reshape(-1, MOTION_DIM)
        self.state = np.asarray(self.state, np.int8).reshape(-1)
        if len(self.state) != len(self.motion):
            raise ValueError(f"{len(self.motion)} motion rows but {len(self.state)} states")

    def __len__(self) -> int:
        return len(self.motion)

    @classmethod
    def empty(cls, first: int = 0) -> "MotionBlock":
        return cls(first, neutral(0), np.zeros(0, np.int8))

    @classmethod
    def concat(cls, blocks: list["MotionBlock"]) -> "MotionBlock":
        blocks = [b for b in blocks if len(b)]
        if not blocks:
            return cls.empty()
        for a, b in zip(blocks, blocks[1:]):
            if b.first != a.first + len(a):
                raise ValueError(f"blocks are not consecutive: {a.first}+{len(a)} then {b.first}")
        latent = None
        if all(b.latent is not None for b in blocks):
            latent = np.concatenate([b.latent for b in blocks])
        return cls(blocks[0].first, np.concatenate([b.motion for b in blocks]),
                   np.concatenate([b.state for b in blocks]), latent)

    def frames(self) -> list["MotionFrame"]:
        return [MotionFrame.from_row(self.first + i, self.motion[i], int(self.state[i])) for i in range(len(self))]


@dataclass
class MotionFrame:
    """One frame, as the outputs and files present it."""

    seq: int
    t: float
    state: str
    blendshapes: np.ndarray = field(repr=False)  # (52,)
    head_rotation: np.ndarray  # pitch, yaw, roll
    head_translation: np.ndarray  # x, y, z
    gaze: np.ndarray  # left yaw, left pitch, right yaw, right pitch

    @classmethod
    def from_row(cls, seq: int, row: np.ndarray, state: int) -> "MotionFrame":
        return cls(seq, float(frame_time(seq)), STATES[state], row[BLENDSHAPES].copy(), row[HEAD_ROTATION].copy(),
                   row[HEAD_TRANSLATION].copy(), row[GAZE].copy())

    def to_row(self) -> np.ndarray:
        return np.concatenate([self.blendshapes, self.head_rotation, self.head_translation, self.gaze]).astype(np.float32)

    def to_dict(self) -> dict:
        """The JSON-friendly form the files and docs use (blendshapes by name)."""
        return {
            "seq": self.seq,
            "t": round(self.t, 6),
            "state": self.state,
            "blendshapes": {n: round(float(v), 5) for n, v in zip(ARKIT_NAMES, self.blendshapes)},
            "head_rotation": [round(float(v), 6) for v in self.head_rotation],
            "head_translation": [round(float(v), 6) for v in self.head_translation],
            "gaze": [round(float(v), 6) for v in self.gaze],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "MotionFrame":
        bs = d["blendshapes"]
        weights = np.array([bs[n] for n in ARKIT_NAMES] if isinstance(bs, dict) else bs, np.float32)
        return cls(int(d["seq"]), float(d["t"]), d["state"], weights, np.asarray(d["head_rotation"], np.float32),
                   np.asarray(d.get("head_translation", (0, 0, 0)), np.float32), np.asarray(d["gaze"], np.float32))
