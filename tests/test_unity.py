"""The Unity package (engine_plugins/unity/com.backchannel.link): its engine-independent C# core compiled with
Debian's mcs and run with mono against a live worker, and its Unity-facing scripts compiled against stand-in
UnityEngine types (tests/unity_stubs) so our own code is type-checked."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from backchannel.bridge.client import MotionReceiver, spawn_worker

from .helpers import WORKER_COMMAND

PACKAGE = Path(__file__).parent.parent / "engine_plugins" / "unity" / "com.backchannel.link"
TESTS = Path(__file__).parent
FIELDS = ("seq", "t", "state", "blendshapes", "head_rotation", "head_translation", "gaze", "published")


def mcs(*args: str) -> None:
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        pytest.skip("mono-mcs and mono-runtime are not installed (scripts/setup.sh installs them)")
    result = subprocess.run(["mcs", "-nologo", "-warnaserror+", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("unity")
    mcs("-target:library", f"-out:{out / 'Backchannel.Link.Core.dll'}", *map(str, sorted((PACKAGE / "Runtime" / "Core").glob("*.cs"))))
    mcs(f"-out:{out / 'check.exe'}", f"-r:{out / 'Backchannel.Link.Core.dll'}", str(TESTS / "unity" / "CoreCheck.cs"))
    return out


def run_check(built: Path, *args: str, timeout: float = 60) -> str:
    result = subprocess.run(["mono", str(built / "check.exe"), *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def conversation(folder: Path, seconds: float) -> tuple[str, str]:
    """The avatar's voice as 48 kHz stereo, the partner's as 22.05 kHz mono: the core mixes, the worker resamples."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * 48000)) / 48000
    voice = 0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0) + rng.normal(0, 0.005, len(t))
    t2 = np.arange(int(seconds * 22050)) / 22050
    partner = 0.3 * np.sin(2 * np.pi * 210 * t2) * (np.sin(2 * np.pi * 0.5 * t2) < 0)
    own, other = folder / "self.wav", folder / "other.wav"
    soundfile.write(own, np.stack([voice, 0.5 * voice], axis=1), 48000, subtype="PCM_16")
    soundfile.write(other, partner, 22050, subtype="PCM_16")
    return str(own), str(other)


def read_frames(path: Path) -> dict[str, list[dict]]:
    frames: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        frame = json.loads(line)
        frames.setdefault(frame["session"], []).append(frame)
    return frames


def test_the_core_refuses_hostile_msgpack_and_interpolates(built):
    out = run_check(built, "selftest")
    assert "selftest ok" in out and out.count("refused ") == 10


def test_audio_sent_through_the_core_comes_back_as_the_frames_a_python_subscriber_sees(built, tmp_path):
    own, other = conversation(tmp_path, 3.0)
    with spawn_worker("--ws", "127.0.0.1:0", "--stats-interval-s", "0.2", command=WORKER_COMMAND) as w:
        receiver = MotionReceiver(w["motion_out"])
        receiver.wait_ready()
        out = run_check(built, "stream", w["ws"], str(tmp_path / "frames.jsonl"), "3", own, other)
        seen: dict[str, dict[int, dict]] = {}
        closed: set[str] = set()
        deadline = time.time() + 10
        while len(closed) < 3 and time.time() < deadline:
            msg = receiver.receive(0.5)
            if msg and msg.kind == "motion":
                seen.setdefault(msg.session, {})[msg.body["seq"]] = msg.body
            elif msg and msg.kind == "stats" and msg.body.get("closed"):
                closed.add(msg.session)
        receiver.close()
    frames = read_frames(tmp_path / "frames.jsonl")
    assert sorted(frames) == ["cs-0", "cs-1", "cs-2"] and "connections 1" in out
    for session, received in frames.items():
        assert [f["seq"] for f in received] == list(range(90)) == sorted(seen[session])
        for frame in received:
            assert {k: frame[k] for k in FIELDS} == {k: seen[session][frame["seq"]][k] for k in FIELDS}
        assert {f["state"] for f in received} >= {"speaking", "listening"}


