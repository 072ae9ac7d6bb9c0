"""A flood of tiny chunks, each with a hole before it: every chunk costs O(log n), and a track holds at most
`max_pending` chunks waiting for a hole (before: 20,000 such chunks froze a worker for 13 s, summing and scanning
every waiting chunk on each add and in the release loop)."""
import time
from collections import Counter

import numpy as np

from backchannel.bridge.jitter import Aligner
from backchannel.bridge.protocol import AudioChunk, ProtocolError
from backchannel.models.audio import SAMPLE_RATE

N = 20000


def one_sample_chunks(n: int, holes: bool, track: str = "self") -> list[AudioChunk]:
    """n one-sample chunks, with a one-sample hole before each (`holes`) or back to back."""
    step = 2 if holes else 1
    return [AudioChunk("s", track, i, (step * i + step - 1) / SAMPLE_RATE, SAMPLE_RATE, np.full(1, 0.5, np.float32))
            for i in range(n)]


def feed(aligner: Aligner, chunks: list[AudioChunk]) -> tuple[float, Counter, np.ndarray]:
    """As a worker behind its socket takes them: stamped as they come (real time), deadlines judged as of the start
    (so every hole keeps waiting) with a release every 100 chunks; then one release after every deadline.
    Returns the seconds it took, the refusals and the first track's released audio."""
    errors: Counter = Counter()
    start = time.perf_counter()
    for i, chunk in enumerate(chunks):
        try:
            aligner.add(chunk, chunk.t)
        except ProtocolError as e:
            errors[e.kind] += 1
        if i % 100 == 0:
            aligner.release(0.0)
    a, _ = aligner.release(10.0)
    return time.perf_counter() - start, errors, a


def test_a_flood_of_chunks_after_holes_costs_about_what_the_same_chunks_back_to_back_cost():
    flood_s, errors, a = feed(Aligner(max_pending=N), one_sample_chunks(N, holes=True))
    assert not errors
    assert len(a) == 2 * N and a[1::2].all() and not a[0::2].any()  # each hole concealed, each sample in place
    reference_s, errors, a = feed(Aligner(max_pending=N), one_sample_chunks(N, holes=False))
    assert not errors and len(a) == N and a.all()
    # before: 35 s against 0.6 s for the reference on a 2-core machine; generous for a loaded one
    assert flood_s < max(2.0, 5 * reference_s), (flood_s, reference_s)


def test_the_chunks_a_track_holds_for_a_hole_are_capped_and_the_rest_of_the_session_flows():
    al = Aligner()  # max_pending 4096
    errors: Counter = Counter()
    for chunk in one_sample_chunks(N, holes=True)[:8000]:  # 1 s of flood in 1 s, no deadline passing meanwhile
        try:
            al.add(chunk, chunk.t)
        except ProtocolError as e:
            errors[e.kind] += 1
    assert errors == {"buffer_full": 8000 - 4096}  # before: all 8000 taken, with no bound but max_buffer_s
    # the partner track is not held up: its audio is taken and comes out in place beside the flood's
    other = np.sin(np.arange(8000, dtype=np.float32) / 10)
    for i in range(0, 8000, 320):
        al.add(AudioChunk("s", "other", i, i / SAMPLE_RATE, SAMPLE_RATE, other[i:i + 320]), i / SAMPLE_RATE + 0.02)
    a, b = al.release(20.0)
    assert len(a) == 2 * 4096 and a[1::2].all()
    np.testing.assert_array_equal(b[:8000], other)
    # the holes concealed, the flooded track takes chunks again; another session never noticed
    al.add(AudioChunk("s", "self", N, len(a) / SAMPLE_RATE, SAMPLE_RATE, np.ones(320, np.float32)), 20.0)
    assert al.release(21.0)[0].all()
    fresh = Aligner()
    fresh.add(AudioChunk("t", "self", 0, 0.0, SAMPLE_RATE, np.ones(320, np.float32)), 0.0)
    assert len(fresh.release(1.0)[0]) == 320
