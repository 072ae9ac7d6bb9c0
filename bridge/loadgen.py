"""Load generators that time one part alone. In-process capacity: many sessions' audio through one generator's
batched step, tick by tick, with no sockets and no client, so what is timed is the generator the worker runs
(`bench capacity`; its socket run, which measures the whole path with a real client, is
latency.measure_capacity). The ingress: real-time traffic of many sessions through the scale-out ingress between
stand-ins for a client and a replica (`bench ingress`).

Each tick hands every session the next 1/30 s of its audio in one `feed_many` call, as the worker's tick does for
sessions streaming in real time, and packs the frames it returns as the worker would publish them
(protocol.motion_bodies). A tick that takes longer than the 1/30 s of audio it answers falls behind real time.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from backchannel.bridge import protocol
from backchannel.bridge.latency import percentiles
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.generator import make_generator
from backchannel.models.motion import FRAME_RATE

TICK_BUDGET_MS = 1000.0 / FRAME_RATE  # a tick answers 1/30 s of audio
WARM_UP_S = 1.0  # ticks in the first second are left out (first calls, caches, the streams' pre-roll)
SESSION_SHIFT_S = 0.77  # each session's audio starts this much further into the dialogue, so batches differ


def measure_ticks(generator, self_audio: np.ndarray, other_audio: np.ndarray, sessions: int) -> dict:
    """`sessions` streams of `generator` fed the tracks (each session from its own offset, wrapping round) one
    tick at a time; per-tick wall time, CPU share, frames and the rates that follow."""
    if sessions < 1:
        raise ValueError("sessions must be at least 1")
    length = len(self_audio)
    if length < SAMPLE_RATE * (WARM_UP_S + 0.5):
        raise ValueError(f"{length / SAMPLE_RATE:.2f} s of audio: give at least {WARM_UP_S + 0.5:g} s")
    twice = [np.concatenate([x, x]).astype(np.float32) for x in (self_audio, other_audio)]
    offsets = [int(i * SESSION_SHIFT_S * SAMPLE_RATE) % length for i in range(sessions)]
    streams = [generator.open_stream(seed=i) for i in range(sessions)]
    edges = [round(k * SAMPLE_RATE / FRAME_RATE) for k in range(int(length * FRAME_RATE / SAMPLE_RATE) + 1)]
    warm_ticks = int(WARM_UP_S * FRAME_RATE)
    tick_ms, frames, cpu_s = [], 0, 0.0
    for k, (start, end) in enumerate(zip(edges[:-1], edges[1:])):
        items = [(stream, twice[0][o + start:o + end], twice[1][o + start:o + end])
                 for stream, o in zip(streams, offsets)]
        wall, cpu = time.perf_counter(), time.process_time()
        blocks = generator.feed_many(items)
        now = time.time()
        for block in blocks:  # what publishing costs besides the socket
            if len(block):
                protocol.motion_bodies(block, now, [now] * len(block), now, now)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if k >= warm_ticks:
            tick_ms.append(1000 * wall)
            frames += sum(len(block) for block in blocks)
            cpu_s += cpu
    ticks = np.array(tick_ms)
    busy_s = ticks.sum() / 1000
    per_session_fps = frames / sessions / busy_s  # frames a session gets per second of the generator's time
    tick = {**percentiles(ticks), "mean": float(ticks.mean())}
    return {"sessions": sessions, "ticks": len(ticks), "frames": frames, "tick_ms": tick,
            "ms_per_frame": 1000 * busy_s / max(frames, 1),  # generator time per session-frame
            "fps_sustainable": per_session_fps,
            "cpu_share": cpu_s / busy_s,  # CPU time over wall time while ticking (threads and waits show here)
            "holds_30fps": bool(tick["p95"] <= TICK_BUDGET_MS)}


def largest_holding(rows: list[dict]) -> tuple[int, float | None]:
    """The most sessions tried that held 30 fps, and an estimate of the most that would: between the largest
    level that held and the next larger one that did not, where their ticks' p95 crosses the budget (linear in
    the session count, as a tick's cost nearly is); None without such a pair."""
    rows = sorted(rows, key=lambda r: r["sessions"])
    held = [r for r in rows if r["holds_30fps"]]
    if not held:
        return 0, None
    below = held[-1]
    above = next((r for r in rows if r["sessions"] > below["sessions"] and not r["holds_30fps"]), None)
    if above is None:
        return below["sessions"], None
    p1, p2 = below["tick_ms"]["p95"], above["tick_ms"]["p95"]
    share = (TICK_BUDGET_MS - p1) / (p2 - p1) if p2 > p1 else 0.0
    return below["sessions"], below["sessions"] + share * (above["sessions"] - below["sessions"])


