"""Rig maps: ARKit-52 weights -> another rig's expression weights, as a small linear map (then clipped to 0..1).

Each rig is a table `target name -> {ARKit name: coefficient}`; the table becomes a (52, K) matrix, so mapping a
whole block of frames is one matrix product. VRM0 and VRM1 presets are built in; MetaHuman or custom rigs are one
more table. Coefficients are a starting point tuned by eye on ARKit semantics (vowels from jaw and lip shapes,
joy from smiles...), not a fitted model; the calibration tools may refine them per rig.

VRM receivers (UniVRM and the apps built on it) add up the morphs of every expression they are sent, so two
expressions must not say the same thing twice: a blink shared by both eyes goes to the both-eyes expression and
only what one eye closes beyond the other to that eye's (left + both = the left eye's weight); and the vowels
together weigh as much as the strongest of them, a mix in the table's proportions (each vowel opens the jaw: an
open jaw read as A 1, E 0.5, O 0.4 and I 0.2 at once opened it twice over).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backchannel.models.measures import LIPS_SHUT_OPENNESS, mouth_openness
from backchannel.models.motion import ARKIT_NAMES, BS, GAZE, HEAD_ROTATION, NUM_BLENDSHAPES


@dataclass(frozen=True)
class RigMap:
    name: str
    targets: tuple[str, ...]
    matrix: np.ndarray  # (52, len(targets))
    blinks: tuple[str, str, str] | None = None  # both eyes, left, right: a shared blink is sent once (module doc)
    vowels: tuple[str, ...] = ()  # together as strong as the strongest (module doc)

    @classmethod
    def from_table(cls, name: str, table: dict[str, dict[str, float]], blinks=None, vowels=()) -> "RigMap":
        matrix = np.zeros((NUM_BLENDSHAPES, len(table)), np.float32)
        for j, terms in enumerate(table.values()):
            for arkit, coefficient in terms.items():
                if arkit not in BS:
                    raise ValueError(f"rig {name}: {arkit!r} is not an ARKit blendshape name")
                matrix[BS[arkit], j] = coefficient
        return cls(name, tuple(table), matrix, blinks, tuple(vowels))

    def apply(self, weights: np.ndarray) -> np.ndarray:
        """(..., 52) ARKit weights -> (..., K) target weights in [0, 1]."""
        out = np.clip(np.asarray(weights, np.float32) @ self.matrix, 0.0, 1.0)
        if self.blinks:
            both, left, right = (self.targets.index(t) for t in self.blinks)
            out[..., both] = np.minimum(out[..., left], out[..., right])
            out[..., left] -= out[..., both]
            out[..., right] -= out[..., both]
        if self.vowels:  # a mix of vowels as strong as the strongest of them
            columns = [self.targets.index(t) for t in self.vowels]
            vowels = out[..., columns]
            total = vowels.sum(-1, keepdims=True)
            out[..., columns] = vowels * vowels.max(-1, keepdims=True) / np.maximum(total, 1e-9)
        return out


def _pair(stem: str, coefficient: float) -> dict[str, float]:
    """Both sides of a left/right ARKit pair."""
    return {f"{stem}Left": coefficient, f"{stem}Right": coefficient}


# VRM 0.x blend shape presets. Vowels: A open jaw, I spread lips with little jaw, U rounded and pushed forward,
# E spread with half-open jaw, O rounded with open jaw; rounding is subtracted from A so "oo" does not read as "ah".
VRM0_TABLE: dict[str, dict[str, float]] = {
    "A": {"JawOpen": 1.0, "MouthFunnel": -0.4, "MouthPucker": -0.4},
    "I": {**_pair("MouthStretch", 0.6), **_pair("MouthSmile", 0.3), "JawOpen": 0.2, "MouthPucker": -0.3},
    "U": {"MouthPucker": 1.0, "MouthFunnel": 0.3, "JawOpen": -0.2},
    "E": {**_pair("MouthStretch", 0.4), "JawOpen": 0.5, **_pair("MouthLowerDown", 0.2), "MouthFunnel": -0.3},
    "O": {"MouthFunnel": 1.0, "JawOpen": 0.4, "MouthPucker": 0.2},
    "Blink": {},  # min(Blink_L, Blink_R) before those lose it (RigMap.apply)
    "Blink_L": {"EyeBlinkLeft": 1.0},
    "Blink_R": {"EyeBlinkRight": 1.0},
    "Joy": {**_pair("MouthSmile", 0.5), **_pair("CheekSquint", 0.2)},
    "Angry": {**_pair("BrowDown", 0.4), **_pair("NoseSneer", 0.2), **_pair("MouthPress", 0.1)},
    "Sorrow": {"BrowInnerUp": 0.6, **_pair("MouthFrown", 0.3)},
    "Fun": {**_pair("MouthSmile", 0.3), **_pair("EyeSquint", 0.2)},
    "LookUp": _pair("EyeLookUp", 0.5),
    "LookDown": _pair("EyeLookDown", 0.5),
    # looking to the avatar's left turns the left eye outwards and the right eye inwards
    "LookLeft": {"EyeLookOutLeft": 0.5, "EyeLookInRight": 0.5},
    "LookRight": {"EyeLookInLeft": 0.5, "EyeLookOutRight": 0.5},
}

# VRM 1.0 renamed the presets (and added `surprised`; `relaxed` replaces `Fun`).
VRM1_NAMES = {"A": "aa", "I": "ih", "U": "ou", "E": "ee", "O": "oh", "Blink": "blink", "Blink_L": "blinkLeft",
              "Blink_R": "blinkRight", "Joy": "happy", "Angry": "angry", "Sorrow": "sad", "Fun": "relaxed",
              "LookUp": "lookUp", "LookDown": "lookDown", "LookLeft": "lookLeft", "LookRight": "lookRight"}
VRM1_TABLE: dict[str, dict[str, float]] = {
    **{VRM1_NAMES[k]: v for k, v in VRM0_TABLE.items()},
    "surprised": {**_pair("EyeWide", 0.4), "BrowInnerUp": 0.3, **_pair("BrowOuterUp", 0.3)},
}

RIGS: dict[str, RigMap] = {
    # "Perfect Sync": one VRM blend shape clip per ARKit shape, named like ARKit's PascalCase (EyeBlinkLeft, JawOpen)
    "arkit": RigMap("arkit", ARKIT_NAMES, np.eye(NUM_BLENDSHAPES, dtype=np.float32)),
    "vrm0": RigMap.from_table("vrm0", VRM0_TABLE, ("Blink", "Blink_L", "Blink_R"), ("A", "I", "U", "E", "O")),
    "vrm1": RigMap.from_table("vrm1", VRM1_TABLE, ("blink", "blinkLeft", "blinkRight"), ("aa", "ih", "ou", "ee", "oh")),
}


def rig_map(name: str) -> RigMap:
    if name not in RIGS:
        raise ValueError(f"unknown rig {name!r}; choose from {', '.join(RIGS)}")
    return RIGS[name]


# Live2D Cubism's standard parameters (docs.live2d.com, "Standard Parameter List"): id -> (minimum, default,
# maximum). They are not 0..1 weights, and angles and eye balls come from the head pose and gaze, so Live2D is a
# function of whole motion rows rather than a RigMap. Signs: + turns or looks to the screen's right (the
# character's left, as our +yaw), + looks up (our -pitch), + tilts the top of the head to the screen's right.
LIVE2D_PARAMETERS: dict[str, tuple[float, float, float]] = {
    "ParamAngleX": (-30, 0, 30), "ParamAngleY": (-30, 0, 30), "ParamAngleZ": (-30, 0, 30),
    "ParamEyeLOpen": (0, 1, 1), "ParamEyeLSmile": (0, 0, 1), "ParamEyeROpen": (0, 1, 1), "ParamEyeRSmile": (0, 0, 1),
    "ParamEyeBallX": (-1, 0, 1), "ParamEyeBallY": (-1, 0, 1),
    "ParamBrowLY": (-1, 0, 1), "ParamBrowRY": (-1, 0, 1), "ParamBrowLForm": (-1, 0, 1), "ParamBrowRForm": (-1, 0, 1),
    "ParamMouthForm": (-1, 0, 1), "ParamMouthOpenY": (0, 0, 1),
    "ParamBodyAngleX": (-10, 0, 10), "ParamBodyAngleY": (-10, 0, 10), "ParamBodyAngleZ": (-10, 0, 10),
}
EYE_BALL_RANGE_RAD = 0.35  # gaze (radians) that puts ParamEyeBallX/Y at +-1: about as far as eyes turn in talk


def live2d_parameters(motion: np.ndarray) -> dict[str, np.ndarray]:
    """(T, MOTION_DIM) motion -> {Live2D parameter id: (T,) values}, each within its standard range."""
    m = np.asarray(motion, np.float32)

    def w(name: str) -> np.ndarray:
        return m[:, BS[name]]

    pitch, yaw, roll = (np.degrees(m[:, HEAD_ROTATION.start + i]) for i in range(3))
    gaze_yaw = (m[:, GAZE.start] + m[:, GAZE.start + 2]) / 2
    gaze_pitch = (m[:, GAZE.start + 1] + m[:, GAZE.start + 3]) / 2
    values = {
        "ParamAngleX": yaw, "ParamAngleY": -pitch, "ParamAngleZ": roll,
        # the body follows the head a third of the way, as Live2D's sample models move
        "ParamBodyAngleX": yaw / 3, "ParamBodyAngleY": -pitch / 3, "ParamBodyAngleZ": roll / 3,
        "ParamEyeLOpen": 1 - w("EyeBlinkLeft"), "ParamEyeROpen": 1 - w("EyeBlinkRight"),
        "ParamEyeLSmile": np.maximum(w("CheekSquintLeft"), w("EyeSquintLeft") * 0.5),
        "ParamEyeRSmile": np.maximum(w("CheekSquintRight"), w("EyeSquintRight") * 0.5),
        "ParamEyeBallX": gaze_yaw / EYE_BALL_RANGE_RAD, "ParamEyeBallY": -gaze_pitch / EYE_BALL_RANGE_RAD,
        "ParamBrowLY": w("BrowOuterUpLeft") + 0.5 * w("BrowInnerUp") - w("BrowDownLeft"),
        "ParamBrowRY": w("BrowOuterUpRight") + 0.5 * w("BrowInnerUp") - w("BrowDownRight"),
        "ParamBrowLForm": w("BrowInnerUp") * 0.5 - w("BrowDownLeft"),  # - is the angry brow
        "ParamBrowRForm": w("BrowInnerUp") * 0.5 - w("BrowDownRight"),
        "ParamMouthForm": (w("MouthSmileLeft") + w("MouthSmileRight") - w("MouthFrownLeft") - w("MouthFrownRight")) / 2,
        "ParamMouthOpenY": mouth_openness(m),
    }
    return {k: np.clip(v, LIVE2D_PARAMETERS[k][0], LIVE2D_PARAMETERS[k][2]).astype(np.float32)
            for k, v in values.items()}


# Rhubarb Lip Sync's mouth shapes (its README): A closed for P/B/M with slight pressure, B slightly open with
# clenched teeth (most consonants, "ee"), C open (EH, AE), D wide open (AA), E slightly rounded (AO, ER), F puckered
# (UW, OW, W), G upper teeth on the lower lip (F, V), H tongue raised behind the upper teeth (long L), X idle.
RHUBARB_SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")


def rhubarb_shapes(motion: np.ndarray, speaking: np.ndarray | None = None) -> list[str]:
    """(T, MOTION_DIM) motion -> one Rhubarb mouth shape per frame, read from the lip and jaw shapes. `speaking`
    ((T,) bool, optional) marks the frames with speech: a closed mouth outside them is X (idle), inside A."""
    m = np.asarray(motion, np.float32)
    opening = mouth_openness(m)
    rounded = np.maximum(m[:, BS["MouthPucker"]], m[:, BS["MouthFunnel"]]) > 0.4
    speaking = np.ones(len(m), bool) if speaking is None else np.asarray(speaking, bool)
    # first match wins, in this order; wide open (D) when none does
    shapes = np.select(
        # H wants the tongue tip raised behind the teeth (L); ARKit's one tongue shape is TongueOut, past the teeth,
        # and no generator here moves it: H is only written for motion that shows the tongue, never inferred for L
        [opening < LIPS_SHUT_OPENNESS, m[:, BS["TongueOut"]] > 0.3,
         # the lower lip drawn in under the upper teeth (F, V). The model rolls it 0.25-0.4 on a /v/ and under 0.01
         # elsewhere (docs/bake-rhubarb.md); the baseline never does, so G comes from the model only
         (m[:, BS["MouthRollLower"]] > 0.15) & (opening < 0.3),
         rounded & (opening < 0.25), rounded, opening < 0.15, opening < 0.45],
        [np.where(speaking, "A", "X"), "H", "G", "F", "E", "B", "C"], "D")
    return [str(shape) for shape in shapes]
