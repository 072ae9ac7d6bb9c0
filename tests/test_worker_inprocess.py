"""The worker driven step by step in this process, where the test must see inside: batching and session limits."""
import time
from types import SimpleNamespace

import msgpack
import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.outputs import Sink
from backchannel.bridge.protocol import ProtocolError
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import EnergyGenerator, energy_factory, push_socket

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
    w = Worker(WorkerConfig(**ANY_PORT, generators=("broken",)), generator_factory=energy_factory)
    yield w
    w.shutdown()


def chunk(session, track, seq=0, seconds=0.1, token=None):
    return [protocol.audio_message(session, track, seq, seq * seconds, np.full(int(16000 * seconds), 0.1), 16000,
                                   token=token)]


def request(worker, kind, **fields) -> dict:
    """A control request as bytes on the wire would make it: parsed, answered, unpacked."""
    return protocol.unpack(worker.handle_control([protocol.control_request(kind, **fields)], time.time()))


def stream_into(worker, name, seconds, first_seq=0):
    """`seconds` of both tracks (0.1 s chunks) into a session, a tick after each."""
    for seq in range(first_seq, first_seq + round(seconds * 10)):
        now = time.time()
        worker.ingest(chunk(name, "self", seq), now)
        worker.ingest(chunk(name, "other", seq), now)
        worker.tick(now)


class Recorder(Sink):
    """A worker output that counts the frames it is given, per session."""

    name = "recorder"

    def __init__(self):
        self.frames: dict[str, int] = {}

    def send(self, session, block):
        self.frames[session] = self.frames.get(session, 0) + len(block)

    def stats(self):
        return dict(self.frames)

    def close(self):
        pass


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
    assert request(worker, "open", session="d")["error"] == "too_many_sessions"  # `open` counts the same
    assert "d" not in worker.sessions and worker.errors["too_many_sessions"] == 2
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
    token = worker.control({"type": "open", "session": "npc"}, opened)["token"]
    first = opened + 10.0
    worker.ingest(chunk("npc", "self", token=token), first)
    worker.tick(first + 0.001)  # the partner's first chunk is on its way
    worker.ingest(chunk("npc", "other", token=token), first + 0.002)
    worker.tick(first + 0.002)
    session = worker.sessions["npc"]
    assert session.errors == {} and session.stats()["tracks"]["other"]["concealed_s"] == 0
    assert session.stats()["audio_s"] == pytest.approx(0.1) and session.next_seq == 3


def test_time_the_worker_spends_itself_does_not_count_against_the_senders_deadline(monkeypatch):
    """A control request that takes long (opening a session whose generator is slow to open a stream) while both
    tracks stream: the partner's chunk that came in meanwhile was waiting unread in the socket, so it did not miss
    its deadline and must not be concealed and then refused as late."""
    import zmq

    from backchannel.bridge import worker as worker_module

    clock = [100.0]
    monkeypatch.setattr(worker_module, "time", SimpleNamespace(time=lambda: clock[0], process_time=time.process_time,
                                                                perf_counter=time.perf_counter))
    audio = [chunk("live", track, seq, seconds=0.02) for seq in range(2) for track in ("self", "other")]

    class SlowToOpen(EnergyGenerator):
        name = "slow"

        def open_stream(self, seed=0, style=None):  # 100 ms pass, and the partner's chunk 1 arrives meanwhile
            clock[0] += 0.1
            push.send(audio[3][0])
            return super().open_stream(seed, style)

    def factory(name=None):
        return SlowToOpen() if name == "slow" else EnergyGenerator()

    w = Worker(WorkerConfig(**ANY_PORT, generators=("slow",)), generator_factory=factory)
    push, req = push_socket(w.local_audio, w.ctx), w.ctx.socket(zmq.REQ)
    req.connect(w.endpoints["control"])
    try:
        for parts in audio[:2]:
            push.send(parts[0])
        w.step(1000)  # chunks 0 of both tracks, taken in at 100.0 and released
        clock[0] = 100.02
        push.send(audio[2][0])  # self chunk 1, on time
        req.send(protocol.control_request("open", session="other-npc", generator="slow"))
        assert w.local_pull.poll(1000) and w.rep.poll(1000)
        w.step(0)  # takes in self chunk 1, then opens the slow session
        w.step(0)  # takes in other chunk 1
        assert protocol.unpack(req.recv())["ok"]
        live = w.sessions["live"]
        assert live.errors == {}  # before: {"late": 1}, the partner's chunk replaced by silence
        assert live.stats()["tracks"]["other"]["concealed_s"] == 0 and live.aligner.released == 640
    finally:
        push.close(0), req.close(0)
        w.shutdown()


