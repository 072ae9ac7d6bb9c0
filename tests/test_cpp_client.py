"""Our ZeroMQ stream read by an independent peer: the C++ subscriber of the Unreal plugin's core (cppzmq +
msgpack-cxx; engine_plugins/unreal/core/tools/subscribe.cpp)."""
import re
import select
import subprocess
import time
from contextlib import contextmanager

import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.client import MotionReceiver, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.motion import MOTION_DIM, MotionBlock

from .core_build import core_build
from .helpers import WORKER_COMMAND, collect, stream


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return core_build(tmp_path_factory) / "backchannel-subscribe"


def wait_ready(cpp, timeout_s=30.0, ping=None):
    """Wait for the subscriber's "ready" line (a stalled binary fails the test, it does not hang it); `ping` is
    called meanwhile (to publish the worker stats it waits for, where no worker does)."""
    deadline = time.time() + timeout_s
    while not select.select([cpp.stdout], [], [], 0.05)[0]:
        assert time.time() < deadline and cpp.poll() is None, f"the C++ subscriber said nothing in {timeout_s} s"
        if ping:
            ping()
    assert cpp.stdout.readline().strip() == "ready"


@contextmanager
def cpp_on_our_own_pub(binary, session: str, frames: int):
    """A PUB socket of the test's own, with the C++ subscriber (`session`, exiting after `frames`) ready on it."""
    import zmq

    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    cpp = subprocess.Popen([str(binary), f"tcp://127.0.0.1:{port}", session, str(frames)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(cpp, ping=lambda: pub.send_multipart([protocol.topic(protocol.WORKER_TOPIC, "stats"),
                                                         protocol.pack({})]))
        yield pub, cpp
    finally:
        if cpp.poll() is None:
            cpp.kill()
        pub.close()


def printed_frames(out: str) -> list[dict]:
    """The C++ subscriber's "frame" lines as dicts: its key=value fields, with head and weights as lists of floats."""
    frames = []
    for line in out.splitlines():
        if not line.startswith("frame "):
            continue
        lists = dict(re.findall(r"(\w+)=\[([^\]]*)\]", line))
        got = dict(f.split("=", 1) for f in re.sub(r"\w+=\[[^\]]*\]", "", line).split()[1:])
        got.update({key: [float(x) for x in values.split()] for key, values in lists.items()})
        frames.append(got)
    return frames


def test_cpp_subscriber_decodes_our_frames(binary):
    """Every frame the worker sends reaches the C++ peer with the seq, time, state, head rotation and all 52 weights
    that our own receiver decodes."""
    with spawn_worker("--stats-interval-s", "0.2", command=WORKER_COMMAND) as ep:
        cpp = subprocess.Popen([str(binary), ep["motion_out"], "cpp", "90"], stdout=subprocess.PIPE, text=True)
        try:
            wait_ready(cpp)
            py = MotionReceiver(ep["motion_out"], ["cpp"])
            py.wait_ready()
            a, b = synthetic_dialogue(3.0, seed=12)
            stream(ep, "cpp", {"self": a, "other": b})
            expected = sorted(collect(py, ["cpp"])["cpp"]["motion"], key=lambda f: f["seq"])
            py.close()
            out, _ = cpp.communicate(timeout=20)
        finally:
            if cpp.poll() is None:
                cpp.kill()
    printed = printed_frames(out)
    assert len(printed) == len(expected) == 90
    for got, frame in zip(printed, expected):
        assert got["session"] == "cpp" and int(got["seq"]) == frame["seq"] and got["state"] == frame["state"]
        assert float(got["t"]) == pytest.approx(frame["t"], abs=1e-6)
        assert float(got["jaw_open"]) == pytest.approx(frame["blendshapes"][17], abs=1e-6)
        assert int(got["blendshapes"]) == 52
        np.testing.assert_allclose(got["weights"], frame["blendshapes"], rtol=1e-8, atol=0)  # printed to 9 digits
        np.testing.assert_allclose(got["head"], frame["head_rotation"], rtol=0, atol=1e-6)  # printed to 6 decimals
        assert float(got["published"]) == pytest.approx(frame["published"], abs=1e-6)
    assert max(float(got["jaw_open"]) for got in printed) > 0.1
    assert max(got["head"][0] for got in printed) > 0.05  # the test generator nods while the partner talks


def test_cpp_subscriber_reads_the_head_and_every_weight_of_known_frames(binary):
    """Two hand-made frames (52 distinct weights, a head turned on all three axes, signs mixed) published as the
    worker publishes them: the C++ peer prints exactly those values, in ARKit and pitch-yaw-roll order."""
    rng = np.random.default_rng(5)
    motion = np.zeros((2, MOTION_DIM), np.float32)
    motion[:, :52] = rng.permutation(np.arange(1, 105)).reshape(2, 52) / 105  # no two weights alike
    motion[:, 52:55] = [[0.125, -0.25, 0.375], [-0.0625, 0.5, -0.75]]  # pitch, yaw, roll (radians)
    motion[:, 55:] = 9.0  # translation and gaze: not the head rotation
    with cpp_on_our_own_pub(binary, "known", 2) as (pub, cpp):
        block = MotionBlock(40, motion, [1, 2])
        for body in protocol.motion_bodies(block, 1.0, [1.0, 1.0], 1.0, 1.0):
            pub.send_multipart([protocol.topic("known", "motion"), body])
        out, err = cpp.communicate(timeout=30)
    assert cpp.returncode == 0, err
    printed = printed_frames(out)
    assert [(int(got["seq"]), got["state"]) for got in printed] == [(40, "speaking"), (41, "listening")]
    for got, row in zip(printed, motion):
        np.testing.assert_allclose(got["weights"], row[:52], rtol=1e-8, atol=0)
        np.testing.assert_allclose(got["head"], row[52:55], rtol=0, atol=1e-6)
        assert float(got["jaw_open"]) == pytest.approx(row[17], abs=1e-6)


def test_cpp_subscriber_survives_hostile_msgpack(binary):
    """What comes off the network is not trusted: absurd nesting and counts cost the message, not the process."""
    with cpp_on_our_own_pub(binary, "", 1) as (pub, cpp):
        hostile = [b"\x91" * 1_000_000 + b"\xc0",  # arrays nested a million deep: recursion would blow the stack
                   b"\xdd\xff\xff\xff\xff",  # an array of 4 billion items in a 5-byte message
                   b"\xdf\xff\xff\xff\xff\xa1k"]  # a map of 4 billion entries
        for body in hostile:
            pub.send_multipart([b"evil/motion", body])
        block = MotionBlock(7, np.zeros((1, MOTION_DIM), np.float32), [0])
        pub.send_multipart([b"good/motion", protocol.motion_bodies(block, 1.0, [1.0], 1.0, 1.0)[0]])
        out, err = cpp.communicate(timeout=30)
    assert cpp.returncode == 0, err  # before: killed by a stack overflow (SIGSEGV)
    assert "frame session=good seq=7 " in out
    assert err.count("bad frame on evil/motion") == 3
    # refused by the decoder's limits (the worker's own) at the header, before anything is built
    assert "depth size overflow" in err and "array size overflow" in err and "map size overflow" in err
