"""The rule baseline on real speech: lips follow only the avatar's own voice, roles switch, nods follow the partner."""
import numpy as np
import pytest

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.generator import generate, make_generator
from backchannel.models.motion import BS, FRAME_RATE, LISTENING, SPEAKING, frame_count

from .speech import two_track_dialogue


@pytest.fixture(scope="module")
def dialogue():
    return two_track_dialogue()


@pytest.fixture(scope="module")
def motion(dialogue):
    return generate(make_generator("baseline"), dialogue.self_audio, dialogue.other_audio, seed=3)


def frames_of(intervals, n):
    mask = np.zeros(n, bool)
    for start, end in intervals:
        mask[int(start * FRAME_RATE):int(end * FRAME_RATE)] = True
    return mask


def test_frame_count_and_chunking_invariance(dialogue, motion):
    n = len(dialogue.self_audio)
    assert len(motion) == frame_count(n / SAMPLE_RATE)
    rechunked = generate(make_generator("baseline"), dialogue.self_audio, dialogue.other_audio, seed=3, chunk_s=0.023)
    np.testing.assert_allclose(rechunked.motion, motion.motion, atol=1e-5)
    np.testing.assert_array_equal(rechunked.state, motion.state)


def test_mouth_moves_with_own_speech_only(dialogue, motion):
    jaw = motion.motion[:, BS["JawOpen"]]
    own = frames_of(dialogue.self_segments, len(jaw))
    partner_only = frames_of(dialogue.other_segments, len(jaw)) & ~own
    assert jaw[own].mean() > 0.15
    assert jaw[partner_only].max() < 0.02  # the partner's voice never reaches the lips


def test_roles_follow_the_tracks(dialogue, motion):
    n = len(motion)
    own = frames_of(dialogue.self_segments, n)
    partner = frames_of(dialogue.other_segments, n) & ~own
    assert (motion.state[own] == SPEAKING).mean() > 0.9
    assert (motion.state[partner] == LISTENING).mean() > 0.9


def test_nods_follow_partner_phrase_ends(dialogue, motion):
    pitch = motion.motion[:, 52]
    nodded = 0
    for end in dialogue.other_phrase_ends:
        k = int(end * FRAME_RATE)
        window = pitch[k:k + FRAME_RATE]
        nodded += (window.max() - pitch[max(0, k - 3):k + 1].mean()) > 0.05
    assert nodded >= 0.6 * len(dialogue.other_phrase_ends)


def test_future_audio_beyond_lookahead_cannot_change_a_frame(dialogue):
    gen = make_generator("baseline")
    cut = int(4.0 * SAMPLE_RATE)
    a, b = dialogue.self_audio, dialogue.other_audio
    s1 = gen.open_stream(seed=1)
    first = s1.feed(a[:cut], b[:cut])
    noise = np.random.default_rng(0).normal(0, 0.3, len(a) - cut).astype(np.float32)
    s2 = gen.open_stream(seed=1)
    second = s2.feed(np.concatenate([a[:cut], noise]), np.concatenate([b[:cut], noise]))
    np.testing.assert_array_equal(first.motion, second.motion[:len(first)])
    # and it emitted every frame whose time plus the declared look-ahead lies inside the audio it had
    assert len(first) >= int((cut / SAMPLE_RATE - gen.lookahead_s) * FRAME_RATE)


def test_seeds_differ_but_lips_do_not(dialogue):
    gen = make_generator("baseline")
    m1 = generate(gen, dialogue.self_audio, dialogue.other_audio, seed=1)
    m2 = generate(gen, dialogue.self_audio, dialogue.other_audio, seed=2)
    assert np.abs(m1.motion[:, 52:55] - m2.motion[:, 52:55]).mean() > 0.005
    np.testing.assert_allclose(m1.motion[:, BS["JawOpen"]], m2.motion[:, BS["JawOpen"]], atol=1e-6)


def test_the_baseline_moves_most_of_the_face_and_holds_no_shape_high(dialogue, motion):
    from backchannel.models.evaluation.metrics import shapes_moving

    moving = shapes_moving(motion.motion)
    assert moving.mean() >= 0.8, f"only {moving.sum()} of 52 shapes move"
    for name in ("CheekSquintLeft", "EyeSquintRight", "BrowDownLeft", "MouthClose", "MouthPressLeft",
                 "MouthDimpleRight", "CheekPuff", "NoseSneerLeft", "MouthShrugLower", "EyeWideLeft"):
        assert moving[BS[name]], f"{name} never moves"
    # within a person's range: no shape sits past half for more than a tenth of the conversation
    assert (motion.motion[:, :52] > 0.5).mean(0).max() < 0.1
    # the smile brings the cheeks and squints, so they move with it
    smile, cheek = motion.motion[:, BS["MouthSmileLeft"]], motion.motion[:, BS["CheekSquintLeft"]]
    assert np.corrcoef(smile, cheek)[0, 1] > 0.8
