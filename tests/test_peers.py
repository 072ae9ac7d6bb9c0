"""The peers `eval` scores beside ours, run from their wheels on a recorded voice and read through our metrics."""
import numpy as np
import pytest

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.evaluation.metrics import EvalClip, evaluate
from backchannel.models.evaluation.peers import PEERS, VISEME_TO_ARKIT, decode_phones, viseme_matrix
from backchannel.models.measures import LIPS_SHUT_OPENNESS, mouth_openness
from backchannel.models.motion import BS, FRAME_RATE, IDLE, SPEAKING, frame_count

from .speech import prompt


@pytest.fixture(scope="module")
def voice():
    """A prompt with a second of silence before it: (audio, speech start, speech end) in seconds."""
    x, on, off = prompt("conf-onlyperson")
    return np.concatenate([np.zeros(SAMPLE_RATE, np.float32), x]), on + 1.0, off + 1.0


def test_every_viseme_of_openfacefx_has_arkit_weights_closed_ones_shut_and_vowels_open():
    from openfacefx.visemes import VISEMES

    assert set(VISEMES) == set(VISEME_TO_ARKIT)
    names, w = viseme_matrix()
    rows = np.zeros((len(names), 62), np.float32)
    rows[:, :52] = w
    openness = dict(zip(names, mouth_openness(rows)))
    assert openness["PP"] < LIPS_SHUT_OPENNESS and openness["sil"] == 0.0
    assert min(openness[v] for v in ("aa", "E", "O")) > 0.3 and openness["aa"] == max(openness.values())
    assert w[names.index("U"), BS["MouthPucker"]] > 0.5 and w[names.index("PP"), BS["MouthPressRight"]] > 0.3


@pytest.mark.parametrize("name", sorted(PEERS))
def test_each_peer_opens_the_mouth_with_the_voice_and_rests_in_silence(name, voice):
    audio, on, off = voice
    motion, state = PEERS[name](audio)
    assert len(motion) == len(state) == frame_count(len(audio) / SAMPLE_RATE)
    assert motion[:, :52].min() >= 0.0 and motion[:, :52].max() <= 1.0 and not motion[:, 52:].any()
    opening = mouth_openness(motion)
    speech = slice(int(on * FRAME_RATE), int(off * FRAME_RATE))
    assert opening[speech].mean() > 0.15
    assert opening[:int(0.5 * FRAME_RATE)].max() < LIPS_SHUT_OPENNESS  # shut the first half second, long before it
    assert (state[speech] == SPEAKING).mean() > 0.7 and (state[:15] == IDLE).all()


def test_pocketsphinx_decodes_phones_from_its_wheel_in_order_within_the_speech(voice):
    audio, on, off = voice
    phones = decode_phones(audio)
    assert len(phones) > 15  # "you are currently the only person in this conference"
    starts = [p[0] for p in phones]
    assert starts == sorted(starts) and on - 0.3 < starts[0] and phones[-1][1] < off + 0.3
    assert all(p.isalpha() and p.isupper() for _, _, p in phones)


def test_eval_scores_a_peer_like_a_generator(voice):
    audio, on, off = voice
    n = frame_count(len(audio) / SAMPLE_RATE)
    ref = np.full(n, IDLE, np.int8)
    ref[int(on * FRAME_RATE):int(off * FRAME_RATE)] = SPEAKING
    clip = EvalClip("prompt", audio, np.zeros_like(audio), ref, [(on + 0.1, on + 0.2, "m")], [(on, off)], [], [])
    results = evaluate([clip], ["openfacefx-energy"], progress=False)["openfacefx-energy"]
    assert results["lip_envelope_r"] > 0.5 and results["blinks_per_minute"] == 0.0
    assert results["head_near_limit"] == 0.0 and 0 < results["shapes_moving"] < 0.2  # the mouth only
    assert "head_diff_deg" not in results  # one run: a peer has no seed


def test_every_peer_names_the_package_it_needs():
    from backchannel.models.evaluation.peers import PEER_PACKAGES

    assert set(PEER_PACKAGES) == set(PEERS)


def harmonic_burst(onset_s: float, seconds: float = 0.5) -> np.ndarray:
    """Silence, then half a second of a 150 Hz voice-like harmonic series from `onset_s`, then a second of silence."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    burst = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate(range(150, 3000, 150))) * 0.1
    x = np.zeros(int((onset_s + seconds + 1.0) * SAMPLE_RATE), np.float32)
    x[int(onset_s * SAMPLE_RATE):int(onset_s * SAMPLE_RATE) + len(burst)] = burst
    return x


def test_pylipsync_frames_keep_our_clock_two_minutes_in():
    """pylipsync's windows step 533 samples, our frames 533.3: a burst two minutes in opens the mouth on the same
    frames, counted from its onset, as one half a second in (read by index, they would lag almost two frames)."""
    spans = []
    for onset_s in (0.5, 120.0):
        motion, _ = PEERS["pylipsync"](harmonic_burst(onset_s))
        open_frames = np.flatnonzero(mouth_openness(motion) > LIPS_SHUT_OPENNESS) - round(onset_s * FRAME_RATE)
        assert len(open_frames) > 10
        spans.append((open_frames[0], open_frames[-1]))
    assert spans[0] == spans[1] and abs(spans[0][0]) <= 1


@pytest.mark.parametrize("samples", [0, 100, 532, 533, 534, SAMPLE_RATE])
def test_pylipsync_on_audio_too_short_or_silent_keeps_the_mouth_shut(samples):
    motion, state = PEERS["pylipsync"](np.zeros(samples, np.float32))
    assert len(motion) == len(state) == frame_count(samples / SAMPLE_RATE)
    assert np.isfinite(motion).all() and not motion.any() and (state == IDLE).all()
