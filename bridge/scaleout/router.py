"""Which replica serves which session: sticky once placed, new sessions on the least loaded live replica, and the
sessions of a replica that went silent moved to the others. Pure logic with the caller's clock (tests replay it).

A replica is known by what it reports: its endpoints when it registers (again and again, from whatever hosts it),
then its worker's `_worker/stats` (the sessions it holds, and its governor's tier, load and pressure). Only the
stats say the worker is alive: they come from its own loop, so a worker whose loop is stuck (a generator that
hangs) goes silent there however its host keeps registering it. A replica with no stats for `dead_after_s` is
dead: its sessions are orphaned and placed again on their next message, and it takes no new ones until its stats
come again; it is forgotten once its registrations stop too.

The replica's stats are authoritative for its sessions: one it holds that is placed nowhere is placed there (an
ingress that restarted finds its sessions where they are), and one placed there that its stats no longer list
(closed by the worker: idle, a failure) is placed nowhere again, once it has had `settle_s` to appear there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MOVED_KEPT = 4096  # sessions whose moves stats still show
MAX_PLACED = 100_000  # sessions placed at once: beyond it new ones are refused (a flood of invented names)


@dataclass
class Replica:
    id: str
    endpoints: dict  # audio_in, motion_out, control: where its worker listens
    seen: float  # when its worker last reported (its registration, until the first report)
    registered: float = 0.0  # when its host last registered it
    live: bool = True  # reported within dead_after_s: it may take sessions
    sessions: set[str] = field(default_factory=set)  # what its worker says it holds
    tier: str | None = None
    tier_rank: int = 0  # 0: its best tier; higher: stepped down (under load)
    load: float = 0.0  # the governor's smoothed tick time over its budget
    pressure: list[str] = field(default_factory=list)
    frames: int = 0  # published by its worker so far

    def summary(self) -> dict:
        return {"id": self.id, "endpoints": dict(self.endpoints), "sessions": sorted(self.sessions),
                "tier": self.tier, "load": round(self.load, 4), "pressure": list(self.pressure),
                "frames": self.frames, "live": self.live}


class Router:
    def __init__(self, dead_after_s: float = 1.5, tiers: list[str] | None = None, settle_s: float = 2.0,
                 max_placed: int = MAX_PLACED):
        """`tiers`: the tier names best first (calibration/tiers.toml), to rank a replica's tier by. `settle_s`: how
        long a session placed on a replica may be missing from its stats (its open or first audio on the way)."""
        self.dead_after_s, self.settle_s, self.max_placed = dead_after_s, settle_s, max_placed
        self.tiers = list(tiers or [])
        self.replicas: dict[str, Replica] = {}
        self.owners: dict[str, str] = {}  # session -> replica id
        self.placed_at: dict[str, float] = {}  # session -> when it was placed
        # session -> times its replica died under it (kept after it ends, the oldest forgotten beyond MOVED_KEPT)
        self.moved: dict[str, int] = {}

    def register(self, replica_id: str, endpoints: dict, now: float) -> bool:
        """A replica's host says where its worker listens (again and again: a restarted ingress learns it anew).
        True when it is new here (or came back with other endpoints: a restarted replica is a new one). This is
        no sign of life: only the worker's own stats are (report)."""
        known = self.replicas.get(replica_id)
        if known is not None and known.endpoints == endpoints:
            known.registered = now
            return False
        if known is not None:
            self.drop(replica_id)
        self.replicas[replica_id] = Replica(replica_id, dict(endpoints), now, registered=now)
        return True

    def report(self, replica_id: str, stats: dict, now: float) -> None:
        """A replica's `_worker/stats` body: its worker's loop is alive, and holds these sessions."""
        replica = self.replicas.get(replica_id)
        if replica is None:
            return
        replica.seen, replica.live = now, True
        replica.sessions = set(stats.get("sessions", ()))
        replica.frames = int(stats.get("frames", 0))
        for session in replica.sessions - set(self.owners):  # held there but placed nowhere: a restarted ingress
            self._own(session, replica_id, now)  # learns where its sessions are
        for session in [s for s, owner in self.owners.items() if owner == replica_id and s not in replica.sessions
                        and now - self.placed_at.get(s, now) > self.settle_s]:
            self.forget(session)  # closed there (idle, a failure) without the ingress seeing it
        governor = stats.get("governor") or {}
        replica.tier = governor.get("tier")
        replica.tier_rank = self.tiers.index(replica.tier) if replica.tier in self.tiers else 0
        replica.load = float(governor.get("load") or 0.0)
        replica.pressure = list(governor.get("pressure") or ())

    def reap(self, now: float) -> list[str]:
        """The replicas whose workers are silent for dead_after_s lose their sessions and take no new ones; those
        no longer registered either are dropped: their ids."""
        for replica in self.replicas.values():
            if replica.live and now - replica.seen > self.dead_after_s:
                replica.live = False
                self._orphan(replica.id)
        dead = [r.id for r in self.replicas.values()
                if not r.live and now - max(r.registered, r.seen) > self.dead_after_s]
        for replica_id in dead:
            self.drop(replica_id)
        return dead

    def drop(self, replica_id: str) -> None:
        self.replicas.pop(replica_id, None)
        self._orphan(replica_id)

    def _orphan(self, replica_id: str) -> None:
        for session in [s for s, owner in self.owners.items() if owner == replica_id]:
            self.forget(session)
            self.moved[session] = self.moved.pop(session, 0) + 1
            if len(self.moved) > MOVED_KEPT:
                del self.moved[next(iter(self.moved))]

    def owner(self, session: str) -> str | None:
        return self.owners.get(session)

    def place(self, session: str, now: float) -> str | None:
        """The session's replica: its owner while that lives, else the least loaded live one (None: none live, or
        max_placed sessions placed already)."""
        owner = self.owners.get(session)
        if owner is not None:
            return owner
        live = [r for r in self.replicas.values() if r.live]
        if not live or len(self.owners) >= self.max_placed:
            return None
        counts = {r.id: 0 for r in live}
        for owner in self.owners.values():
            if owner in counts:
                counts[owner] += 1
        # under pressure last; then stepped down least; then fewest sessions; then lightest ticks
        best = min(live, key=lambda r: (bool(r.pressure), r.tier_rank, counts[r.id],
                                        r.load if math.isfinite(r.load) else math.inf, r.id))
        self._own(session, best.id, now)
        return best.id

    def _own(self, session: str, replica_id: str, now: float) -> None:
        self.owners[session] = replica_id
        self.placed_at[session] = now

    def forget(self, session: str) -> None:
        self.owners.pop(session, None)
        self.placed_at.pop(session, None)