def test_a_set_the_generator_refuses_is_answered_with_an_error_and_the_session_goes_on(worker):
    stream_into(worker, "npc", 1.0)
    session = worker.sessions["npc"]
    old_stream, frames = session.stream, session.next_seq
    assert request(worker, "set", session="npc", seed=-1)["error"] == "bad_seed"
    out_of_range = request(worker, "set", session="npc", style={"expressiveness": 1e300})
    assert out_of_range["error"] == "bad_style" and "outside 0..3" in out_of_range["message"]
    refused = request(worker, "set", session="npc", style={"expressiveness": 2.5})  # EnergyGenerator refuses it
    assert refused["error"] == "generator_error" and "nothing changed" in refused["message"]
    assert worker.sessions["npc"] is session and session.stream is old_stream and session.style == {}
    stream_into(worker, "npc", 0.5, first_seq=10)  # before: the next tick closed the session as generator_error
    assert "npc" in worker.sessions and session.next_seq == frames + 15 and session.errors == {}


def test_a_set_starts_the_new_stream_a_second_back_so_it_takes_over_warm(worker):
    stream_into(worker, "npc", 2.5)
    session = worker.sessions["npc"]
    published = session.next_seq
    reply = request(worker, "set", session="npc", seed=4)
    assert reply["ok"] and reply["seed"] == 4
    start = session.frame_offset  # the new stream's frame 0: on the 0.1 s grid, at least 1 s before the takeover
    assert start % 3 == 0 and published - 33 < start <= published - 30
    assert session.stream.next + start == session.next_seq == published  # fed up to now, its early frames dropped
    stream_into(worker, "npc", 0.5, first_seq=25)
    assert session.next_seq == published + 15 and session.stream.brow == 0.4


def test_a_negative_seed_is_refused_on_open_and_at_worker_start(worker):
    assert request(worker, "open", session="npc", seed=-1)["error"] == "bad_seed"
    assert "npc" not in worker.sessions
    for bad, message in (({"seed": -1}, "default seed must be a whole number >= 0"),
                         ({"style": {"smile": "wide"}}, "default style must be a map"),
                         ({"style": {"expressiveness": -2}}, "default style expressiveness -2 is outside 0..3"),
                         ({"style": {"expressiveness": 2.5}}, "cannot open a stream with the default seed")):
        with pytest.raises(ValueError, match=message):
            Worker(WorkerConfig(**ANY_PORT, **bad), generator_factory=lambda name=None: EnergyGenerator())


def test_an_opened_session_waits_for_its_first_audio_as_long_as_the_idle_timeout(worker):
    opened = time.time()
    token = worker.control({"type": "open", "session": "npc", "seed": 7}, opened)["token"]
    worker.tick(opened + worker.config.idle_timeout_s / 2)
    worker.ingest(chunk("npc", "self", token=token), opened + worker.config.idle_timeout_s / 2)
    assert worker.sessions["npc"].seed == 7  # it waited for its first audio
    later = opened + 10 * worker.config.idle_timeout_s
    worker.tick(later)
    assert "npc" not in worker.sessions
    worker.control({"type": "open", "session": "quiet"}, later)
    worker.tick(later + worker.config.idle_timeout_s + 1)
    assert "quiet" not in worker.sessions  # opened and never sent audio: it times out too (it held a place)


def test_shutdown_takes_in_the_audio_still_waiting_in_the_socket():
    """SIGTERM arrives while audio is queued unread: it is served, and its last frames go out, before the exit."""
    recorder = Recorder()
    w = Worker(WorkerConfig(**ANY_PORT), generator_factory=lambda name=None: EnergyGenerator(), sinks=[recorder])
    push = push_socket(w.local_audio, w.ctx)
    for seq in range(10):
        for track in ("self", "other"):
            push.send(chunk("late", track, seq)[0])
    w.shutdown()
    push.close(0)
    assert recorder.frames == {"late": 30}  # before: the session never opened, its second of audio lost


