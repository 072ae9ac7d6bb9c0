"""Scale-out: sessions placed on replicas behind one ingress that keeps protocol v1 (bridge/scaleout/).

The router's rules on their own; then real workers on loopback behind a real ingress, streamed in real time by a
client that sees only the ingress, one replica killed mid-stream; then the same on a one-machine Ray cluster with
two Ray Serve replicas (tests/test_scale_ray.py)."""
import re
import threading
import time

import numpy as np

from backchannel.bridge import protocol
from backchannel.bridge.client import ControlClient, MotionReceiver, audio_chunks
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.bridge.scaleout.ingress import Ingress
from backchannel.bridge.scaleout.replica import ReplicaWorker
from backchannel.bridge.scaleout.router import Router
from backchannel.bridge.worker import WorkerConfig
from backchannel.models.motion import FRAME_RATE

from .helpers import push_socket

ANY = "tcp://127.0.0.1:*"


def test_sessions_stick_to_their_replica_and_new_ones_go_to_the_least_loaded():
    router = Router(dead_after_s=1.0, tiers=["full", "fast", "faster", "baseline"])
    for name in ("a", "b"):
        router.register(name, {"audio_in": name}, now=0.0)
    placed = [router.place(f"s{i}") for i in range(4)]
    assert sorted(placed) == ["a", "a", "b", "b"]  # spread evenly
    assert [router.place(f"s{i}") for i in range(4)] == placed  # and sticky
    # b steps down a tier: new sessions go to a, even though a holds as many
    router.report("b", {"sessions": ["s1", "s3"], "governor": {"tier": "fast", "load": 0.4, "pressure": []}}, 0.5)
    router.report("a", {"sessions": ["s0", "s2"], "governor": {"tier": "full", "load": 0.9, "pressure": []}}, 0.5)
    assert router.place("s4") == "a" and router.place("s5") == "a"
    # a under pressure now: b is preferred whatever the tiers
    router.report("a", {"sessions": ["s0", "s2", "s4", "s5"], "governor": {"tier": "full", "load": 1.2,
                                                                        "pressure": ["ticks 1.20 x budget"]}}, 0.9)
    assert router.place("s6") == "b"


def test_a_silent_replica_s_sessions_move_and_the_rest_stay():
    router = Router(dead_after_s=1.0)
    router.register("a", {"audio_in": "a"}, 0.0)
    router.register("b", {"audio_in": "b"}, 0.0)
    on = {s: router.place(s) for s in ("s0", "s1", "s2", "s3")}
    router.register("b", {"audio_in": "b"}, 0.8)  # b's heartbeat; a says nothing
    assert router.reap(1.5) == ["a"]
    for session, replica in on.items():
        assert router.place(session) == "b"  # a's sessions move to b on their next message, b's stay
    assert router.moved == {s: 1 for s, r in on.items() if r == "a"}
    assert router.place("new") == "b"
    router.register("a", {"audio_in": "a2"}, 2.0)  # a replacement (new endpoints): a new replica
    assert router.place("newer") == "a"


def test_a_restarted_router_learns_where_the_sessions_are_from_the_replicas_reports():
    router = Router()
    router.register("a", {"audio_in": "a"}, 0.0)
    router.register("b", {"audio_in": "b"}, 0.0)
    router.report("b", {"sessions": ["old1", "old2"]}, 0.1)
    assert router.place("old1") == "b" and router.owner("old2") == "b"
    router.place("new")  # placed on a (b holds two)
    router.report("b", {"sessions": ["old1", "old2", "new"]}, 0.2)  # a stale report cannot take a placed session
    assert router.owner("new") == "a"


def top_text(control) -> str:
    from rich.console import Console

    from backchannel.bridge.cli.top import render, snapshot

    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(render(*snapshot(control), None, 0))
    return console.export_text()


def stream_realtime(endpoint, sessions, tracks, seconds, tokens, at=None):
    """Every session's two tracks sent in 20 ms chunks as they would be captured, through one PUSH socket, then
    `end`; `at`: (seconds, action) run once when the stream reaches that time."""
    chunks = sorted((c for s in sessions for c in audio_chunks(s, tracks[s], 16000, 20.0, token=tokens[s])),
                    key=lambda c: c.end)
    push = push_socket(endpoint)
    try:
        start = time.time()
        for chunk in chunks:
            if chunk.end > seconds:
                break
            delay = start + chunk.end - time.time()
            if delay > 0:
                time.sleep(delay)
            if at and chunk.end >= at[0]:
                at[1]()
                at = None
            push.send(chunk.message)
        for s in sessions:
            push.send(protocol.end_message(s, tokens[s]))
    finally:
        push.close()


def collect_until_closed(receiver, sessions, timeout_s):
    seqs = {s: [] for s in sessions}
    closed = set()
    deadline = time.time() + timeout_s
    while closed != set(sessions) and time.time() < deadline:
        msg = receiver.receive(0.2)
        if msg is None or msg.session not in seqs:
            continue
        if msg.kind == "motion":
            seqs[msg.session].append(msg.body["seq"])
        elif msg.kind == "stats" and msg.body.get("closed"):
            closed.add(msg.session)
    return seqs, closed


