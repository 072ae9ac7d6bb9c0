"""`serve --portrait`: rendered frames on `<session>/frame` next to the motion, from a real worker subprocess."""
import time
from pathlib import Path

import cv2
import numpy as np

from backchannel.bridge.client import MotionReceiver, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.render import BUNDLED_PORTRAIT

from .helpers import WORKER_COMMAND, next_worker_stats
from .test_worker import stream


def receive_all(receiver, session, timeout_s=30.0, after_close_s=5.0):
    """Motion and frame bodies of one session, until it closed and a frame has come for every motion frame (or
    `after_close_s` passed since it closed: frames are rendered off the worker's thread, so they may trail)."""
    motion, frames, closed_at = [], [], None
    deadline = time.time() + timeout_s
    while time.time() < deadline and not (closed_at and (len(frames) >= len(motion)
                                                         or time.time() > closed_at + after_close_s)):
        msg = receiver.receive(0.1)
        if msg is None or msg.session != session:
            continue
        if msg.kind == "motion":
            motion.append(msg.body)
        elif msg.kind == "frame":
            frames.append(msg.body)
        elif msg.kind == "stats" and msg.body.get("closed"):
            closed_at = time.time()
    return motion, frames, closed_at is not None


def test_serve_publishes_a_frame_for_every_motion_frame():
    flags = ("--portrait", str(BUNDLED_PORTRAIT), "--size", "128", "--framing", "face", "--frame-quality", "80")
    with spawn_worker(*flags, command=WORKER_COMMAND) as worker:
        receiver = MotionReceiver(worker["motion_out"])
        try:
            receiver.wait_ready()
            a, b = synthetic_dialogue(1.5, seed=3)
            stream(worker, "face", {"self": a, "other": b})
            motion, frames, closed = receive_all(receiver, "face")
            outputs = next_worker_stats(receiver)["outputs"]  # the first worker stats after the last frame
        finally:
            receiver.close()
    assert closed and len(motion) == 45
    assert outputs == {"frames": {"published": 45, "dropped": 0, "errors": 0}}
    assert sorted(f["seq"] for f in frames) == [m["seq"] for m in motion]  # the motion rate: one frame each
    by_seq = {m["seq"]: m for m in motion}
    for f in frames:
        assert f["format"] == "jpeg" and f["width"] == f["height"] == 128
        assert f["t"] == by_seq[f["seq"]]["t"] and f["state"] == by_seq[f["seq"]]["state"]
        assert f["published"] >= by_seq[f["seq"]]["published"]  # pixels never hold the motion back
        image = cv2.imdecode(np.frombuffer(f["data"], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (128, 128, 3)
    # the energy generator opens the jaw with the avatar's loudness: loud frames differ from silent ones
    jaw = {m["seq"]: m["blendshapes"][17] for m in motion}
    quiet, loud = min(jaw, key=jaw.get), max(jaw, key=jaw.get)
    assert jaw[loud] > 0.3
    pictures = {f["seq"]: cv2.imdecode(np.frombuffer(f["data"], np.uint8), cv2.IMREAD_COLOR).astype(int)
                for f in frames}
    assert np.abs(pictures[loud] - pictures[quiet]).mean() > 1


def test_a_bad_portrait_costs_the_frames_not_the_motion(tmp_path):
    missing = tmp_path / "nobody.png"
    with spawn_worker("--portrait", str(missing), command=WORKER_COMMAND) as worker:
        receiver = MotionReceiver(worker["motion_out"])
        try:
            receiver.wait_ready()
            a, b = synthetic_dialogue(1.0, seed=4)
            stream(worker, "blind", {"self": a, "other": b})
            motion, frames, closed = receive_all(receiver, "blind", timeout_s=10, after_close_s=1.0)
        finally:
            receiver.close()
        log = Path(worker["log"]).read_text()
    assert closed and len(motion) == 30 and frames == []
    assert "no rendered frames: portrait not found" in log and "serving motion only" in log
