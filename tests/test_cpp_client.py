"""Our ZeroMQ stream read by an independent peer: the C++ example subscriber (cppzmq + hand-written msgpack)."""
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.client import MotionReceiver, audio_chunks, send_chunks, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import MOTION_DIM, MotionBlock

from .helpers import WORKER_COMMAND, collect, push_socket

SOURCE = Path(__file__).parents[1] / "engine_plugins" / "cpp" / "subscriber.cpp"


def have_cppzmq() -> bool:
    if not shutil.which("g++"):
        return False
    probe = subprocess.run(["g++", "-std=c++17", "-E", "-x", "c++", "-"], input="#include <zmq.hpp>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    if not have_cppzmq():
        pytest.skip("g++ or the cppzmq headers are missing (scripts/setup.sh installs them)")
    path = tmp_path_factory.mktemp("cpp") / "subscriber"
    build = subprocess.run(["g++", "-std=c++17", "-O1", str(SOURCE), "-lzmq", "-o", str(path)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return path


def wait_ready(cpp, timeout_s=30.0, ping=None):
    """Wait for the subscriber's "ready" line (a stalled binary fails the test, it does not hang it); `ping` is
    called meanwhile (to publish the worker stats it waits for, where no worker does)."""
    deadline = time.time() + timeout_s
    while not select.select([cpp.stdout], [], [], 0.05)[0]:
        assert time.time() < deadline and cpp.poll() is None, f"the C++ subscriber said nothing in {timeout_s} s"
        if ping:
            ping()
    assert cpp.stdout.readline().strip() == "ready"


def test_cpp_subscriber_decodes_our_frames(binary):
    with spawn_worker("--stats-interval-s", "0.2", command=WORKER_COMMAND) as ep:
        cpp = subprocess.Popen([str(binary), ep["motion_out"], "cpp", "90"], stdout=subprocess.PIPE, text=True)
        try:
            wait_ready(cpp)
            py = MotionReceiver(ep["motion_out"], ["cpp"])
            py.wait_ready()
            a, b = synthetic_dialogue(3.0, seed=12)
            push = push_socket(ep["audio_in"])
            send_chunks(push, audio_chunks("cpp", {"self": a, "other": b}, SAMPLE_RATE), realtime=False)
            push.send(protocol.end_message("cpp"))
            expected = sorted(collect(py, ["cpp"])["cpp"]["motion"], key=lambda f: f["seq"])
            out, _ = cpp.communicate(timeout=20)
        finally:
            if cpp.poll() is None:
                cpp.kill()
    lines = [line.split() for line in out.splitlines() if line.startswith("frame ")]
    assert len(lines) == len(expected) == 90
    for fields, frame in zip(lines, expected):
        got = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        assert got["session"] == "cpp" and int(got["seq"]) == frame["seq"] and got["state"] == frame["state"]
        assert float(got["t"]) == pytest.approx(frame["t"], abs=1e-6)
        assert float(got["jaw_open"]) == pytest.approx(frame["blendshapes"][17], abs=1e-6)
        assert int(got["blendshapes"]) == 52
        assert float(got["published"]) == pytest.approx(frame["published"], abs=1e-6)
    assert any(float(dict(f.split("=", 1) for f in x[1:] if "=" in f)["jaw_open"]) > 0.1 for x in lines)


def test_cpp_subscriber_survives_hostile_msgpack(binary):
    """What comes off the network is not trusted: absurd nesting and counts cost the message, not the process."""
    import zmq

    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    cpp = subprocess.Popen([str(binary), f"tcp://127.0.0.1:{port}", "", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(cpp, ping=lambda: pub.send_multipart([protocol.topic(protocol.WORKER_TOPIC, "stats"),
                                                         protocol.pack({})]))
        hostile = [b"\x91" * 1_000_000 + b"\xc0",  # arrays nested a million deep: recursion would blow the stack
                   b"\xdd\xff\xff\xff\xff",  # an array of 4 billion items in a 5-byte message
                   b"\xdf\xff\xff\xff\xff\xa1k"]  # a map of 4 billion entries
        for body in hostile:
            pub.send_multipart([b"evil/motion", body])
        block = MotionBlock(7, np.zeros((1, MOTION_DIM), np.float32), [0])
        pub.send_multipart([b"good/motion", protocol.motion_bodies(block, 1.0, [1.0], 1.0, 1.0)[0]])
        out, err = cpp.communicate(timeout=30)
    finally:
        if cpp.poll() is None:
            cpp.kill()
        pub.close()
    assert cpp.returncode == 0, err  # before: killed by a stack overflow (SIGSEGV)
    assert "frame session=good seq=7 " in out
    assert err.count("bad frame on evil/motion") == 3
    assert "nested too deep" in err and "array longer than its message" in err and "map longer than" in err
