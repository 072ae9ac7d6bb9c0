"""The client side of protocol v1, for `send`, `bench`, tests and Python games: audio chunks and a sender that
paces them, control requests, a motion subscriber, and a worker started as a subprocess."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
import zmq

from backchannel.bridge import protocol
from backchannel.bridge.security import connect_with_keys
from backchannel.models.motion import MOTION_DIM, STATES, MotionBlock


@dataclass
class Chunk:
    session: str
    track: str
    seq: int
    t: float  # audio time of the first sample
    end: float  # audio time just past the last sample: a real-time sender sends the chunk then
    message: bytes


def audio_chunks(session: str, tracks: dict[str, np.ndarray], rate: int, chunk_ms: float = 20.0,
                 fmt: str = "s16le", token: str | None = None, start_s: float = 0.0) -> list[Chunk]:
    """Both tracks cut into chunks, interleaved in time order (self first at equal times); `token`: the session's
    owner token (the `open` reply's), `start_s`: the session time of the tracks' first sample."""
    size = max(1, round(rate * chunk_ms / 1000))
    chunks = []
    for track, audio in tracks.items():
        for seq, start in enumerate(range(0, len(audio), size)):
            piece = audio[start:start + size]
            t = start_s + start / rate
            chunks.append(Chunk(session, track, seq, t, t + len(piece) / rate,
                                protocol.audio_message(session, track, seq, t, piece, rate, fmt, token)))
    order = {track: i for i, track in enumerate(protocol.TRACKS)}
    return sorted(chunks, key=lambda c: (c.end, order[c.track]))


STALLED_S = 0.25  # a send that blocked this long found no worker: it went away (a restart) and came back


def send_chunks(sock, chunks: list[Chunk], realtime: bool, progress: bool = False, after_stall=None) -> list[float]:
    """Send in order; real time means each chunk leaves when its audio would have been captured. Returns the wall
    clock at which each chunk was sent. `after_stall` is called after a send that blocked (the worker was away):
    a subscriber can wait to be connected again before the backlog goes out."""
    from tqdm import tqdm

    sent = []
    start = time.time()
    for chunk in tqdm(chunks, desc="sending", unit="chunk", disable=None if progress else True, leave=False):
        if realtime:
            delay = start + chunk.end - time.time()
            if delay > 0:
                time.sleep(delay)
        before = time.time()
        sock.send(chunk.message)
        sent.append(time.time())
        if after_stall is not None and sent[-1] - before > STALLED_S:
            after_stall()
    return sent


class _Requester:
    """What every control client shares over its own `request` (the reply map) and `close`."""

    def request(self, kind: str, **fields) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def call(self, kind: str, **fields) -> dict:
        """Like request, but an error reply raises."""
        reply = self.request(kind, **fields)
        if not reply.get("ok"):
            raise RuntimeError(f"{kind}: {reply.get('error')}: {reply.get('message')}")
        return reply

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ControlClient(_Requester):
    """REQ socket to the worker's control endpoint. A lost reply never wedges it: the socket is remade. Use it in a
    `with` block (or call close) so the socket does not outlive it."""

    def __init__(self, endpoint: str, timeout_s: float = 5.0, context: zmq.Context | None = None,
                 keys: tuple | None = None):
        """`keys`: (the worker's server.key, this client's NAME.key_secret) for a worker that runs CURVE."""
        self.endpoint, self.timeout_s, self.keys = endpoint, timeout_s, keys
        self.ctx = context or zmq.Context.instance()
        self.sock = None

    def request(self, kind: str, **fields) -> dict:
        """The reply map, {"ok": false, "error": kind, ...} included."""
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            if self.keys:
                connect_with_keys(self.sock, *self.keys)
            self.sock.connect(self.endpoint)
        self.sock.send(protocol.control_request(kind, **fields))
        if not self.sock.poll(int(self.timeout_s * 1000)):
            self.close()
            raise RuntimeError(f"no answer from the worker at {self.endpoint} within {self.timeout_s:g} s")
        return protocol.unpack(self.sock.recv())

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass
class Received:
    session: str
    kind: str
    body: dict
    received: float  # wall clock at this end
    raw: bytes = b""  # the body's bytes, as published (the WebSocket client keeps them)


class MotionReceiver:
    """SUB socket on the worker's motion endpoint, filtered to some sessions (all when none are given)."""

    def __init__(self, endpoint: str, sessions: list[str] | None = None, context: zmq.Context | None = None,
                 keys: tuple | None = None):
        self.sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        if keys:
            connect_with_keys(self.sock, *keys)
        self.sock.setsockopt(zmq.RCVHWM, 0)  # a measuring client must not drop frames itself
        for prefix in ([f"{s}/" for s in sessions] if sessions else [""]):
            self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.sock.setsockopt(zmq.SUBSCRIBE, protocol.topic(protocol.WORKER_TOPIC, "stats"))
        self.sock.connect(endpoint)

    def receive(self, timeout_s: float) -> Received | None:
        if not self.sock.poll(max(0, int(timeout_s * 1000))):  # a negative timeout would wait for ever
            return None
        topic, body = self.sock.recv_multipart()
        now = time.time()
        session, _, kind = topic.decode().rpartition("/")
        return Received(session, kind, protocol.unpack(body), now)

    def wait_ready(self, timeout_s: float = 10.0) -> dict:
        """Block until the worker's own stats arrive: from then on the subscriptions are in place (ZeroMQ delivers
        nothing to a SUB until its subscription reached the PUB, so frames published earlier would be missed)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            msg = self.receive(deadline - time.time())
            if msg and msg.session == protocol.WORKER_TOPIC:
                return msg.body
        raise RuntimeError(f"no worker stats within {timeout_s:g} s: is the worker up?")

    def close(self) -> None:
        self.sock.close()


class WebSocketClient(_Requester):
    """Protocol v1 over the worker's WebSocket door (`serve --ws`): audio, control and motion on one connection.
    Published messages that arrive while a request waits for its reply are kept for `receive`; replies that answer
    no request of this client's (a refused audio chunk's) are kept in `refusals`."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 5.0):
        from websockets.sync.client import connect

        self.timeout_s = timeout_s
        self.ws = connect(url + (f"?token={token}" if token else ""), compression=None, max_size=None).__enter__()
        self.published: deque[Received] = deque()
        self.refusals: list[dict] = []
        self.ids = itertools.count(1)

    def send(self, message: bytes) -> None:
        self.ws.send(message)

    def request(self, kind: str, **fields) -> dict:
        """The reply map, {"ok": false, ...} included."""
        number = next(self.ids)
        self.ws.send(protocol.control_request(kind, id=number, **fields))
        deadline = time.time() + self.timeout_s
        while (remaining := deadline - time.time()) > 0:
            message = self._next(remaining)
            if isinstance(message, Received):
                self.published.append(message)
            elif message is not None and message.get("id") == number:
                return message
            elif message is not None:
                self.refusals.append(message)
        raise RuntimeError(f"no answer to {kind} within {self.timeout_s:g} s")

    def subscribe(self, sessions: list[str] | str = "*", topics: list[str] | None = None) -> dict:
        return self.call("subscribe", sessions=sessions, **({"topics": topics} if topics else {}))

    def receive(self, timeout_s: float) -> Received | None:
        """The next published message (None after timeout_s)."""
        if self.published:
            return self.published.popleft()
        deadline = time.time() + timeout_s
        while (remaining := deadline - time.time()) > 0:
            message = self._next(remaining)
            if isinstance(message, Received):
                return message
            if message is not None:
                self.refusals.append(message)
        return None

    def _next(self, timeout_s: float) -> Received | dict | None:
        try:
            data = self.ws.recv(timeout=timeout_s)
        except TimeoutError:
            return None
        now = time.time()
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        first = unpacker.unpack()
        if not isinstance(first, str):
            return first  # a reply
        session, _, kind = first.partition("/")
        raw = data[unpacker.tell():]
        return Received(session, kind, protocol.unpack(raw), now, raw)

    def close(self) -> None:
        self.ws.close()


