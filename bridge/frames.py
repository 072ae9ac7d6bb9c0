"""Rendered frames for `<session>/frame`: one encoded picture per motion frame, at the motion rate.

The worker makes one FrameEncoder per session that has a portrait and, after publishing a MotionBlock's motion,
sends what `messages(session, block)` yields: `[topic, msgpack body]` pairs, rendered and stamped one at a time
so the wall-clock stamp is the moment each frame left. Body fields (protocol v1; unknown fields are to be ignored):

    v, type="frame", session, seq (motion frame index), t (audio time it answers, s), state,
    format ("jpeg" | "rgb24"), width, height, data (bytes), wall (publish time, s since the epoch)

"rgb24" is raw rows top to bottom, 3 bytes a pixel, width * height * 3 bytes in all.
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from backchannel.models.motion import STATES, MotionBlock, frame_time

PROTOCOL_VERSION = 1
FORMATS = ("jpeg", "rgb24")


class FrameEncoder:
    """Renders and encodes one session's frames."""

    def __init__(self, renderer, fmt: str = "jpeg", quality: int = 85):
        if fmt not in FORMATS:
            raise ValueError(f"frame format {fmt!r}: choose from {', '.join(FORMATS)}")
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality {quality} must be in 1..100")
        self.renderer, self.format, self.quality = renderer, fmt, int(quality)

    def encode(self, rgb: np.ndarray) -> bytes:
        if self.format == "rgb24":
            return np.ascontiguousarray(rgb, np.uint8).tobytes()
        import cv2

        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return jpeg.tobytes()

    def messages(self, session: str, block: MotionBlock) -> Iterator[tuple[bytes, bytes]]:
        """`[topic, body]` for each frame of the block, in order."""
        import msgpack

        topic = f"{session}/frame".encode()
        size = self.renderer.size
        for i, frame in enumerate(self.renderer.render(block.motion)):
            seq = block.first + i
            body = {"v": PROTOCOL_VERSION, "type": "frame", "session": session, "seq": seq,
                    "t": float(frame_time(seq)), "state": STATES[int(block.state[i])], "format": self.format,
                    "width": size, "height": size, "data": self.encode(frame), "wall": time.time()}
            yield topic, msgpack.packb(body, use_bin_type=True)