def test_a_replica_killed_mid_stream_its_sessions_resume_on_the_other_and_the_rest_lose_nothing():
    """Two real workers behind the ingress, four sessions streamed in real time for 4 s by a client that only
    knows the ingress. At 1.5 s one replica's worker dies (its sockets close, nothing more is published): its
    sessions go on on the other replica with a gap in their frames, while the other replica's sessions get every
    frame, in order."""
    replicas = {name: ReplicaWorker(WorkerConfig(generator="baseline")) for name in ("a", "b")}
    ingress = Ingress(ANY, ANY, ANY, Router(dead_after_s=1.0), stats_interval_s=0.25)
    loop = threading.Thread(target=ingress.run, daemon=True)
    for name, replica in replicas.items():
        ingress.register(name, replica.endpoints)
    loop.start()
    beating = {"a": True, "b": True}

    def heartbeat():  # what the hosting layer (Ray Serve) does for a live replica
        while not ingress.stopping:
            for name, alive in beating.items():
                if alive:
                    ingress.register(name, replicas[name].endpoints)
            time.sleep(0.25)

    threading.Thread(target=heartbeat, daemon=True).start()
    sessions = [f"s{i}" for i in range(4)]
    seconds = 4.0
    tracks = {s: dict(zip(("self", "other"), synthetic_dialogue(seconds, seed=i))) for i, s in enumerate(sessions)}
    receiver = MotionReceiver(ingress.endpoints["motion_out"])
    try:
        receiver.wait_ready()
        with ControlClient(ingress.endpoints["control"]) as control:
            tokens = {s: control.call("open", session=s)["token"] for s in sessions}
            placed = control.call("stats")["placement"]
            shown = top_text(control)
        assert sorted(placed.values()) == ["a", "a", "b", "b"]
        assert "backchannel ingress, 2 replicas: 4 sessions" in shown and "replica a: 2 sessions" in shown
        assert all(re.search(rf"{s}\s+│ {placed[s]}\s", shown) for s in sessions)  # `top` says where each runs
        victims = [s for s in sessions if placed[s] == "a"]

        def kill():
            beating["a"] = False
            replicas["a"].stop(graceful=False)

        stream_realtime(ingress.endpoints["audio_in"], sessions, tracks, seconds, tokens, at=(1.5, kill))
        seqs, closed = collect_until_closed(receiver, sessions, timeout_s=10)
        with ControlClient(ingress.endpoints["control"]) as control:
            stats = control.call("stats")
    finally:
        receiver.close()
        ingress.stopping = True
        loop.join(5)
        ingress.close()
        replicas["b"].stop()
    assert closed == set(sessions)
    total = int(seconds * FRAME_RATE)
    for s in sessions:
        got = seqs[s]
        assert got == sorted(set(got)), f"{s}: frames out of order or twice"
        if s in victims:
            gap = total - len(got)
            print(f"{s}: {gap} frames missing after its replica died")
            assert 0 < gap < 2.5 * FRAME_RATE, f"{s}: {gap} frames missing"  # the dead replica's, no more
            assert got[-1] == total - 1 and got[0] == 0
        else:
            assert got == list(range(total)), f"{s} lost frames on the surviving replica"
    assert stats["moved"] == {s: 1 for s in victims}
    assert [r["id"] for r in stats["replicas"]] == ["b"]


def test_a_replica_slow_to_answer_control_holds_up_nothing_else():
    """A control request goes on to a replica that never answers: the client gets `no_replica` after the
    ingress's control timeout, and meanwhile the ingress's loop goes on (its own stats keep coming)."""
    import zmq

    ctx = zmq.Context()
    mute = {kind: ctx.socket(kind) for kind in (zmq.PULL, zmq.PUB, zmq.REP)}  # a replica that never replies
    for sock in mute.values():
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ANY)
    endpoints = {name: mute[kind].getsockopt(zmq.LAST_ENDPOINT).decode()
                 for name, kind in (("audio_in", zmq.PULL), ("motion_out", zmq.PUB), ("control", zmq.REP))}
    ingress = Ingress(ANY, ANY, ANY, Router(dead_after_s=30.0), stats_interval_s=0.1, control_timeout_s=1.0)
    ingress.register("mute", endpoints)
    loop = threading.Thread(target=ingress.run, daemon=True)
    loop.start()
    receiver = MotionReceiver(ingress.endpoints["motion_out"])
    try:
        receiver.wait_ready()
        answer = {}

        def ask():
            with ControlClient(ingress.endpoints["control"], timeout_s=10) as control:
                answer.update(control.request("open", session="x"))

        asking = threading.Thread(target=ask)
        started = time.time()
        asking.start()
        stats_meanwhile = 0
        while asking.is_alive():
            msg = receiver.receive(0.05)
            stats_meanwhile += msg is not None and msg.session == protocol.WORKER_TOPIC
        asking.join()
        waited = time.time() - started
    finally:
        receiver.close()
        ingress.stopping = True
        loop.join(5)
        ingress.close()
        ctx.destroy(0)
    assert answer["ok"] is False and answer["error"] == "no_replica" and waited >= 0.9  # after its timeout
    assert stats_meanwhile >= 5  # the loop kept publishing every 0.1 s while the request waited