@pytest.mark.parametrize("rig", ["arkit", "vrm0", "vrm1"])
def test_the_core_maps_blendshapes_to_a_rig_as_the_worker_does(built, tmp_path, rig):
    from backchannel.calibration.rigs import rig_map

    weights = np.random.default_rng(3).uniform(0, 1, (40, 52)).astype(np.float32)
    weights[:10] *= 0.2  # quiet faces too, where the blink and vowel rules matter most
    (tmp_path / "weights.txt").write_text("\n".join(" ".join(repr(float(w)) for w in row) for row in weights))
    targets, *rows = run_check(built, "rigmap", rig, str(tmp_path / "weights.txt")).splitlines()
    expected = rig_map(rig)
    assert targets.split() == list(expected.targets)
    got = np.array([[float(x) for x in row.split()] for row in rows])
    np.testing.assert_allclose(got, expected.apply(weights), atol=1e-5)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_the_core_rides_out_a_worker_restart(built, tmp_path):
    own, other = conversation(tmp_path, 5.0)
    audio, motion, control, ws = free_ports(4)
    flags = ("--audio-in", f"tcp://127.0.0.1:{audio}", "--motion-out", f"tcp://127.0.0.1:{motion}",
             "--control", f"tcp://127.0.0.1:{control}", "--ws", f"127.0.0.1:{ws}")
    lines: list[str] = []
    with spawn_worker(*flags, command=WORKER_COMMAND):
        check = subprocess.Popen(["mono", str(built / "check.exe"), "reconnect", f"ws://127.0.0.1:{ws}/",
                                  str(tmp_path / "frames.jsonl"), "npc", own, other],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=lambda: lines.extend(check.stdout), daemon=True)
        reader.start()
        deadline = time.time() + 20
        while "connected 1\n" not in lines and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the first worker serves 1.5 s of it, then stops
    with spawn_worker(*flags, command=WORKER_COMMAND) as second:
        try:
            check.wait(40)
        except subprocess.TimeoutExpired:
            check.kill()
            check.wait()
            reader.join(5)
            pytest.fail("the check tool never exited; its output:\n" + "".join(lines) +
                        "\nthe second worker's log:\n" + Path(second["log"]).read_text()[-5000:])
        reader.join(5)
    assert check.returncode == 0, "".join(lines)
    assert "connected 2\n" in lines, lines
    seqs = [f["seq"] for f in read_frames(tmp_path / "frames.jsonl")["npc"]]
    # the second worker takes the session up where its audio resumes, on the 0.1 s grid up to 0.2 s before (so a
    # few frames may come twice: the core's SessionBuffer keeps the first), or after a hole for audio lost with the
    # first worker; either way one break, then consecutive frames to the end of the audio
    breaks = [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1]
    assert len(breaks) == 1 and seqs[:breaks[0]] == list(range(breaks[0])), seqs
    resumed = seqs[breaks[0]:]
    assert resumed == list(range(resumed[0], resumed[0] + len(resumed))) and resumed[-1] >= 149, seqs
    assert breaks[0] > 20 and seqs[breaks[0] - 1] - 6 <= resumed[0] <= seqs[breaks[0] - 1] + 30