def queued_all_at_once(session: str, messages: list[bytes], **config) -> tuple[dict, dict]:
    """Queue the messages (then `end`) before the worker takes any, step it until the session closes: the frames
    it published and the errors it counted."""
    recorder = Recorder()
    w = Worker(WorkerConfig(**ANY_PORT, **config), generator_factory=lambda name=None: EnergyGenerator(),
               sinks=[recorder])
    push = push_socket(w.local_audio, w.ctx)
    for message in messages + [protocol.end_message(session)]:
        push.send(message)
    deadline = time.time() + 30
    while session not in recorder.frames or session in w.sessions:
        assert time.time() < deadline, (recorder.frames, w.errors)
        w.step()
    push.close(0)
    w.shutdown()
    return recorder.frames, dict(w.errors)


def test_audio_sent_faster_than_the_worker_takes_it_waits_in_the_socket_and_none_is_lost():
    """A file streamed flat out to a busy worker: far more audio queued than a track may buffer (max_buffer_s).
    Before: the first drain took 1000 messages, 10 s a track, and refused them as buffer_full."""
    both = [chunk("burst", track, seq, seconds=0.02)[0] for seq in range(400) for track in ("self", "other")]  # 8 s
    assert queued_all_at_once("burst", both, max_buffer_s=2.0) == ({"burst": 240}, {})


def test_one_track_sent_faster_than_real_time_flows_and_none_is_lost():
    """A game that sends only the avatar's voice, a file flat out: the worker stops reading to pace it, and its silent
    partner track must still stop holding it back (before: nothing was released, then all of it refused)."""
    solo = [chunk("solo", "self", seq, seconds=0.02)[0] for seq in range(400)]  # 8 s
    assert queued_all_at_once("solo", solo, max_buffer_s=2.0) == ({"solo": 240}, {})


def test_two_tracks_in_chunks_longer_than_half_the_buffer_lose_nothing():
    """Each track's 6 s chunk in turn (44.1 kHz): the worker stops reading after each to pace the buffer, and the
    partner whose chunk is next in the socket must not be given up on meanwhile."""
    long = [protocol.audio_message("long", track, seq, 6.0 * seq, np.full(6 * 44100, 0.1), 44100)
            for seq in range(3) for track in ("self", "other")]
    assert queued_all_at_once("long", long) == ({"long": 540}, {})


def test_a_refused_chunk_changes_nothing_no_session_opened_no_rate_fixed(worker):
    """Refused audio must leave no trace: before, a refused first chunk opened a session that never timed out (a
    careless client could fill max_sessions) and fixed its track's rate."""
    now = time.time()
    for name in ("a", "b", "c", "d"):  # four new names, max_sessions 3, each first chunk longer than the buffer
        worker.ingest([protocol.audio_message(name, "self", 0, 0.0, np.zeros(16000 * 12), 16000)], now)
    assert worker.sessions == {} and worker.errors == {"buffer_full": 4}
    worker.ingest(chunk("npc", "other"), now)
    worker.ingest([protocol.audio_message("npc", "self", 0, 100.0, np.zeros(480), 48000)], now)  # bad_time
    worker.ingest(chunk("npc", "self", seq=1), now)  # 16 kHz: the refused chunk's 48 kHz fixed nothing
    session = worker.sessions["npc"]
    assert session.errors == {"bad_time": 1} and session.stats()["tracks"]["self"]["rate"] == 16000


def test_a_malformed_chunk_for_an_open_session_counts_against_that_session(worker):
    worker.ingest(chunk("npc", "self"), time.time())
    nan = msgpack.packb({"v": 1, "type": "audio", "session": "npc", "track": "self", "seq": 1, "t": 0.1, "sr": 16000,
                         "format": "f32le", "pcm": np.full(160, np.nan, "<f4").tobytes()})
    worker.ingest([nan], time.time())
    assert worker.sessions["npc"].errors == {"nan_samples": 1} and worker.errors == {"nan_samples": 1}


