"""The WebSocket door against a live worker (`serve --ws`): the same bytes as the ZeroMQ subscriber gets, many
sessions on one connection, a client that never reads holding up nobody, bad input counted and answered, and who
may connect."""
from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from backchannel.bridge import protocol
from backchannel.bridge.client import Received, WebSocketClient, audio_chunks, spawn_worker
from backchannel.bridge.security import is_local
from backchannel.bridge.websocket import DoorConfig, WebSocketDoor
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import WORKER_COMMAND, energy_factory

RATE = 16000


def conversation(seconds: float, seed: int = 0) -> dict[str, np.ndarray]:
    """The avatar talks in the first half, the partner in the second: the states differ, so frames do."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    own, other = (rng.normal(0, 0.01, n).astype(np.float32) for _ in range(2))
    own[: n // 2] += 0.3 * np.sin(np.arange(n // 2) * 0.05)
    other[n // 2:] += 0.3 * np.sin(np.arange(n - n // 2) * 0.07)
    return {"self": own, "other": other}


@pytest.fixture(scope="module")
def worker():
    with spawn_worker("--ws", "127.0.0.1:0", "--stats-interval-s", "0.2", command=WORKER_COMMAND) as w:
        yield w


def stream(client: WebSocketClient, session: str, seconds: float, token: str, seed: int = 0) -> None:
    for chunk in audio_chunks(session, conversation(seconds, seed), RATE, token=token):
        client.send(chunk.message)
    client.send(protocol.end_message(session, token))


def collect(receive, sessions: set[str], timeout_s: float = 20.0) -> dict:
    """session -> kind -> raw bodies, until every session's closing stats came."""
    got: dict = {s: {} for s in sessions}
    open_ = set(sessions)
    deadline = time.time() + timeout_s
    while open_ and time.time() < deadline:
        msg = receive(deadline - time.time())
        if msg is None or msg.session not in got:
            continue
        got[msg.session].setdefault(msg.kind, []).append(msg.raw)
        if msg.kind == "stats" and msg.body.get("closed"):
            open_.discard(msg.session)
    assert not open_, f"no closing stats for {open_}"
    return got


def test_websocket_frames_are_the_bytes_a_zeromq_subscriber_gets(worker):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    for prefix in (b"npc/", b"_worker/stats"):
        sub.subscribe(prefix)
    sub.connect(worker["motion_out"])

    def zmq_receive(timeout_s):
        if not sub.poll(int(max(timeout_s, 0) * 1000)):
            return None
        topic, body = sub.recv_multipart()
        session, _, kind = topic.decode().partition("/")
        return Received(session, kind, protocol.unpack(body), time.time(), body)

    while (msg := zmq_receive(5)) is not None and msg.session != "_worker":  # subscribed from here on
        pass
    with WebSocketClient(worker["ws"]) as ws:
        assert ws.subscribe(["npc"], ["motion", "latent", "stats"])["subscriptions"] == [
            ["npc", "latent"], ["npc", "motion"], ["npc", "stats"]]
        token = ws.call("open", session="npc")["token"]
        stream(ws, "npc", 2.0, token)
        over_ws = collect(ws.receive, {"npc"})["npc"]
    over_zmq = collect(zmq_receive, {"npc"})["npc"]
    sub.close()
    assert len(over_ws["motion"]) == 60 and over_ws["motion"] == over_zmq["motion"]
    assert over_ws["latent"] == over_zmq["latent"] and over_ws["stats"][-1] == over_zmq["stats"][-1]
    frames = [msgpack.unpackb(body) for body in over_ws["motion"]]
    assert [f["seq"] for f in frames] == list(range(60))
    assert {f["state"] for f in frames} >= {"speaking", "listening"}


