"""`t` may run ahead only as far as real time allows: a gap after a track's audio is silence the worker generates
frames for, so a few bytes with a bogus `t` must not buy seconds of frames (before: one 81-byte chunk 29.9 s ahead
made 897 frames of silence). Contiguous audio may still come as fast as it goes, and a live sender may let `t`
jump over a pause."""
import random

import numpy as np
import pytest

from backchannel.bridge.jitter import Aligner
from backchannel.bridge.protocol import AudioChunk, ProtocolError
from backchannel.models.audio import SAMPLE_RATE


def chunk(seq: int, t: float, n: int = 320, track: str = "self", value: float = 0.5) -> AudioChunk:
    return AudioChunk("s", track, seq, t, SAMPLE_RATE, np.full(n, value, np.float32))


def released_s(al: Aligner, now: float) -> float:
    return len(al.release(now)[0]) / SAMPLE_RATE


def test_one_tiny_chunk_far_ahead_buys_no_silence():
    al = Aligner()
    al.add(chunk(0, 0.0), 0.02)
    with pytest.raises(ProtocolError) as e:
        al.add(chunk(1, 29.9, n=1), 0.04)  # one sample: 81 bytes on the wire
    assert e.value.kind == "bad_time"
    assert released_s(al, 60.0) + len(al.finish()[0]) / SAMPLE_RATE == 0.02  # before: 29.9 s, 897 frames
    with pytest.raises(ProtocolError) as e:  # nor may a session's first chunk start far into it
        Aligner().add(chunk(0, 5.0, n=1), 0.0)
    assert e.value.kind == "bad_time"


def test_a_run_of_small_jumps_buys_no_more_than_real_time_either():
    """Each jump within what a single one might get away with, sent every 50 ms and each concealed before the
    next: the timeline still grows no faster than the wall clock (before: 0.9 s of frames per 50 ms)."""
    al = Aligner()
    out, refused, now = 0.0, 0, 0.0
    for seq in range(200):
        try:
            al.add(chunk(seq, 0.9 * seq, n=1), now)
        except ProtocolError as e:
            assert e.kind == "bad_time"
            refused += 1
        out += released_s(al, now)
        now += 0.05
    assert refused > 150 and out <= now + al.time_slack_s


def test_a_live_sender_may_let_t_jump_over_a_pause():
    """Real time, 20 ms chunks; self says nothing for 5 s and its `t` jumps 5 s when it speaks again (the other
    track sent nothing in the meantime either), and a sender whose clock runs 2% fast does the same."""
    for clock in (1.0, 1.02):
        al = Aligner()
        arrivals = [((k + 1) * 0.02 / clock, chunk(k, k * 0.02)) for k in range(50)]  # 1 s
        arrivals += [((k + 1) * 0.02 / clock + 5, chunk(k, k * 0.02 + 5, value=0.25)) for k in range(50, 100)]
        out = []
        for now, c in arrivals:
            al.add(c, now)  # nothing refused
            out.append(al.release(now)[0])
        a = np.concatenate(out + [al.finish()[0]])
        assert len(a) == 7 * SAMPLE_RATE and (a[:SAMPLE_RATE] == 0.5).all() and (a[6 * SAMPLE_RATE:] == 0.25).all()
        assert not a[SAMPLE_RATE:6 * SAMPLE_RATE].any()


def test_audio_sent_faster_than_real_time_flows_however_far_ahead_it_runs():
    """A minute of both tracks in the first 0.1 s of wall time, and 3 s with lost and reordered chunks."""
    al = Aligner(max_buffer_s=61.0)
    for k in range(3000):
        now = 0.05 + k * 3e-5
        al.add(chunk(k, k * 0.02), now)
        al.add(chunk(k, k * 0.02, track="other"), now)
        al.release(now)
    assert al.released == 60 * SAMPLE_RATE and al.stats()["self"]["concealed_s"] == 0

    rng = random.Random(0)
    cs = [chunk(k, k * 0.02, track=track) for k in range(150) for track in ("self", "other")]
    kept = [c for c in cs if rng.random() > 0.05 or c.seq == 149]
    for i in range(0, len(kept) - 4, 4):
        window = kept[i:i + 4]
        rng.shuffle(window)
        kept[i:i + 4] = window
    al = Aligner()
    for i, c in enumerate(kept):
        al.add(c, i * 1e-4)  # nothing refused
    al.release(1.0)
    lost_s = (len(cs) - len(kept)) * 0.02
    stats = al.stats()
    assert al.released == 3 * SAMPLE_RATE
    assert stats["self"]["concealed_s"] + stats["other"]["concealed_s"] == pytest.approx(lost_s)
