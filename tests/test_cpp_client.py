"""Our ZeroMQ stream read by an independent peer: the C++ example subscriber (cppzmq + hand-written msgpack)."""
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from backchannel.bridge import protocol
from backchannel.bridge.client import MotionReceiver, audio_chunks, send_chunks, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.audio import SAMPLE_RATE

from .helpers import WORKER_COMMAND, collect, push_socket

SOURCE = Path(__file__).parents[1] / "engine_plugins" / "cpp" / "subscriber.cpp"


def have_cppzmq() -> bool:
    if not shutil.which("g++"):
        return False
    probe = subprocess.run(["g++", "-std=c++17", "-E", "-x", "c++", "-"], input="#include <zmq.hpp>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0


@pytest.mark.skipif(not have_cppzmq(), reason="g++ or the cppzmq headers are missing (scripts/setup.sh installs them)")
def test_cpp_subscriber_decodes_our_frames(tmp_path):
    binary = tmp_path / "subscriber"
    build = subprocess.run(["g++", "-std=c++17", "-O1", str(SOURCE), "-lzmq", "-o", str(binary)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    with spawn_worker("--stats-interval-s", "0.2", command=WORKER_COMMAND) as ep:
        cpp = subprocess.Popen([str(binary), ep["motion_out"], "cpp", "90"], stdout=subprocess.PIPE, text=True)
        try:
            # it prints "ready" once the worker's stats reach it; a stalled binary must fail the test, not hang it
            assert select.select([cpp.stdout], [], [], 30)[0], "the C++ subscriber printed nothing in 30 s"
            assert cpp.stdout.readline().strip() == "ready"
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