def test_a_chunk_longer_than_the_buffer_is_refused_with_the_reason(worker):
    worker.ingest(chunk("npc", "self", seconds=12.0), time.time())
    assert worker.errors == {"buffer_full": 1} and "npc" not in worker.sessions


def test_workers_made_one_after_another_never_reuse_an_in_process_endpoint():
    """A closed socket's inproc name is released asynchronously: a worker named after a freed one (its id())
    could find the name still bound ("Address already in use"), which made this file's fixtures flaky."""
    seen = set()
    for _ in range(20):
        w = Worker(WorkerConfig(**ANY_PORT), generator_factory=energy_factory)
        seen.add(w.local_audio)
        w.shutdown()
        del w
    assert len(seen) == 20


def test_sessions_choose_generators_by_name_and_options_stay_the_operators():
    spec = "model[sampler_steps=2;backend=torch]"  # as `serve --generator` passes it
    w = Worker(WorkerConfig(**ANY_PORT, generator=spec))
    try:
        assert w.default_generator.sampling.sampler_steps == 2
        assert spec in request(w, "describe")["generators"]
        assert request(w, "open", session="a", generator=spec)["generator"] == "model"
        assert w.sessions["a"].generator is w.default_generator  # the operator's spec: the same instance
        assert request(w, "open", session="b", generator="baseline")["generator"] == "baseline"
        assert request(w, "open", session="c", generator="model")["generator"] == "model"
        assert w.sessions["c"].generator is w.default_generator  # the bare name: the operator's settings
        for spelling in ("model[sampler_steps=64]", " model", "baseline\t"):  # each would load and hold another model
            refused = request(w, "open", session="d", generator=spelling)
            assert refused["error"] == "bad_generator" and "serve --generator" in refused["message"]
        assert set(w.sessions) == {"a", "b", "c"} and len(w.generators) == 2
    finally:
        w.shutdown()


class Keeper(Sink):
    """A worker output that keeps every frame it is given, per session."""

    name = "keeper"

    def __init__(self):
        self.blocks: dict[str, list] = {}

    def send(self, session, block):
        self.blocks.setdefault(session, []).append(block.motion)

    def motion(self, session) -> np.ndarray:
        return np.concatenate(self.blocks[session])

    def stats(self):
        return {}

    def close(self):
        pass


def crowd_motion(names_and_seeds, audio) -> dict[str, np.ndarray]:
    """The baseline's published frames for sessions fed the same audio, opened with `open` (a seed if given)."""
    keeper = Keeper()
    w = Worker(WorkerConfig(**ANY_PORT), sinks=[keeper])
    try:
        tokens = {}
        for label, (name, seed) in enumerate(names_and_seeds):
            fields = {"session": name} if seed is None else {"session": name, "seed": seed}
            tokens[name] = request(w, "open", **fields)["token"]
        step = 1600
        for seq, i in enumerate(range(0, len(audio), step)):
            x = audio[i:i + step]
            now = time.time()
            for name, _ in names_and_seeds:
                for track, y in (("self", x), ("other", np.zeros_like(x))):
                    w.ingest([protocol.audio_message(name, track, seq, i / 16000, y, 16000, token=tokens[name])], now)
            w.tick(now)
        for name, _ in names_and_seeds:
            w.close_session(name, time.time())
        return {name: keeper.motion(name) for name, _ in names_and_seeds}
    finally:
        w.shutdown()


def test_sessions_not_given_a_seed_move_apart_by_name_and_a_given_seed_wins():
    from .speech import prompt

    audio = prompt("conf-onlyperson")[0][:3 * 16000]
    first = crowd_motion([("npc-1", None), ("npc-2", None), ("npc-3", 5), ("npc-4", 5)], audio)
    again = crowd_motion([("npc-1", None)], audio)
    head = slice(52, 55)
    assert np.abs(first["npc-1"][:, head] - first["npc-2"][:, head]).mean() > 0.005  # no crowd in unison
    np.testing.assert_array_equal(first["npc-1"], again["npc-1"])  # the same name: the same motion, every run
    np.testing.assert_array_equal(first["npc-3"], first["npc-4"])  # an explicit seed wins over the name
