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

from .helpers import EnergyGenerator, push_socket

ANY = "tcp://127.0.0.1:*"


def test_sessions_stick_to_their_replica_and_new_ones_go_to_the_least_loaded():
    router = Router(dead_after_s=1.0, tiers=["full", "fast", "faster", "baseline"])
    for name in ("a", "b"):
        router.register(name, {"audio_in": name}, now=0.0)
    placed = [router.place(f"s{i}", 0.0) for i in range(4)]
    assert sorted(placed) == ["a", "a", "b", "b"]  # spread evenly
    assert [router.place(f"s{i}", 0.1) for i in range(4)] == placed  # and sticky
    # b steps down a tier: new sessions go to a, even though a holds as many
    router.report("b", {"sessions": ["s1", "s3"], "governor": {"tier": "fast", "load": 0.4, "pressure": []}}, 0.5)
    router.report("a", {"sessions": ["s0", "s2"], "governor": {"tier": "full", "load": 0.9, "pressure": []}}, 0.5)
    assert router.place("s4", 0.6) == "a" and router.place("s5", 0.6) == "a"
    # a under pressure now: b is preferred whatever the tiers
    router.report("a", {"sessions": ["s0", "s2", "s4", "s5"], "governor": {"tier": "full", "load": 1.2,
                                                                        "pressure": ["ticks 1.20 x budget"]}}, 0.9)
    assert router.place("s6", 1.0) == "b"


def test_a_silent_replica_s_sessions_move_and_the_rest_stay():
    router = Router(dead_after_s=1.0)
    router.register("a", {"audio_in": "a"}, 0.0)
    router.register("b", {"audio_in": "b"}, 0.0)
    on = {s: router.place(s, 0.0) for s in ("s0", "s1", "s2", "s3")}
    router.report("b", {"sessions": [s for s, r in on.items() if r == "b"]}, 0.8)  # b's worker; a's says nothing
    assert router.reap(1.5) == ["a"]
    for session, replica in on.items():
        assert router.place(session, 1.6) == "b"  # a's sessions move to b on their next message, b's stay
    assert router.moved == {s: 1 for s, r in on.items() if r == "a"}
    assert router.place("new", 1.6) == "b"
    router.register("a", {"audio_in": "a2"}, 2.0)  # a replacement (new endpoints): a new replica
    assert router.place("newer", 2.0) == "a"


def test_a_replica_whose_host_registers_it_but_whose_worker_is_silent_is_dead_until_it_reports():
    """Registrations come from the replica's host (a thread of the Ray Serve replica), whatever its worker's loop
    does: only the worker's own stats keep it alive."""
    router = Router(dead_after_s=1.0)
    router.register("a", {"audio_in": "a"}, 0.0)
    router.register("b", {"audio_in": "b"}, 0.0)
    on = {s: router.place(s, 0.0) for s in ("s0", "s1")}
    for t in (0.5, 1.0, 1.5, 2.0):
        router.register("a", {"audio_in": "a"}, t)  # a's host goes on registering; a's worker is stuck
        router.register("b", {"audio_in": "b"}, t)
        router.report("b", {"sessions": [s for s, r in on.items() if r == "b"]}, t)
        router.reap(t)
    assert not router.replicas["a"].live and router.moved == {s: 1 for s, r in on.items() if r == "a"}
    assert router.place("new", 2.0) == "b" and all(router.place(s, 2.0) == "b" for s in on)
    router.report("a", {"sessions": []}, 2.2)  # its loop came back: it may take sessions again
    assert router.replicas["a"].live and router.place("newer", 2.2) == "a"


def test_the_replicas_stats_say_which_sessions_are_placed_and_placement_is_bounded():
    router = Router(dead_after_s=10.0, settle_s=1.0, max_placed=3)
    router.register("a", {"audio_in": "a"}, 0.0)
    for s in ("s0", "s1", "s2"):
        router.place(s, 0.0)
    assert router.place("s3", 0.0) is None  # no more than max_placed
    router.report("a", {"sessions": ["s0"]}, 0.5)  # s1, s2 not open there yet: they have settle_s to appear
    assert sorted(router.owners) == ["s0", "s1", "s2"]
    router.report("a", {"sessions": ["s0", "s1"]}, 1.5)  # s2 never opened (or closed there): placed nowhere
    assert sorted(router.owners) == ["s0", "s1"] and router.place("s3", 1.5) == "a"


def test_a_restarted_router_learns_where_the_sessions_are_from_the_replicas_reports():
    router = Router()
    router.register("a", {"audio_in": "a"}, 0.0)
    router.register("b", {"audio_in": "b"}, 0.0)
    router.report("b", {"sessions": ["old1", "old2"]}, 0.1)
    assert router.place("old1", 0.1) == "b" and router.owner("old2") == "b"
    router.place("new", 0.1)  # placed on a (b holds two)
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



