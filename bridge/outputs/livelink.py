"""Live Link Face output: the UDP packet Epic's iPhone app sends, so Unreal (and MetaHuman) take our faces as a
Live Link Face source with no plugin.

Packet (big-endian, one per frame):
    uint8   version = 6
    int32   36, then the 36-character device UUID (ASCII)
    int32   subject name length, then the name (UTF-8)    -- the session name
    int32   frame number, float32 sub-frame                 -- the frame's seq at 30 fps, 0.0
    int32   frame rate numerator, int32 denominator         -- 30, 1
    uint8   61, then 61 float32: the 52 ARKit weights, then HeadYaw, HeadPitch, HeadRoll,
            LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll

Rotation units: Unreal's ARKit conversion sends each head and eye angle as its FRotator value in degrees / 180,
so -1..1 spans -180..180 degrees: value = radians / pi. Signs (the app's un-mirrored face): HeadYaw + turns the
head to the subject's own left, HeadPitch + looks down, HeadRoll + tilts the top of the head to the subject's right;
the eyes follow the same yaw/pitch signs and have no roll. Our motion stores +roll to the avatar's left, hence the
minus on roll below. See engine_plugins/PROTOCOL.md.

Frames go out at the motion's own 30 fps: Live Link interpolates subject frames by time on the engine side, and
resampling to 60 Hz here would cost a frame of latency (interpolation needs the next frame) for no new information.
"""
from __future__ import annotations

import math
import socket
import struct
import uuid

import numpy as np

from backchannel.bridge.outputs.udp import UdpOutput, udp_target
from backchannel.models.motion import BLENDSHAPES, FRAME_RATE, GAZE, HEAD_ROTATION, MotionBlock

VERSION = 6
VALUES = 61


ROTATION_NAMES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
                  "RightEyePitch", "RightEyeRoll")


def rotation_curves(motion: np.ndarray) -> np.ndarray:
    """Motion rows (T, MOTION_DIM) -> (T, 9) head and eye rotations as Live Link Face's curves (ROTATION_NAMES):
    radians / pi, roll negated, no eye roll. The baked Unreal curve table shares it (bridge/bake/unreal.py)."""
    motion = np.asarray(motion, np.float64).reshape(-1, np.shape(motion)[-1])
    pitch, yaw, roll = (motion[:, HEAD_ROTATION] / math.pi).T
    left_yaw, left_pitch, right_yaw, right_pitch = (motion[:, GAZE] / math.pi).T
    none = np.zeros(len(motion))
    return np.stack([yaw, pitch, -roll, left_yaw, left_pitch, none, right_yaw, right_pitch, none], axis=1)


def curve_values(row: np.ndarray) -> list[float]:
    """One motion row -> the 61 Live Link Face values."""
    return [*map(float, row[BLENDSHAPES]), *map(float, rotation_curves(row)[0])]


def packet(device_id: str, subject: str, frame: int, values: list[float]) -> bytes:
    name = subject.encode()
    return b"".join((
        struct.pack(">Bi", VERSION, len(device_id)), device_id.encode("ascii"),
        struct.pack(">i", len(name)), name,
        struct.pack(">ifiiB", frame, 0.0, FRAME_RATE, 1, VALUES),
        struct.pack(f">{VALUES}f", *values),
    ))


class LiveLinkSink(UdpOutput):
    """Sends every session's frames as Live Link Face packets, one subject per session."""

    name = "livelink"

    def __init__(self, address: str, device_id: str | None = None):
        family, self.address = udp_target(address)
        self.device_id = device_id or str(uuid.uuid4()).upper()  # 36 characters, like the app's identifierForVendor
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)  # a full send buffer costs a counted packet, never the worker's time
        super().__init__()

    def send(self, session: str, block: MotionBlock) -> None:
        for i, row in enumerate(block.motion):
            self.deliver(self.sock.sendto, packet(self.device_id, session, block.first + i, curve_values(row)),
                         self.address)

    def close(self) -> None:
        self.sock.close()
