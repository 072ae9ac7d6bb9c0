"""The scale-out ingress: one set of protocol v1 endpoints in front of many workers (replicas).

    clients --PUSH audio--> PULL  --(session's replica: Router)--> PUSH --> replica's PULL
    clients --REQ control-> REP   --(open: placed; others: the owner)--> REQ --> replica's REP
    clients <--SUB motion-- XPUB  <--(the owner's messages only)-- SUB <-- replica's PUB

Clients see one worker. Each replica's `_worker/stats` (published by its worker's own loop) is its heartbeat, its
load report and the list of sessions it holds (one it closed on its own is placed nowhere again); the ingress
publishes its own `_worker/stats` instead (sessions of all replicas, and the replicas themselves). A replica whose
worker is silent for the router's `dead_after_s` is dead (router.py): its sessions' next audio goes to
a live replica, which resumes them as a restarted worker does (PROTOCOL.md "Reconnecting after a worker restart":
the frames of the audio lost meanwhile are missing, a counted gap), while the sessions elsewhere are untouched.
Only the owner's messages for a session are forwarded, so a replica that comes back from a stall cannot publish
frames for a session that has moved on.

One thread runs the loop (`run`); `register` may be called from any other (Ray Serve calls it).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

import zmq

from backchannel.bridge import protocol
from backchannel.bridge.protocol import ProtocolError
from backchannel.bridge.scaleout.router import Router

log = logging.getLogger("backchannel.ingress")
WORKER_STATS = protocol.topic(protocol.WORKER_TOPIC, "stats")
CLOSING_KEEP_S = 30.0  # how long a closing session's last frames are still forwarded from its old owner


@dataclass
class Link:
    """The sockets to one replica."""

    push: zmq.Socket
    sub: zmq.Socket
    req: zmq.Socket | None = None


@dataclass
class Asking:
    """A control request in flight to a replica."""

    replica_id: str
    kind: str
    session: str | None
    deadline: float
    sock: zmq.Socket
    placed: bool = False  # an open that placed its session: undone unless the replica opens it


class Ingress:
    def __init__(self, audio_in: str = "tcp://127.0.0.1:5555", motion_out: str = "tcp://127.0.0.1:5556",
                 control: str = "tcp://127.0.0.1:5557", router: Router | None = None,
                 context: zmq.Context | None = None, stats_interval_s: float = 1.0, control_timeout_s: float = 3.0,
                 max_message_bytes: int = 1 << 20):
        self.router = router or Router()
        self.stats_interval_s, self.control_timeout_s = stats_interval_s, control_timeout_s
        self.max_message_bytes = max_message_bytes
        self.own_context = context is None
        self.ctx = context or zmq.Context()
        self.links: dict[str, Link] = {}
        self.pending: deque[tuple[str, dict]] = deque()  # registrations from other threads, applied by the loop
        self.lock = threading.Lock()  # the router and `closing`, between the loop and `stats` callers
        self.topics: Counter[bytes] = Counter()  # what clients subscribed to
        self.closing: dict[str, tuple[str, float]] = {}  # session -> (its last owner, when it was ended)
        self.errors: Counter[str] = Counter()
        self.forwarded = Counter()  # audio messages, control requests, motion messages
        self.asking: Asking | None = None  # the control request a replica is answering
        self.started = time.time()
        self.next_stats = self.started + stats_interval_s
        self.stopping = False
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.MAXMSGSIZE, 4 * max_message_bytes)
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.SNDHWM, 10000)
        self.rep = self.ctx.socket(zmq.REP)
        for sock, endpoint in ((self.pull, audio_in), (self.xpub, motion_out), (self.rep, control)):
            sock.setsockopt(zmq.LINGER, 500)
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as e:
                self.close()
                raise RuntimeError(f"cannot bind {endpoint}: {e}") from None
        self.endpoints = {name: getattr(self, sock).getsockopt(zmq.LAST_ENDPOINT).decode()
                          for name, sock in (("audio_in", "pull"), ("motion_out", "xpub"), ("control", "rep"))}

    # --- replicas -----------------------------------------------------------------------------------------------------

    def register(self, replica_id: str, endpoints: dict) -> None:
        """A replica says where its worker listens; call it again every so often (any thread)."""
        self.pending.append((replica_id, dict(endpoints)))

    def _apply_registrations(self, now: float) -> None:
        while self.pending:
            replica_id, endpoints = self.pending.popleft()
            with self.lock:
                new = self.router.register(replica_id, endpoints, now)
            if new:
                self._unlink(replica_id)
                self._link(replica_id, endpoints)
                log.info("replica %s joined (%s)", replica_id, endpoints["audio_in"])

    def _link(self, replica_id: str, endpoints: dict) -> None:
        push, sub = self.ctx.socket(zmq.PUSH), self.ctx.socket(zmq.SUB)
        for sock in (push, sub):
            sock.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, 1000)
        push.connect(endpoints["audio_in"])
        sub.setsockopt(zmq.SUBSCRIBE, WORKER_STATS)  # its heartbeat and load, whatever the clients want
        for topic in self.topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(endpoints["motion_out"])
        self.links[replica_id] = Link(push, sub)

    def _unlink(self, replica_id: str) -> None:
        if self.asking is not None and self.asking.replica_id == replica_id:
            self.asking.deadline = 0.0  # answered with an error before the socket closes
            self._answer(time.time())
        link = self.links.pop(replica_id, None)
        if link is not None:
            for sock in (link.push, link.sub, link.req):
                if sock is not None:
                    sock.close(0)

    def _reap(self, now: float) -> None:
        with self.lock:
            live = {r.id for r in self.router.replicas.values() if r.live}
            dead = self.router.reap(now)
            stalled = [r.id for r in self.router.replicas.values() if r.id in live and not r.live]
            for replica_id in list(self.links):
                if replica_id not in self.router.replicas:
                    dead.append(replica_id)
        for replica_id in stalled:
            log.warning("replica %s is registered but its worker reports nothing (stuck?): its sessions go to the "
                        "others on their next audio", replica_id)
        for replica_id in dict.fromkeys(dead):
            self._unlink(replica_id)
            log.warning("replica %s went silent: its sessions go to the others on their next audio", replica_id)

    # --- the loop -----------------------------------------------------------------------------------------------------

    def run(self) -> None:
        log.info("ingress: audio in %s, motion out %s, control %s", self.endpoints["audio_in"],
                 self.endpoints["motion_out"], self.endpoints["control"])
        while not self.stopping:
            self.step()

    def step(self, timeout_ms: int = 20) -> None:
        now = time.time()
        self._apply_registrations(now)
        poller = zmq.Poller()
        # REP takes the next request once the one in flight is answered (REP's rule: one reply per request)
        for sock in (self.pull, self.xpub, self.rep if self.asking is None else self.asking.sock):
            poller.register(sock, zmq.POLLIN)
        subs = {link.sub: replica_id for replica_id, link in self.links.items()}
        for sock in subs:
            poller.register(sock, zmq.POLLIN)
        events = dict(poller.poll(timeout_ms))
        if self.xpub in events:
            self._subscriptions()
        for sock, replica_id in subs.items():
            if sock in events:
                self._motion(sock, replica_id)
        if self.pull in events:
            self._drain_audio()
        if self.asking is None and self.rep in events:
            reply = self._control(self.rep.recv_multipart())
            if reply is not None:
                self.rep.send(reply)
        now = time.time()
        self._reap(now)
        if self.asking is not None:
            self._answer(now)
        if now >= self.next_stats:
            self.next_stats = now + self.stats_interval_s
            self.xpub.send_multipart([WORKER_STATS, protocol.pack({**self.stats(), "published": now})])

    def _subscriptions(self) -> None:
        """Clients' (un)subscriptions (XPUB passes the first subscribe and the last unsubscribe of a topic)."""
        while self.xpub.poll(0):
            message = self.xpub.recv()
            if not message:
                continue
            topic, subscribe = message[1:], message[0] == 1
            self.topics[topic] += 1 if subscribe else -1
            if self.topics[topic] <= 0:
                del self.topics[topic]
            for link in self.links.values():
                if topic != WORKER_STATS:
                    link.sub.setsockopt(zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE, topic)

    def _motion(self, sock: zmq.Socket, replica_id: str) -> None:
        for _ in range(10000):
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(parts) != 2:
                continue
            topic, body = parts
            if topic == WORKER_STATS:
                try:
                    with self.lock:
                        self.router.report(replica_id, protocol.unpack(body), time.time())
                except Exception as e:  # a replica's stats we cannot read: it stays as it was
                    self._count("replica_stats", e)
                continue
            session, _, kind = topic.decode(errors="replace").partition("/")
            owner, closing = self.router.owner(session), self.closing.get(session)
            last_owner = closing is not None and closing[0] == replica_id
            if owner != replica_id and not last_owner:
                continue  # not (or no longer) this replica's session
            if kind == "stats" and _closed(body):  # ended, or closed by the replica (idle, a failure)
                with self.lock:
                    self.closing.pop(session, None)
                    if owner == replica_id:  # placed nowhere now (also where a report re-placed it while closing)
                        self.router.forget(session)
            self.xpub.send_multipart(parts)
            self.forwarded["motion"] += 1

    def _drain_audio(self) -> None:
        for _ in range(1000):  # bounded so control and motion are never starved
            try:
                parts = self.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._route_audio(parts)
            except ProtocolError as e:
                self._count(e.kind, e)

    def _route_audio(self, parts: list[bytes]) -> None:
        """The message to its session's replica, read only as far as routing needs (the replica checks the rest
        and counts what is wrong on the session)."""
        if len(parts) != 1:
            raise ProtocolError("multipart", f"audio message in {len(parts)} parts; send one msgpack frame")
        msg = protocol.unpack_map(parts[0], self.max_message_bytes)
        session = protocol.check_session(msg.get("session"))
        if msg.get("type") == "end":
            owner = self.router.owner(session)
            if owner is not None:
                self._send_audio(owner, parts[0])
                with self.lock:
                    self.closing[session] = (owner, time.time())
                    self.router.forget(session)
            return
        with self.lock:
            replica_id = self.router.place(session, time.time())
        if replica_id is None:
            raise ProtocolError("no_replica", f"no live replica to take session {session}")
        self._send_audio(replica_id, parts[0])

    def _send_audio(self, replica_id: str, raw: bytes) -> None:
        try:
            self.links[replica_id].push.send(raw, zmq.NOBLOCK)
            self.forwarded["audio"] += 1
        except (zmq.Again, KeyError):
            self._count("replica_full", None)

    def _control(self, parts: list[bytes]) -> bytes | None:
        """A control request: answered here (stats without a session: the ingress itself, for all replicas;
        errors), or None when it went on to the replica it concerns (describe: any), whose answer `_answer` passes
        back. The loop goes on meanwhile: a replica slow to answer holds up no one's audio or motion."""
        try:
            if len(parts) != 1:
                raise ProtocolError("multipart", f"control request in {len(parts)} parts; send one msgpack frame")
            req = protocol.parse_control(parts[0])
            kind, session = req["type"], req.get("session")
            if kind == "stats" and session is None:
                return protocol.reply_ok(**self.stats())
            placed = False
            with self.lock:
                if kind == "describe":
                    replica_id = next((r.id for r in self.router.replicas.values() if r.live), None)
                elif kind == "open":
                    placed = self.router.owner(session) is None
                    replica_id = self.router.place(session, time.time())
                else:
                    replica_id = self.router.owner(session)
                    if replica_id is None:
                        raise ProtocolError("unknown_session", f"no open session {session!r}", session)
            if replica_id is None or replica_id not in self.links:
                if placed and replica_id is not None:
                    with self.lock:
                        self.router.forget(session)
                raise ProtocolError("no_replica", "no live replica to answer")
            link = self.links[replica_id]
            if link.req is None:
                link.req = self.ctx.socket(zmq.REQ)
                link.req.setsockopt(zmq.LINGER, 0)
                link.req.connect(self.router.replicas[replica_id].endpoints["control"])
            link.req.send(parts[0])
            self.asking = Asking(replica_id, kind, session, time.time() + self.control_timeout_s, link.req, placed)
            return None
        except ProtocolError as e:
            self._count(e.kind, e)
            return protocol.reply_error(e)
        except Exception as e:  # a bug must cost one request, not the ingress
            log.exception("failed on a control request")
            return protocol.reply_error(ProtocolError("internal_error", f"{type(e).__name__}: {e}"))

    def _answer(self, now: float) -> None:
        """The replica's answer to the request in flight, or an error once it is overdue (or the replica gone)."""
        asking = self.asking
        answered = asking.sock.poll(0) if not asking.sock.closed else False
        if not answered and now < asking.deadline and asking.replica_id in self.links:
            return
        self.asking = None
        ok = False
        if answered:
            reply = asking.sock.recv()
            ok = bool(protocol.unpack(reply).get("ok"))
            if asking.kind == "close" and ok:
                with self.lock:
                    self.closing[asking.session] = (asking.replica_id, now)
                    self.router.forget(asking.session)
            self.forwarded["control"] += 1
        else:
            link = self.links.get(asking.replica_id)
            if link is not None and link.req is asking.sock:
                link.req = None  # a REQ whose answer never came must be remade
            asking.sock.close(0)
            error = ProtocolError("no_replica", f"replica {asking.replica_id} did not answer within "
                                                f"{self.control_timeout_s:g} s", asking.session)
            self._count(error.kind, error)
            reply = protocol.reply_error(error)
        if asking.placed and not ok:  # the replica did not open it: placed nowhere again
            with self.lock:
                if self.router.owner(asking.session) == asking.replica_id:
                    self.router.forget(asking.session)
        self.rep.send(reply)

    def _count(self, kind: str, error: Exception | None) -> None:
        if not self.errors[kind]:
            log.warning("ingress: %s (%s); further ones are only counted", kind, error)
        self.errors[kind] += 1

    # --- stats --------------------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """The ingress's `_worker/stats` body: the sessions and frames of all replicas, and the replicas."""
        now = time.time()
        with self.lock:  # called from other threads too (Ray Serve's), while the loop adds to `closing`
            for session in [s for s, (_, at) in self.closing.items() if now - at > CLOSING_KEEP_S]:
                del self.closing[session]
            replicas = [r.summary() for r in self.router.replicas.values()]
            sessions = sorted(self.router.owners)
            moved = dict(self.router.moved)
            placed = dict(self.router.owners)
        return {"sessions": sessions, "frames": sum(r["frames"] for r in replicas), "errors": dict(self.errors),
                "replicas": replicas, "placement": placed, "moved": moved, "forwarded": dict(self.forwarded),
                "uptime_s": round(now - self.started, 3), "cpu_s": round(time.process_time(), 3)}

    def close(self) -> None:
        for replica_id in list(self.links):
            self._unlink(replica_id)
        for sock in ("pull", "xpub", "rep"):
            if hasattr(self, sock):
                getattr(self, sock).close()
        if self.own_context:
            self.ctx.destroy(0)


def _closed(body: bytes) -> bool:
    try:
        return bool(protocol.unpack(body).get("closed"))
    except Exception:
        return False
