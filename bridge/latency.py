"""Latency and capacity measurement (`backchannel bench`): audio-in -> motion-out over real sockets, against a
worker subprocess.

Both latencies are measured at the client, on one clock (send and receive happen in this process), per frame k of
time t_k = k / 30:
  end-to-end  = wall time frame k arrived on our SUB socket - wall time the chunk holding audio time t_k was sent
                (the earlier of the two tracks). Includes the generator's look-ahead: the frame cannot exist before
                audio t_k + look-ahead does.
  processing  = wall time frame k arrived - wall time the last audio it was computed from was sent: the chunk
                ending at the body's `audio_upto` (the later of the two tracks). What the bridge, the generator and
                the sockets add once the audio is there, queueing under load included.
A real-time sender sends a chunk when its last sample would have been captured, so capture buffering (up to one
chunk) happens before "sent" and is not counted; frames of the last look-ahead of audio, which only the closing
`end` releases, are left out. The worker's own stamps (published - audio_arrived / audio_ready) are reported too.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from backchannel.bridge import protocol
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import FRAME_RATE, frame_count

FPS_HELD = 0.97 * FRAME_RATE  # a session "holds 30 fps" if it gets at least this many frames per second
LATENCY_TARGET_MS = 100.0


def synthetic_dialogue(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Two tracks taking turns (with pauses and short overlaps): voiced buzz and noise under a syllable envelope.
    Speech-like enough for timing; quality benchmarks use real recordings."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    tracks = []
    for phase in (0.0, 2.2):
        turn = ((t + phase) % 4.4) < 2.0  # 2 s turns, alternating, 0.2 s overlap/pause at the joins
        syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)) + 0.3, 0, None)
        f0 = 110 + 40 * rng.random() + 10 * np.sin(2 * np.pi * 0.5 * t)
        voiced = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / rate)) * 0.3 + rng.normal(0, 0.1, n)
        tracks.append((0.3 * turn * syllables * voiced).astype(np.float32))
    return tracks[0], tracks[1]


def pad_tracks(self_audio: np.ndarray | None, other_audio: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Both tracks at one length: the shorter padded with silence, a missing one (None) all silence."""
    n = max(len(x) for x in (self_audio, other_audio) if x is not None)
    return tuple(np.zeros(n, np.float32) if x is None else np.pad(np.asarray(x, np.float32), (0, n - len(x)))
                 for x in (self_audio, other_audio))


@dataclass
class Measured:
    end_to_end_ms: np.ndarray
    processing_ms: np.ndarray
    server_end_to_end_ms: np.ndarray  # published - audio_arrived, on the worker's clock
    server_processing_ms: np.ndarray  # published - audio_ready
    fps: dict[str, float]  # frames per second received per session over the streaming window
    frames: int
    worker_cpu_s: float
    wall_s: float
    missing: int = 0  # frames the audio makes that never arrived, over all sessions
    repeated: int = 0  # frames that arrived more than once


def percentiles(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(x.max())}


class _Collector(threading.Thread):
    """Receives every motion frame and stats message while the sender runs: from the motion socket, or from a
    WebSocket client (`receiver`) whose connection the sender also uses."""

    def __init__(self, endpoint: str, sessions: list[str], receiver=None):
        from backchannel.bridge.client import MotionReceiver

        super().__init__(daemon=True)
        self.receiver = receiver or MotionReceiver(endpoint, sessions)
        self.messages = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            msg = self.receiver.receive(0.05)
            if msg is not None:
                self.messages.append(msg)
        self.receiver.close()


