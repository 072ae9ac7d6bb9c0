"""The WebSocket door (`serve --ws HOST:PORT`): protocol v1 for engines and browsers that speak WebSocket (Unity's
System.Net.WebSockets, Unreal's WebSockets module, Godot's WebSocketPeer, a web page), and the viewer page at `/`.

One connection carries what the three ZeroMQ sockets do, one message per binary frame:

    client -> worker   one msgpack map: `audio` and `end` (as on the audio socket), `describe`, `open`, `set`, `close`,
                       `stats` (as on the control socket), `subscribe` / `unsubscribe` (sessions x topics: the door's)
    worker -> client   a reply: one msgpack map, `answers` naming the request's type; or a published message: the
                       topic as a msgpack str, then the PUB socket's body, byte for byte

The door runs an asyncio loop on a thread of its own and holds none of the worker's state: it hands every audio and
control message to the worker over an in-process ZeroMQ socket (Worker.serve_door: the same parsing, ownership and
session code as the ZeroMQ sockets') and reads what the worker publishes through the PUB socket's in-process
endpoint. Each connection has a bounded queue of its own: a client that reads slowly loses its oldest messages
(counted), never holding up the worker or another client.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import itertools
import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgpack
import zmq

from backchannel.bridge import protocol
from backchannel.bridge.outputs import Sink
from backchannel.bridge.protocol import DOOR_AUDIO, DOOR_CONTROL, ProtocolError
from backchannel.bridge.security import is_local, is_loopback_host

log = logging.getLogger("backchannel.websocket")

TOPICS = ("motion", "latent", "frame", "stats")
EVERY_SESSION = "*"  # in a subscription: every session, and the worker's own stats (`_worker`)
MAX_SUBSCRIPTIONS = 4096  # session x topic pairs per connection (and names in one subscribe's `sessions`)
# the door's own SUB on the worker's PUB: room for 10 s of 16 sessions' four topics at 30 fps before the worker's
# PUB drops for it (counted as `missed`, from motion seq gaps)
DOOR_SUB_HWM = 20000
# a connection's incoming side: websockets holds up to MAX_QUEUE received messages (and one being read) of at most
# max_message_bytes + OVER_LIMIT bytes: a message a little over the limit is still read and answered `oversize`;
# a larger one closes the connection (1009)
MAX_QUEUE = 2
OVER_LIMIT = 64 << 10
VIEWER = Path(__file__).parent / "viewer"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
         "/msgpack.min.js": ("msgpack.min.js", "text/javascript; charset=utf-8"),
         "/msgpack.LICENSE.txt": ("msgpack.LICENSE.txt", "text/plain; charset=utf-8")}


@dataclass
class DoorConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0: any free port (the door's `url` says which)
    token: str | None = None  # a shared secret every connection must show (?token=... or Authorization: Bearer)
    insecure: bool = False  # bind beyond loopback (plain ws://: anyone on the path sees the traffic and the token)
    queue_bytes: int = 8 << 20  # waiting per connection (published; replies as much again); beyond, the oldest go
    max_connections: int = 64


def parse_address(text: str) -> tuple[str, int]:
    """"HOST:PORT" (IPv6 in brackets) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--ws {text!r}: give HOST:PORT, e.g. 127.0.0.1:8765 (port 0: any free one)")
    return host.strip("[]"), int(port)


class Outbox:
    """A connection's waiting messages: replies first, then published messages, each queue bounded in bytes, its
    oldest dropped to make room (a live face wants the newest frames; a client this far behind has lost the stream
    anyway). Bytes, not messages: a rendered frame weighs fifty motion frames."""

    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.queues = {True: deque(), False: deque()}  # reply? -> messages
        self.sizes = {True: 0, False: 0}
        self.waiting = asyncio.Event()

    def put(self, data: bytes, reply: bool = False) -> int:
        """Queue a message; returns how many older ones were dropped to make room."""
        queue, dropped = self.queues[reply], 0
        while queue and self.sizes[reply] + len(data) > self.limit:
            self.sizes[reply] -= len(queue.popleft())
            dropped += 1
        queue.append(data)
        self.sizes[reply] += len(data)
        self.waiting.set()
        return dropped

    async def get(self) -> bytes:
        while not (self.queues[True] or self.queues[False]):
            self.waiting.clear()
            await self.waiting.wait()
        reply = bool(self.queues[True])
        data = self.queues[reply].popleft()
        self.sizes[reply] -= len(data)
        return data


