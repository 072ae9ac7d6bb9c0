"""The jitter buffer on its own, with an explicit clock, so every deadline is exact."""
import numpy as np
import pytest

from backchannel.bridge.jitter import Aligner
from backchannel.bridge.protocol import AudioChunk, ProtocolError
from backchannel.models.audio import SAMPLE_RATE, resample

JITTER = 0.04


def tone(seconds: float, rate: int = SAMPLE_RATE, freq: float = 300.0, start: float = 0.0) -> np.ndarray:
    t = start + np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chunks(track: str, audio: np.ndarray, rate: int = SAMPLE_RATE, size: int = 320) -> list[AudioChunk]:
    return [AudioChunk("s", track, i, start / rate, rate, audio[start:start + size])
            for i, start in enumerate(range(0, len(audio), size))]


def run(aligner: Aligner, arrivals: list[tuple[float, AudioChunk]], until: float) -> tuple[np.ndarray, np.ndarray]:
    """Feed chunks at their arrival times, releasing every 5 ms, then finish."""
    out_a, out_b = [], []
    arrivals = sorted(arrivals, key=lambda x: x[0])
    now, i = 0.0, 0
    while now <= until:
        while i < len(arrivals) and arrivals[i][0] <= now:
            aligner.add(arrivals[i][1], now)
            i += 1
        a, b = aligner.release(now)
        out_a.append(a)
        out_b.append(b)
        now += 0.005
    a, b = aligner.finish()
    return np.concatenate(out_a + [a]), np.concatenate(out_b + [b])


def test_in_order_tracks_come_out_aligned_and_untouched():
    x, y = tone(0.5), tone(0.5, freq=500)
    arrivals = [(c.t, c) for c in chunks("self", x)] + [(c.t, c) for c in chunks("other", y)]
    a, b = run(Aligner(JITTER), arrivals, 0.6)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, y)


def test_release_waits_for_both_tracks_then_goes_at_once():
    al = Aligner(JITTER)
    x = tone(0.1)
    s, o = chunks("self", x), chunks("other", x)
    al.add(s[0], 0.0)
    assert len(al.release(0.001)[0]) == 0  # the other track may still come
    al.add(o[0], 0.002)
    a, b = al.release(0.002)
    assert len(a) == len(b) == 320


def test_reordered_chunks_within_the_deadline_are_put_back_in_place():
    x, y = tone(1.0), tone(1.0, freq=700)
    rng = np.random.default_rng(0)
    arrivals = [(c.t + rng.uniform(0, 0.03), c) for c in chunks("self", x) + chunks("other", y)]
    a, b = run(Aligner(JITTER), arrivals, 1.2)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, y)


def test_a_lost_chunk_is_concealed_as_silence_and_the_rest_stays_in_place():
    x = tone(0.5)
    cs = chunks("self", x)
    lost = cs.pop(10)
    al = Aligner(JITTER)
    a, b = run(al, [(c.t, c) for c in cs] + [(c.t, c) for c in chunks("other", x)], 0.6)
    assert len(a) == len(x)
    expected = x.copy()
    expected[320 * 10:320 * 11] = 0
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(b, x)
    assert al.stats()["self"]["concealed_s"] == pytest.approx(len(lost.samples) / SAMPLE_RATE)


def test_duplicates_and_late_chunks_are_refused():
    al = Aligner(JITTER)
    cs = chunks("self", tone(0.2))
    al.add(cs[0], 0.0)
    with pytest.raises(ProtocolError) as e:
        al.add(cs[0], 0.001)
    assert e.value.kind == "duplicate"
    al.add(cs[2], 0.04)  # cs[1] is lost; the other track never sends
    al.release(0.2)  # past every deadline: the hole is concealed and released
    with pytest.raises(ProtocolError) as e:
        al.add(cs[1], 0.21)
    assert e.value.kind == "late"


def test_a_session_with_one_track_flows_without_waiting_after_the_first_deadline():
    al = Aligner(JITTER)
    cs = chunks("self", tone(0.3))
    al.add(cs[0], 0.0)
    assert len(al.release(0.0)[0]) == 0  # the other track might still start
    a, b = al.release(JITTER)
    assert len(a) == 320 and not b.any()
    for i, c in enumerate(cs[1:], 1):  # from now on each chunk goes out the moment it arrives
        al.add(c, c.t + 0.02)
        a, b = al.release(c.t + 0.02)
        assert len(a) == len(c.samples) and not b.any()


def test_a_track_that_goes_quiet_stops_holding_the_other_and_rejoins_in_place():
    x = tone(1.0)
    y = tone(1.0, freq=600)
    other = [c for c in chunks("other", y) if not 0.3 <= c.t < 0.6]  # the partner's app sends nothing for 0.3 s
    a, b = run(Aligner(JITTER), [(c.t + 0.02, c) for c in chunks("self", x)]
               + [(c.t + 0.02, c) for c in other], 1.2)
    np.testing.assert_array_equal(a, x)
    expected = y.copy()
    expected[int(0.3 * SAMPLE_RATE):int(0.6 * SAMPLE_RATE)] = 0
    np.testing.assert_array_equal(b, expected)


def test_tracks_at_different_rates_are_aligned_on_t():
    x16 = tone(0.5, freq=440)
    x48 = tone(0.5, rate=48000, freq=440)  # the same sound at 48 kHz
    arrivals = [(c.t, c) for c in chunks("self", x16)] + [(c.t, c) for c in chunks("other", x48, 48000, 960)]
    a, b = run(Aligner(JITTER), arrivals, 0.6)
    assert len(a) == len(b) == len(x16)
    np.testing.assert_allclose(b, resample(x48, 48000), atol=1e-6)
    assert np.abs(a[200:-200] - b[200:-200]).max() < 0.01  # same sound, same place


def test_a_track_that_starts_late_is_placed_at_its_t():
    al = Aligner(JITTER)
    x = tone(0.4)
    late_start = AudioChunk("s", "other", 0, 0.2, 48000, tone(0.1, rate=48000, start=0.2))
    arrivals = [(c.t, c) for c in chunks("self", x)] + [(0.01, late_start)]
    a, b = run(al, arrivals, 0.5)
    assert len(b) == len(x)
    assert not b[:3000].any()  # silence before the track's own start
    np.testing.assert_allclose(b[3300:4600], x[3300:4600], atol=0.01)


def test_bounds_protect_memory():
    al = Aligner(JITTER, max_ahead_s=30.0, max_buffer_s=1.0)
    with pytest.raises(ProtocolError) as e:
        al.add(AudioChunk("s", "self", 0, 1e6, 16000, tone(0.01)), 0.0)
    assert e.value.kind == "bad_time"
    for i, c in enumerate(chunks("self", tone(1.0), size=1600)):  # the other track is about to start...
        al.add(c, 0.0)
    al.add(AudioChunk("s", "other", 0, 0.0, 16000, tone(0.01)), 0.0)
    with pytest.raises(ProtocolError) as e:  # ...but self may not run more than max_buffer_s ahead of it
        al.add(AudioChunk("s", "self", 99, 1.0, 16000, tone(0.1)), 0.0)
    assert e.value.kind == "buffer_full"
    with pytest.raises(ProtocolError) as e:
        al.add(AudioChunk("s", "other", 1, 0.01, 44100, tone(0.01, rate=44100)), 0.0)
    assert e.value.kind == "rate_changed"
