"""The shipped weights (models/weights/motion.pt): they load with no network, and the trained model keeps the promises
the machinery tests (test_model.py) check on random networks, on real recorded speech."""
import socket

import numpy as np
import pytest

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.evaluate import pearson, speech_envelope
from backchannel.models.generator import generate, make_generator
from backchannel.models.model_generator import WEIGHTS, ModelGenerator, load_model
from backchannel.models.measures import mouth_openness, spans_mask
from backchannel.models.motion import BS, HEAD_ROTATION, LISTENING, SPEAKING

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
    model = load_model()  # the default path
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
    a, b = dialogue.self_audio[:12 * SAMPLE_RATE], dialogue.other_audio[:12 * SAMPLE_RATE]
    cut = 10 * SAMPLE_RATE  # inside the avatar's first answer
    first = model_gen.open_stream(seed=4).feed(a[:cut], b[:cut])
    loud = np.random.default_rng(1).normal(0, 0.3, len(a) - cut).astype(np.float32)
    second = model_gen.open_stream(seed=4).feed(np.concatenate([a[:cut], loud]), np.concatenate([b[:cut], loud]))
    np.testing.assert_allclose(first.motion, second.motion[:len(first)], atol=1e-4)
    later = slice(len(first) + 3, len(first) + 30)
    assert np.abs(generate(model_gen, a, b, seed=4).motion[later] - second.motion[later]).max() > 1e-2


def test_two_seeds_differ_while_the_lips_still_sync(model_gen, dialogue, talk):
    other = generate(model_gen, dialogue.self_audio, dialogue.other_audio, seed=1)
    head_diff = np.degrees(np.abs(other.motion[:, HEAD_ROTATION] - talk.motion[:, HEAD_ROTATION])).mean()
    assert head_diff > 0.3
    envelope = speech_envelope(dialogue.self_audio, len(talk))
    for run in (talk, other):  # a floor, not the quality bar: the measured figures are in docs/model.md
        assert pearson(mouth_openness(run.motion), envelope) > 0.5


def test_onnxruntime_gives_the_torch_frames_on_the_shipped_weights(model_gen, dialogue, talk):
    on_onnx = generate(ModelGenerator(backend="onnx"), dialogue.self_audio, dialogue.other_audio, seed=0)
    np.testing.assert_allclose(on_onnx.motion, talk.motion, atol=2e-3)
    assert (on_onnx.state == talk.state).mean() > 0.99
