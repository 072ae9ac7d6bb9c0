"""Which replica serves which session: sticky once placed, new sessions on the least loaded live replica, and the
sessions of a replica that went silent moved to the others. Pure logic with the caller's clock (tests replay it).

A replica is known by what it reports: its endpoints when it registers, then its worker's `_worker/stats` (the
sessions it holds, and its governor's tier, load and pressure). A session a replica holds that is placed nowhere
is placed there, so an ingress that restarted finds its sessions where they are. One that has reported nothing for `dead_after_s`
is dead: its sessions are orphaned and placed again on their next message.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MOVED_KEPT = 4096  # sessions whose moves stats still show


@dataclass
class Replica:
    id: str
    endpoints: dict  # audio_in, motion_out, control: where its worker listens
    seen: float  # when it last reported
    sessions: set[str] = field(default_factory=set)  # what its worker says it holds
    tier: str | None = None
    tier_rank: int = 0  # 0: its best tier; higher: stepped down (under load)
    load: float = 0.0  # the governor's smoothed tick time over its budget
    pressure: list[str] = field(default_factory=list)
    frames: int = 0  # published by its worker so far

    def summary(self) -> dict:
        return {"id": self.id, "endpoints": dict(self.endpoints), "sessions": sorted(self.sessions),
                "tier": self.tier, "load": round(self.load, 4), "pressure": list(self.pressure),
                "frames": self.frames}


class Router:
    def __init__(self, dead_after_s: float = 1.5, tiers: list[str] | None = None):
        """`tiers`: the tier names best first (calibration/tiers.toml), to rank a replica's tier by."""
        self.dead_after_s = dead_after_s
        self.tiers = list(tiers or [])
        self.replicas: dict[str, Replica] = {}
        self.owners: dict[str, str] = {}  # session -> replica id
        # session -> times its replica died under it (kept after it ends, the oldest forgotten beyond MOVED_KEPT)
        self.moved: dict[str, int] = {}

    def register(self, replica_id: str, endpoints: dict, now: float) -> bool:
        """A replica says where it listens (again and again, as a heartbeat). True when it is new here (or came
        back with other endpoints: a restarted replica is a new one)."""
        known = self.replicas.get(replica_id)
        if known is not None and known.endpoints == endpoints:
            known.seen = now
            return False
        if known is not None:
            self.drop(replica_id)
        self.replicas[replica_id] = Replica(replica_id, dict(endpoints), now)
        return True

    def report(self, replica_id: str, stats: dict, now: float) -> None:
        """A replica's `_worker/stats` body."""
        replica = self.replicas.get(replica_id)
        if replica is None:
            return
        replica.seen = now
        replica.sessions = set(stats.get("sessions", ()))
        replica.frames = int(stats.get("frames", 0))
        for session in replica.sessions - set(self.owners):  # held there but placed nowhere: a restarted ingress
            self.owners[session] = replica_id  # learns where its sessions are
        governor = stats.get("governor") or {}
        replica.tier = governor.get("tier")
        replica.tier_rank = self.tiers.index(replica.tier) if replica.tier in self.tiers else 0
        replica.load = float(governor.get("load") or 0.0)
        replica.pressure = list(governor.get("pressure") or ())

    def reap(self, now: float) -> list[str]:
        """Drop the replicas silent for dead_after_s; their ids."""
        dead = [r.id for r in self.replicas.values() if now - r.seen > self.dead_after_s]
        for replica_id in dead:
            self.drop(replica_id)
        return dead

    def drop(self, replica_id: str) -> None:
        self.replicas.pop(replica_id, None)
        for session in [s for s, owner in self.owners.items() if owner == replica_id]:
            del self.owners[session]
            self.moved[session] = self.moved.pop(session, 0) + 1
            if len(self.moved) > MOVED_KEPT:
                del self.moved[next(iter(self.moved))]

    def owner(self, session: str) -> str | None:
        return self.owners.get(session)

    def place(self, session: str) -> str | None:
        """The session's replica: its owner while that lives, else the least loaded live one (None: none)."""
        owner = self.owners.get(session)
        if owner is not None:
            return owner
        if not self.replicas:
            return None
        counts = {r: 0 for r in self.replicas}
        for owner in self.owners.values():
            counts[owner] += 1
        # under pressure last; then stepped down least; then fewest sessions; then lightest ticks
        best = min(self.replicas.values(), key=lambda r: (bool(r.pressure), r.tier_rank, counts[r.id],
                                                          r.load if math.isfinite(r.load) else math.inf, r.id))
        self.owners[session] = best.id
        return best.id

    def forget(self, session: str) -> None:
        self.owners.pop(session, None)