def test_one_connection_carries_many_sessions_and_ownership_holds_across_doors(worker):
    names = [f"crowd-{k}" for k in range(8)]
    with WebSocketClient(worker["ws"]) as ws, WebSocketClient(worker["ws"]) as stranger:
        ws.subscribe(names, ["motion", "stats"])
        tokens = {name: ws.call("open", session=name, seed=k)["token"] for k, name in enumerate(names)}
        chunks = [c for k, name in enumerate(names)
                  for c in audio_chunks(name, conversation(1.0, k), RATE, token=tokens[name])]
        chunks.sort(key=lambda c: c.end)  # interleaved, as live sessions would be
        # a stranger on another connection, and a ZeroMQ client, cannot touch them
        stranger.send(protocol.end_message(names[0]))
        refused = stranger.request("set", session=names[1], seed=9)
        assert refused["error"] == "not_owner" and refused["answers"] == "set"
        for c in chunks:
            ws.send(c.message)
        for name in names:
            ws.send(protocol.end_message(name, tokens[name]))
        got = collect(ws.receive, set(names))
        deadline = time.time() + 5
        while not stranger.refusals and time.time() < deadline:
            stranger.receive(0.1)
        assert stranger.refusals[0]["error"] == "not_owner" and stranger.refusals[0]["session"] == names[0]
    for name in names:
        seqs = [msgpack.unpackb(b)["seq"] for b in got[name]["motion"]]
        assert seqs == list(range(30)), name
        assert msgpack.unpackb(got[name]["stats"][-1])["errors"].get("not_owner") == (
            1 if name in names[:2] else None)