def test_a_request_after_an_idle_reconnection_goes_out(built):
    """Nothing is queued while the worker is away: the first connection's send loop, left waiting, once took the
    wake-up meant for the new connection's, and the request sat unsent (as a session's last `end` could)."""
    audio, motion, control, ws = free_ports(4)
    flags = ("--audio-in", f"tcp://127.0.0.1:{audio}", "--motion-out", f"tcp://127.0.0.1:{motion}",
             "--control", f"tcp://127.0.0.1:{control}", "--ws", f"127.0.0.1:{ws}")
    check = subprocess.Popen(["mono", str(built / "check.exe"), "idlereconnect", f"ws://127.0.0.1:{ws}/"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with spawn_worker(*flags, command=WORKER_COMMAND):
            assert check.stdout.readline() == "connected 1\n"
        with spawn_worker(*flags, command=WORKER_COMMAND):
            out, _ = check.communicate(timeout=60)
    finally:
        check.kill()
    assert check.returncode == 0 and "connected 2\ndescribed 1\n" in out, out


def test_dispose_sends_the_queued_end_so_the_name_is_free_again(built):
    with spawn_worker("--ws", "127.0.0.1:0", command=WORKER_COMMAND) as w:
        assert "reopened unity-npc3" in run_check(built, "endreopen", w["ws"], "unity-npc3")


def test_the_session_opener_waits_for_the_worker_and_takes_up_only_its_own_session(built):
    audio, motion, control, ws = free_ports(4)
    check = subprocess.Popen(["mono", str(built / "check.exe"), "opener", f"ws://127.0.0.1:{ws}/", "late-npc"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert check.stdout.readline() == "waiting\n"  # no worker yet: the opener retries, sending nothing
        time.sleep(0.5)
        with spawn_worker("--audio-in", f"tcp://127.0.0.1:{audio}", "--motion-out", f"tcp://127.0.0.1:{motion}",
                          "--control", f"tcp://127.0.0.1:{control}", "--ws", f"127.0.0.1:{ws}", command=WORKER_COMMAND):
            out, _ = check.communicate(timeout=40)
    finally:
        check.kill()
    assert check.returncode == 0, out
    assert re.search(r"opened late-npc after \d+ tries", out)
    assert "adopted late-npc True" in out and "refused: not_owner" in out and "orphans 0" in out


def test_the_unity_scripts_type_check_against_stand_in_unity_types(built):
    """Our MonoBehaviours, Editor menu and sample, compiled (warnings as errors) against tests/unity_stubs: what
    Unity alone can check (that the stand-ins match Unity's real API, behaviour in a scene) is not checked here."""
    stubs, out = TESTS / "unity_stubs", built
    core = f"-r:{out / 'Backchannel.Link.Core.dll'}"
    mcs("-target:library", f"-out:{out / 'UnityEngine.dll'}", str(stubs / "UnityEngine.cs"))
    mcs("-target:library", f"-out:{out / 'UnityEditor.dll'}", f"-r:{out / 'UnityEngine.dll'}", str(stubs / "UnityEditor.cs"))
    engine = f"-r:{out / 'UnityEngine.dll'}"
    mcs("-target:library", f"-out:{out / 'Backchannel.Link.dll'}", core, engine,
        *map(str, sorted((PACKAGE / "Runtime" / "Unity").glob("*.cs"))))
    link = f"-r:{out / 'Backchannel.Link.dll'}"
    mcs("-target:library", f"-out:{out / 'Backchannel.Link.Editor.dll'}", core, engine, link,
        f"-r:{out / 'UnityEditor.dll'}", *map(str, sorted((PACKAGE / "Editor").glob("*.cs"))))
    mcs("-target:library", f"-out:{out / 'QuickStart.dll'}", core, engine, link,
        *map(str, sorted((PACKAGE / "Samples~").rglob("*.cs"))))
    # the core names no UnityEngine type, as its assembly definition promises
    assert json.loads((PACKAGE / "Runtime" / "Core" / "Backchannel.Link.Core.asmdef").read_text())["noEngineReferences"]
    assert not [p for p in (PACKAGE / "Runtime" / "Core").glob("*.cs") if "UnityEngine" in p.read_text()]
    # a package from a git URL is read-only to Unity, which ignores any file or folder without its .meta (a GUID)
    assets = [p for p in PACKAGE.rglob("*") if p.suffix != ".meta" and not any(s.endswith("~") for s in p.parts)]
    guids = [re.search(r"^guid: ([0-9a-f]{32})$", Path(f"{p}.meta").read_text(), re.M).group(1) for p in assets]
    assert len(set(guids)) == len(assets) >= 20
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["name"] == "com.backchannel.link" and (PACKAGE / manifest["samples"][0]["path"]).is_dir()
