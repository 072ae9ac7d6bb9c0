"""Input that looks valid must not stall, amplify, hijack or lock out (issue: hardening): the decode bomb, style
bloat, a client loading a model, sessions held without audio, strangers driving another client's session, a
client resuming after a worker restart, session churn in the log, exposure beyond loopback, CURVE, config types."""
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.cli import main
from backchannel.bridge.client import ControlClient, MotionReceiver, spawn_worker
from backchannel.bridge.outputs import Sink
from backchannel.bridge.outputs.files import read_motion
from backchannel.bridge.protocol import ProtocolError
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import WORKER_COMMAND, EnergyGenerator

ANY_PORT = dict(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*", control="tcp://127.0.0.1:*")


class FirstFrames(Sink):
    """Every block's frame numbers, per session."""

    name = "first-frames"

    def __init__(self):
        self.seqs: dict[str, list[int]] = {}

    def send(self, session, block):
        self.seqs.setdefault(session, []).extend(range(block.first, block.first + len(block)))

    def stats(self):
        return {}


@pytest.fixture
def worker():
    loaded = []

    def factory(name=None):
        loaded.append(name)
        return EnergyGenerator()

    sink = FirstFrames()
    w = Worker(WorkerConfig(**ANY_PORT), generator_factory=factory, sinks=[sink])
    w.loaded, w.first_frames = loaded, sink
    yield w
    w.shutdown()


def chunk(session, track, t, token=None, seconds=0.1, seq=None):
    seq = round(t * 10) if seq is None else seq
    return [protocol.audio_message(session, track, seq, t, np.full(int(16000 * seconds), 0.1), 16000, token=token)]


def request(worker, kind, **fields) -> dict:
    return protocol.unpack(worker.handle_control([protocol.control_request(kind, **fields)], time.time()))


# 3. the decode bomb

@pytest.mark.parametrize("bomb, limit", [
    (msgpack.packb([None] * 1_000_000), "max_array_len"),  # a 1 MB array of nils: decoded whole before
    (msgpack.packb({f"k{i}": i for i in range(50_000)}), "max_map_len"),
    (msgpack.packb({"v": 1, "type": "audio", "session": "x" * 500_000}), "max_str_len"),
])
def test_a_container_claiming_a_million_items_is_refused_at_its_header(bomb, limit):
    with pytest.raises(ProtocolError) as e:
        protocol.parse_audio(bomb, 1 << 20)
    assert e.value.kind == "not_msgpack" and limit in str(e.value)  # before: decoded whole, then "not_a_map"


# 4. style bloat

def test_unknown_style_keys_are_dropped_not_echoed_and_a_bloated_style_is_refused(worker):
    bloated = request(worker, "open", session="bloat", style={f"knob{i}": 1.0 for i in range(40)})
    assert bloated["error"] == "bad_style" and "bloat" not in worker.sessions
    bomb = request(worker, "open", session="bloat", style={f"knob{i}": 1.0 for i in range(9000)})
    assert bomb["error"] in ("oversize", "not_msgpack") and "bloat" not in worker.sessions
    opened = request(worker, "open", session="npc", style={"smile": 0.3, "junk": 1.0, "more-junk": 2.0})
    assert opened["style"] == {"smile": 0.3} and worker.sessions["npc"].stats()["style"] == {"smile": 0.3}


# 5. a client cannot make the worker load a model; sessions opened without audio time out

def test_a_client_cannot_make_the_worker_load_a_generator(worker):
    assert worker.loaded == [None, "baseline"]  # the default and what is offered, loaded at start
    for name in ("model", "model[sampler_steps=1]", "anything"):
        assert request(worker, "open", session="x", generator=name)["error"] == "bad_generator"
        assert request(worker, "set", session="x", generator=name)["error"] in ("bad_generator", "unknown_session")
    assert worker.loaded == [None, "baseline"]  # before: "model" was loaded on request (4 s, +306 MB)


def test_sessions_opened_without_audio_time_out_and_let_newcomers_in(worker):
    now = time.time()
    for i in range(worker.config.max_sessions):
        request(worker, "open", session=f"held-{i}")
    assert request(worker, "open", session="newcomer")["error"] == "too_many_sessions"
    worker.tick(now + worker.config.idle_timeout_s + 1)
    assert worker.sessions == {}  # before: held for ever
    assert request(worker, "open", session="newcomer")["ok"]


# 6. sessions owned by their client

def test_a_stranger_cannot_inject_end_restyle_or_close_an_owned_session(worker):
    token = request(worker, "open", session="npc")["token"]
    now = time.time()
    worker.ingest(chunk("npc", "self", 0.0, token), now)
    worker.ingest(chunk("npc", "other", 0.0, token), now)
    for stranger in (None, "a" * 32):
        worker.ingest(chunk("npc", "self", 0.1, stranger), now)  # injected audio
        worker.ingest([protocol.end_message("npc", stranger)], now)  # an end that would close it
        fields = {"token": stranger} if stranger else {}
        assert request(worker, "set", session="npc", style={"smile": 1.0}, **fields)["error"] == "not_owner"
        assert request(worker, "close", session="npc", **fields)["error"] == "not_owner"
    session = worker.sessions["npc"]
    assert session.errors["not_owner"] == 8 and worker.errors["not_owner"] == 8  # audio, end, set, close: twice
    assert session.style == {} and session.stats()["tracks"]["self"]["received_s"] == pytest.approx(0.1)
    worker.ingest(chunk("npc", "self", 0.1, token), now)  # its own client goes on, its audio in place
    assert session.stats()["tracks"]["self"]["received_s"] == pytest.approx(0.2) and session.errors.get("late", 0) == 0
    assert request(worker, "set", session="npc", seed=3, token=token)["seed"] == 3
    assert request(worker, "close", session="npc", token=token)["ok"]


def test_a_session_opened_by_audio_with_a_token_belongs_to_it(worker):
    token = "t" * 24
    now = time.time()
    worker.ingest(chunk("game", "self", 0.0, token), now)
    worker.ingest(chunk("game", "self", 0.1), now)  # no token: refused
    worker.ingest([protocol.end_message("game")], now)
    assert "game" in worker.sessions and worker.sessions["game"].errors["not_owner"] == 2
    assert worker.sessions["game"].stats()["owned"] is True
    worker.ingest([protocol.end_message("game", token)], now)
    assert "game" not in worker.sessions


# 8. a client resumes after a worker restart

def test_a_session_whose_first_audio_comes_late_starts_there_with_no_silent_burst(worker):
    start = time.time()
    for i in range(10):  # a client 120 s into its session, streaming on after the worker restarted, in real time
        t, now = 120.0 + i * 0.1, start + i * 0.1
        worker.ingest(chunk("npc", "self", t), now)
        worker.ingest(chunk("npc", "other", t), now)
        worker.tick(now)
    assert "npc" in worker.sessions, dict(worker.errors)
    session = worker.sessions["npc"]
    assert session.errors == {} and session.stats()["origin_s"] == pytest.approx(119.9)
    seqs = worker.first_frames.seqs["npc"]
    assert seqs[0] == 3597 and seqs == list(range(3597, 3597 + len(seqs)))  # the sender's times, from 119.9 s
    assert 20 < len(seqs) < 40  # before: refused as bad_time; at worst, 3600 frames of silence first


def free_ports(n: int) -> list[int]:
    """Free ports below the ephemeral range: a client reconnecting to an ephemeral port nobody listens on can be
    given that very port as its own and connect to itself (Linux's TCP self-connect), and never reach the worker."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    rng, ports = np.random.default_rng(), []
    while len(ports) < n:
        port = int(rng.integers(low // 2, low))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def test_send_rides_out_a_worker_killed_and_restarted_mid_stream(tmp_path):
    """kill -9 the worker 2 s into a real-time `send --out`, start it again on the same ports a second later: the
    session resumes on the new worker, and send writes the motion to the end."""
    from backchannel.models.audio import SAMPLE_RATE, save_audio

    rng = np.random.default_rng(0)
    audio = (0.1 * np.sin(np.arange(6 * SAMPLE_RATE) * 0.05) * (rng.random(6 * SAMPLE_RATE) > 0.3)).astype(np.float32)
    save_audio(tmp_path / "me.wav", audio, SAMPLE_RATE)
    ports = free_ports(3)
    ends = [f"tcp://127.0.0.1:{p}" for p in ports]
    flags = ["--audio-in", ends[0], "--motion-out", ends[1], "--control", ends[2]]
    out = tmp_path / "motion.jsonl"
    with spawn_worker(*flags, command=WORKER_COMMAND) as first:
        sender = subprocess.Popen([sys.executable, "-m", "backchannel.bridge.cli", "send", "--to", ends[0],
                                   "--motion-out", ends[1], "--session", "npc", "--self", str(tmp_path / "me.wav"),
                                   "--realtime", "--out", str(out), "--timeout", "20"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2.0)
        os.kill(first["pid"], signal.SIGKILL)
        first["process"].wait()
        time.sleep(1.0)  # down for a second: the sender finds no worker, and waits
    with spawn_worker(*flags, command=WORKER_COMMAND) as second:
        output, _ = sender.communicate(timeout=60)
        log = Path(second["log"]).read_text()
    assert sender.returncode == 0, output + log
    motion = read_motion(out)  # before: refused as bad_time by the new worker, and nothing written
    assert motion.first == 0 and len(motion) == 180  # to the end: what the first worker had not answered, the
    # second did (the sender held its audio while no worker took it)


# 10. the log, exposure, CURVE, config types

def test_session_churn_costs_no_log_line_per_session(worker, caplog):
    with caplog.at_level(logging.INFO, logger="backchannel.worker"):
        now = time.time()
        for i in range(300):
            worker.ingest(chunk(f"s{i}", "self", 0.0), now)
            worker.ingest([protocol.end_message(f"s{i}")], now)
        worker.tick(now + 61)
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1 and "300 opened, 300 closed" in lines[0].getMessage()  # before: 600 lines


@pytest.mark.parametrize("where", ["tcp://0.0.0.0:*", "tcp://*:*"])
def test_binding_beyond_loopback_needs_curve_or_insecure(where):
    with pytest.raises(RuntimeError, match="--curve DIR .* or --insecure"):
        Worker(WorkerConfig(**{**ANY_PORT, "audio_in": where}), generator_factory=lambda name=None: EnergyGenerator())
    w = Worker(WorkerConfig(**{**ANY_PORT, "audio_in": where}, insecure=True),
               generator_factory=lambda name=None: EnergyGenerator())
    w.shutdown()


def test_curve_admits_only_the_clients_whose_keys_it_holds(tmp_path, capsys):
    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "--client", "game", "--client", "viewer"]) == 0
    secret = (keys / "server.key_secret").read_bytes()
    assert main(["keys", str(keys), "--client", "game"]) == 0  # again: nothing replaced
    assert (keys / "server.key_secret").read_bytes() == secret
    assert main(["keys", str(tmp_path / "strangers"), "--client", "stranger"]) == 0
    with spawn_worker("--curve", str(keys), command=WORKER_COMMAND) as w:
        game = (keys / "server.key", keys / "game.key_secret")
        with ControlClient(w["control"], keys=game) as control:
            assert control.call("describe")["protocol"] == 1
        for keys_held in (None, (keys / "server.key", tmp_path / "strangers" / "stranger.key_secret")):
            with ControlClient(w["control"], timeout_s=1.0, keys=keys_held) as control:
                with pytest.raises(RuntimeError, match="no answer"):
                    control.request("describe")
        viewer = MotionReceiver(w["motion_out"], keys=(keys / "server.key", keys / "viewer.key_secret"))
        stranger = MotionReceiver(w["motion_out"])
        try:
            assert viewer.wait_ready()["sessions"] == []
            assert stranger.receive(1.0) is None  # the worker's stats go out each second: none reached it
        finally:
            viewer.close(), stranger.close()


def test_a_config_value_of_the_wrong_type_is_one_line_naming_the_key(tmp_path, capsys):
    config = tmp_path / "serve.toml"
    for line, key in (('jitter_ms = "forty"', "jitter_ms must be a number"), ("max_sessions = 2.5", "max_sessions"),
                      ("generators = 3", "generators must be a list"), ('insecure = "yes"', "insecure")):
        config.write_text(line + "\n")
        assert main(["serve", "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert key in err and err.count("\n") == 1  # before: accepted, then every session failed on a TypeError


def test_send_writes_a_resumed_session_s_frames_once_and_holds_a_frame_over_a_gap():
    from backchannel.bridge.cli.send import frames_with_gaps

    def body(seq, jaw):
        return {"seq": seq, "state": "speaking", "blendshapes": [jaw] * 52, "head_rotation": [0.0] * 3,
                "head_translation": [0.0] * 3, "gaze": [0.0] * 4}

    bodies = [body(s, 0.1) for s in range(0, 5)] + [body(s, 0.2) for s in (4, 5, 8, 9)]  # 4 twice, 6 and 7 lost
    block, missing = frames_with_gaps(bodies)
    assert (block.first, len(block), missing) == (0, 10, 2)
    assert block.motion[4, 0] == pytest.approx(0.2) and block.motion[6:8, 0] == pytest.approx([0.2, 0.2])


def test_subscribers_beyond_the_cap_are_refused_and_a_place_frees_when_one_leaves():
    def first_stats(receiver, timeout_s=2.0):
        msg = receiver.receive(timeout_s)
        while msg is not None and msg.session != protocol.WORKER_TOPIC:
            msg = receiver.receive(timeout_s)
        return msg

    with spawn_worker("--max-subscribers", "2", "--stats-interval-s", "0.2", command=WORKER_COMMAND) as w:
        first, second = MotionReceiver(w["motion_out"]), MotionReceiver(w["motion_out"])
        third = None
        try:
            assert first_stats(first) and first_stats(second)
            deadline = time.time() + 5
            while first_stats(first).body["subscribers"] < 2 and time.time() < deadline:
                pass
            third = MotionReceiver(w["motion_out"])
            assert first_stats(third, 1.5) is None  # before: any number of subscribers, 1.2 MB each
            second.close()
            third.close()
            deadline = time.time() + 5
            while first_stats(first).body["subscribers"] > 1 and time.time() < deadline:
                pass
            third = MotionReceiver(w["motion_out"])
            assert first_stats(third, 3.0) is not None  # a place freed
        finally:
            first.close(), third.close() if third else None


def test_vmc_carries_the_local_session_alone_when_a_microphone_drives_the_avatar(caplog):
    from backchannel.bridge.cli.serve import vmc_session

    assert vmc_session({"vmc": "127.0.0.1:39539", "mic": "USB"}) == "local"  # before: every session's frames
    assert vmc_session({"mic": "USB", "local_session": "desk"}) == "desk"
    assert vmc_session({"mic": "USB", "vmc_session": "*"}) is None and vmc_session({"vmc_session": "npc"}) == "npc"
    with caplog.at_level(logging.WARNING):
        assert vmc_session({}) is None
    assert "any client's session drives the avatar" in caplog.text