def assert_moved_sessions_resumed(seqs: dict, moved, total: int) -> None:
    """Every session's frames in order, none twice; a moved session's from its first to its last frame with only the
    dead replica's gap (under 2.5 s) missing, every other session's all there."""
    for s, got in seqs.items():
        assert got == sorted(set(got)), f"{s}: frames out of order or twice"
        if s in moved:
            gap = total - len(got)
            print(f"{s}: {gap} frames missing after its replica died")
            assert 0 < gap < 2.5 * FRAME_RATE, f"{s}: {gap} frames missing"  # the dead replica's, no more
            assert got[-1] == total - 1 and got[0] == 0
        else:
            assert got == list(range(total)), f"{s} lost frames on the surviving replica"

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
    assert_moved_sessions_resumed(seqs, victims, int(seconds * FRAME_RATE))
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


class Stalling(EnergyGenerator):
    """A generator that hangs in feed_many (holding its worker's loop) while `stall` is set, until `release`."""

    def __init__(self):
        super().__init__()
        self.stall, self.release = threading.Event(), threading.Event()

    def feed_many(self, items):
        if self.stall.is_set():
            self.release.wait(10)
        return super().feed_many(items)


def run_ingress(replicas: dict, router: Router, beat: bool = True):
    """An ingress in front of `replicas` on a thread, each registered again every 0.25 s as a host (Ray Serve)
    does whatever its worker does; stop with `stop_ingress`."""
    ingress = Ingress(ANY, ANY, ANY, router, stats_interval_s=0.25)
    for name, replica in replicas.items():
        ingress.register(name, replica.endpoints)
    threading.Thread(target=ingress.run, daemon=True).start()

    def heartbeat():
        while not ingress.stopping:
            for name, replica in replicas.items():
                ingress.register(name, replica.endpoints)
            time.sleep(0.25)

    if beat:
        threading.Thread(target=heartbeat, daemon=True).start()
    return ingress


def send_audio(push, sessions, seq):
    for s in sessions:
        for track in ("self", "other"):
            push.send(protocol.audio_message(s, track, seq, seq * 0.1, np.full(1600, 0.1), 16000))


def wait_for(what, timeout_s=6.0):
    deadline = time.time() + timeout_s
    while not what():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_a_replica_whose_worker_loop_is_stuck_loses_its_sessions_while_its_host_keeps_registering_it():
    stalling = Stalling()
    replicas = {"a": ReplicaWorker(WorkerConfig(generator="baseline"), generator_factory=lambda name=None: stalling),
                "b": ReplicaWorker(WorkerConfig(generator="baseline"),
                                   generator_factory=lambda name=None: EnergyGenerator())}
    ingress = run_ingress(replicas, Router(dead_after_s=1.0))
    sessions = [f"s{i}" for i in range(4)]
    push = push_socket(ingress.endpoints["audio_in"])
    try:
        with ControlClient(ingress.endpoints["control"]) as control:
            wait_for(lambda: len(control.call("stats")["replicas"]) == 2)
            send_audio(push, sessions, 0)
            wait_for(lambda: len(control.call("stats")["placement"]) == 4)
            placed = control.call("stats")["placement"]
            victims = {s for s in sessions if placed[s] == "a"}
            assert sorted(placed.values()) == ["a", "a", "b", "b"]
            stalling.stall.set()
            send_audio(push, sessions, 1)  # a's worker hangs in its generator; its host goes on registering it
            wait_for(lambda: control.call("stats")["moved"] == {s: 1 for s in victims})
            send_audio(push, sessions, 2)
            stats = control.call("stats")
        assert stats["placement"] == {s: "b" for s in sessions}  # moved on their next audio
        assert {r["id"]: r["live"] for r in stats["replicas"]} == {"a": False, "b": True}
    finally:
        stalling.release.set()
        push.close()
        ingress.stopping = True
        time.sleep(0.1)
        ingress.close()
        for replica in replicas.values():
            replica.stop()


def test_sessions_the_replica_does_not_hold_are_not_placed_there():
    """An open the replica refuses leaves the session placed nowhere; so does a session the replica closes on its
    own (idle) though no client listens to that session's stats."""
    replicas = {"a": ReplicaWorker(WorkerConfig(generator="baseline", idle_timeout_s=0.5),
                                   generator_factory=lambda name=None: EnergyGenerator())}
    ingress = run_ingress(replicas, Router(dead_after_s=2.0, settle_s=0.5))
    try:
        with ControlClient(ingress.endpoints["control"]) as control:
            wait_for(lambda: len(control.call("stats")["replicas"]) == 1)
            refused = control.request("open", session="bad", generator="nope")
            assert refused["ok"] is False and refused["error"] == "bad_generator"
            stats = control.call("stats")
            assert "bad" not in stats["sessions"] and "bad" not in stats["placement"]
            control.call("open", session="idle")
            assert "idle" in control.call("stats")["sessions"]
            wait_for(lambda: "idle" not in control.call("stats")["sessions"])  # closed there after 0.5 s idle
            assert control.call("stats")["placement"] == {}
    finally:
        ingress.stopping = True
        time.sleep(0.1)
        ingress.close()
        replicas["a"].stop()
