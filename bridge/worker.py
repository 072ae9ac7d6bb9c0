"""The session worker: one process, many avatars.

    PULL (audio, protocol v1) --> per-session Aligner (jitter buffer, 16 kHz, two tracks aligned)
                                   --> Generator.feed_many (all sessions with new audio, once per tick)
                                   --> PUB "<session>/motion" (+ "/latent"), Live Link, VMC
    REP (control): describe / open / close / set / stats;  PUB "<session>/stats" and "_worker/stats" each second.
    ROUTER "door" (in-process): the WebSocket door's audio and control (bridge/websocket.py), through the same
    ingest and handle_control, answered; it reads the PUB socket through an in-process endpoint.

Everything runs on one thread, so no locks: a tick drains the sockets, releases audio per session, feeds the
generators and publishes. Bad input is counted per kind, logged once per kind and never stops the loop.
"""
from __future__ import annotations

import itertools
import logging
import math
import secrets
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace

import numpy as np
import zmq

from backchannel.bridge import protocol
from backchannel.bridge.governor import Governor, Telemetry, load_tiers, nvml_id
from backchannel.bridge.jitter import Aligner
from backchannel.bridge.protocol import DOOR_CONTROL, ProtocolError
from backchannel.bridge.security import MOTION_DOMAIN, Gatekeeper, is_local
from backchannel.models.audio import MAX_RATE, MIN_RATE, PCM_FORMATS, SAMPLE_RATE
from backchannel.models.generator import Generator, MotionStream, Style, make_generator, parse_spec, session_seed
from backchannel.models.motion import (
    ARKIT_NAMES,
    FRAME_RATE,
    GAZE_NAMES,
    HEAD_ROTATION_NAMES,
    HEAD_TRANSLATION_NAMES,
    STATES,
    MotionBlock,
)

log = logging.getLogger("backchannel.worker")
_LOCAL_AUDIO_NUMBERS = itertools.count()  # one in-process endpoint name per worker in this process

SWITCH_GRID = SAMPLE_RATE // 10  # 1600 samples = 3 frames: the finest grid where frames and samples both align
WARM_UP = SAMPLE_RATE  # audio a stream opened by `set` is fed before its frames count (its VAD, levels, model state)
# A session whose first audio starts later than this (a client resuming after a worker restart, or a stream that
# began before the worker did) starts its timeline there, less a little for the other track, on the 0.1 s grid:
# no burst of silent frames for the time before, and its frames keep the sender's times.
RESUME_AFTER_S, RESUME_MARGIN_S = 1.0, 0.1
SESSION_LOG_INTERVAL_S = 60.0  # sessions opened and closed are logged as one line per interval, not one each


@dataclass
class WorkerConfig:
    audio_in: str = "tcp://127.0.0.1:5555"
    motion_out: str = "tcp://127.0.0.1:5556"
    control: str = "tcp://127.0.0.1:5557"
    generator: str | None = None  # default for sessions that do not choose one
    # what sessions may choose besides the default, loaded at start (a client must not make the worker load a
    # model: that blocks the loop for seconds and holds hundreds of MB); None: the default and baseline
    generators: tuple[str, ...] | None = None
    seed: int = 0  # the base of sessions' seeds: one not given its own gets this mixed with its name
    style: dict = field(default_factory=dict)
    jitter_ms: float = 40.0
    idle_timeout_s: float = 30.0
    max_ahead_s: float = 30.0
    max_buffer_s: float = 10.0
    max_message_bytes: int = 1 << 20
    max_sessions: int = 1024
    max_subscribers: int = 64  # connected to the motion socket at once; more are refused at the handshake
    pub_hwm: int = 10000
    stats_interval_s: float = 1.0
    # the governor (bridge/governor.py) moves sessions on the model between tiers as the machine allows: on when
    # the default generator is the model; `tier` pins one, `tiers` is another table than calibration/tiers.toml
    tier: str | None = None
    tiers: str | None = None
    # where and how the model runs (models/infp/engines.py TorchEngine), for every spec of it the worker loads
    device: str = "cpu"  # cpu, cuda, cuda:N
    precision: str = "fp32"  # fp32, bf16, fp16 (the frame step's)
    compile: str = "off"  # torch.compile's mode for the frame step, CUDA only ("reduce-overhead": CUDA graphs)
    curve: str | None = None  # a key folder (`backchannel keys`): CURVE on every socket, only its clients admitted
    insecure: bool = False  # bind beyond loopback without CURVE (anyone who reaches the ports can use the worker)


class FrameClock:
    """When the audio at each frame's own time first reached the worker (the motion body's `audio_arrived`)."""

    def __init__(self):
        self.arrived: dict[int, float] = {}

    def audio_arrived(self, start_s: float, end_s: float, now: float) -> None:
        for k in range(math.ceil(start_s * FRAME_RATE - 1e-6), math.ceil(end_s * FRAME_RATE - 1e-6)):
            self.arrived.setdefault(k, now)

    def take(self, first: int, n: int, default: float) -> list[float]:
        return [self.arrived.pop(k, default) for k in range(first, first + n)]