class Connection:
    def __init__(self, number: int, ws, queue_bytes: int):
        self.number, self.key = number, number.to_bytes(8, "little")
        self.ws = ws
        self.outbox = Outbox(queue_bytes)
        self.subscriptions: set[tuple[str, str]] = set()  # (session or "*", topic)

    def wants(self, session: str, kind: str) -> bool:
        return (session, kind) in self.subscriptions or (
            (EVERY_SESSION, kind) in self.subscriptions)


class WebSocketDoor(Sink):
    """The door, as one of the worker's outputs (its counters appear under `outputs.websocket` in the worker's
    stats). `start()` binds and serves on a thread of its own; the worker's `close()` stops it."""

    name = "websocket"

    def __init__(self, worker, config: DoorConfig):
        self.config = config
        address = f"tcp://{config.host}:{config.port}"
        if not is_local(address) and not config.insecure:
            raise RuntimeError(f"--ws {config.host}:{config.port} would expose the worker beyond this machine over plain "
                               "ws://: bind 127.0.0.1 (put a TLS proxy in front for other machines), or give --insecure "
                               "(and --ws-token)")
        if config.token is not None and not protocol.TOKEN_RULE.fullmatch(config.token):
            raise ValueError("--ws-token must be 16-128 of [A-Za-z0-9_-]")
        self.worker_ctx, self.door_endpoint, self.motion_endpoint = worker.ctx, worker.door_endpoint, worker.motion_local
        self.max_message_bytes = worker.config.max_message_bytes
        self.pages = {path: ((VIEWER / name).read_bytes(), kind) for path, (name, kind) in PAGES.items()
                      if (VIEWER / name).is_file()}
        self.connections: dict[int, Connection] = {}
        self.numbers = itertools.count(1)
        self.accepted = self.closed = self.refused = self.sent = self.dropped = self.missed = 0
        self.sub_prefixes: Counter[bytes] = Counter()  # the in-process SUB's topic prefixes: connections wanting each
        self.last_seq: dict[str, int] = {}  # session -> the newest motion seq the door saw (for `missed`)
        self.errors: Counter[str] = Counter()  # refused by the door itself (audio and control: the worker's stats)
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"ws://{host}:{self.port}/"

    # --- the worker's side ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve; raises here when the address cannot be bound."""
        ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), name="backchannel-websocket",
                                       daemon=True)
        self.thread.start()
        ready.wait()
        if self.failure is not None:
            self.thread.join()
            raise RuntimeError(f"cannot bind --ws {self.config.host}:{self.config.port}: {self.failure}")
        log.info("WebSocket door at %s (viewer: http%s)%s", self.url, self.url[2:],
                 " with a token" if self.config.token else "")

    def send(self, session, block) -> None:
        """(Sink's abstract method) Frames reach the door through the PUB socket (the same bytes a ZeroMQ subscriber
        gets), not here."""

    def stats(self) -> dict:
        return {"url": self.url, "connections": len(self.connections), "accepted": self.accepted,
                "closed": self.closed, "refused": self.refused, "sent": self.sent, "dropped": self.dropped,
                "missed": self.missed, "topics": len(self.sub_prefixes), "errors": dict(self.errors)}

    def close(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            return
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)

    # --- the door's thread --------------------------------------------------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        from websockets.asyncio.server import serve

        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        # plain sockets (inproc endpoints live in the worker's context), used from this thread alone and read when
        # the loop sees their descriptor: one wake-up drains every waiting message, with no future per message
        self.to_worker = self.worker_ctx.socket(zmq.DEALER)
        self.from_worker = self.worker_ctx.socket(zmq.SUB)
        self.from_worker.rcvhwm = DOOR_SUB_HWM
        for sock, endpoint, drain in ((self.to_worker, self.door_endpoint, self._replies),
                                      (self.from_worker, self.motion_endpoint, self._pump)):
            sock.linger = 0
            sock.connect(endpoint)
            self.loop.add_reader(sock.FD, drain)
        try:
            try:
                server = await serve(self._connection, self.config.host, self.config.port,
                                     process_request=self._http, compression=None,
                                     max_size=self.max_message_bytes + OVER_LIMIT, max_queue=MAX_QUEUE,
                                     logger=_QuietLog(logging.getLogger("websockets.server"), {}))
            except OSError as e:
                self.failure = e
                return
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            sweeper = asyncio.create_task(self._sweep())
            await self.stopping.wait()
            server.close()  # each connection is closed with 1001 (going away)
            await server.wait_closed()
            sweeper.cancel()
        finally:
            ready.set()
            for sock in (self.to_worker, self.from_worker):
                self.loop.remove_reader(sock.FD)
                sock.close()

    async def _sweep(self) -> None:
        """ZeroMQ's descriptor signals edges, and a send or a subscription change can take one that a read needed:
        the drains run after those too, and here every 50 ms, so no message waits for the next edge."""
        while True:
            await asyncio.sleep(0.05)
            self._replies()
            self._pump()

    def _http(self, connection, request):
        """Plain HTTP GETs get the viewer page; WebSocket upgrades are checked (token, origin, room) here."""
        url = urlsplit(request.path)
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            page = self.pages.get(url.path)
            if page is None:
                return connection.respond(404, "not found: the viewer is at /\n")
            response = connection.respond(200, "")
            del response.headers["Content-Type"], response.headers["Content-Length"]
            response.headers["Content-Type"], response.headers["Content-Length"] = page[1], str(len(page[0]))
            response.headers["Cache-Control"] = "no-cache"
            response.body = page[0]
            return response
        refusal = self._refusal(request, url)
        if refusal is not None:
            self.refused += 1
            return connection.respond(*refusal)
        return None

    def _refusal(self, request, url) -> tuple[int, str] | None:
        if self.config.token is not None:
            shown = parse_qs(url.query).get("token", [""])[0]
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer":  # auth schemes are case-insensitive (RFC 9110 11.1)
                shown = credentials.strip()
            if not hmac.compare_digest(shown.encode(), self.config.token.encode()):
                return 401, "this worker wants its token: ws://HOST:PORT/?token=... or Authorization: Bearer ...\n"
        elif (origin := request.headers.get("Origin")) is not None:
            # any web page the user visits may open a WebSocket to 127.0.0.1; without a token, only the door's own
            # page may (its origin is the address the browser reached us at, and that must be this machine's)
            host = request.headers.get("Host", "")
            hostname = urlsplit(f"//{host}").hostname or ""
            # (a name is trusted only when it cannot be rebound: localhost or a loopback IP literal)
            if urlsplit(origin).netloc != host or not (is_loopback_host(hostname) or (
                    hostname == self.config.host and _is_ip_literal(hostname))):
                return 403, ("a web page needs the worker's token (serve --ws-token; the viewer takes ?token=...) "
                             "unless it is the door's own page at a loopback address\n")
        if len(self.connections) >= self.config.max_connections:
            return 503, f"already {len(self.connections)} connections (the most this worker takes)\n"
        return None

    async def _connection(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        conn = Connection(next(self.numbers), ws, self.config.queue_bytes)
        self.connections[conn.number] = conn
        self.accepted += 1
        sender = asyncio.create_task(self._send_all(conn))
        try:
            async for message in ws:
                await self._take(conn, message)
        except ConnectionClosed:
            pass
        finally:
            del self.connections[conn.number]
            self.closed += 1
            sender.cancel()
            self._want(conn.subscriptions, add=False)

    async def _send_all(self, conn: Connection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                data = await conn.outbox.get()
                await conn.ws.send(data)  # waits while the client's TCP window is full: only this task waits
                self.sent += 1
        except ConnectionClosed:
            pass

    async def _take(self, conn: Connection, message) -> None:
        """One message from a client: subscriptions here, everything else to the worker (which parses, counts and
        answers it as it does on the ZeroMQ sockets; what cannot be read at all goes there too, to be refused)."""
        if isinstance(message, str):
            self._refuse(conn, ProtocolError("not_msgpack", "a text frame: send msgpack maps in binary frames"), {})
            return
        try:
            # the worker's limits, but a list may be as long as a subscribe's `sessions` may (the worker applies
            # its own limits to what it is handed)
            msg = protocol.unpack_map(message, self.max_message_bytes, max_array_len=MAX_SUBSCRIPTIONS)
        except ProtocolError as e:  # answered here (nothing the worker could not read is passed on to it), with
            note = _salvage_note(message) if e.kind == "not_msgpack" else {}  # the request's type and id if readable
            if note.get("answers") in ("subscribe", "unsubscribe"):
                e = ProtocolError("bad_subscription", f"a subscription past the limits (at most {MAX_SUBSCRIPTIONS} "
                                                      f"sessions, names of 64 characters): {e}")
            self._refuse(conn, e, note)
            return
        kind = msg.get("type")
        note = _note(msg)
        if kind in ("subscribe", "unsubscribe"):
            try:
                reply = self._subscribe(conn, msg, kind == "subscribe")
            except ProtocolError as e:
                self._refuse(conn, e, note)
                return
            self.dropped += conn.outbox.put(protocol.pack({"ok": True, **note, **reply}), reply=True)
            return
        lane = DOOR_CONTROL if kind in protocol.CONTROL_TYPES else DOOR_AUDIO
        parts = [conn.key, lane, msgpack.packb(note), message]
        while True:
            try:
                self.to_worker.send_multipart(parts, zmq.NOBLOCK, copy=len(message) < 65536)
                break
            except zmq.Again:  # the worker is behind (1000 messages wait): hold this client back, as TCP does
                await asyncio.sleep(0.005)
        self._replies()

    def _refuse(self, conn: Connection, error: ProtocolError, note: dict) -> None:
        self.errors[error.kind] += 1
        self.dropped += conn.outbox.put(protocol.pack({"ok": False, **note, "error": error.kind, "message": str(error)}),
                                        reply=True)

    def _subscribe(self, conn: Connection, msg: dict, add: bool) -> dict:
        protocol.check_version(msg)
        sessions = msg.get("sessions", EVERY_SESSION)
        if sessions != EVERY_SESSION:
            if not isinstance(sessions, list):
                raise ProtocolError("wrong_type", f'sessions must be a list of names or "{EVERY_SESSION}"')
            if len(sessions) > MAX_SUBSCRIPTIONS:
                raise ProtocolError("bad_subscription", f"more than {MAX_SUBSCRIPTIONS} sessions in one subscribe")
            for name in sessions:
                if name != protocol.WORKER_TOPIC:
                    protocol.check_session(name)
        else:
            sessions = [EVERY_SESSION]
        topics = msg.get("topics", list(TOPICS))
        if not isinstance(topics, list) or not all(isinstance(t, str) and t in TOPICS for t in topics):
            raise ProtocolError("bad_subscription", f"topics must be a list of {', '.join(TOPICS)}")
        pairs = {(s, t) for s in sessions for t in topics}
        if add:
            if len(conn.subscriptions | pairs) > MAX_SUBSCRIPTIONS:
                raise ProtocolError("bad_subscription", f"more than {MAX_SUBSCRIPTIONS} session-topic pairs on one "
                                                        "connection (subscribe to \"*\" instead)")
            changed = pairs - conn.subscriptions
            conn.subscriptions |= changed
        else:
            changed = pairs & conn.subscriptions
            conn.subscriptions -= changed
        self._want(changed, add)
        return {"subscriptions": sorted(map(list, conn.subscriptions))}

    def _want(self, pairs, add: bool) -> None:
        """The in-process SUB carries the union of what connections subscribed to, nothing more: a topic prefix is
        subscribed when its first connection wants it and dropped with its last ("*" wants everything)."""
        for session, kind in pairs:
            prefix = b"" if session == EVERY_SESSION else f"{session}/{kind}".encode()
            self.sub_prefixes[prefix] += 1 if add else -1
            if add and self.sub_prefixes[prefix] == 1:
                self.from_worker.subscribe(prefix)
            elif not add and self.sub_prefixes[prefix] == 0:
                del self.sub_prefixes[prefix]
                self.from_worker.unsubscribe(prefix)
        if pairs:
            self._pump()

    def _replies(self) -> None:
        """The worker's answers: to the connection that asked, with the request's type (and id) beside them."""
        while self.to_worker.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            key, note, reply = self.to_worker.recv_multipart(zmq.NOBLOCK)
            conn = self.connections.get(int.from_bytes(key, "little"))
            if conn is None:  # it left before the answer came
                continue
            note = msgpack.unpackb(note)
            body = msgpack.unpackb(reply) if note else None
            self.dropped += conn.outbox.put(msgpack.packb({**note, **body}) if note else reply, reply=True)

    def _pump(self) -> None:
        """The worker's published messages, to each connection that subscribed to them."""
        while self.from_worker.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            topic, body = self.from_worker.recv_multipart(zmq.NOBLOCK)
            session, _, kind = topic.decode().partition("/")
            if kind == "motion":
                self._count_missed(session, body)
            frame = None
            for conn in self.connections.values():
                if conn.wants(session, kind):
                    frame = frame or msgpack.packb(topic.decode()) + body
                    self.dropped += conn.outbox.put(frame)

    def _count_missed(self, session: str, body: bytes) -> None:
        """Motion frames the worker published that never reached the door (its SUB's queue was full): seq gaps."""
        try:
            seq = msgpack.unpackb(body)["seq"]
        except Exception:  # the worker's own bytes: never expected, never fatal
            return
        last = self.last_seq.get(session)
        if last is not None and seq > last + 1:
            self.missed += seq - last - 1
        if len(self.last_seq) >= 100_000 and session not in self.last_seq:
            self.last_seq.clear()  # bounded: only gaps inside one run of a session matter
        self.last_seq[session] = seq


def _salvage_note(raw: bytes) -> dict:
    """The `type` and `id` of a map too large to decode whole (its other values are skipped, never built)."""
    unpacker = msgpack.Unpacker(raw=False, max_str_len=4096, max_bin_len=len(raw), max_array_len=64, max_map_len=64,
                                max_ext_len=0)
    unpacker.feed(raw)
    found = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in ("type", "id"):
                found[key] = unpacker.unpack()
            else:
                unpacker.skip()
    except Exception:  # whatever could be read is what the reply repeats
        pass
    return _note(found)


class _QuietLog(logging.LoggerAdapter):
    """websockets logs every connection's open and close at INFO; here they are DEBUG (the door counts them in
    `accepted` and `closed`)."""

    def log(self, level, msg, *args, **kwargs):  # websockets wraps this in adapters of its own, which call log()
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _note(msg: dict) -> dict:
    """What a reply repeats of its request, so a client can tell which message it answers: `answers` (the type),
    `id` (any int or short string the client gave), and an audio chunk's `session`, `track` and `seq`."""
    note = {}
    if isinstance(msg.get("type"), str) and len(msg["type"]) <= 32:
        note["answers"] = msg["type"]
    if isinstance(msg.get("id"), (int, str)) and not isinstance(msg["id"], bool) and len(str(msg["id"])) <= 64:
        note["id"] = msg["id"]
    if note.get("answers") in ("audio", "end"):
        for key, kind in (("session", str), ("track", str), ("seq", int)):
            if isinstance(msg.get(key), kind) and not isinstance(msg[key], bool) and len(str(msg[key])) <= 64:
                note[key] = msg[key]
    return note
