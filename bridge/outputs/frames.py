"""Rendered frames for `<session>/frame`: one encoded picture per motion frame, at the motion rate.

FrameEncoder renders and encodes a session's MotionBlock. FrameSink is the worker-side output: the worker hands it
every block it publishes (`send(session, block)`, the same call its Live Link and VMC sinks take); a render thread
turns blocks into frames, and the worker's own thread publishes them on its PUB socket when it next calls `send` or
`publish_ready` (each tick), so motion never waits for pixels and only the worker's thread touches the socket.
Rendering never holds motion back, and frames stay live rather than complete: a block that has waited longer than
`max_lag_s` (1 s) for the render thread is dropped, oldest first, whenever a newer one waits behind it, and at most
`max_waiting_frames` wait at all. So when rendering is slower than the motion comes (a slow machine, or a burst of
audio sent faster than real time), frames are skipped, not delayed; each skipped frame is counted (`dropped` in
the worker's stats, under `outputs`).
The frame body is protocol.frame_body's (engine_plugins/PROTOCOL.md).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Iterator

import numpy as np

from backchannel.bridge.outputs import Sink
from backchannel.bridge.protocol import FRAME_FORMATS, frame_body
from backchannel.models.motion import MotionBlock

log = logging.getLogger("backchannel.frames")


class FrameEncoder:
    """Renders and encodes frames with one renderer (it keeps no per-session state, so sessions can share it)."""

    def __init__(self, renderer, fmt: str = "jpeg", quality: int = 85):
        if fmt not in FRAME_FORMATS:
            raise ValueError(f"frame format {fmt!r}: choose from {', '.join(FRAME_FORMATS)}")
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

    def bodies(self, block: MotionBlock) -> Iterator[dict]:
        """One unpacked body per frame of the block, in order, rendered as it is asked for."""
        size = self.renderer.size
        for i, frame in enumerate(self.renderer.render(block.motion)):
            seq = block.first + i
            yield frame_body(seq, int(block.state[i]), self.format, size, size, self.encode(frame), time.time())


PIECE = 3  # frames (0.1 s) rendered as one piece: the unit rendering skips when it falls behind


class FrameSink(Sink):
    """Worker output for `<session>/frame`: renders on its own thread, publishes on the worker's."""

    name = "frames"  # its counters' key in the worker's stats

    def __init__(self, pub, encoder: FrameEncoder, max_lag_s: float = 1.0, max_waiting_frames: int = 900,
                 resize=None):
        """`resize(size)`: a renderer of the same portrait at another size, for tiers that render smaller (None:
        the size stays)."""
        self.pub, self.encoder = pub, encoder
        self.resize = resize
        self.size = getattr(encoder.renderer, "size", None)  # the operator's: no tier renders larger
        self.wanted_size = self.size  # the tier's, taken up by the render thread before its next piece
        self.renderers = {self.size: encoder.renderer}  # by size, made once each (setting one up takes a while)
        self.max_lag_s = max_lag_s
        self.max_waiting = max_waiting_frames  # bounds memory whatever the lag
        self.waiting: deque[tuple[str, MotionBlock, float]] = deque()  # blocks not yet rendered, when queued
        self.ready: deque[tuple[bytes, dict]] = deque()  # rendered frames not yet published
        self.lock = threading.Condition()
        self.busy = False
        self.stopping = False
        self.dropped = 0  # frames never rendered because rendering fell behind
        self.errors = 0  # blocks the renderer failed on (their frames are skipped)
        self.published = 0
        self.thread = threading.Thread(target=self._render_loop, name="backchannel-frames", daemon=True)
        self.thread.start()

    def send(self, session: str, block: MotionBlock) -> None:
        """Queue a published block for rendering (worker thread); publishes whatever frames are ready. A block is
        queued in pieces of at most PIECE frames, so a burst (audio sent faster than real time) is skipped piece by
        piece once it falls max_lag_s behind, not rendered whole however late."""
        if len(block):
            now = time.monotonic()
            with self.lock:
                for start in range(0, len(block), PIECE):
                    piece = slice(start, start + PIECE)
                    self.waiting.append((session, MotionBlock(block.first + start, block.motion[piece],
                                                              block.state[piece]), now))
                while sum(len(b) for _, b, _ in self.waiting) > self.max_waiting and len(self.waiting) > 1:
                    self.dropped += len(self.waiting.popleft()[1])
                self.lock.notify()
        self.publish_ready()

    def publish_ready(self) -> int:
        """Publish the frames rendered so far (worker thread; call it each tick too). Returns how many."""
        import msgpack

        sent = 0
        while self.ready:
            topic, body = self.ready.popleft()
            body["published"] = time.time()
            self.pub.send_multipart([topic, msgpack.packb(body, use_bin_type=True)])
            sent += 1
        self.published += sent
        return sent

    def close(self, timeout: float = 5.0) -> None:
        """Render what is queued (up to `timeout` seconds), publish it, stop the thread."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while (self.waiting or self.busy) and time.monotonic() < deadline:
                self.lock.wait(0.05)
            self.stopping = True
            self.lock.notify()
        self.thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        self.dropped += sum(len(b) for _, b, _ in self.waiting)  # what the timeout left unrendered
        self.waiting.clear()
        self.publish_ready()
        log.info("frames: %d published, %d dropped (rendering behind), %d blocks failed", self.published,
                 self.dropped, self.errors)

    def stats(self) -> dict:
        return {"published": self.published, "dropped": self.dropped, "errors": self.errors}

    def set_tier(self, tier) -> None:
        """The tier's JPEG quality from the next frame rendered, and its frame size from the next piece (at most
        the size the worker started with, kept even; the new renderer is made on the render thread, so motion
        never waits for it). Each frame body says its own width and height."""
        self.encoder.quality = tier.frame_quality
        if self.resize is not None and self.size is not None:
            with self.lock:
                self.wanted_size = max(2, min(self.size, tier.frame_size) // 2 * 2)

    def _renderer_for_tier(self) -> None:
        """Render thread: switch to the wanted size's renderer. One that cannot be made is logged and the size
        stays (frames go on at the old size)."""
        size = self.wanted_size
        if size == self.encoder.renderer.size:
            return
        if size not in self.renderers:
            try:
                self.renderers[size] = self.resize(size)
            except Exception as e:
                log.error("frames stay %d px: no renderer at %d px (%s)", self.encoder.renderer.size, size, e)
                with self.lock:
                    if self.wanted_size == size:
                        self.wanted_size = self.encoder.renderer.size
                return
        self.encoder.renderer = self.renderers[size]
        log.info("frames now %d x %d px (tier)", size, size)

    def _render_loop(self) -> None:
        while True:
            with self.lock:
                while not self.waiting and not self.stopping:
                    self.lock.wait()
                if self.stopping:
                    return
                late = time.monotonic() - self.max_lag_s
                while len(self.waiting) > 1 and self.waiting[0][2] < late:  # too far behind: skip to newer
                    self.dropped += len(self.waiting.popleft()[1])
                session, block, _ = self.waiting.popleft()
                self.busy = True
            try:
                if self.resize is not None:
                    self._renderer_for_tier()
                topic = f"{session}/frame".encode()
                for body in self.encoder.bodies(block):
                    self.ready.append((topic, body))
            except Exception as e:  # a bad frame must not stop the frames of other blocks and sessions
                self.errors += 1
                if self.errors == 1 or self.errors % 1000 == 0:
                    log.error("session %s: rendering frames from %d failed (%d so far): %s", session, block.first,
                              self.errors, e)
            finally:
                with self.lock:
                    self.busy = False
                    self.lock.notify_all()