class Session:
    """One avatar: its aligned audio, its generator stream, its counters."""

    def __init__(self, name: str, generator: Generator, seed: int, style: dict, config: WorkerConfig, now: float,
                 token: str | None = None):
        self.name = name
        self.token = token  # its owner's: audio, end and requests for it must carry it (None: an unowned session)
        self.opened = now
        self.origin_s = 0.0  # the sender's time of the session's audio sample 0 (see RESUME_AFTER_S)
        self.aligner = Aligner(config.jitter_ms / 1000, config.max_ahead_s, config.max_buffer_s)
        self.clock = FrameClock()
        self.generator, self.seed, self.style = generator, seed, dict(style)
        self.stream: MotionStream = generator.open_stream(seed, Style.from_dict(style))
        self.frame_offset = 0  # seq of the current stream's frame 0 (non-zero after a `set`)
        self.recent: deque[tuple[np.ndarray, np.ndarray]] = deque()  # audio fed since recent_start, as fed
        self.recent_start = 0
        self.next_seq = 0  # next frame to publish
        self.last_audio: float | None = None  # arrival of the newest accepted chunk; None until the first
        self.first_audio: float | None = None
        self.ready = now  # when the audio that let the newest frames out was there (the body's `audio_ready`)
        self.waits: deque[float] = deque(maxlen=300)  # per frame, its audio's arrival to publishing (s)
        self.errors: Counter[str] = Counter()

    def restart_line(self) -> int:
        """Where a stream opened now would start: the last 0.1 s grid line at least WARM_UP before the next frame to
        publish (or the session's start). It only moves forward, so audio before it is never needed again."""
        return max(0, self.next_seq * SAMPLE_RATE // FRAME_RATE - WARM_UP) // SWITCH_GRID * SWITCH_GRID

    def remember(self, a: np.ndarray, b: np.ndarray) -> None:
        """Keep the audio fed since the restart line, chunk by chunk (copied: a released chunk may be a view that
        would keep a larger jitter-buffer array alive)."""
        self.recent.append((a.copy(), b.copy()))
        line = self.restart_line()
        while self.recent and self.recent_start + len(self.recent[0][0]) <= line:
            self.recent_start += len(self.recent.popleft()[0])

    def audio_since(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Both tracks as fed from sample `start` on (start >= recent_start: see restart_line)."""
        skip = start - self.recent_start
        return tuple(np.concatenate([np.zeros(0, np.float32)] + [chunk[i] for chunk in self.recent])[skip:]
                     for i in (0, 1))

    @property
    def origin_frames(self) -> int:
        return round(self.origin_s * FRAME_RATE)

    def resume_at(self, t: float) -> None:
        """Start the session's timeline near `t` (its first audio), on the 0.1 s grid where frames and samples meet."""
        grid = SWITCH_GRID / SAMPLE_RATE
        self.origin_s = max(0.0, math.floor((t - RESUME_MARGIN_S) / grid) * grid)

    def ahead_of_real_time(self, now: float) -> bool:
        """Its sender has sent more audio than time has passed since its first (a file streamed faster)."""
        return self.first_audio is not None and self.aligner.received_s() > now - self.first_audio + 0.5

    def owned_by(self, token: str | None) -> None:
        if self.token is not None and token != self.token:
            raise ProtocolError("not_owner", f"session {self.name} belongs to another client (its token is "
                                             f"{'wrong' if token else 'missing'})", self.name)

    def stats(self) -> dict:
        latency = dict(zip(("p50", "p95"), np.percentile(np.array(self.waits) * 1000, [50, 95]).round(1).tolist())
                       ) if self.waits else {}
        return {"session": self.name, "generator": self.generator.name, "seed": self.seed, "style": self.style,
                "latency_ms": latency,
                "frames": self.next_seq, "audio_s": round(self.aligner.released / SAMPLE_RATE, 3),
                "origin_s": round(self.origin_s, 3), "owned": self.token is not None,
                "tracks": self.aligner.stats(), "errors": dict(self.errors)}


class Worker:
    """`sinks` are the other outputs (Live Link, VMC, rendered frames): each has `send(session, block)` for every
    block published, `close()`, a `name` and `stats()` (its counters, under `outputs` in the worker's stats), and
    `publish_ready()` if it makes output off the worker's thread."""

    def __init__(self, config: WorkerConfig | None = None, generator_factory=make_generator, sinks=(),
                 context: zmq.Context | None = None):
        self.config = config or WorkerConfig()
        self.make_generator = generator_factory
        self.sinks = []
        self.generators: dict[str | None, Generator] = {}
        self.default_generator = self._load(self.config.generator)  # fail at start, not on the first audio
        self.offered = self._offer()
        self.governor, self.tier_generators = self._governor()
        for sink in sinks:
            self.add_sink(sink)
        self._check_defaults()
        self.cpu_mark = (time.time(), time.process_time())
        self.sessions: dict[str, Session] = {}
        # sessions closed by a failure -> their last audio; see session_failed
        self.failed: dict[str, float] = {}
        self.errors: Counter[str] = Counter()
        self.logged_kinds: set[str] = set()
        self.session_counts: Counter[str] = Counter()  # opened / closed since the last log line about them
        self.next_session_log = time.time() + SESSION_LOG_INTERVAL_S
        self.frames = 0
        self.started = time.time()
        self.next_stats = self.started + self.config.stats_interval_s
        self.looked = self.started  # when the audio socket was last found with nothing unread (see tick)
        self.stopping = False

        # a context of its own: its ZAP handler (the gate) is one per context, and in-process capture shares it
        self.own_context = context is None
        self.ctx = context or zmq.Context()
        exposed = [e for e in (self.config.audio_in, self.config.motion_out, self.config.control) if not is_local(e)]
        if exposed and not self.config.curve and not self.config.insecure:
            raise RuntimeError(f"{', '.join(exposed)} would expose the worker beyond this machine to anyone who "
                               "reaches the port: give --curve DIR (keys from `backchannel keys`), or --insecure")
        self.gate = Gatekeeper(self.ctx, self.config.curve, self.config.max_subscribers)
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, 1000)  # per sender; beyond it ZeroMQ holds messages back at the sender
        # past 4x the limit ZeroMQ drops the message (and the peer's connection) before it is even allocated
        self.pull.setsockopt(zmq.MAXMSGSIZE, 4 * self.config.max_message_bytes)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, self.config.pub_hwm)
        # a subscriber that vanished without closing (a crashed game) is dropped within 15 s, its queue with it
        self.pub.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        self.pub.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        self.rep = self.ctx.socket(zmq.REP)
        # in-process capture pushes to a socket of its own: nothing outside the process reaches it, so it needs no
        # CURVE. Numbered, not named by id(): a closed socket releases its inproc name asynchronously, so a worker
        # at a freed worker's address could find the name still bound
        self.local_pull = self.ctx.socket(zmq.PULL)
        number = next(_LOCAL_AUDIO_NUMBERS)
        self.local_audio = f"inproc://backchannel-local-audio-{number}"
        # the WebSocket door (bridge/websocket.py) reaches the worker in-process: its messages on a socket of their
        # own (each answered where needed), and the PUB socket's messages through a second, in-process endpoint
        # (inproc has no handshake, so CURVE and the subscriber gate do not apply to it)
        self.door = self.ctx.socket(zmq.ROUTER)
        self.door_endpoint = f"inproc://backchannel-door-{number}"
        self.motion_local = f"inproc://backchannel-motion-{number}"
        for sock, endpoint in ((self.pull, self.config.audio_in), (self.pub, self.config.motion_out),
                               (self.rep, self.config.control), (self.local_pull, self.local_audio),
                               (self.door, self.door_endpoint)):
            sock.setsockopt(zmq.LINGER, 500)
            if sock is self.pub:
                self.gate.serve(sock, MOTION_DOMAIN)
            elif sock in (self.pull, self.rep) and self.config.curve:
                self.gate.serve(sock)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as e:
                self.close()
                raise RuntimeError(f"cannot bind {endpoint}: {e}") from None
        if exposed:
            log.warning("bound beyond loopback (%s)%s", ", ".join(exposed),
                        " with CURVE" if self.config.curve else " WITHOUT authentication or encryption (--insecure)")
        # as bound, so "tcp://127.0.0.1:*" (any free port) can be reported
        self.endpoints = {name: getattr(self, sock).getsockopt(zmq.LAST_ENDPOINT).decode()
                          for name, sock in (("audio_in", "pull"), ("motion_out", "pub"), ("control", "rep"))}
        self.pub.bind(self.motion_local)  # after LAST_ENDPOINT was read: that reports the TCP one
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.local_pull, zmq.POLLIN)
        self.poller.register(self.door, zmq.POLLIN)
        # subscribers come and go: counted for the gate's max_subscribers
        self.pub_events = self.pub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self.poller.register(self.pub_events, zmq.POLLIN)
        self.poller.register(self.rep, zmq.POLLIN)

    def _check_defaults(self) -> None:
        """The default seed and style, checked as a request's are and tried on the default generator: a bad one
        would fail every session that does not choose its own."""
        seed, style = self.config.seed, self.config.style
        try:
            protocol.check_seed(seed)
            protocol.check_style(style)
        except ProtocolError as e:
            raise ValueError(f"default {e}") from None
        try:
            self.default_generator.open_stream(seed, Style.from_dict(style))
        except Exception as e:
            raise ValueError(f"generator {self.default_generator.name} cannot open a stream with the default seed "
                             f"{seed} and style {style}: {type(e).__name__}: {e}") from None

    # --- main loop ------------------------------------------------------------------------------------------------

    def run(self) -> None:
        log.info("serving: audio in %s, motion out %s, control %s, generator %s (look-ahead %.0f ms)",
                 self.endpoints["audio_in"], self.endpoints["motion_out"], self.endpoints["control"],
                 self.default_generator.name,
                 self.default_generator.lookahead_s * 1000)
        while not self.stopping:
            self.step()

    def step(self, timeout_ms: int = 5) -> None:
        """One loop turn: wait briefly for traffic, take it in, then tick."""
        events = dict(self.poller.poll(timeout_ms))
        emptied = [self.drain(sock) for sock in (self.pull, self.local_pull) if sock in events]
        if self.door in events:
            emptied.append(self.serve_door())
        if all(emptied):  # every audio socket found with nothing unread
            self.looked = time.time()
        if self.rep in events:
            self.rep.send(self.handle_control(self.rep.recv_multipart(), time.time()))
        if self.pub_events in events:
            self.count_subscribers()
        self.tick(time.time(), self.looked)

    def drain(self, sock: zmq.Socket) -> bool:
        """Take in the waiting audio, each message stamped when it was taken (a long drain must not make the last
        ones look older than they are)."""
        for _ in range(1000):  # bounded so control requests and ticks are never starved
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            session, _ = self.take_audio(parts, time.time())
            if self._sender_ahead(session):
                return False
        return False

    def _sender_ahead(self, session: Session | None) -> bool:
        """A sender ahead of us (a file streamed faster than real time to a busy worker): generate before taking
        more, and let ZeroMQ hold the rest back at the sender, rather than overflow the buffer."""
        return session is not None and session.aligner.buffered_s() > self.config.max_buffer_s / 2

    def serve_door(self) -> bool:
        """The WebSocket door's messages, `[peer, connection, lane, ref, body]`: audio and `end` go through
        `accept_audio` (as the PULL socket's) and are answered only when refused; control requests through
        `handle_control`, always answered. Answers go back as `[peer, connection, ref, reply]`. Bounded like
        drain; returns whether the socket was emptied."""
        for _ in range(1000):
            try:
                peer, connection, lane, ref, *parts = self.door.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            except ValueError:  # fewer parts than a door message has: not from the door; nothing to answer
                continue
            now = time.time()
            session = None
            if lane == DOOR_CONTROL:
                reply = self.handle_control(parts, now)
            else:
                session, error = self.take_audio(parts, now)
                reply = None if error is None else protocol.reply_error(error)
            if reply is not None:
                self.door.send_multipart([peer, connection, ref, reply])
            if self._sender_ahead(session):
                return False
        return False

    def count_subscribers(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self.pub_events.poll(0):
            event = recv_monitor_message(self.pub_events)["event"]
            self.gate.subscribers += 1 if event == zmq.EVENT_HANDSHAKE_SUCCEEDED else -1
        self.gate.subscribers = max(0, self.gate.subscribers)

    def shutdown(self, drain_s: float = 1.0) -> None:
        """Take in the audio already waiting in the socket, close every session (their last frames go out), then the
        sockets. The drain is bounded (`drain_s`): a sender that never stops must not hold the exit up."""
        deadline = time.time() + drain_s
        while time.time() < deadline and (waiting := [s for s in (self.pull, self.local_pull, self.door)
                                                      if s.poll(0)]):
            for sock in waiting:
                self.serve_door() if sock is self.door else self.drain(sock)
        for name in list(self.sessions):
            self.close_session(name, time.time())
        self.close()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        if hasattr(self, "pub_events"):
            self.pub.disable_monitor()
            self.pub_events.close()
        for sock in ("pull", "local_pull", "door", "pub", "rep"):
            if hasattr(self, sock):
                getattr(self, sock).close()
        if hasattr(self, "gate"):
            self.gate.close()
        if self.own_context:
            self.ctx.destroy()  # closes what others opened on it (in-process capture, tests), each with its linger

    # --- input ----------------------------------------------------------------------------------------------------

    def reject(self, error: ProtocolError, session: Session | None = None) -> None:
        self.errors[error.kind] += 1
        if session is not None:
            session.errors[error.kind] += 1
        if error.kind not in self.logged_kinds:  # once per kind: a broken client must not flood the log
            self.logged_kinds.add(error.kind)
            log.warning("rejected input (%s): %s%s; further %s are only counted (see stats)", error.kind, error,
                        f" [session {session.name}]" if session else "", error.kind)

    def ingest(self, parts: list[bytes], now: float) -> Session | None:
        """One audio message; returns the session it added audio to, if any. A refused one is counted."""
        return self.take_audio(parts, now)[0]

    def take_audio(self, parts: list[bytes], now: float) -> tuple[Session | None, ProtocolError | None]:
        """One audio message: the session it added audio to, or the error it was refused with (counted, on the
        session it names where that one is open). A bug costs this message alone (`internal_error`)."""
        try:
            return self.accept_audio(parts, now), None
        except ProtocolError as e:
            self.reject(e, self.sessions.get(e.session))
            return None, e
        except Exception as e:
            log.exception("failed on an audio message")
            error = ProtocolError("internal_error", f"{type(e).__name__}: {e}")
            self.reject(error)
            return None, error

    def accept_audio(self, parts: list[bytes], now: float) -> Session | None:
        """One audio message, or a ProtocolError naming the session it was refused for (the caller counts it)."""
        if len(parts) != 1:
            raise ProtocolError("multipart", f"audio message in {len(parts)} parts; send one msgpack frame")
        chunk = protocol.parse_audio(parts[0], self.config.max_message_bytes)
        if isinstance(chunk, protocol.EndOfAudio):
            session = self.sessions.get(chunk.session)
            if session is not None:
                session.owned_by(chunk.token)
                self.close_session(chunk.session, now)
            self.failed.pop(chunk.session, None)  # its client is done with it: the name may start afresh
            return None
        if chunk.session in self.failed:
            self.failed[chunk.session] = now
            raise self._failed_error(chunk.session)
        session = self.sessions.get(chunk.session)
        opened = session is None
        if opened:
            session = self.open_session(chunk.session, now, token=chunk.token)
        else:
            session.owned_by(chunk.token)
        if session.first_audio is None and chunk.t > RESUME_AFTER_S:
            session.resume_at(chunk.t)
        try:
            if chunk.t < session.origin_s:
                raise ProtocolError("late", f"t={chunk.t:g} is before the session's start at {session.origin_s:g} s")
            span = session.aligner.add(replace(chunk, t=chunk.t - session.origin_s), now)
        except ProtocolError as e:
            e.session = chunk.session
            if opened:  # a refused chunk opens nothing: no session without audio would ever time out
                del self.sessions[chunk.session]
            raise
        session.last_audio = now
        if session.first_audio is None:
            session.first_audio = now
        if span:
            session.clock.audio_arrived(*span, now)
        return session

    # --- sessions -------------------------------------------------------------------------------------------------

    def _load(self, name: str | None) -> Generator:
        """One instance per generator spec, shared by its sessions so a batching generator sees them together."""
        if name not in self.generators:
            options = self.engine_options(name)
            self.generators[name] = self.make_generator(name, **options) if options else self.make_generator(name)
        return self.generators[name]

    def engine_options(self, spec: str | None) -> dict:
        """The device, precision and compile settings that differ from the defaults, for a spec of the model."""
        if not spec or parse_spec(spec)[0] != "model":
            return {}
        defaults = WorkerConfig()
        return {key: getattr(self.config, key) for key in ("device", "precision", "compile")
                if getattr(self.config, key) != getattr(defaults, key)}

    def _offer(self) -> dict[str, Generator]:
        """What sessions may choose, loaded now: by bare name, and the operator's own spec by it too."""
        default = self.config.generator
        names = self.config.generators if self.config.generators is not None else ("baseline",)
        offered = {parse_spec(default)[0]: self.default_generator, default: self.default_generator} if default else {
            self.default_generator.name: self.default_generator}
        for name in names:
            if name not in offered:
                offered[name] = self._load_offered(name, "generator")
        return offered

    def _load_offered(self, name: str, what: str) -> Generator:
        """A generator the operator offers, loaded at start: one that cannot load stops the worker there."""
        try:
            return self._load(name)
        except Exception as e:  # unknown name, missing weights, a failing import: the operator's to fix
            raise ValueError(f"cannot offer {what} {name!r}: {type(e).__name__}: {e}") from None

    def _governor(self):
        """The governor and each tier's generator (loaded now, offered by name too), when the default is the bare
        model (an operator who gave options chose them; a tier table of their own governs those too)."""
        default = (self.config.generator or "").strip()
        if default != "model" and not (self.config.tiers and default):
            if self.config.tier:
                raise ValueError("--tier pins a quality tier of the model: give --generator model too")
            return None, {}
        tiers, settings = load_tiers(self.config.tiers)
        gpu = nvml_id(self.config.device)
        if gpu is None:
            log.info("governor: no GPU to watch (device %s): it runs on deadlines and CPU alone", self.config.device)
        governor = Governor(tiers, settings, self.config.tier, None if gpu is None else Telemetry(gpu))
        loaded = {}
        for tier in tiers:
            if tier.generator not in self.offered:
                self.offered[tier.generator] = self._load_offered(tier.generator, f"tier {tier.name}'s generator")
            loaded[tier.name] = self.offered[tier.generator]
        self.default_generator = loaded[governor.tier.name]  # new sessions start at the current tier
        log.info("governor: tiers %s, starting at %s%s", ", ".join(t.name for t in tiers), governor.tier.name,
                 " (pinned)" if self.config.tier else "")
        return governor, loaded

    def govern(self, now: float, tick_s: float, budget_s: float) -> None:
        """Tell the governor how the tick went; on a tier change, move the sessions on the tiers' generators to the
        new one, each from its next frame not yet published (switch_stream: no frame dropped or sent twice).
        `budget_s`: the audio the tick released (at least a frame's worth): a tick that takes longer than the audio
        it answers falls behind real time; one that answers a burst (a file sent faster) in less does not. Lag is
        judged on sessions that stream in real time: one sent faster is ahead of real time however long its
        backlog."""
        wall, cpu = time.time(), time.process_time()
        cpu_share = (cpu - self.cpu_mark[1]) / max(wall - self.cpu_mark[0], 1e-6)
        self.cpu_mark = (wall, cpu)
        lag = max((now - min(s.clock.arrived.values()) for s in self.sessions.values()
                   if s.clock.arrived and not s.ahead_of_real_time(now)), default=0.0)
        tier = self.governor.observe(now, tick_s, budget_s, max(0.0, lag), cpu_share)
        if tier is None:
            return
        new = self.tier_generators[tier.name]
        self.default_generator = new
        tiered = {id(g) for g in self.tier_generators.values()}
        for session in list(self.sessions.values()):
            if id(session.generator) in tiered and session.generator is not new:
                try:
                    self.switch_stream(session, new, session.seed, session.style)
                except ProtocolError as e:  # this session stays where it was; the rest move
                    log.warning("session %s stays on %s: %s", session.name, session.generator.name, e)
        for sink in self.sinks:
            sink.set_tier(tier)

    def add_sink(self, sink) -> None:
        """Another output, which follows the governor's tier from now on (a worker pinned to a lower tier, or started
        on one, renders as that tier does from its first frame)."""
        if self.governor is not None:
            sink.set_tier(self.governor.tier)
        self.sinks.append(sink)

    def _generator(self, name: str) -> Generator:
        """A generator a session chose: one the operator offered. Options are the operator's to set (each spelling
        a client could invent would load and hold another model), and so is what gets loaded."""
        if name not in self.offered:
            hint = ("sessions choose a generator by its bare name; options are set where the worker starts (serve "
                    "--generator)") if "[" in name or name != name.strip() else "the operator offers more with serve " \
                                                                          "--generators"
            raise ProtocolError("bad_generator", f"generator {name[:80]!r} is not offered here (offered: "
                                                 f"{', '.join(self.generator_names())}); {hint}")
        return self.offered[name]

    def generator_names(self) -> list[str]:
        """What sessions may choose."""
        return sorted(self.offered)

    def open_session(self, name: str, now: float, generator: str | None = None, seed: int | None = None,
                     style: dict | None = None, token: str | None = None) -> Session:
        """A new session (its first audio, or `open`), within max_sessions."""
        if len(self.sessions) >= self.config.max_sessions:
            raise ProtocolError("too_many_sessions", f"already serving {len(self.sessions)} sessions (max_sessions)")
        gen = self._generator(generator) if generator else self.default_generator
        try:
            session = Session(name, gen, session_seed(self.config.seed, name) if seed is None else seed,
                              self.config.style if style is None else style, self.config, now, token)
        except Exception as e:  # the generator could not open a stream (a bad style value...)
            raise ProtocolError("generator_error", f"{gen.name} cannot open a stream: {type(e).__name__}: {e}") from None
        self.sessions[name] = session
        self.failed.pop(name, None)  # reopened on purpose after a failure
        log.debug("session %s opened (generator %s)", name, gen.name)
        self.session_counts["opened"] += 1
        return session

    def close_session(self, name: str, now: float) -> Session:
        """End of audio: release everything buffered, flush the stream, publish the last frames."""
        session = self.sessions.pop(name)
        a, b = session.aligner.finish()
        session.ready = now
        try:
            blocks = [session.stream.feed(a, b)] if len(a) else []
            for block in blocks + [session.stream.flush()]:
                self.publish(session, block)
        except Exception as e:  # a failing generator must not take the worker down
            self.report_failure(session, "generator_error", e)
        self.publish_closed(session)
        log.debug("session %s closed: %d frames, %.1f s of audio", name, session.next_seq,
                  session.aligner.released / SAMPLE_RATE)
        self.session_counts["closed"] += 1
        return session

    def switch_stream(self, session: Session, generator: Generator, seed: int, style: dict) -> None:
        """Apply a `set`. Generators take seed and style when a stream opens, so a fresh stream takes over from the
        next frame not yet published. It starts at the restart line (a 0.1 s grid line, where frame and sample
        edges meet) up to WARM_UP earlier and is fed the audio since, so its state has warmed up by then; its
        frames before the takeover are dropped. Nothing changes until the new stream has opened and taken that
        audio: if either fails, the request is refused and the old stream goes on."""
        try:
            stream = generator.open_stream(seed, Style.from_dict(style))
            start = session.restart_line()
            audio = session.audio_since(start)
            block = stream.feed(*audio) if len(audio[0]) else None
        except Exception as e:
            raise ProtocolError("generator_error", f"{generator.name} cannot take over with seed {seed} and style "
                                                   f"{style}: {type(e).__name__}: {e}; nothing changed") from None
        session.generator, session.seed, session.style = generator, seed, dict(style)
        session.stream = stream
        session.frame_offset = start * FRAME_RATE // SAMPLE_RATE
        if block is not None:
            self.publish(session, block)

    # --- the tick -------------------------------------------------------------------------------------------------

    def tick(self, now: float, looked: float | None = None) -> None:
        """Release, feed, publish. The jitter deadlines are judged as of `looked` (default `now`), when the audio
        socket last held nothing unread: audio still waiting there has not missed its deadline, however long the
        worker itself took since (a long drain, a control request loading a generator, a busy machine). While the
        worker lags behind its socket, deadlines wait; both tracks' audio is still released as it comes."""
        looked = now if looked is None else looked
        started = time.perf_counter()
        released_s = 0.0  # the most audio one session had released this tick: the tick's real-time budget
        batches: dict[int, list[tuple[Session, np.ndarray, np.ndarray]]] = defaultdict(list)
        for session in list(self.sessions.values()):
            try:
                a, b = session.aligner.release(looked)
            except Exception as e:  # a bug must cost this session, not the others
                self.session_failed(session, "internal_error", e)
                continue
            if len(a):
                released_s = max(released_s, len(a) / SAMPLE_RATE)
                # audio released by a deadline (concealment) was "there" when the deadline passed
                session.ready = looked if session.aligner.forced else session.last_audio
                batches[id(session.generator)].append((session, a, b))
        for items in batches.values():
            self.feed(items[0][0].generator, items)
        if self.governor is not None:
            self.govern(now, time.perf_counter() - started, max(1 / FRAME_RATE, released_s))
        # a session opened with `open` and never sent audio times out too: waiting sessions must not lock others out
        for name in [n for n, s in self.sessions.items()
                     if now - (s.last_audio or s.opened) > self.config.idle_timeout_s]:
            log.debug("session %s idle for %.0f s", name, self.config.idle_timeout_s)
            self.session_counts["timed out"] += 1
            self.close_session(name, now)
        if now >= self.next_session_log:
            self.next_session_log = now + SESSION_LOG_INTERVAL_S
            if self.session_counts:
                log.info("sessions in the last %.0f s: %s; %d open", SESSION_LOG_INTERVAL_S,
                         ", ".join(f"{n} {k}" for k, n in self.session_counts.items()), len(self.sessions))
                self.session_counts.clear()
        for name in [n for n, last in self.failed.items() if now - last > self.config.idle_timeout_s]:
            del self.failed[name]
        if now >= self.next_stats:
            self.publish_stats(now)
        for sink in self.sinks:  # outputs made off this thread (rendered frames) go out on it, here
            sink.publish_ready()

    def feed(self, generator: Generator, items: list[tuple[Session, np.ndarray, np.ndarray]]) -> None:
        """One generator call for all its sessions with new audio. A failure closes only the session it came from:
        the plain feed_many feeds streams one by one, so each is tried on its own; a batching feed_many must leave
        its streams untouched when it raises (all or nothing), and then they are retried one by one."""
        blocks = None
        if type(generator).feed_many is not Generator.feed_many:
            try:
                blocks = generator.feed_many([(s.stream, a, b) for s, a, b in items])
            except Exception as e:
                log.warning("generator %s failed on a batch of %d (%s); retrying each session alone", generator.name,
                            len(items), e)
        if blocks is None:
            blocks = [self.feed_one(s, a, b) for s, a, b in items]
        for (s, a, b), block in zip(items, blocks):
            if block is not None and s.name in self.sessions:
                self.publish(s, block)
                s.remember(a, b)

    def feed_one(self, session: Session, a: np.ndarray, b: np.ndarray) -> MotionBlock | None:
        try:
            return session.stream.feed(a, b)
        except Exception as e:
            self.session_failed(session, "generator_error", e)
            return None

    def session_failed(self, session: Session, kind: str, error: Exception) -> None:
        """Close a session after a failure. Its client does not know yet and keeps streaming; that audio must not
        open a new session under the same name (with the default generator, a hole where the failure was and frame
        seqs from 0 again), so it is refused as `session_failed` until the client sends `end`, opens or closes the
        session, or sends nothing for idle_timeout_s."""
        self.report_failure(session, kind, error)
        self.sessions.pop(session.name, None)
        self.failed[session.name] = time.time() if session.last_audio is None else session.last_audio
        if len(self.failed) > self.config.max_sessions:  # bounded: forget the oldest failure
            del self.failed[next(iter(self.failed))]
        self.publish_closed(session)

    def report_failure(self, session: Session, kind: str, error: Exception) -> None:
        self.reject(ProtocolError(kind, f"{type(error).__name__}: {error}"), session)
        log.error("session %s failed (generator %s)", session.name, session.generator.name, exc_info=error)

    def _failed_error(self, name: str) -> ProtocolError:
        return ProtocolError("session_failed", f"session {name} was closed after a failure (its last stats say "
                                               "why); send end or open it again")

    # --- output ---------------------------------------------------------------------------------------------------

    def publish(self, session: Session, block: MotionBlock) -> None:
        """Stream-relative frames -> absolute seqs; frames already published (after a switch) are skipped."""
        block = _frames_from(MotionBlock(block.first + session.frame_offset, block.motion, block.state, block.latent),
                             session.next_seq)
        if not len(block):
            return
        if block.first != session.next_seq:
            log.error("session %s: frame %d expected, generator gave %d", session.name, session.next_seq, block.first)
        arrived = session.clock.take(block.first, len(block), session.ready)
        published = time.time()
        session.waits.extend(published - a for a in arrived)
        motion_topic = protocol.topic(session.name, "motion")
        upto = session.origin_s + session.aligner.released / SAMPLE_RATE
        session.next_seq = block.first + len(block)
        self.frames += len(block)
        # on the wire, frames keep the sender's times (a resumed session's start at origin_s)
        block = MotionBlock(block.first + session.origin_frames, block.motion, block.state, block.latent)
        for body in protocol.motion_bodies(block, published, arrived, session.ready, upto):
            self.pub.send_multipart([motion_topic, body])
        if block.latent is not None:
            latent_topic = protocol.topic(session.name, "latent")
            for body in protocol.latent_bodies(block, published):
                self.pub.send_multipart([latent_topic, body])
        for sink in self.sinks:
            sink.send(session.name, block)

    def publish_closed(self, session: Session) -> None:
        self.pub.send_multipart([protocol.topic(session.name, "stats"),
                                 protocol.pack({**self.session_stats(session), "closed": True,
                                                "published": time.time()})])

    def publish_stats(self, now: float) -> None:
        self.next_stats = now + self.config.stats_interval_s
        for session in self.sessions.values():
            self.pub.send_multipart([protocol.topic(session.name, "stats"),
                                     protocol.pack({**self.session_stats(session), "published": now})])
        self.pub.send_multipart([protocol.topic(protocol.WORKER_TOPIC, "stats"),
                                 protocol.pack({**self.stats(), "published": now})])

    def session_stats(self, session: Session) -> dict:
        """A session's stats body, with `tier` where the governor's tiers run it: its tier changes show there."""
        stats = session.stats()
        if self.governor is not None:
            if session.generator is self.tier_generators.get(self.governor.tier.name):
                stats["tier"] = self.governor.tier.name
            else:  # (one that could not move with the others stays on its own tier's generator)
                stats.update({"tier": name for name, g in self.tier_generators.items() if g is session.generator})
        return stats

    def stats(self) -> dict:
        return {"sessions": sorted(self.sessions), "frames": self.frames, "errors": dict(self.errors),
                "subscribers": self.gate.subscribers,
                **({"governor": self.governor.stats()} if self.governor is not None else {}),
                "outputs": {sink.name: sink.stats() for sink in self.sinks},
                "uptime_s": round(time.time() - self.started, 3), "cpu_s": round(time.process_time(), 3)}

    # --- control --------------------------------------------------------------------------------------------------

    def describe(self) -> dict:
        return {
            "protocol": protocol.VERSION, "frame_rate": FRAME_RATE, "sample_rate": SAMPLE_RATE,
            "blendshapes": list(ARKIT_NAMES), "head_rotation": list(HEAD_ROTATION_NAMES),
            "head_translation": list(HEAD_TRANSLATION_NAMES), "gaze": list(GAZE_NAMES), "states": list(STATES),
            "generator": self.default_generator.describe(), "generators": self.generator_names(),
            "lookahead_s": self.default_generator.lookahead_s, "jitter_ms": self.config.jitter_ms,
            "tracks": list(protocol.TRACKS), "formats": sorted(PCM_FORMATS), "rates": [MIN_RATE, MAX_RATE],
            "max_message_bytes": self.config.max_message_bytes, "idle_timeout_s": self.config.idle_timeout_s,
            "error_kinds": protocol.ERROR_KINDS,
        }

    def handle_control(self, parts: list[bytes], now: float) -> bytes:
        """Always answers (a REP socket must), errors included."""
        try:
            if len(parts) != 1:
                raise ProtocolError("multipart", f"control request in {len(parts)} parts; send one msgpack frame")
            req = protocol.parse_control(parts[0])
            return protocol.reply_ok(**self.control(req, now))
        except ProtocolError as e:
            self.reject(e, self.sessions.get(e.session))  # counted on the session it names, where it is known
            return protocol.reply_error(e)
        except Exception as e:  # a bug must cost one request, not the worker
            log.exception("failed on a control request")
            error = ProtocolError("internal_error", f"{type(e).__name__}: {e}")
            self.reject(error)
            return protocol.reply_error(error)

    def control(self, req: dict, now: float) -> dict:
        kind, name = req["type"], req.get("session")
        if kind == "describe":
            return self.describe()
        if kind == "stats":
            if name is None:
                return self.stats()
            return self.session_stats(self._session(name))
        if kind == "open":
            if name in self.sessions:
                raise ProtocolError("session_exists", f"session {name} is already open (close it first)")
            token = req.get("token") or secrets.token_urlsafe(24)  # a client's own, or one made for it
            session = self.open_session(name, now, req.get("generator"), req.get("seed"), req.get("style"), token)
            return {**self.session_stats(session), "token": token}
        if kind == "close":
            if self.failed.pop(name, None) is not None:  # already closed; the client's close ends the refusal
                raise self._failed_error(name)
            self._session(name).owned_by(req.get("token"))
            return self.session_stats(self.close_session(name, now))
        # set: the change takes effect from the next frame not yet published (see switch_stream)
        session = self._session(name)
        session.owned_by(req.get("token"))
        generator = self._generator(req["generator"]) if "generator" in req else session.generator
        self.switch_stream(session, generator, req.get("seed", session.seed), req.get("style", session.style))
        return session.stats()

    def _session(self, name: str) -> Session:
        if name in self.failed:
            raise self._failed_error(name)
        if name not in self.sessions:
            raise ProtocolError("unknown_session", f"no open session {name!r}")
        return self.sessions[name]


def _frames_from(block: MotionBlock, seq: int) -> MotionBlock:
    skip = max(0, seq - block.first)
    if not skip:
        return block
    latent = block.latent[skip:] if block.latent is not None else None
    return MotionBlock(block.first + skip, block.motion[skip:], block.state[skip:], latent)