def frames_to_block(bodies: list[dict]) -> MotionBlock:
    """Motion bodies (any order) -> a MotionBlock; they must be consecutive."""
    bodies = sorted(bodies, key=lambda b: b["seq"])
    if not bodies:
        return MotionBlock.empty()
    motion = np.array([b["blendshapes"] + b["head_rotation"] + b["head_translation"] + b["gaze"] for b in bodies],
                      np.float32).reshape(-1, MOTION_DIM)
    block = MotionBlock(bodies[0]["seq"], motion, [STATES.index(b["state"]) for b in bodies])
    seqs = [b["seq"] for b in bodies]
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        raise ValueError(f"frames are not consecutive: {len(seqs)} frames from {seqs[0]} to {seqs[-1]}")
    return block


@contextmanager
def spawn_worker(*flags: str, command: list[str] | None = None, env: dict | None = None, timeout_s: float = 60.0,
                 log_path: str | Path | None = None):
    """A `backchannel serve` subprocess on free loopback ports; yields its endpoints (+ "pid", "process")."""
    command = command or [sys.executable, "-m", "backchannel.bridge.cli"]
    with tempfile.TemporaryDirectory(prefix="backchannel-worker-") as tmp, \
            open(log_path or Path(tmp) / "worker.log", "w") as log_file:
        ready = Path(tmp) / "ready.json"
        args = [*command, "serve", "--audio-in", "tcp://127.0.0.1:*", "--motion-out", "tcp://127.0.0.1:*",
                "--control", "tcp://127.0.0.1:*", "--ready-file", str(ready), *flags]
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            deadline = time.time() + timeout_s
            while not ready.exists():
                if proc.poll() is not None or time.time() > deadline:
                    log_file.flush()
                    output = Path(log_file.name).read_text()[-3000:]
                    raise RuntimeError(f"worker did not start (exit code {proc.poll()}):\n{output}")
                time.sleep(0.02)
            yield {**json.loads(ready.read_text()), "process": proc, "log": log_file.name}
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
