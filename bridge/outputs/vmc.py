"""VMC protocol output (OSC over UDP) for VSeeFace, Warudo, VNyan, EVMC4U, VMC4UE and other VMC receivers.

Each frame is one OSC bundle, in this order:
    /VMC/Ext/Blend/Val  name value     for every shape of the chosen name set
    /VMC/Ext/Blend/Apply
    /VMC/Ext/Bone/Pos   "Head" px py pz qx qy qz qw
    /VMC/Ext/OK         1 3 0 1        (loaded, calibrated, normal calibration mode, tracking)
    /VMC/Ext/T          t              (the frame's audio time, seconds)

Name sets (calibration.rigs): "arkit" = the 52 ARKit shapes as "Perfect Sync" VRM clips, named in PascalCase
(EyeBlinkLeft, JawOpen) as VRM blend shape clips carry them; "vrm0" = VRM 0.x presets (A I U E O Blink Blink_L ...);
"vrm1" = VRM 1.0 expressions (aa ih ou ee oh blink blinkLeft ...).

Head bone: Unity's left-handed axes as VMC uses them (+x the avatar's right, +y up, +z the way the avatar faces).
Our motion has +yaw to the avatar's left, +pitch looking down, +roll tilting the top of the head to the avatar's
left, so the Unity Euler angles are (x, y, z) = (pitch, -yaw, roll), composed as Unity's Quaternion.Euler does
(z, then x, then y). The bone position carries the head translation from rest; most receivers apply only the
rotation of non-root bones (see docs/bridge.md).

A VMC receiver shows one avatar: with several sessions, pick the one to send with `session`.
"""
from __future__ import annotations

import math

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import build_msg
from pythonosc.udp_client import UDPClient

from backchannel.bridge.outputs.udp import UdpOutput, udp_target
from backchannel.calibration.rigs import rig_map
from backchannel.models.motion import BLENDSHAPES, HEAD_ROTATION, HEAD_TRANSLATION, MotionBlock, frame_time


def _axis_quat(axis: int, angle: float) -> np.ndarray:
    q = np.zeros(4)
    q[axis] = math.sin(angle / 2)
    q[3] = math.cos(angle / 2)
    return q


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (x, y, z, w) quaternions: rotation b first, then a."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def head_quaternion(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Our head rotation -> Unity (x, y, z, w) quaternion, as Quaternion.Euler(pitch, -yaw, roll) in radians."""
    return _mul(_axis_quat(1, -yaw), _mul(_axis_quat(0, pitch), _axis_quat(2, roll)))


class VmcSink(UdpOutput):
    """Sends frames (every session's, or only `session`'s) as VMC bundles."""

    name = "vmc"  # its counters' key in the worker's stats

    def __init__(self, address: str, names: str = "arkit", session: str | None = None):
        family, (host, port, *_) = udp_target(address)
        self.client = UDPClient(host, port, family=family)
        self.rig = rig_map(names)
        self.session = session
        super().__init__()

    def bundle(self, t: float, weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray):
        b = OscBundleBuilder(IMMEDIATELY)
        for name, value in zip(self.rig.targets, weights.tolist()):
            b.add_content(build_msg("/VMC/Ext/Blend/Val", [name, value]))
        b.add_content(build_msg("/VMC/Ext/Blend/Apply"))
        x, y, z = (float(v) for v in translation)
        b.add_content(build_msg("/VMC/Ext/Bone/Pos", ["Head", -x, y, z, *head_quaternion(*map(float, rotation)).tolist()]))
        b.add_content(build_msg("/VMC/Ext/OK", [1, 3, 0, 1]))
        b.add_content(build_msg("/VMC/Ext/T", [float(t)]))
        return b.build()

    def send(self, session: str, block: MotionBlock) -> None:
        if self.session is not None and session != self.session:
            return
        weights = self.rig.apply(block.motion[:, BLENDSHAPES])
        for i, row in enumerate(block.motion):
            self.deliver(self.client.send, self.bundle(frame_time(block.first + i), weights[i], row[HEAD_ROTATION],
                                                       row[HEAD_TRANSLATION]))

    def close(self) -> None:
        self.client.close()
