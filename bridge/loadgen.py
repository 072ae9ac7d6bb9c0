"""In-process capacity: many sessions' audio through one generator's batched step, tick by tick, with no sockets
and no client, so what is timed is the generator the worker runs (`bench capacity`; its socket run, which measures
the whole path with a real client, is latency.measure_capacity).

Each tick hands every session the next 1/30 s of its audio in one `feed_many` call, as the worker's tick does for
sessions streaming in real time, and packs the frames it returns as the worker would publish them
(protocol.motion_bodies). A tick that takes longer than the 1/30 s of audio it answers falls behind real time.
"""
from __future__ import annotations

import time

import numpy as np

from backchannel.bridge import protocol
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
    p50, p95, p99 = np.percentile(ticks, [50, 95, 99])
    return {"sessions": sessions, "ticks": len(ticks), "frames": frames,
            "tick_ms": {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(ticks.max()),
                        "mean": float(ticks.mean())},
            "ms_per_frame": 1000 * busy_s / max(frames, 1),  # generator time per session-frame
            "fps_sustainable": per_session_fps,
            "cpu_share": cpu_s / busy_s,  # CPU time over wall time while ticking (threads and waits show here)
            "holds_30fps": bool(p95 <= TICK_BUDGET_MS)}


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
