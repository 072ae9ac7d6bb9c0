"""The jitter buffer's re-alignment seen through the worker, driven step by step with an explicit clock: a track that
resumes behind the other after a pause keeps flowing (before: every one of its later chunks was refused as late)."""
import time

import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import EnergyGenerator

ANY_PORT = dict(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*", control="tcp://127.0.0.1:*")


def test_a_track_that_resumes_behind_the_other_after_a_pause_keeps_flowing():
    """Both tracks stream 1 s in real time; the partner is one chunk behind when both pause, and resumes 0.1 s after
    the voice, its t going on where it stopped. Then 10 s more of both."""
    w = Worker(WorkerConfig(**ANY_PORT), generator_factory=lambda name=None: EnergyGenerator())
    try:
        t0 = time.time()
        events = [(t0 + (k + 1) * 0.02, "self", k) for k in range(50)]
        events += [(t0 + (k + 1) * 0.02, "other", k) for k in range(49)]
        events += [(t0 + 1.5 + (k - 49) * 0.02, "self", k) for k in range(50, 550)]
        events += [(t0 + 1.6 + (k - 48) * 0.02, "other", k) for k in range(49, 549)]
        for now, track, k in sorted(events):
            w.ingest([protocol.audio_message("npc", track, k, k * 0.02, np.full(320, 0.1), 16000)], now)
            w.tick(now)
        session = w.sessions["npc"]
        assert session.errors == {}  # before: {"late": 500}, the partner lost for good
        partner = session.aligner.stats()["other"]
        assert partner["received_s"] == pytest.approx(549 * 0.02) and partner["dropped_s"] == 0 and partner["realigned"] >= 1
    finally:
        w.shutdown()