def slow_reader(url: str):
    """A client that subscribes to everything and never reads again, with a small receive window."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").rstrip("/").rsplit(":", 1)
    raw.connect((host, int(port)))
    ws = connect(url, sock=raw, compression=None).__enter__()
    ws.send(protocol.control_request("subscribe", sessions="*"))
    return ws


def test_a_client_that_never_reads_holds_up_neither_the_worker_nor_another_client():
    with spawn_worker("--ws", "127.0.0.1:0", "--ws-queue-kb", "256", command=WORKER_COMMAND) as worker:
        slow_client_loses_its_oldest(worker)


def slow_client_loses_its_oldest(worker):
    slow = slow_reader(worker["ws"])  # everything, all sessions: ~4 MB in this test, more than its queue holds
    names = [f"busy-{k}" for k in range(8)]
    try:
        with WebSocketClient(worker["ws"]) as sender, WebSocketClient(worker["ws"]) as reader:
            reader.subscribe(names, ["stats"])
            reader.subscribe(names[:1], ["motion"])
            tokens = {name: sender.call("open", session=name)["token"] for name in names}
            with ThreadPoolExecutor(1) as pool:  # the reader reads as frames come: it keeps up
                reading = pool.submit(collect, reader.receive, set(names), 60)
                for name in names:
                    stream(sender, name, 20.0, tokens[name])  # as fast as the worker takes it: 600 frames each
                got = reading.result()
            assert [msgpack.unpackb(b)["seq"] for b in got[names[0]]["motion"]] == list(range(600))
            door = sender.call("stats")["outputs"]["websocket"]
    finally:
        slow.close_socket()
    assert door["dropped"] > 0 and door["connections"] == 3  # all the slow one's


def test_bad_input_is_counted_and_answered_and_the_connection_goes_on(worker):
    with WebSocketClient(worker["ws"]) as ws:
        before = ws.call("stats")["errors"]
        ws.ws.send("not binary")
        ws.send(b"\xc1\x00")
        ws.send(msgpack.packb([1, 2]))
        ws.send(msgpack.packb({"v": 1, "type": "dance", "id": "d1"}))
        ws.send(protocol.audio_message("bad", "self", 0, 0.0, np.zeros(320), 16000)[:-3])
        ws.send(msgpack.packb({"v": 1, "type": "audio", "session": "bad", "track": "self", "seq": 0, "t": 0.0,
                               "sr": 3, "format": "s16le", "pcm": b"\0\0"}))
        assert ws.request("subscribe", sessions="*", topics=["faces"])["error"] == "bad_subscription"
        assert ws.request("subscribe", sessions=["no/slash"])["error"] == "bad_session"
        assert ws.request("open", session="x", seed=-1)["error"] == "bad_seed"
        assert ws.call("describe")["protocol"] == 1  # still served
        deadline = time.time() + 5
        while len(ws.refusals) < 6 and time.time() < deadline:
            ws.receive(0.1)
        # in any order: the door answers what it cannot read at once, the worker the rest (clients match by id)
        kinds = sorted(r["error"] for r in ws.refusals)
        assert kinds == sorted(["not_msgpack", "not_msgpack", "not_a_map", "bad_type", "not_msgpack", "bad_rate"])
        assert [r["error"] for r in ws.refusals if r.get("id") == "d1"] == ["bad_type"]
        assert [r["error"] for r in ws.refusals if r.get("session") == "bad"] == ["bad_rate"]
        after = ws.call("stats")
    # what cannot be read as a map is the door's to refuse: the worker only counts what it was handed
    counted = {k: n - before.get(k, 0) for k, n in after["errors"].items() if n != before.get(k, 0)}
    assert counted == {"bad_type": 1, "bad_rate": 1, "bad_seed": 1}
    door = after["outputs"]["websocket"]["errors"]
    assert door["not_msgpack"] >= 3 and door["not_a_map"] >= 1 and door["bad_subscription"] >= 1


def test_large_requests_get_their_own_id_and_kind_back(worker):
    with WebSocketClient(worker["ws"]) as ws:
        before = ws.call("stats")["errors"]
        # (request() returns only the reply carrying its request's id)
        names = [f"s{k}" for k in range(4096)]  # the documented limit, in one subscribe
        reply = ws.request("subscribe", sessions=names, topics=["stats"])
        assert reply["ok"] and len(reply["subscriptions"]) == 4096
        reply = ws.request("subscribe", sessions=[*names, "s4096"], topics=["stats"])
        assert (reply["error"], reply["answers"]) == ("bad_subscription", "subscribe")
        reply = ws.request("unsubscribe", sessions=names, topics=["stats"])
        assert reply["ok"] and reply["subscriptions"] == []
        # a control request with a list past the worker's limits: the worker's refusal, tagged with the id
        reply = ws.request("open", session="listy", style=list(range(300)))
        assert (reply["error"], reply["answers"]) == ("not_msgpack", "open")
        # just over max_message_bytes (1 MiB): answered by the door, never handed to the worker as audio
        ws.send(protocol.audio_message("big", "self", 0, 0.0, np.zeros(530_000), 16000))
        assert ws.call("describe")["protocol"] == 1
        deadline = time.time() + 5
        while not ws.refusals and time.time() < deadline:
            ws.receive(0.1)
        assert ws.refusals[0]["error"] == "oversize"
        after = ws.call("stats")
    assert {k: n - before.get(k, 0) for k, n in after["errors"].items() if n != before.get(k, 0)} == {"not_msgpack": 1}


def test_the_door_subscribes_in_process_only_to_what_its_connections_want(worker):
    def topics():
        with WebSocketClient(worker["ws"]) as probe:
            return probe.call("stats")["outputs"]["websocket"]["topics"]

    base = topics()
    with WebSocketClient(worker["ws"]) as a, WebSocketClient(worker["ws"]) as b:
        a.subscribe(["x", "y"], ["motion"])
        b.subscribe(["x"], ["motion", "stats"])
        assert a.call("stats")["outputs"]["websocket"]["topics"] == base + 3  # x/motion, y/motion, x/stats
        a.subscribe("*", ["stats"])
        assert a.call("stats")["outputs"]["websocket"]["topics"] == base + 4  # and everything
    assert topics() == base


def test_the_token_and_the_origin_decide_who_connects():
    token = "a-shared-secret-0123456789"
    with spawn_worker("--ws", "127.0.0.1:0", "--ws-token", token, command=WORKER_COMMAND) as w:
        with pytest.raises(InvalidStatus, match="401"), connect(w["ws"]):
            pass
        with WebSocketClient(w["ws"], token=token) as ws:
            assert ws.call("describe")["protocol"] == 1
        for scheme in ("Bearer", "bearer", "BEARER"):  # auth schemes are case-insensitive
            with connect(w["ws"], additional_headers={"Authorization": f"{scheme} {token}"}) as ws:
                ws.send(protocol.control_request("describe"))
                assert msgpack.unpackb(ws.recv(timeout=5))["ok"]
        # the viewer page itself holds no secret; nothing else is served
        assert b"<html" in urllib.request.urlopen("http" + w["ws"][2:]).read().lower()
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen("http" + w["ws"][2:] + "etc/passwd")
    with spawn_worker("--ws", "127.0.0.1:0", command=WORKER_COMMAND) as w:
        port = w["ws"].rstrip("/").rsplit(":", 1)[1]
        with pytest.raises(InvalidStatus, match="403"):  # another site's page, in the user's browser
            with connect(w["ws"], origin="https://evil.example"):
                pass
        with connect(w["ws"], origin=f"http://127.0.0.1:{port}") as ws:  # the viewer's own page
            ws.send(protocol.control_request("describe"))
            assert msgpack.unpackb(ws.recv(timeout=5))["ok"]
        # DNS rebinding: a name the attacker controls, resolved to 127.0.0.1, with the page's own origin
        for host in (f"127.0.0.1.evil.com:{port}", f"127.attacker.net:{port}", f"localhost.evil.com:{port}"):
            assert handshake(w["ws"], host, f"http://{host}").startswith(b"HTTP/1.1 403"), host
        assert handshake(w["ws"], f"localhost:{port}", f"http://localhost:{port}").startswith(b"HTTP/1.1 101")
        assert handshake(w["ws"], f"127.0.0.2:{port}", f"http://127.0.0.2:{port}").startswith(b"HTTP/1.1 101")


def handshake(url: str, host: str, origin: str) -> bytes:
    """A WebSocket upgrade with the Host and Origin a browser would send after resolving `host`; the status line."""
    address, port = url.removeprefix("ws://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=5) as raw:
        raw.sendall((f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     f"Origin: {origin}\r\n\r\n").encode())
        return raw.recv(200)


def test_the_protocol_documents_websocket_example_runs_as_written(worker):
    text = (Path(__file__).parent.parent / "engine_plugins" / "PROTOCOL.md").read_text()
    section = text[text.index("## WebSocket"):]
    code = section[section.index("```python\n") + 10:]
    code = code[:code.index("```")]
    assert code.count("ws://127.0.0.1:8765/") == 1
    scope: dict = {}
    run = threading.Thread(target=exec, args=(compile(code.replace("ws://127.0.0.1:8765/", worker["ws"]),
                                                      "PROTOCOL.md", "exec"), scope), daemon=True)
    run.start()
    run.join(20)  # well before the worker's idle timeout (30 s): an example that waits for that one never ends here
    assert not run.is_alive(), "the example waits for a frame that does not come"
    assert scope["topic"] == "npc-7/motion" and scope["frame"]["seq"] == 0


def test_connections_are_counted_not_logged(caplog):
    worker = Worker(WorkerConfig(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*",
                                 control="tcp://127.0.0.1:*"), energy_factory)
    door = WebSocketDoor(worker, DoorConfig("127.0.0.1", 0))
    try:
        door.start()
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                with connect(door.url):
                    pass
            deadline = time.time() + 5
            while door.stats()["closed"] < 3 and time.time() < deadline:
                time.sleep(0.02)
        assert door.stats()["accepted"] == door.stats()["closed"] == 3
        assert not [r for r in caplog.records if r.name.startswith("websockets") and r.levelno >= logging.INFO]
    finally:
        door.close()
        worker.close()


def test_a_door_beyond_loopback_needs_insecure():
    worker = Worker(WorkerConfig(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*",
                                 control="tcp://127.0.0.1:*"), energy_factory)
    try:
        with pytest.raises(RuntimeError, match="--insecure"):
            WebSocketDoor(worker, DoorConfig("0.0.0.0", 0))
        for name in ("127.0.0.1.example.com", "127.x.example.com", "localhost.example.com"):  # resolve anywhere
            assert not is_local(f"tcp://{name}:5555")
            with pytest.raises(RuntimeError, match="--insecure"):
                WebSocketDoor(worker, DoorConfig(name, 0))
        assert is_local("tcp://127.3.4.5:5555") and is_local("tcp://[::1]:5555") and is_local("tcp://localhost:1")
        door = WebSocketDoor(worker, DoorConfig("0.0.0.0", 0, insecure=True))
        door.start()
        door.close()
    finally:
        worker.close()