def measure_in_process(self_audio: np.ndarray, other_audio: np.ndarray, levels: list[int], generator: str = "model",
                       progress=None, **options) -> list[dict]:
    """measure_ticks at each session count with one generator (`options` go to make_generator: device,
    precision, compile). A level holds 30 fps when its ticks' p95 is within the tick's budget (1/30 s)."""
    gen = make_generator(generator, **options)
    rows = []
    for n in levels:
        row = {**measure_ticks(gen, self_audio, other_audio, n), "generator": generator,
               "describe": gen.describe()}
        rows.append(row)
        if progress:
            progress(row)
    return rows


# --- the scale-out ingress under load ---------------------------------------------------------------------------------

def _ingress_process(replica: dict, queue, seconds: float) -> None:
    """Child process: an ingress in front of the stand-in replica, stepped for `seconds` once told to start; its
    CPU time, wall time and counters go back on `queue`."""
    from backchannel.bridge.scaleout.ingress import Ingress
    from backchannel.bridge.scaleout.router import Router

    any_port = "tcp://127.0.0.1:*"
    ingress = Ingress(any_port, any_port, any_port, Router(dead_after_s=1e9))  # the stand-in never reports
    ingress.register("replica", replica)
    queue.put(ingress.endpoints)
    queue.get()  # the client is connected
    cpu, wall = time.process_time(), time.time()
    while time.time() - wall < seconds:
        ingress.step()
    queue.put((time.process_time() - cpu, time.time() - wall, dict(ingress.forwarded), dict(ingress.errors)))
    ingress.close()


def measure_ingress(sessions: int, seconds: float = 5.0) -> dict:
    """The ingress (bridge/scaleout/ingress.py) in a process of its own, forwarding `sessions` sessions' real-time
    traffic: 100 audio messages a second each in (both tracks in 20 ms chunks, to a stand-in replica's PULL), 30
    motion messages a second each out (from the stand-in's PUB to a subscriber of everything). Its CPU share and
    time per message, and whether every message came through."""
    import multiprocessing

    import zmq

    ctx = zmq.Context()
    sink, pub, rep = (ctx.socket(kind) for kind in (zmq.PULL, zmq.PUB, zmq.REP))
    for sock in (sink, pub, rep):
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*")
    replica = {name: sock.getsockopt(zmq.LAST_ENDPOINT).decode()
               for name, sock in (("audio_in", sink), ("motion_out", pub), ("control", rep))}
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding ZeroMQ sockets
    queue = spawn.Queue()
    child = spawn.Process(target=_ingress_process, args=(replica, queue, seconds + 1.5), daemon=True)
    child.start()
    try:
        endpoints = queue.get(timeout=60)
        push, sub = ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
        for sock in (push, sub):
            sock.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        push.connect(endpoints["audio_in"])
        sub.connect(endpoints["motion_out"])
        got = {"audio": 0, "motion": 0}
        stop = threading.Event()

        def receive():  # the replica's and the subscriber's ends
            poller = zmq.Poller()
            poller.register(sink, zmq.POLLIN)
            poller.register(sub, zmq.POLLIN)
            while not stop.is_set():
                events = dict(poller.poll(50))
                while sink in events and sink.poll(0):
                    sink.recv()
                    got["audio"] += 1
                while sub in events and sub.poll(0):
                    topic, _ = sub.recv_multipart()
                    got["motion"] += not topic.startswith(protocol.WORKER_TOPIC.encode())

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        time.sleep(0.5)  # the subscription reaches the ingress
        queue.put("start")
        silence = np.zeros(320, np.float32)
        audio = [protocol.audio_message(f"s{i}", track, 0, 2.0, silence, SAMPLE_RATE)
                 for i in range(sessions) for track in protocol.TRACKS]
        frame = protocol.pack({"v": protocol.VERSION, "seq": 0, "t": 0.0, "state": "idle", "blendshapes": [0.0] * 52})
        topics = [protocol.topic(f"s{i}", "motion") for i in range(sessions)]
        sent = {"audio": 0, "motion": 0}
        for message in audio[::2]:  # every session placed on the replica before its frames come back
            push.send(message)
        sent["audio"] += sessions
        time.sleep(0.3)
        start, tick = time.time(), 0
        while time.time() - start < seconds:
            for message in audio:  # 20 ms of both tracks, every session
                push.send(message)
            sent["audio"] += len(audio)
            if tick % 5 in (0, 2, 4):  # three frames every 100 ms: 30 fps
                for topic in topics:
                    pub.send_multipart([topic, frame])
                sent["motion"] += len(topics)
            tick += 1
            time.sleep(max(0.0, start + tick * 0.02 - time.time()))
        cpu_s, wall_s, forwarded, errors = queue.get(timeout=60)
        time.sleep(0.3)
        stop.set()
        receiver.join(2)
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
        ctx.destroy(0)
    messages = forwarded.get("audio", 0) + forwarded.get("motion", 0)
    busy_s = seconds + 0.3  # the traffic's span within the ingress's wall time (the rest it idles)
    return {"sessions": sessions, "seconds": seconds, "sent": sent, "received": got, "errors": errors,
            "cpu_share": cpu_s / busy_s, "us_per_message": 1e6 * cpu_s / max(messages, 1),
            "lossless": got == sent and not errors}
