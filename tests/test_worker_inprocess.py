"""The worker driven step by step in this process, where the test must see inside: batching and session limits."""
import time

import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.protocol import ProtocolError
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import EnergyGenerator, energy_factory

ANY_PORT = dict(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*", control="tcp://127.0.0.1:*")


@pytest.fixture
def worker():
    gen = EnergyGenerator()
    w = Worker(WorkerConfig(**ANY_PORT, max_sessions=3), generator_factory=lambda name=None: gen)
    yield w
    w.shutdown()


@pytest.fixture
def failing_worker():
    """Sessions may choose the test generator `broken`, which fails on any sound."""
    w = Worker(WorkerConfig(**ANY_PORT), generator_factory=energy_factory)
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


def fail_doomed(worker, now):
    worker.open_session("doomed", now, generator="broken")
    worker.ingest(chunk("doomed", "self", 0), now)
    worker.ingest(chunk("doomed", "other", 0), now)
    worker.tick(now)  # the generator fails on the first audio it is fed
    assert "doomed" not in worker.sessions and worker.errors["generator_error"] == 1


def test_audio_still_coming_for_a_failed_session_is_refused_until_its_client_ends_it(failing_worker):
    w, now = failing_worker, time.time()
    fail_doomed(w, now)
    for seq in (1, 2):  # the client does not know yet: these were already on the way
        w.ingest(chunk("doomed", "self", seq), now)
        w.ingest(chunk("doomed", "other", seq), now)
    w.tick(now)
    assert "doomed" not in w.sessions  # not re-opened with the default generator, a hole and frame seqs from 0
    assert w.errors["session_failed"] == 4
    with pytest.raises(ProtocolError) as e:
        w.control({"type": "stats", "session": "doomed"}, now)
    assert e.value.kind == "session_failed"
    w.ingest([protocol.end_message("doomed")], now)  # the client ends it: the name may start afresh
    w.ingest(chunk("doomed", "self", 0), now)
    assert w.sessions["doomed"].generator.name == "energy"


def test_a_failed_session_is_forgotten_on_open_close_or_idle_timeout(failing_worker):
    w, now = failing_worker, time.time()
    fail_doomed(w, now)
    w.control({"type": "open", "session": "doomed"}, now)  # reopened on purpose
    assert w.sessions["doomed"].generator.name == "energy"
    w.close_session("doomed", now)

    w.errors.clear()
    fail_doomed(w, now)
    with pytest.raises(ProtocolError) as e:  # the app's own close: told it had failed, and the refusal ends
        w.control({"type": "close", "session": "doomed"}, now)
    assert e.value.kind == "session_failed"
    w.ingest(chunk("doomed", "self", 5), now)
    assert "doomed" in w.sessions
    w.close_session("doomed", now)

    w.errors.clear()
    fail_doomed(w, now)
    w.tick(now + w.config.idle_timeout_s + 1)  # nothing came for idle_timeout_s: the client is gone
    w.ingest(chunk("doomed", "self", 0), now + w.config.idle_timeout_s + 1)
    assert "doomed" in w.sessions


def test_a_session_opened_before_its_audio_waits_for_both_tracks_to_start(worker):
    """An app opens the session (to choose a generator) well before the avatar speaks: the track not heard from yet
    gets its grace period from the session's first audio, not from the `open`."""
    opened = time.time()
    worker.control({"type": "open", "session": "npc"}, opened)
    first = opened + 10.0
    worker.ingest(chunk("npc", "self"), first)
    worker.tick(first + 0.001)  # the partner's first chunk is on its way
    worker.ingest(chunk("npc", "other"), first + 0.002)
    worker.tick(first + 0.002)
    session = worker.sessions["npc"]
    assert session.errors == {} and session.stats()["tracks"]["other"]["concealed_s"] == 0
    assert session.stats()["audio_s"] == pytest.approx(0.1) and session.next_seq == 3