def stream_sessions(endpoints: dict, sessions: list[str], self_audio: np.ndarray, other_audio: np.ndarray,
                    chunk_ms: float, lookahead_s: float, rate: int = SAMPLE_RATE, websocket: bool = False) -> Measured:
    """Stream the same two tracks into every session at once, in real time, and measure what comes back (the
    shorter track padded with silence). `websocket`: every session's audio and frames over one connection to the
    worker's WebSocket door (`endpoints["ws"]`) instead of its ZeroMQ sockets."""
    import zmq

    from backchannel.bridge.client import ControlClient, WebSocketClient, audio_chunks, send_chunks

    self_audio, other_audio = pad_tracks(self_audio, other_audio)
    ctx = zmq.Context.instance()
    if websocket:
        push = WebSocketClient(endpoints["ws"])
        push.subscribe(sessions, ["motion", "stats"])
        collector = _Collector("", sessions, push)
        control_client = lambda: WebSocketClient(endpoints["ws"])  # noqa: E731
    else:
        collector = _Collector(endpoints["motion_out"], sessions)
        collector.receiver.wait_ready()
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 2000)
        push.connect(endpoints["audio_in"])
        control_client = lambda: ControlClient(endpoints["control"], context=ctx)  # noqa: E731
    collector.start()
    chunks = [c for s in sessions for c in audio_chunks(s, {"self": self_audio, "other": other_audio}, rate, chunk_ms)]
    chunks.sort(key=lambda c: c.end)
    try:
        with control_client() as control:
            cpu_before = control.call("stats")["cpu_s"]
            start = time.time()
            sent_at = send_chunks(push, chunks, realtime=True)
            stream_end = time.time()
            cpu_after = control.call("stats")["cpu_s"]
        for s in sessions:
            push.send(protocol.end_message(s))
        closed, deadline = set(), time.time() + 30
        while len(closed) < len(sessions) and time.time() < deadline:  # the closing stats say all frames are out
            closed = {m.session for m in list(collector.messages) if m.kind == "stats" and m.body.get("closed")}
            time.sleep(0.05)
        if len(closed) < len(sessions):
            raise RuntimeError(f"{len(sessions) - len(closed)} of {len(sessions)} sessions did not close within 30 s "
                               "of their audio's end: the worker is too far behind to measure")
    finally:
        collector.stop.set()
        collector.join()
        if not websocket:
            push.close()

    sent = {(c.session, c.track, c.seq): w for c, w in zip(chunks, sent_at)}
    chunk_samples = max(1, round(rate * chunk_ms / 1000))
    chunk_s = chunk_samples / rate
    last_seq = -(-len(self_audio) // chunk_samples) - 1  # whole numbers: a float ceil was one too high on exact ends
    duration = len(self_audio) / rate

    def sent_time(session: str, seq: int, pick) -> float:
        return pick(sent[(session, track, min(seq, last_seq))] for track in protocol.TRACKS)

    e2e, proc, s_e2e, s_proc = [], [], [], []
    window = (start + 1.0, stream_end)  # skip the first second (session start-up, first jitter deadline)
    fps = {s: 0 for s in sessions}
    for m in collector.messages:
        if m.kind != "motion":
            continue
        body = m.body
        if window[0] <= m.received <= window[1]:
            fps[m.session] += 1
        if body["t"] + lookahead_s > duration - 1e-6:
            continue  # released only by `end`
        e2e.append(m.received - sent_time(m.session, int(body["t"] / chunk_s + 1e-9), min))
        proc.append(m.received - sent_time(m.session, int(np.ceil(body["audio_upto"] / chunk_s - 1e-9)) - 1, max))
        s_e2e.append(body["published"] - body["audio_arrived"])
        s_proc.append(body["published"] - body["audio_ready"])
    ms = lambda x: np.array(x) * 1000  # noqa: E731
    received = sum(1 for m in collector.messages if m.kind == "motion")
    distinct = len({(m.session, m.body["seq"]) for m in collector.messages if m.kind == "motion"})
    return Measured(ms(e2e), ms(proc), ms(s_e2e), ms(s_proc),
                    {s: n / (window[1] - window[0]) for s, n in fps.items()},
                    received, cpu_after - cpu_before, stream_end - start,
                    missing=len(sessions) * frame_count(duration) - distinct, repeated=received - distinct)


def measure_latency(self_audio: np.ndarray, other_audio: np.ndarray, generator: str | None = None,
                    chunk_ms: float = 20.0, worker_command: list[str] | None = None) -> dict:
    """Latency of one session streamed in real time through a fresh worker subprocess (what `make demo` prints)."""
    from backchannel.bridge.client import ControlClient, spawn_worker

    flags = ["--generator", generator] if generator else []
    with spawn_worker(*flags, "--stats-interval-s", "0.2", command=worker_command) as endpoints:
        with ControlClient(endpoints["control"]) as control:
            describe = control.call("describe")
        m = stream_sessions(endpoints, ["bench"], self_audio, other_audio, chunk_ms, describe["lookahead_s"])
    return {"generator": describe["generator"]["name"], "lookahead_ms": describe["lookahead_s"] * 1000,
            "chunk_ms": chunk_ms, "frames": m.frames, "end_to_end_ms": percentiles(m.end_to_end_ms),
            "processing_ms": percentiles(m.processing_ms), "server_end_to_end_ms": percentiles(m.server_end_to_end_ms),
            "server_processing_ms": percentiles(m.server_processing_ms),
            "worker_cpu_per_audio_s": m.worker_cpu_s / m.wall_s}


def measure_websocket(self_audio: np.ndarray, other_audio: np.ndarray, sessions: int = 16,
                      generator: str | None = None, chunk_ms: float = 20.0, rounds: int = 2,
                      worker_command: list[str] | None = None) -> dict:
    """One worker serving both doors: one real-time session over ZeroMQ, then one over WebSocket, `rounds` times in
    turn (so both see the same machine), then `sessions` real-time sessions over one WebSocket connection."""
    from backchannel.bridge.client import ControlClient, spawn_worker

    flags = ["--generator", generator] if generator else []
    with spawn_worker(*flags, "--ws", "127.0.0.1:0", "--stats-interval-s", "0.2", command=worker_command) as endpoints:
        with ControlClient(endpoints["control"]) as control:
            describe = control.call("describe")
        lookahead = describe["lookahead_s"]
        runs = {"zeromq": [], "websocket": []}
        for r in range(rounds):
            for door in runs:
                runs[door].append(stream_sessions(endpoints, [f"{door}-{r}"], self_audio, other_audio, chunk_ms,
                                                  lookahead, websocket=door == "websocket"))
        crowds = {door: stream_sessions(endpoints, [f"crowd-{door}-{k}" for k in range(sessions)], self_audio,
                                        other_audio, chunk_ms, lookahead, websocket=door == "websocket")
                  for door in ("zeromq", "websocket")}  # the same load over each door: one comparable to the other
    one = {door: {"end_to_end_ms": percentiles(np.concatenate([m.end_to_end_ms for m in ms])),
                  "processing_ms": percentiles(np.concatenate([m.processing_ms for m in ms])),
                  "frames_missing": sum(m.missing for m in ms), "frames_repeated": sum(m.repeated for m in ms)}
           for door, ms in runs.items()}
    return {"generator": describe["generator"]["name"], "lookahead_ms": lookahead * 1000, "rounds": rounds,
            "one_session": one,
            "added_p95_ms": {key: one["websocket"][key]["p95"] - one["zeromq"][key]["p95"]
                             for key in ("end_to_end_ms", "processing_ms")},
            "crowd": {door: _crowd(m, sessions) for door, m in crowds.items()}}


def _crowd(m: Measured, sessions: int) -> dict:
    fps = np.array(list(m.fps.values()))
    return {"sessions": sessions, "fps_min": float(fps.min()), "fps_mean": float(fps.mean()),
            "end_to_end_ms": percentiles(m.end_to_end_ms), "processing_ms": percentiles(m.processing_ms),
            "frames_missing": m.missing, "frames_repeated": m.repeated, "worker_cpu_share": m.worker_cpu_s / m.wall_s,
            "holds_30fps": bool(fps.min() >= FPS_HELD and m.missing == 0 and m.repeated == 0)}


def measure_capacity(self_audio: np.ndarray, other_audio: np.ndarray, levels: list[int], generator: str | None = None,
                     chunk_ms: float = 20.0, worker_command: list[str] | None = None, progress=None,
                     worker_flags: tuple[str, ...] = ()) -> list[dict]:
    """For each number of concurrent sessions: delivered frames/s per session and latency under that load.
    `worker_flags`: more `serve` flags (--device cuda, --precision bf16...)."""
    from backchannel.bridge.client import ControlClient, spawn_worker

    flags = (["--generator", generator] if generator else []) + list(worker_flags)
    rows = []
    with spawn_worker(*flags, "--stats-interval-s", "0.2", command=worker_command) as endpoints:
        with ControlClient(endpoints["control"]) as control:
            lookahead = control.call("describe")["lookahead_s"]
        for n in levels:
            m = stream_sessions(endpoints, [f"load{n}-{i}" for i in range(n)], self_audio, other_audio, chunk_ms,
                                lookahead)
            fps = np.array(list(m.fps.values()))
            e2e, proc = percentiles(m.end_to_end_ms), percentiles(m.processing_ms)
            row = {"sessions": n, "fps_min": float(fps.min()), "fps_mean": float(fps.mean()),
                   "end_to_end_ms": e2e, "processing_ms": proc, "frames_missing": m.missing,
                   "worker_cpu_share": m.worker_cpu_s / m.wall_s,
                   # a session that lost frames does not hold 30 fps, however many of the rest came in time
                   "holds_30fps": bool(fps.min() >= FPS_HELD and m.missing == 0),
                   "latency_ok": e2e["p95"] <= LATENCY_TARGET_MS}
            rows.append(row)
            if progress:
                progress(row)
    return rows




CPU_HOG = "while True: pass"  # one busy core, in its own process


def measure_contention(self_audio: np.ndarray, other_audio: np.ndarray, sessions: int, load_from_s: float,
                       load_to_s: float, hogs: int = 1, generator: str | None = "model", chunk_ms: float = 20.0,
                       worker_command: list[str] | None = None) -> dict:
    """Sessions streamed in real time while, from `load_from_s` to `load_to_s`, `hogs` processes each keep a core
    busy: per quarter second, each session's frames per second over the last second (the timeline's `fps`: their
    mean, `fps_min`: the slowest session's), the worker's tier and whether the load was on. Shows the governor
    holding the frame rate by stepping down, and coming back once the load is gone."""
    import subprocess
    import sys
    import threading

    from backchannel.bridge.client import ControlClient, spawn_worker

    flags = ["--generator", generator] if generator else []
    timeline, hogs_running = [], []
    with spawn_worker(*flags, "--stats-interval-s", "0.25", command=worker_command) as endpoints:
        with ControlClient(endpoints["control"]) as control:
            lookahead = control.call("describe")["lookahead_s"]
            names = [f"load-{i}" for i in range(sessions)]
            result = {}
            streamer = threading.Thread(target=lambda: result.update(m=stream_sessions(
                endpoints, names, self_audio, other_audio, chunk_ms, lookahead)))
            streamer.start()
            start, counts = time.time(), []  # (seconds, {session: its frames published so far, None: not open})
            try:
                while streamer.is_alive():
                    now = time.time() - start
                    loaded = load_from_s <= now < load_to_s
                    if loaded and not hogs_running:
                        hogs_running = [subprocess.Popen([sys.executable, "-c", CPU_HOG]) for _ in range(hogs)]
                    elif not loaded and hogs_running:
                        for hog in hogs_running:
                            hog.kill()
                            hog.wait()
                        hogs_running = []
                    stats = control.call("stats")
                    frames = {}  # each session's count with when it was read (a busy worker answers slowly)
                    for name in names:
                        reply = control.request("stats", session=name)
                        frames[name] = (time.time() - start, reply["frames"]) if reply.get("ok") else None
                    counts.append((now, frames))
                    # frames per second over the last second: a quarter second holds 7 or 8 frames by chance
                    before = next((c for c in counts if c[0] >= now - 1.0 - 1e-6), counts[0])[1]
                    fps = [(frames[s][1] - before[s][1]) / (frames[s][0] - before[s][0]) if before[s] else
                           frames[s][1] / max(frames[s][0], 1e-3)
                           for s in names if frames[s] is not None and frames[s] != before[s]]
                    # (one not open yet counts from the start; one closed at the end is left out)
                    if fps:
                        timeline.append({"t": round(now, 2), "fps": round(sum(fps) / len(fps), 1),
                                         "fps_min": round(min(fps), 1), "load": loaded,
                                         "tier": (stats.get("governor") or {}).get("tier", "-")})
                    time.sleep(0.25)
            finally:
                for hog in hogs_running:
                    hog.kill()
                    hog.wait()
                streamer.join()
            changes = (control.call("stats").get("governor") or {}).get("changes", [])
    m = result["m"]
    return {"timeline": timeline, "changes": changes, "frames_missing": m.missing,
            "end_to_end_ms": percentiles(m.end_to_end_ms), "fps_min": float(min(m.fps.values()))}


def plot_contention(result: dict, path) -> None:
    """fps per session, the tier and when the load was on, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["timeline"]
    t = [r["t"] for r in rows]
    tiers = list(dict.fromkeys(r["tier"] for r in rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(t, [r["fps"] for r in rows], lw=1.2, label="mean of the sessions")
    top.plot(t, [r["fps_min"] for r in rows], lw=0.8, label="slowest session")
    top.legend(loc="lower left", fontsize="small")
    top.axhline(FRAME_RATE, color="k", ls="--", lw=0.8)
    top.set_ylabel("frames/s per session")
    for r0, r1 in zip(rows, rows[1:]):
        if r0["load"]:
            for ax in (top, bottom):
                ax.axvspan(r0["t"], r1["t"], color="tab:red", alpha=0.12, lw=0)
    bottom.step(t, [tiers.index(r["tier"]) for r in rows], where="post")
    bottom.set_yticks(range(len(tiers)), tiers)
    bottom.set_ylabel("tier")
    bottom.set_xlabel("seconds (shaded: competing CPU load)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
