"""One replica's worker, running on a thread of its own so that whatever hosts it (a Ray Serve replica, a test)
stays free to answer: a Worker bound to free ports on `host`, publishing its stats every `stats_interval_s` (the
ingress's heartbeat and load report)."""
from __future__ import annotations

import threading
from dataclasses import replace

from backchannel.bridge.worker import Worker, WorkerConfig

HEARTBEAT_S = 0.25  # the replicas' stats interval: the ingress declares one dead after several missed


class ReplicaWorker:
    def __init__(self, config: WorkerConfig | None = None, host: str = "127.0.0.1", generator_factory=None):
        any_port = f"tcp://{host}:*"
        config = replace(config or WorkerConfig(), audio_in=any_port, motion_out=any_port, control=any_port,
                         stats_interval_s=HEARTBEAT_S)
        self.worker = Worker(config, generator_factory) if generator_factory else Worker(config)
        self.endpoints = dict(self.worker.endpoints)
        self.thread = threading.Thread(target=self.worker.run, name="backchannel-replica", daemon=True)
        self.thread.start()

    def silent_for(self, now: float) -> float:
        """Seconds since the worker's loop last published its stats (it does every HEARTBEAT_S while it ticks)."""
        return now - (self.worker.next_stats - self.worker.config.stats_interval_s)

    def stop(self, graceful: bool = True) -> None:
        """graceful: sessions are closed and their last frames published, as `serve` does on SIGTERM. Otherwise
        the sockets just close, as when the process dies (tests use it to stand for a crash)."""
        self.worker.stopping = True
        self.thread.join(5.0)
        if graceful:
            self.worker.shutdown()
        else:
            self.worker.close()
