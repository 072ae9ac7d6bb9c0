"""The worker driven step by step in this process, where the test must see inside: batching and session limits."""
import time

import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import EnergyGenerator


@pytest.fixture
def worker():
    gen = EnergyGenerator()
    w = Worker(WorkerConfig(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*",
                            control="tcp://127.0.0.1:*", max_sessions=3), generator_factory=lambda name=None: gen)
    yield w
    w.shutdown()


def chunk(session, track, seq=0, seconds=0.1):
    return [protocol.audio_message(session, track, seq, seq * seconds, np.full(int(16000 * seconds), 0.1), 16000)]


def test_one_tick_feeds_every_session_with_new_audio_in_one_batch(worker):
    now = time.time()
    for name in ("a", "b", "c"):
        worker.ingest(chunk(name, "self"), now)
        worker.ingest(chunk(name, "other"), now)
    worker.tick(now)
    assert worker.default_generator.batches == [3]
    assert {s.next_seq for s in worker.sessions.values()} == {3}  # 0.1 s each, frames out


def test_sessions_beyond_the_limit_are_refused_and_counted(worker):
    now = time.time()
    for name in ("a", "b", "c", "d"):
        worker.ingest(chunk(name, "self"), now)
    assert sorted(worker.sessions) == ["a", "b", "c"]
    assert worker.errors["too_many_sessions"] == 1
    worker.close_session("a", now)
    worker.ingest(chunk("d", "self"), now)
    assert "d" in worker.sessions
