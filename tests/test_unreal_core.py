"""The Unreal plugin (engine_plugins/unreal). Its engine-independent C++ core: the ctest unit tests, and the
integration program against a live worker (audio streamed through the core's sender comes back as the motion a
Python subscriber receives; 16 sessions on one connection; a worker killed and restarted mid-stream; CURVE; hostile
bodies). Its Unreal-facing files, without an engine: C++ against stand-in engine headers, the Build.cs rules as C#
against stand-in UnrealBuildTool types, the plugin descriptor, the curve names."""
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.client import MotionReceiver, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.audio import SAMPLE_RATE, save_audio
from backchannel.models.motion import BS

from .core_build import core_build
from .helpers import WORKER_COMMAND, collect
from .test_hardening import free_ports

BROW = BS["BrowInnerUp"]  # the test generator shows a session's seed there: (seed % 10) / 10
# a worker killed mid-stream takes with it the frames of the audio it had but had not yet published: its
# look-ahead and jitter buffer (40 ms) and the chunk in flight, 0.5 s at most here (the test generator looks ahead 0 s)
MAX_LOST_FRAMES = 15


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return core_build(tmp_path_factory)


def run_stream(build, worker, *args, timeout=60):
    return subprocess.run([str(build / "backchannel-stream"), "--audio-in", worker["audio_in"], "--motion-out",
                           worker["motion_out"], "--control", worker["control"], *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def frames_by_session(out: str) -> dict[str, list[dict]]:
    """backchannel-stream's "frame" lines: {session: [{seq, t, state, head, gaze, weights}, ...]}."""
    got: dict[str, list[dict]] = {}
    for line in out.splitlines():
        if line.startswith("frame "):
            lists = {k: np.array(v.split(), np.float32) for k, v in re.findall(r"(\w+)=\[([^\]]*)\]", line)}
            plain = dict(f.split("=", 1) for f in re.sub(r"\w+=\[[^\]]*\]", "", line).split()[1:])
            got.setdefault(plain["session"], []).append(
                {"seq": int(plain["seq"]), "t": float(plain["t"]), "state": plain["state"], **lists})
    return got


def counters(out: str) -> dict[str, int]:
    line = next(line for line in out.splitlines() if line.startswith("counters "))
    return {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}


def assert_same_frames(cpp: list[dict], py: list[dict]):
    """What the core decoded equals what the Python subscriber received, every value (float32, as sent)."""
    py = sorted(py, key=lambda f: f["seq"])
    assert [f["seq"] for f in cpp] == [f["seq"] for f in py]
    for got, want in zip(cpp, py):
        assert got["t"] == pytest.approx(want["t"], abs=1e-9) and got["state"] == want["state"]
        np.testing.assert_array_equal(got["weights"], np.float32(want["blendshapes"]))
        np.testing.assert_array_equal(got["head"], np.float32(want["head_rotation"]))
        np.testing.assert_array_equal(got["gaze"], np.float32(want["gaze"]))


def test_ctest_unit_tests_pass(build):
    """msgpack round trips and hostile bodies, interpolation and the playhead, the chunker's clock, allocations
    (a tick's sessions(out) and play() included), the audio ring (a producer and a consumer thread), and the
    client's audio side, its rings and control timeouts on sockets of the test's own."""
    done = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100% tests passed, 0 tests failed out of 12" in done.stdout


def test_a_wav_through_the_core_comes_back_as_the_motion_python_receives(build, tmp_path):
    a, b = synthetic_dialogue(3.0, seed=12)
    save_audio(tmp_path / "self.wav", a, SAMPLE_RATE)
    save_audio(tmp_path / "other.wav", b, SAMPLE_RATE)
    with spawn_worker("--stats-interval-s", "0.2", command=WORKER_COMMAND) as worker:
        py = MotionReceiver(worker["motion_out"], ["wav"])
        py.wait_ready()
        done = run_stream(build, worker, "--wav", tmp_path / "self.wav", "--other", tmp_path / "other.wav",
                          "--name", "wav", "--open", "--seed", 3, "--block-ms", 7, "--print-frames")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        got = collect(py, ["wav"])["wav"]
        py.close()
    cpp = frames_by_session(done.stdout)["wav"]
    # 3 s of audio: 90 frames, time codes seq / 30, from the first to the last with none missing
    assert [f["seq"] for f in cpp] == list(range(90))
    assert [f["t"] for f in cpp] == pytest.approx([k / 30 for k in range(90)], abs=1e-9)
    assert_same_frames(cpp, got["motion"])
    # the worker heard both tracks whole (the sender's clock: samples, not wall time) and the session's settings
    tracks = got["closed"]["tracks"]
    assert tracks["self"]["received_s"] == pytest.approx(3.0) and tracks["other"]["received_s"] == pytest.approx(3.0)
    assert got["closed"]["seed"] == 3 and got["closed"]["owned"] is True
    assert all(f["weights"][BROW] == np.float32(0.3) for f in cpp)
    assert max(f["weights"][BS["JawOpen"]] for f in cpp) > 0.1  # the voice moved the jaw
    assert max(f["head"][0] for f in cpp) > 0.02  # and the partner's voice, the nod
    c = counters(done.stdout)
    assert c["frames"] == 90 and c["sent"] == 2 * 150 + 1 and c["dropped"] == 0  # 20 ms chunks, then `end`


def test_sixteen_sessions_on_one_connection(build, tmp_path):
    """One client, 16 sessions opened with their own seeds, 48 kHz stereo mixed to mono by the core."""
    a, _ = synthetic_dialogue(1.5, seed=4)
    stereo = np.interp(np.arange(72000) / 3, np.arange(len(a)), a).astype(np.float32)  # a at 48 kHz
    save_audio(tmp_path / "stereo.wav", np.stack([stereo, 0.5 * stereo], axis=1), 48000)
    with spawn_worker("--stats-interval-s", "0.2", command=WORKER_COMMAND) as worker:
        py = MotionReceiver(worker["motion_out"])
        py.wait_ready()
        done = run_stream(build, worker, "--wav", tmp_path / "stereo.wav", "--sessions", 16, "--name", "crowd",
                          "--open", "--seed", 0, "--print-frames")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        names = [f"crowd-{k}" for k in range(16)]
        got = collect(py, names)
        py.close()
    cpp = frames_by_session(done.stdout)
    assert sorted(cpp) == sorted(names)
    for k, name in enumerate(names):
        assert [f["seq"] for f in cpp[name]] == list(range(45)), name  # 1.5 s at 48 kHz
        assert_same_frames(cpp[name], got[name]["motion"])
        assert all(f["weights"][BROW] == np.float32((k % 10) / 10) for f in cpp[name])  # its own seed
        assert got[name]["closed"]["tracks"]["self"]["rate"] == 48000
    c = counters(done.stdout)
    assert c["frames"] == 16 * 45 and c["dropped"] == 0 and c["duplicates"] == 0


def wait_line(proc, text: str, timeout_s: float = 30.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if line.strip() == text:
                return
            assert line, f"the tool ended before printing {text!r}: {proc.stderr.read()[-2000:]}"
    raise AssertionError(f"no {text!r} in {timeout_s} s")


def test_a_worker_killed_and_restarted_mid_stream_is_ridden_out(build, tmp_path):
    """kill -9 the worker 1.5 s into a real-time stream, start another on the same ports half a second later: the
    core's sockets reconnect, its clock runs on, the audio that waited meanwhile goes to the new worker, the core
    sees the new worker's uptime and opens the session again with its token and seed, and the stream ends with its
    last frame. Frames the new worker publishes again are dropped as duplicates; audio the old one took with it
    would be a jump in seq."""
    a, b = synthetic_dialogue(5.0, seed=2)  # time for the new worker to start (and open) before the audio ends
    save_audio(tmp_path / "self.wav", a, SAMPLE_RATE)
    save_audio(tmp_path / "other.wav", b, SAMPLE_RATE)
    ends = [f"tcp://127.0.0.1:{p}" for p in free_ports(3)]
    flags = ["--audio-in", ends[0], "--motion-out", ends[1], "--control", ends[2], "--stats-interval-s", "0.2"]
    with spawn_worker(*flags, command=WORKER_COMMAND) as first:
        tool = subprocess.Popen(
            [str(build / "backchannel-stream"), "--audio-in", ends[0], "--motion-out", ends[1], "--control", ends[2],
             "--wav", tmp_path / "self.wav", "--other", tmp_path / "other.wav", "--name", "phoenix", "--open",
             "--seed", "5", "--speed", "1", "--print-frames", "--settle-s", "15"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_line(tool, "ready")
        time.sleep(1.5)
        os.kill(first["pid"], signal.SIGKILL)
        first["process"].wait()
        time.sleep(0.5)
    with spawn_worker(*flags, command=WORKER_COMMAND) as second:
        out, err = tool.communicate(timeout=60)
        log = open(second["log"]).read()
    assert tool.returncode == 0, out[-2000:] + err + log[-2000:]
    frames = frames_by_session(out)["phoenix"]
    seqs = [f["seq"] for f in frames]
    # to the audio's end; one frame more where the new worker re-aligned the partner (its held audio arrives in a
    # burst beside the voice's): the partner's tail then lands past the voice's end, and is animated
    assert seqs[0] == 0 and seqs[-1] in (149, 150)
    assert all(b > a for a, b in zip(seqs, seqs[1:]))  # in order, none twice
    c = counters(out)
    assert c["restarts"] == 1 and c["reopened"] == 1 and c["control_timeouts"] == 0
    # the one jump allowed: the frames of the audio the killed worker took with it (PROTOCOL.md, "Reconnecting
    # after a worker restart"), at most what it had received but not yet turned into frames (its look-ahead and
    # jitter buffer) and the 0.1 s grid the new one resumes on; the audio that waited for the new worker all shows
    gaps = [b - a - 1 for a, b in zip(seqs, seqs[1:])]
    assert sum(gaps) <= MAX_LOST_FRAMES, [(a, b) for a, b in zip(seqs, seqs[1:]) if b - a > 1]
    assert any(s > 45 for s in seqs)  # the new worker answered, from where the audio stood
    assert frames[-1]["weights"][BROW] == np.float32(0.5)  # with the seed the session was opened with


def test_hostile_bodies_are_counted_and_cost_nothing_else(build):
    """Bodies no worker sends, published on the test's own PUB between good frames: each is counted under its kind,
    the client goes on, and every good frame arrives."""
    import zmq

    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    tool = subprocess.Popen([str(build / "backchannel-stream"), "--motion-out", f"tcp://127.0.0.1:{port}",
                             "--watch-s", "1.5", "--print-frames"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        stats = protocol.pack({"uptime_s": 5.0})
        deadline = time.time() + 20
        while not select.select([tool.stdout], [], [], 0.05)[0]:  # ping until its subscription is live
            assert time.time() < deadline and tool.poll() is None, tool.stderr.read()
            pub.send_multipart([b"_worker/stats", stats])
        assert tool.stdout.readline().strip() == "ready"
        good = protocol.pack({"seq": 0, "t": 0.0, "state": "speaking", "blendshapes": [0.5] * 52,
                              "head_rotation": [0.1, 0.2, 0.3], "head_translation": [0, 0, 0], "gaze": [0] * 4})
        body = protocol.unpack(good)
        hostile = {
            "not_msgpack": [b"\x91" * 100_000 + b"\xc0", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff\xa1k",
                            b"", b"\xc1", good[:-3], good + good],
            "not_a_map": [msgpack.packb([1, 2, 3]), msgpack.packb("motion")],
            "missing_field": [msgpack.packb({k: v for k, v in body.items() if k != "gaze"})],
            "wrong_type": [msgpack.packb({**body, "blendshapes": [0.5] * 51}),
                           msgpack.packb({**body, "seq": -4}), msgpack.packb({**body, "t": "soon"})],
            "unsupported_version": [msgpack.packb({**body, "v": 2})],
        }
        for seq in range(10):
            frame = msgpack.packb({**body, "seq": seq, "t": seq / 30, "future_field": {"x": [1]}})
            pub.send_multipart([b"evil/motion", hostile["not_msgpack"][seq % 7]])
            pub.send_multipart([b"good/motion", frame])
        for kind, bodies in hostile.items():
            for bad in bodies[1 if kind == "not_msgpack" else 0:]:
                pub.send_multipart([b"evil/motion", bad])
        pub.send_multipart([b"evil/motion", good, b"a third part"])
        pub.send(b"evil/motion")  # one part
        pub.send_multipart([b"evil/stats", b"\xc1"])  # not a motion topic: not read at all
        pub.send_multipart([b"good/motion", msgpack.packb({**body, "seq": 10, "t": 1 / 3})])
        out, err = tool.communicate(timeout=30)
    finally:
        if tool.poll() is None:
            tool.kill()
        pub.close()
    assert tool.returncode == 0, err
    frames = frames_by_session(out)
    assert list(frames) == ["good"] and [f["seq"] for f in frames["good"]] == list(range(11))
    assert frames["good"][0]["weights"].tolist() == [0.5] * 52
    c = counters(out)
    assert (c["not_msgpack"], c["not_a_map"], c["missing_field"], c["wrong_type"], c["unsupported_version"]) == \
        (10 + 6, 2, 1, 3, 1)
    assert c["bad_multipart"] == 2 and c["frames"] == 11



def test_a_worker_with_curve_takes_the_core_with_its_keys_and_no_other(build, tmp_path):
    """CURVE end to end: the core loads `backchannel keys` files and talks to a worker run with --curve; a client
    whose key the worker does not hold gets no reply, no frames, and says so."""
    from backchannel.bridge.cli import main

    keys, strangers = tmp_path / "keys", tmp_path / "strangers"
    assert main(["keys", str(keys), "--client", "game"]) == 0
    assert main(["keys", str(strangers), "--client", "stranger"]) == 0
    a, _ = synthetic_dialogue(1.0, seed=1)
    save_audio(tmp_path / "self.wav", a, SAMPLE_RATE)
    with spawn_worker("--curve", str(keys), "--stats-interval-s", "0.2", command=WORKER_COMMAND) as worker:
        done = run_stream(build, worker, "--wav", tmp_path / "self.wav", "--name", "secret", "--open",
                          "--server-key", keys / "server.key", "--client-key", keys / "game.key_secret")
        refused = run_stream(build, worker, "--wav", tmp_path / "self.wav", "--name", "intruder", "--open",
                             "--control-timeout-s", 0.3, "--server-key", keys / "server.key",
                             "--client-key", strangers / "stranger.key_secret")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "session name=secret frames=30 first=0 last=29 gaps=0" in done.stdout
    assert refused.returncode == 1 and "open intruder: timeout" in refused.stderr

# ---- the Unreal-facing files, checked without an engine

PLUGIN = Path(__file__).parents[1] / "engine_plugins" / "unreal" / "Backchannel"
STUBS = Path(__file__).parent / "unreal_stubs"


def generated_headers(folder: Path) -> Path:
    """UnrealHeaderTool's X.generated.h for each of our UCLASS headers, reduced to what the stand-ins need: the
    class's Super (from its declaration) and StaticClass."""
    for header in (PLUGIN / "Source").rglob("*.h"):
        if "ThirdParty" in header.parts:
            continue
        text = header.read_text()
        included = re.search(r'#include "(\w+)\.generated\.h"', text)
        if included:
            base = re.search(r"class\s+\w+_API\s+\w+\s*:\s*public\s+(\w+)", text).group(1)
            (folder / f"{included.group(1)}.generated.h").write_text(
                "#undef GENERATED_BODY\n"
                f"#define GENERATED_BODY() public: typedef {base} Super; static UClass* StaticClass(); private:\n")
    return folder


def syntax_check(source: Path, generated: Path, minor: int) -> subprocess.CompletedProcess:
    src = PLUGIN / "Source"
    return subprocess.run(
        ["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-Wno-unused-but-set-variable",
         f"-DSTUB_ENGINE_MINOR={minor}", "-I", str(STUBS), "-I", str(generated), "-I", str(src / "Backchannel/Public"),
         "-I", str(src / "Backchannel/Private"), "-I", str(src / "BackchannelCore/Public"), str(source)],
        capture_output=True, text=True, timeout=120)


UNREAL_SOURCES = sorted(p.relative_to(PLUGIN / "Source").as_posix() for p in (PLUGIN / "Source").rglob("*.cpp")
                        if "ThirdParty" not in p.parts
                        and ("BackchannelCore" not in p.parts or p.name == "BackchannelCoreModule.cpp"))


@pytest.mark.parametrize("minor", [3, 6], ids=["ue5.3", "ue5.6"])
@pytest.mark.parametrize("source", UNREAL_SOURCES)
def test_unreal_facing_files_compile_against_stand_in_headers(source, minor, tmp_path):
    """Our Unreal code (overrides, calls, types) against tests/unreal_stubs: the engine's declarations as of 5.3
    (the pointer submix listener API) and 5.6 (the shared-reference one). Not a build in Unreal."""
    if not shutil.which("g++"):
        pytest.skip("g++ is missing (scripts/setup.sh installs it)")
    done = syntax_check(PLUGIN / "Source" / source, generated_headers(tmp_path), minor)
    assert done.returncode == 0, done.stderr[-4000:]


def test_the_stand_ins_refuse_a_wrong_override(tmp_path):
    """The check above can fail: a listener whose override does not match the engine's signature does not compile."""
    wrong = tmp_path / "Wrong.cpp"
    wrong.write_text('#include "ISubmixBufferListener.h"\n'
                     "class FWrong : public ISubmixBufferListener {\n"
                     "    void OnNewSubmixBuffer(const USoundSubmix*, float*, int32, int32, int32, float) override {}\n"
                     "};\n")
    done = syntax_check(wrong, tmp_path, 6)
    assert done.returncode != 0 and "but does not override" in done.stderr


def test_the_subjects_carry_the_curve_names_a_metahuman_reads():
    """The Live Link subject's 52 ARKit curves are the worker's blendshapes in the worker's order, named as Unreal's
    Live Link Face source names them (PascalCase), then the head and eye curves of that source."""
    from backchannel.models.motion import ARKIT_NAMES

    text = (PLUGIN / "Source" / "BackchannelCore" / "Private" / "Protocol.cpp").read_text()
    arkit = re.search(r"kArkitCurveNames\[kBlendshapeCount\] = \{(.*?)\};", text, re.S).group(1)
    pose = re.search(r"kPoseCurveNames\[kPoseCurveCount\] = \{(.*?)\};", text, re.S).group(1)
    assert re.findall(r'"(\w+)"', arkit) == list(ARKIT_NAMES)
    assert re.findall(r'"(\w+)"', pose) == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                                            "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]


def build_rules_check(files: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["mcs", "-target:library", f"-out:{tmp_path / 'rules.dll'}",
                           str(STUBS / "UnrealBuildTool.cs"), *map(str, files)], capture_output=True, text=True,
                          timeout=120)


def test_the_build_rules_compile_against_stand_in_unreal_build_tool_types(tmp_path):
    """The modules' *.Build.cs (C#) against tests/unreal_stubs/UnrealBuildTool.cs: names and types our rules use. Not
    UnrealBuildTool itself."""
    if not shutil.which("mcs"):
        pytest.skip("mcs (mono-mcs) is missing (scripts/setup.sh installs it)")
    rules = sorted((PLUGIN / "Source").rglob("*.Build.cs"))
    assert [r.name for r in rules] == ["Backchannel.Build.cs", "BackchannelCore.Build.cs", "BackchannelEditor.Build.cs",
                                       "MsgpackCxx.Build.cs", "ZeroMQ.Build.cs"]
    done = build_rules_check(rules, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = tmp_path / "Wrong.Build.cs"  # and the check can fail
    wrong.write_text("using UnrealBuildTool;\npublic class Wrong : ModuleRules {\n"
                     "  public Wrong(ReadOnlyTargetRules Target) : base(Target) { bEnableExceptionz = true; }\n}\n")
    assert build_rules_check([wrong], tmp_path).returncode != 0


def test_the_plugin_descriptor_names_the_modules_there_are():
    """Backchannel.uplugin is JSON whose modules are the Source folders with rules (ThirdParty ones are external and
    not listed), for the platforms the README states, and whose plugin dependencies hold what the modules use."""
    import json

    descriptor = json.loads((PLUGIN / "Backchannel.uplugin").read_text())
    listed = {m["Name"]: m for m in descriptor["Modules"]}
    assert set(listed) == {p.parent.name for p in (PLUGIN / "Source").glob("*/*.Build.cs")}
    assert all(m["PlatformAllowList"] == ["Win64", "Linux", "Mac"] for m in listed.values())
    assert listed["BackchannelEditor"]["Type"] == "Editor" and listed["Backchannel"]["Type"] == "Runtime"
    assert {p["Name"] for p in descriptor["Plugins"] if p["Enabled"]} == {"LiveLink", "AudioCapture"}
    assert "5.3 to 5.6" in descriptor["Description"]
    external = {p.parent.name for p in (PLUGIN / "Source" / "ThirdParty").glob("*/*.Build.cs")}
    for name in listed:  # every module a rule depends on is the engine's, ours, or a ThirdParty one
        rules = (PLUGIN / "Source" / name / f"{name}.Build.cs").read_text()
        ours = set(re.findall(r'"(Backchannel\w*|ZeroMQ|MsgpackCxx)"', rules))
        assert ours <= set(listed) | external, name
