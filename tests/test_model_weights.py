"""The shipped weights (models/weights/motion.pt): they load with no network, and the trained model keeps the promises
the machinery tests (test_model.py) check on random networks, on real recorded speech."""
import socket

import numpy as np
import pytest

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.evaluation.metrics import speech_envelope
from backchannel.models.generator import generate, make_generator
from backchannel.models.infp.generator import LOUDNESS_CHANNELS, MOUTH_APART, ModelGenerator
from backchannel.models.infp.weights import GRAPHS, WEIGHTS, load_weights
from backchannel.models.measures import lip_rounding, lips_shut, mouth_openness, pearson, spans_mask
from backchannel.models.motion import BS, HEAD_ROTATION, LISTENING, SPEAKING, MotionBlock

from .helpers import check_causal_at_cuts
from .speech import two_track_dialogue

EDGE_S = 0.1  # judge roles and mouths away from the edges of each stretch of speech


@pytest.fixture(scope="module")
def dialogue():
    return two_track_dialogue()


@pytest.fixture(scope="module")
def model_gen():
    return ModelGenerator(backend="torch")


@pytest.fixture(scope="module")
def talk(model_gen, dialogue):
    return generate(model_gen, dialogue.self_audio, dialogue.other_audio, seed=0)


def test_shipped_weights_are_small_half_precision_and_load_with_no_network(monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise OSError("tests forbid network access here")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 20e6
    stored = torch.load(WEIGHTS, map_location="cpu", weights_only=True)["model"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    model = load_weights()  # the default path
    assert sum(p.numel() for p in model.parameters()) > 1e6
    assert make_generator("model").describe()["name"] == "model"


def test_trained_model_talks_with_its_own_voice_and_listens_to_the_partner(dialogue, talk):
    n = len(talk)
    own = spans_mask(dialogue.self_segments, n, margin=-EDGE_S)
    partner = spans_mask(dialogue.other_segments, n, margin=-EDGE_S) & ~own
    assert np.mean(talk.state[own] == SPEAKING) > 0.9
    assert np.mean(talk.state[partner] == LISTENING) > 0.9
    jaw = talk.motion[:, BS["JawOpen"]]
    assert jaw[own].mean() > 4 * jaw[partner].mean()  # the partner's voice does not move the lips


def test_trained_model_is_causal_beyond_its_look_ahead(model_gen, dialogue):
    """The shipped model emits each frame exactly when its declared look-ahead allows, later audio never moves it,
    and the audio after that does."""
    a, b = dialogue.self_audio[:12 * SAMPLE_RATE], dialogue.other_audio[:12 * SAMPLE_RATE]
    # inside the avatar's first answer, 6.7 ms apart over 47 ms: on no feature row's, VAD window's or frame's grid
    cuts = 10 * SAMPLE_RATE + 37 + 107 * np.arange(8)
    stream, real, noisy = check_causal_at_cuts(model_gen, a, b, cuts, seed=4, atol=1e-4, future_s=1.0)
    due = real[-1].first + len(real[-1])  # frames out by the last cut
    real.append(stream.feed(a[cuts[-1]:], b[cuts[-1]:]))  # and the speech that really follows it
    heard, loud = MotionBlock.concat(real), noisy[-1]  # the last cut's branch: noise after it instead
    after = np.arange(due + 3, due + 30)
    assert np.abs(heard.motion[after - heard.first] - loud.motion[after - loud.first]).max() > 1e-2


def test_two_seeds_differ_while_the_lips_still_sync(model_gen, dialogue, talk):
    other = generate(model_gen, dialogue.self_audio, dialogue.other_audio, seed=1)
    head_diff = np.degrees(np.abs(other.motion[:, HEAD_ROTATION] - talk.motion[:, HEAD_ROTATION])).mean()
    assert head_diff > 0.3
    envelope = speech_envelope(dialogue.self_audio, len(talk))
    for run in (talk, other):  # a floor, not the quality bar: the measured figures are in docs/model.md
        assert pearson(mouth_openness(run.motion), envelope) > 0.5


def test_the_shipped_graphs_are_the_shipped_weights_exported():
    """What serving runs without torch (models/weights/motion-onnx) is the export of motion.pt with the default
    sampler: the same facts, and the same outputs on the same inputs."""
    from backchannel.models.infp.config import Sampling
    from backchannel.models.infp.engines import ModelFacts, OnnxEngine
    from backchannel.models.infp.export import check_onnx

    model, shipped = load_weights(), OnnxEngine(GRAPHS).facts
    ours = ModelFacts.of(model, Sampling())
    assert (shipped.config, shipped.sampling) == (ours.config, ours.sampling)
    for name in ("rest_latent", "pose_low", "pose_high", "style_null"):
        np.testing.assert_array_equal(getattr(shipped, name), getattr(ours, name))
    assert max(check_onnx(model, GRAPHS).values()) < 1e-4


def test_onnxruntime_gives_the_torch_frames_on_the_shipped_weights(model_gen, dialogue, talk):
    gen = ModelGenerator(backend="onnx")
    assert gen.engine.folder == GRAPHS  # the shipped graphs, not an export made now
    on_onnx = generate(gen, dialogue.self_audio, dialogue.other_audio, seed=0)
    np.testing.assert_allclose(on_onnx.motion, talk.motion, atol=2e-3)
    assert (on_onnx.state == talk.state).mean() > 0.99


def test_the_mouth_opens_with_the_voice_loudness_and_keeps_the_model_s_closures(dialogue, talk):
    drawn_run = generate(ModelGenerator(backend="torch", follow_loudness=False), dialogue.self_audio,
                         dialogue.other_audio, seed=0)
    speaking = talk.state == SPEAKING
    assert (drawn_run.state == talk.state).all() and speaking.sum() > 100
    scaled = np.zeros(talk.motion.shape, bool)
    scaled[np.ix_(speaking, LOUDNESS_CHANNELS)] = True
    np.testing.assert_array_equal(talk.motion[~scaled], drawn_run.motion[~scaled])  # nothing else changes
    shown, drawn = mouth_openness(talk.motion), mouth_openness(drawn_run.motion)
    assert (shown <= drawn + 1e-6).all() and (shown[speaking] < drawn[speaking] - 0.05).any()  # it only narrows
    assert (shown >= np.minimum(drawn, MOUTH_APART) - 1e-6).all()  # lips the model left apart stay apart
    np.testing.assert_array_equal(lips_shut(talk.motion), lips_shut(drawn_run.motion))  # closures are the model's
    envelope = speech_envelope(dialogue.self_audio, len(talk))
    assert pearson(shown, envelope) > pearson(drawn, envelope) + 0.03  # measured here: 0.895 against 0.816


@pytest.mark.parametrize("bar", [None, 4.5])
def test_lips_are_parted_and_rounded_where_the_voice_says(dialogue, talk, bar, monkeypatch):
    """lip_place parts exactly the speaking frames the network shut whose closure evidence (computed here over the
    whole track at once) is below PART_BELOW (none of this synthetic voice's at the shipped bar), to at least
    MOUTH_APART; on every speaking frame, pucker + funnel follow the rounding evidence's ramps from what the network
    drew; every other frame and channel is as without it. Frames within 1e-3 nats of a bar are left out (scores move
    by about 1e-5 with how many rows one call scores). A higher bar (4.5 nats) parts more, and a stream fed 32 ms at
    a time (not a multiple of a row) moves the same frames."""
    import backchannel.models.infp.generator as model_generator
    from backchannel.models.frontend import phonetic
    from backchannel.models.frontend.features import mel_frame_for

    if bar is not None:
        monkeypatch.setattr(model_generator, "PART_BELOW", bar)
        talk = generate(ModelGenerator(backend="torch"), dialogue.self_audio, dialogue.other_audio, seed=0)
    unplaced = generate(ModelGenerator(backend="torch", lip_place=False), dialogue.self_audio, dialogue.other_audio,
                        seed=0)
    assert (unplaced.state == talk.state).all()
    stream, model = phonetic.PhoneticStream(), phonetic.lip_model()
    features = np.concatenate([stream.features(dialogue.self_audio), stream.features(np.zeros(SAMPLE_RATE))])
    places = model.places(model.scores(features))
    lo, hi = model_generator.PLACE_ROWS

    def near(evidence):
        return np.array([evidence[max(0, r + lo):r + hi + 1].mean() for r in mel_frame_for(np.arange(len(talk)))])
    speaking, shut = talk.state == SPEAKING, lips_shut(unplaced.motion)
    closure, rounding = near(phonetic.closure_evidence(places)), near(phonetic.rounding_evidence(places))
    clear = np.abs(closure - model_generator.PART_BELOW) > 1e-3
    for edge in (0.0, model_generator.ROUNDED_FULL, -model_generator.SPREAD_FULL):
        clear &= np.abs(rounding - edge) > 1e-3
    parted = speaking & shut & (closure < model_generator.PART_BELOW)
    assert (speaking & shut & ~parted).sum() >= 5
    assert parted.sum() >= 10 or bar is None  # the shipped bar parts none of this synthetic voice's closures
    np.testing.assert_array_equal(lips_shut(talk.motion)[clear], (shut & ~parted)[clear])
    assert (mouth_openness(talk.motion)[parted & clear] >= MOUTH_APART - 1e-6).all()
    # the rounding expected on every speaking frame, from the drawn shapes and the evidence
    shown, drawn = talk.motion[:, model_generator.ROUNDING], unplaced.motion[:, model_generator.ROUNDING]
    total = drawn.sum(1)
    share = np.where(total[:, None] > 0.02, drawn / np.maximum(total, 1e-9)[:, None], 0.5)
    ramp_up = np.clip(rounding / model_generator.ROUNDED_FULL, 0, 1)[:, None]
    up = np.maximum(drawn, share * model_generator.ROUNDED_MAX * ramp_up)
    w = np.clip(-rounding / model_generator.SPREAD_FULL, 0, 1)
    narrowed = np.where(total > model_generator.SPREAD_MAX, total - w * (total - model_generator.SPREAD_MAX), total)
    down = drawn * (narrowed / np.maximum(total, 1e-9))[:, None]
    expected = np.where((rounding > 0)[:, None], up, np.where((rounding < 0)[:, None], down, drawn))
    frames = speaking & clear
    np.testing.assert_allclose(shown[frames], expected[frames], atol=1e-4)
    assert (lip_rounding(talk.motion) > lip_rounding(unplaced.motion) + 0.1)[frames].sum() >= 10  # rounded more
    assert (lip_rounding(talk.motion) < lip_rounding(unplaced.motion) - 0.1)[frames].sum() >= 10  # and less
    lips = np.zeros(talk.motion.shape[1], bool)
    lips[[BS["JawOpen"], BS["MouthClose"], *model_generator.LIP_SEAL, *model_generator.ROUNDING,
          *LOUDNESS_CHANNELS]] = True
    np.testing.assert_array_equal(talk.motion[:, ~lips], unplaced.motion[:, ~lips])  # nothing but the lips moves
    np.testing.assert_array_equal(talk.motion[~speaking], unplaced.motion[~speaking])  # and only while speaking
    if bar is not None:
        stream = ModelGenerator(backend="torch").open_stream(seed=0)
        a, b = dialogue.self_audio, dialogue.other_audio
        fed = MotionBlock.concat([stream.feed(a[i:i + 512], b[i:i + 512]) for i in range(0, len(a), 512)]
                                 + [stream.flush()])
        np.testing.assert_array_equal(lips_shut(fed.motion)[clear], lips_shut(talk.motion)[clear])
        np.testing.assert_allclose(fed.motion[clear], talk.motion[clear], atol=1e-3)


def test_a_failed_feed_leaves_the_loudness_follower_as_it_was(model_gen, dialogue, monkeypatch):
    import backchannel.models.infp.generator as model_generator

    a, b = dialogue.self_audio[:16 * SAMPLE_RATE], dialogue.other_audio[:16 * SAMPLE_RATE]
    cuts = [(0, 10), (10, 11), (11, 16)]  # the failed feed falls inside the avatar's first answer, and it talks after
    pieces = [(a[i * SAMPLE_RATE:j * SAMPLE_RATE], b[i * SAMPLE_RATE:j * SAMPLE_RATE]) for i, j in cuts]
    stream, reference = model_gen.open_stream(seed=2), model_gen.open_stream(seed=2)
    for s in (stream, reference):
        s.feed(*pieces[0])
    peak = stream.level.peak_db

    def fail(*args):  # after show_mouth: the level rows were read and dropped, the peak moved
        raise RuntimeError("injected")
    with monkeypatch.context() as patch:
        patch.setattr(model_generator, "apply_style", fail)
        with pytest.raises(RuntimeError, match="injected"):
            stream.feed(*pieces[1])
    assert stream.level.peak_db == peak
    for piece in pieces[1:]:
        retried, unbroken = stream.feed(*piece), reference.feed(*piece)
        assert (unbroken.state == SPEAKING).sum() > 20
        np.testing.assert_allclose(retried.motion, unbroken.motion, atol=1e-6)


def test_every_tier_s_sampler_steps_run_from_the_shipped_graphs_without_an_export():
    """The governor's model tiers (4, 2, 1 sampler steps) are served by the graphs shipped beside the weights, so a
    core install (no torch) can step down; other settings are refused there with the list of what ships."""
    from backchannel.models.infp.config import Sampling
    from backchannel.models.infp.engines import OnnxEngine, exported_samplings
    from backchannel.models.infp.weights import SHIPPED_SAMPLER_STEPS

    assert exported_samplings(GRAPHS) == {Sampling(n) for n in SHIPPED_SAMPLER_STEPS}
    for steps in SHIPPED_SAMPLER_STEPS:
        gen = ModelGenerator(sampler_steps=steps)
        assert gen.backend == "onnx" and gen.engine.folder == GRAPHS and gen.sampling.sampler_steps == steps
    with pytest.raises(ValueError, match="holds no frame step for"):
        OnnxEngine(GRAPHS, Sampling(3))


def test_the_model_blinks_at_a_person_s_rate_and_each_face_at_its_own_times(dialogue):
    """The blink stage blinks 10-25 times a minute as eval counts them, over a minute streamed the way a worker feeds
    three sessions; each seed blinks at its own times."""
    from backchannel.models.evaluation.metrics import blink_count
    from backchannel.models.infp.generator import LIDS

    gen = ModelGenerator()  # the shipped graphs, as served
    a, b = (np.tile(x, 3) for x in (dialogue.self_audio, dialogue.other_audio))  # 69 s
    streams = [gen.open_stream(seed=s) for s in (0, 1, 2)]
    pieces = [[] for _ in streams]
    step = SAMPLE_RATE // 5
    for i in range(0, len(a), step):
        for got, block in zip(pieces, gen.feed_many([(s, a[i:i + step], b[i:i + step]) for s in streams])):
            got.append(block)
    motions = [MotionBlock.concat(got + [s.flush()]).motion for got, s in zip(pieces, streams)]
    minutes = len(a) / SAMPLE_RATE / 60
    rates = [blink_count(m) / minutes for m in motions]
    assert all(10 <= r <= 25 for r in rates), rates
    shut = [(m[:, LIDS].mean(1) > 0.5) for m in motions]
    for x, y in ((0, 1), (0, 2), (1, 2)):
        assert (shut[x] & shut[y]).sum() < 0.5 * min(shut[x].sum(), shut[y].sum())  # not in unison


def test_the_face_around_the_lips_follows_the_role_and_the_voice_and_leaves_the_lips_to_the_network(dialogue, talk):
    """The face stages move what the network leaves still: the baseline's looks (models.eyes.Gaze) and its
    expression (models.expression): effort lowers the brows while speaking, attention lifts them while listening, the
    eyes look away more while speaking. Every other channel, the lips' among them, is as with the stages off."""
    from backchannel.models.evaluation.metrics import shapes_moving
    from backchannel.models.expression import EXPRESSION_SHAPES
    from backchannel.models.eyes import EYE_LOOK_SHAPES
    from backchannel.models.infp.generator import LIDS
    from backchannel.models.motion import GAZE, MOTION_DIM

    plain = generate(ModelGenerator(backend="torch", blinks=False, gaze=False, expression=False), dialogue.self_audio,
                     dialogue.other_audio, seed=0)
    rest = np.ones(MOTION_DIM, bool)
    rest[EXPRESSION_SHAPES + EYE_LOOK_SHAPES + LIDS] = rest[GAZE] = False
    np.testing.assert_array_equal(talk.motion[:, rest], plain.motion[:, rest])
    shapes = EXPRESSION_SHAPES + EYE_LOOK_SHAPES
    assert (talk.motion[:, shapes] >= plain.motion[:, shapes]).all()  # the larger of the stage's and the network's
    assert shapes_moving(talk.motion).sum() >= shapes_moving(plain.motion).sum() + 16
    speaking, listening = talk.state == SPEAKING, talk.state == LISTENING
    brows_down, brows_up = (talk.motion[:, BS[name]] for name in ("BrowDownLeft", "BrowInnerUp"))
    assert brows_down[speaking].mean() > brows_down[listening].mean() + 0.03
    assert brows_up[listening].mean() > plain.motion[listening, BS["BrowInnerUp"]].mean() + 0.03
    looks = np.abs(talk.motion[:, GAZE] - plain.motion[:, GAZE]).mean(1)
    assert looks[speaking].mean() > 1.5 * looks[listening].mean() and np.degrees(looks.max()) > 3
