"""The motion model's machinery, on a small randomly initialised network (trained weights: test_model_weights.py)."""
import numpy as np
import pytest
import torch

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.generator import generate
from backchannel.models.infp.config import ModelConfig, Sampling
from backchannel.models.infp.generator import ModelGenerator
from backchannel.models.infp.network import SPEECH_CHANNELS, FrameStep, MotionModel
from backchannel.models.infp.weights import load_weights
from backchannel.models.motion import MOTION_DIM, frame_count
from backchannel.models.training.config import LossConfig, TrainConfig
from backchannel.models.training.loss import history_noise, training_loss

from .helpers import check_causal_at_cuts
from .speech import two_track_dialogue

SMALL = dict(latent_dim=8, d_model=32, heads=2, depth=2, enc_channels=32, enc_hidden=32, enc_layers=2, bank_slots=8,
             style_dim=8, vad_state=True)


def small_model(seed=0, **overrides) -> MotionModel:
    torch.manual_seed(seed)
    model = MotionModel(ModelConfig(**{**SMALL, **overrides})).eval()
    with torch.no_grad():  # variance-keeping weights everywhere (adaLN-Zero starts at zero), so outputs depend on
        for p in model.parameters():  # the inputs as strongly as in a trained model
            if p.dim() > 1:
                p.normal_(0, p.shape[-1] ** -0.5)
    return model


@pytest.fixture(scope="module")
def dialogue():
    return two_track_dialogue()


@pytest.fixture(scope="module")
def short(dialogue):
    n = 6 * SAMPLE_RATE
    return dialogue.self_audio[8 * SAMPLE_RATE:8 * SAMPLE_RATE + n], dialogue.other_audio[:n]


@pytest.mark.parametrize("chunk", [1, 3])
def test_shapes_and_chunking_invariance(short, chunk):
    gen = ModelGenerator(model=small_model(chunk=chunk, guide_window=4), backend="torch")
    a, b = short
    whole = generate(gen, a, b, seed=5)
    pieces = generate(gen, a, b, seed=5, chunk_s=0.021)  # 21 ms pieces: joins fall anywhere
    assert len(whole) == frame_count(len(a) / SAMPLE_RATE)
    assert whole.motion.shape == (len(whole), MOTION_DIM) and whole.latent.shape == (len(whole), 8)
    assert set(np.unique(whole.state)) <= {0, 1, 2}
    np.testing.assert_allclose(pieces.motion, whole.motion, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3])
def test_future_audio_beyond_lookahead_cannot_change_a_frame(short, chunk):
    """Frames come exactly when the declared look-ahead allows (none later), and audio after that never moves them."""
    gen = ModelGenerator(model=small_model(chunk=chunk), backend="torch")
    a, b = short
    # 6.7 ms apart, over more than a chunk's 33 ms frames: on no feature row's, VAD window's or frame's grid
    cuts = 3 * SAMPLE_RATE + 37 + 107 * np.arange(6 * chunk + 2)
    check_causal_at_cuts(gen, a, b, cuts, seed=2, atol=1e-5)  # float rounding: rows arrive in calls of other lengths
    assert gen.lookahead_s <= 0.066


def test_past_audio_does_change_frames(short):
    """The causality test above must not pass because the model ignores audio."""
    gen = ModelGenerator(model=small_model(), backend="torch")
    a, b = short
    quiet = generate(gen, np.zeros_like(a), b, seed=2)
    spoken = generate(gen, a, b, seed=2)
    assert np.abs(quiet.motion - spoken.motion).max() > 1e-3


def test_batched_streams_match_single_streams(short):
    gen = ModelGenerator(model=small_model(), backend="torch")
    a, b = short
    streams = [gen.open_stream(seed=s) for s in (1, 2)]
    blocks = gen.feed_many([(streams[0], a, b), (streams[1], b, a)])
    alone = [gen.open_stream(seed=1).feed(a, b), gen.open_stream(seed=2).feed(b, a)]
    for together, single in zip(blocks, alone):
        np.testing.assert_allclose(together.motion, single.motion, atol=1e-5)


def test_tracks_fed_together_get_the_rows_each_would_get_alone(short):
    from backchannel.models.frontend.features import N_MELS, TrackFeatures, process_many

    a, b = short
    signals, sizes = [a, b, a[::-1].copy()], [320, 511, 1000]  # VAD windows complete in different rounds
    together, alone = [TrackFeatures() for _ in signals], [TrackFeatures() for _ in signals]
    got, want = [[] for _ in signals], [[] for _ in signals]
    for i in range(40):
        pieces = [x[i * n:(i + 1) * n] for x, n in zip(signals, sizes)]
        for k, rows in enumerate(process_many(together, pieces)):
            got[k].append(rows)
        for k, (f, piece) in enumerate(zip(alone, pieces)):
            want[k].append(f.process(piece))
    got, want = [np.concatenate(g) for g in got], [np.concatenate(w) for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-6)
    assert min(map(len, got)) > 70 and max(g[:, N_MELS].max() for g in got) > 0.5  # speech among them, VAD heard it


def test_streams_fed_alike_share_one_encoder_call_per_track(short):
    gen = ModelGenerator(model=small_model(), backend="torch")
    a, b = short
    streams = [gen.open_stream(seed=s) for s in range(3)]
    calls = []
    real_encode = gen.engine.encode
    gen.engine.encode = lambda rows, track, state: calls.append((track, rows.shape[:2])) or real_encode(rows, track, state)
    gen.feed_many([(s, a[:3200], b[:3200]) for s in streams])  # 200 ms each: about 20 new rows per track
    assert [(track, batch) for track, (batch, _) in calls] == [(0, 3), (1, 3)] and calls[0][1][1] >= 19
    calls.clear()  # uneven feeds: one call per track and row count
    gen.feed_many([(streams[0], a[3200:4800], b[3200:4800]), (streams[1], a[3200:6400], b[3200:6400])])
    assert sorted(calls) == [(0, (1, 10)), (0, (1, 20)), (1, (1, 10)), (1, (1, 20))]


def test_a_batch_failing_part_way_puts_every_stream_back(short):
    gen = ModelGenerator(model=small_model(), backend="torch")
    a, b = short
    streams = [gen.open_stream(seed=s) for s in (1, 2)]
    gen.feed_many([(streams[0], a[:SAMPLE_RATE], b[:SAMPLE_RATE]), (streams[1], b[:8000], a[:8000])])
    real_encode, calls = gen.engine.encode, []

    def fail_second(*args):  # the second track's encoder call: the first already ran for both streams
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected")
        return real_encode(*args)
    gen.engine.encode = fail_second
    with pytest.raises(RuntimeError, match="injected"):
        gen.feed_many([(streams[0], a[SAMPLE_RATE:2 * SAMPLE_RATE], b[SAMPLE_RATE:2 * SAMPLE_RATE]),
                       (streams[1], b[8000:24000], a[8000:24000])])
    gen.engine.encode = real_encode
    again = gen.feed_many([(streams[0], a[SAMPLE_RATE:2 * SAMPLE_RATE], b[SAMPLE_RATE:2 * SAMPLE_RATE]),
                           (streams[1], b[8000:24000], a[8000:24000])])
    fresh = [gen.open_stream(seed=s) for s in (1, 2)]
    gen.feed_many([(fresh[0], a[:SAMPLE_RATE], b[:SAMPLE_RATE]), (fresh[1], b[:8000], a[:8000])])
    unbroken = gen.feed_many([(fresh[0], a[SAMPLE_RATE:2 * SAMPLE_RATE], b[SAMPLE_RATE:2 * SAMPLE_RATE]),
                              (fresh[1], b[8000:24000], a[8000:24000])])
    for got, want in zip(again, unbroken):
        assert len(got) > 0
        np.testing.assert_allclose(got.motion, want.motion, atol=1e-6)
    with pytest.raises(ValueError, match="once per feed_many"):
        gen.feed_many([(streams[0], a[:320], b[:320]), (streams[0], a[:320], b[:320])])


def test_failed_batch_leaves_streams_untouched(short):
    gen = ModelGenerator(model=small_model(), backend="torch")
    a, b = short
    stream = gen.open_stream(seed=3)
    first = stream.feed(a[:SAMPLE_RATE], b[:SAMPLE_RATE])
    real_step = gen.engine.step
    gen.engine.step = lambda *args: (_ for _ in ()).throw(RuntimeError("injected"))
    with pytest.raises(RuntimeError, match="injected"):
        gen.feed_many([(stream, a[SAMPLE_RATE:2 * SAMPLE_RATE], b[SAMPLE_RATE:2 * SAMPLE_RATE])])
    gen.engine.step = real_step
    retried = stream.feed(a[SAMPLE_RATE:2 * SAMPLE_RATE], b[SAMPLE_RATE:2 * SAMPLE_RATE])
    reference = gen.open_stream(seed=3)
    reference.feed(a[:SAMPLE_RATE], b[:SAMPLE_RATE])
    np.testing.assert_allclose(retried.motion, reference.feed(a[SAMPLE_RATE:2 * SAMPLE_RATE],
                                                              b[SAMPLE_RATE:2 * SAMPLE_RATE]).motion, atol=1e-6)
    assert retried.first == first.first + len(first)


def test_onnx_matches_torch(tmp_path, short):
    from backchannel.models.infp.engines import ModelFacts, OnnxEngine, TorchEngine
    from backchannel.models.infp.export import check_onnx, export_onnx

    model = small_model()
    diffs = check_onnx(model, export_onnx(model, tmp_path, Sampling(2, mouth_history=1.0)))
    assert diffs["encoder"] < 1e-4 and diffs["frame_step"] < 1e-4
    sampling = Sampling(2, partner_guidance=1.5, mouth_history=0.3)
    folder = export_onnx(model, tmp_path / "guided", sampling)
    assert guided_sampling_stamped(folder / "frame_step.onnx") == sampling  # check_onnx rebuilds torch's from it
    assert check_onnx(model, folder)["frame_step"] < 1e-4
    # model.json carries the facts the generator needs without torch, exactly; the style graph is torch's
    onnx, torch_engine = OnnxEngine(folder), TorchEngine(model, sampling)
    ours = ModelFacts.of(model, sampling)
    assert (onnx.facts.config, onnx.facts.sampling) == (ours.config, ours.sampling)
    for got, want in zip(onnx.facts.encoder_state + (onnx.facts.rest_latent, onnx.facts.pose_low),
                         ours.encoder_state + (ours.rest_latent, ours.pose_low)):
        np.testing.assert_array_equal(got, want)
    reference = np.random.default_rng(0).standard_normal((45, MOTION_DIM)).astype(np.float32)
    np.testing.assert_allclose(onnx.style_vector(reference), torch_engine.style_vector(reference), atol=1e-5)
    a, b = short  # and the whole streaming path on onnxruntime gives the torch path's frames
    on_torch = generate(ModelGenerator(model=model, sampler_steps=2, backend="torch"), a, b, seed=1)
    on_onnx = generate(ModelGenerator(model=model, sampler_steps=2, backend="onnx"), a, b, seed=1)
    np.testing.assert_allclose(on_onnx.motion, on_torch.motion, atol=1e-3)


def guided_sampling_stamped(step_path) -> Sampling:
    import json

    from backchannel.models.infp.export import stamped

    return Sampling(**json.loads(stamped(step_path)["sampling"]))


def test_guided_streams_on_onnxruntime_match_torch_and_guidance_moves_them(short):
    """Partner guidance reaches the onnx backend's graph and stamp: its frames are torch's, which guidance visibly
    changes (an export that dropped it would give the unguided frames)."""
    from backchannel.models.infp.export import graph_cache_dir

    model = small_model()
    a, b = (x[:3 * SAMPLE_RATE] for x in short)

    def run(backend, partner_guidance):
        gen = ModelGenerator(model=model, sampler_steps=2, backend=backend, partner_guidance=partner_guidance)
        return gen, generate(gen, a, b, seed=1).motion

    gen, on_onnx = run("onnx", 2.0)
    assert gen.sampling == Sampling(2, partner_guidance=2.0, mouth_history=0.0)
    assert guided_sampling_stamped(graph_cache_dir(model, gen.sampling) / "frame_step.onnx") == gen.sampling
    on_torch = run("torch", 2.0)[1]
    np.testing.assert_allclose(on_onnx, on_torch, atol=1e-4)  # measured: 1e-6
    assert np.abs(on_torch - run("torch", 1.0)[1]).max() > 1e-2


def test_the_shown_head_is_the_sampled_head_through_a_causal_filter_gain_and_soft_limit(short):
    from scipy.signal import lfilter

    from backchannel.models.infp.generator import HEAD_FILTERS, HEAD_GAINS, HEAD_KNEE_DEG, HEAD_LIMIT_DEG, soft_limit
    from backchannel.models.motion import HEAD_POSE

    model = small_model()
    a, b = short
    raw = generate(ModelGenerator(model=model, backend="torch", smooth_head=False), a, b, seed=4, chunk_s=0.021)
    shown = generate(ModelGenerator(model=model, backend="torch", head_gain=1.2), a, b, seed=4, chunk_s=0.021)
    head = raw.motion[:, HEAD_POSE].astype(np.float64)
    held = np.concatenate([np.repeat(head[:1], 100, 0), head])  # as if the first pose had been held before
    # in one piece, though it streamed in 21 ms feeds; each axis through its own filter and gain
    filtered = np.stack([lfilter(*HEAD_FILTERS[j], held[:, j])[100:] for j in range(held.shape[1])], 1)
    expected = 1.2 * HEAD_GAINS * filtered
    expected[:, :3] = soft_limit(expected[:, :3], np.radians(HEAD_KNEE_DEG), np.radians(HEAD_LIMIT_DEG))
    np.testing.assert_allclose(shown.motion[:, HEAD_POSE], expected, atol=1e-5)
    assert len(set(HEAD_GAINS)) > 1 and len({tuple(b) for b, _ in HEAD_FILTERS}) > 1  # the axes differ
    rest = np.ones(MOTION_DIM, bool)
    rest[HEAD_POSE] = False  # everything else, and the model's own history, is untouched
    np.testing.assert_array_equal(shown.motion[:, rest], raw.motion[:, rest])
    shake = [np.abs(np.diff(m.motion[:, HEAD_POSE] / HEAD_GAINS, 2, axis=0)).mean() for m in (shown, raw)]
    assert shake[0] < shake[1]


def test_the_shown_head_bends_beyond_its_knee_towards_its_limit_without_reaching_it():
    from backchannel.models.infp.generator import HEAD_KNEE_DEG, HEAD_LIMIT_DEG, soft_limit

    knee, limit = np.radians(HEAD_KNEE_DEG), np.radians(HEAD_LIMIT_DEG)
    x = np.radians(np.linspace(-40, 40, 8001))
    y = soft_limit(x, knee, limit)
    inside = np.abs(x) <= knee
    np.testing.assert_array_equal(y[inside], x[inside])  # a head in conversational range is untouched
    assert (np.abs(y) < limit).all() and (np.diff(y) > 0).all()  # bent, never past the limit, order kept
    eps = 1e-4
    np.testing.assert_allclose(soft_limit(np.array([knee + eps, -knee - eps]), knee, limit) - [knee, -knee],
                               [eps, -eps], rtol=1e-3)  # slope 1 on leaving the knee: no kink


def test_stages_that_read_a_frame_s_level_or_phones_need_the_look_ahead_that_holds_them():
    short_sighted = small_model(lookahead_samples=160)  # 10 ms: the level frame centred on a frame ends later
    with pytest.raises(ValueError, match="follow_loudness and expression .* look-ahead"):
        ModelGenerator(model=short_sighted, backend="torch")
    with pytest.raises(ValueError, match="follow_loudness and expression .* look-ahead"):
        ModelGenerator(model=short_sighted, backend="torch", follow_loudness=False)
    with pytest.raises(ValueError, match="lip_place .* at least 970 samples of look-ahead, not 160"):
        ModelGenerator(model=short_sighted, backend="torch", follow_loudness=False, expression=False)
    without = ModelGenerator(model=short_sighted, backend="torch", follow_loudness=False, expression=False,
                             lip_place=False)
    assert not without.follow_loudness and not without.expression and not without.lip_place


def test_the_head_pose_stays_within_the_training_range_as_shown_and_remembered(short):
    from backchannel.models.infp.generator import HEAD_LIMIT_DEG
    from backchannel.models.infp.network import POSE_BOUND_STD
    from backchannel.models.motion import HEAD_POSE

    model = small_model()
    with torch.no_grad():  # a decoder that tilts the head far beyond anything in training
        model.codec.decoder[-1].bias[HEAD_POSE.start] += 50.0
    a, b = short
    as_remembered = dict(smooth_head=False, follow_loudness=False, blinks=False, gaze=False, expression=False)
    out = generate(ModelGenerator(model=model, backend="torch", **as_remembered), a, b, seed=1)
    scaled = generate(ModelGenerator(model=model, backend="torch"), a, b, seed=1)
    mean, std = (x[HEAD_POSE].numpy() for x in (model.codec.motion_mean, model.codec.motion_std))
    np.testing.assert_allclose(out.motion[:, HEAD_POSE.start], mean[0] + POSE_BOUND_STD * std[0], atol=1e-5)  # held
    for pose in (out.motion[:, HEAD_POSE], scaled.motion[:, HEAD_POSE]):  # the gain shown does not pass it either
        assert (np.abs(pose - mean) <= POSE_BOUND_STD * std + 1e-5).all()
    shown_pitch = np.degrees(scaled.motion[:, HEAD_POSE.start])  # and what is shown bends below the soft limit
    assert shown_pitch.max() < HEAD_LIMIT_DEG and shown_pitch.max() > 0.9 * HEAD_LIMIT_DEG
    with torch.no_grad():  # the history the model reads next is the bounded frame, not the runaway sample
        remembered = model.codec.encode(torch.as_tensor(out.motion)).numpy()
    np.testing.assert_allclose(out.latent, remembered, atol=1e-4)


def test_mouth_history_zero_takes_the_lips_from_audio_alone_and_the_rest_from_the_history():
    from backchannel.models.infp.export import example_inputs

    model = small_model()
    _, (a_self, a_other, style, prev, noise) = example_inputs(model, batch=3)
    other_prev = prev + torch.randn(prev.shape, generator=torch.Generator().manual_seed(1))
    speech = list(SPEECH_CHANNELS)
    rest = [c for c in range(MOTION_DIM) if c not in SPEECH_CHANNELS]
    with torch.no_grad():
        for mouth_history, lips_move in ((0.0, False), (1.0, True)):
            step = FrameStep(model, Sampling(2, mouth_history=mouth_history))
            _, motion, _ = step(a_self, a_other, style, prev, noise)
            _, moved, _ = step(a_self, a_other, style, other_prev, noise)
            lips_diff = float((motion[..., speech] - moved[..., speech]).abs().max())
            assert (lips_diff > 1e-4) == lips_move, (mouth_history, lips_diff)
            assert float((motion[..., rest] - moved[..., rest]).abs().max()) > 1e-4  # head, eyes: history counts


def test_partner_guidance_hides_the_partner_from_the_whole_guide_window():
    from backchannel.models.infp.export import example_inputs

    model = small_model()
    with torch.no_grad():
        model.guider.null_partner.normal_()
    _, (a_self, a_other, style, prev, noise) = example_inputs(model, batch=2)
    seen = []
    denoise = model.denoiser.forward
    model.denoiser.forward = lambda x, t, guide, *rest, **kw: seen.append(guide) or denoise(x, t, guide, *rest, **kw)
    step = FrameStep(model, Sampling(1, partner_guidance=2.0, mouth_history=1.0))
    louder = a_other.clone()
    louder[:, 0] += 5.0  # the window's oldest frame: the chunk's own frame is the last
    with torch.no_grad():
        _, plain, _ = step(a_self, a_other, style, prev, noise)
        _, moved, _ = step(a_self, louder, style, prev, noise)
    heard, unheard = seen[0].chunk(2)
    heard_louder, unheard_louder = seen[1].chunk(2)
    assert float((heard - heard_louder).abs().max()) > 1e-3  # the heard condition reads the whole window...
    torch.testing.assert_close(unheard, unheard_louder)  # ...and the unheard one none of it
    assert float((plain - moved).abs().max()) > 1e-4


def test_history_noise_drifts_smoothly_or_varies_per_frame():
    g = torch.Generator().manual_seed(0)
    drift = history_noise((256, 10, 8), 0.5, 1.0, g)
    white = history_noise((256, 10, 8), 0.5, 0.0, g)
    mixed = history_noise((256, 10, 8), 0.5, 0.5, g)
    # an offset and a trend per channel: straight lines over the frames
    assert float(torch.diff(drift, 2, dim=1).abs().max()) < 1e-5
    assert float(torch.diff(white, 2, dim=1).abs().mean()) > 0.1
    straight = (torch.diff(mixed, 2, dim=1).abs().amax(dim=(1, 2)) < 1e-5).float().mean()
    assert 0.35 < float(straight) < 0.65
    for noise in (drift, white):  # levels up to the scale, about unit spread before it: std 0.5 / sqrt(3) overall
        assert 0.2 < float(noise.std()) < 0.37


def test_speech_channels_are_the_blendshapes_the_corpus_articulates():
    from backchannel.models.corpus.visemes import lips_to_blendshapes
    from backchannel.models.phones import PARAMS

    params = np.random.default_rng(0).uniform(0.1, 0.9, (50, len(PARAMS))).astype(np.float32)
    written = np.flatnonzero(np.abs(lips_to_blendshapes(params)).max(0) > 0)
    assert sorted(SPEECH_CHANNELS) == written.tolist()


def test_the_onnx_graph_cache_key_is_the_same_in_every_process():
    """Shipped weights lack the training-only read-out, which loads randomly initialised: it must not enter the
    key, or every process exports afresh (it did)."""
    from backchannel.models.infp.export import graph_cache_dir

    keys = {graph_cache_dir(load_weights(), Sampling(4)) for _ in range(2)}
    assert len(keys) == 1
    assert graph_cache_dir(load_weights(), Sampling(4, mouth_history=1.0)) not in keys


def test_tiny_training_run_reduces_the_loss(dialogue, tmp_path):
    """Training lowers the logged loss, and the model it returns and saves (the EMA, what ships) has learnt too."""
    import copy

    from backchannel.models.generator import make_generator
    from backchannel.models.training.data import WindowSampler, make_clip
    from backchannel.models.training.loop import Run, fit_input_statistics, save_weights, train_codec, train_motion

    labels = generate(make_generator("baseline"), dialogue.self_audio, dialogue.other_audio, seed=0)
    clips = [make_clip("dialogue", dialogue.self_audio, dialogue.other_audio, labels.motion, labels.state)]
    model = small_model(seed=1)
    fit_input_statistics(model, clips)
    tc = TrainConfig(train_steps=60, batch=8, window_frames=30, warmup=10, codec_steps=150, codec_batch=256,
                     checkpoint_every=1000)
    train_codec(model, clips, Run(tmp_path, "codec"), tc, "cpu", progress=False)
    codec_losses = [float(line.split('"reconstruction": ')[1].rstrip("}\n"))
                    for line in (tmp_path / "codec-losses.jsonl").open()]
    assert codec_losses[-1] < 0.5 * codec_losses[0]
    untrained = copy.deepcopy(model)
    returned = train_motion(model, clips, Run(tmp_path, "motion"), tc, LossConfig(), "cpu", progress=False)
    import json

    losses = [json.loads(line)["loss"] for line in (tmp_path / "motion-losses.jsonl").open()]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])
    assert (tmp_path / "motion-losses.png").is_file() and (tmp_path / "motion-checkpoint.pt").is_file()

    batch = WindowSampler(clips, model.cfg, frames=30).batch(np.random.default_rng(1), 16)

    def loss(m):  # the same windows, noise and dropout draws for every model
        with torch.no_grad():
            return training_loss(m.eval(), batch, LossConfig(), torch.Generator().manual_seed(0))["loss"].item()

    save_weights(returned, tmp_path / "motion.pt", {})
    before = loss(untrained)
    for weights in (returned, load_weights(tmp_path / "motion.pt"),
                    load_weights(tmp_path / "motion-checkpoint.pt")):  # shipped form, and resumable EMA
        assert loss(weights) < 0.7 * before  # measured: 0.33 of it


def test_an_interrupted_training_run_resumes_to_the_same_weights(dialogue, tmp_path):
    from backchannel.models.generator import make_generator
    from backchannel.models.training import data as training_data
    from backchannel.models.training.data import make_clip
    from backchannel.models.training.loop import Run, fit_input_statistics, train_motion

    labels = generate(make_generator("baseline"), dialogue.self_audio, dialogue.other_audio, seed=0)
    clips = [make_clip("dialogue", dialogue.self_audio, dialogue.other_audio, labels.motion, labels.state)]
    tc = TrainConfig(train_steps=12, batch=4, window_frames=20, warmup=4, checkpoint_every=5)

    def fresh():
        model = small_model(seed=1)
        fit_input_statistics(model, clips)
        return model

    straight = train_motion(fresh(), clips, Run(tmp_path / "straight", "motion"), tc, LossConfig(), "cpu",
                            progress=False)

    real_batch, calls = training_data.WindowSampler.batch, []

    def dies_at_step_eight(self, rng, size):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real_batch(self, rng, size)

    training_data.WindowSampler.batch = dies_at_step_eight
    try:
        with pytest.raises(KeyboardInterrupt):
            train_motion(fresh(), clips, Run(tmp_path / "broken", "motion"), tc, LossConfig(), "cpu", progress=False)
    finally:
        training_data.WindowSampler.batch = real_batch
    resumed = train_motion(fresh(), clips, Run(tmp_path / "broken", "motion"), tc, LossConfig(), "cpu", progress=False)
    import json

    logged = [json.loads(line)["step"] for line in (tmp_path / "broken" / "motion-losses.jsonl").open()]
    assert logged == [0, 10, 11]  # step 0 once: the second run went on from the checkpoint, not from scratch
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_trained_model_loads_from_shipped_weights_or_a_checkpoint_to_run_or_fine_tune(tmp_path):
    from backchannel.models.infp.weights import TRAINING_ONLY
    from backchannel.models.training.loop import save_weights

    trained = small_model(seed=3)
    save_weights(trained, tmp_path / "motion.pt", {})
    torch.save({"ema": trained.state_dict(), "config": trained.config_dict()}, tmp_path / "motion-checkpoint.pt")
    from_weights = load_weights(tmp_path / "motion.pt")
    from_checkpoint = load_weights(tmp_path / "motion-checkpoint.pt")
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(from_checkpoint.state_dict()[name], value, msg=name)  # exact, read-out included
        if not name.startswith(TRAINING_ONLY):  # the shipped form is float16
            torch.testing.assert_close(from_weights.state_dict()[name], value, atol=2e-3, rtol=2e-3, msg=name)
    with pytest.raises(ValueError, match="keeps the architecture"):
        load_weights(tmp_path / "motion.pt", d_model=64)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither motion weights"):
        load_weights(tmp_path / "other.pt")


def test_weights_that_never_read_the_vad_output_fine_tune_to_read_it_and_start_as_they_were(tmp_path, short):
    from backchannel.models.frontend.features import FEATURE_DIM, VAD_STATE, track_features
    from backchannel.models.infp.config import SELF
    from backchannel.models.training.data import make_clip
    from backchannel.models.training.loop import fit_feature_statistics, save_weights

    save_weights(small_model(seed=3, vad_state=False), tmp_path / "motion.pt", {})
    narrow = load_weights(tmp_path / "motion.pt")
    wide = load_weights(tmp_path / "motion.pt", vad_state=True)
    assert (narrow.encoder.inputs, wide.encoder.inputs) == (VAD_STATE, FEATURE_DIM)
    assert (narrow.encoder.widened_from, wide.encoder.widened_from) == (None, VAD_STATE)
    a, b = short
    clip = make_clip("short", a, b, np.zeros((frame_count(len(a) / SAMPLE_RATE), MOTION_DIM)),
                     np.zeros(frame_count(len(a) / SAMPLE_RATE), np.int64))
    codec_before = {k: v.clone() for k, v in wide.codec.state_dict().items()}
    fit_feature_statistics(wide, [clip], first_column=VAD_STATE)  # the new columns' statistics only
    torch.testing.assert_close(wide.encoder.feature_mean[:VAD_STATE], narrow.encoder.feature_mean)
    assert (wide.encoder.feature_std[VAD_STATE:] != 1).all()
    for k, v in codec_before.items():
        torch.testing.assert_close(wide.codec.state_dict()[k], v, msg=k)
    rows = torch.as_tensor(track_features(a))[None]
    with torch.no_grad():
        torch.testing.assert_close(wide.encoder(rows, SELF)[0], narrow.encoder(rows, SELF)[0])
        rows[..., VAD_STATE:] = torch.rand_like(rows[..., VAD_STATE:])  # the VAD's output: unheard until trained
        torch.testing.assert_close(wide.encoder(rows, SELF)[0], narrow.encoder(rows, SELF)[0])
    save_weights(wide, tmp_path / "wide.pt", {})
    with pytest.raises(ValueError, match="keeps the architecture"):  # no narrowing: that would drop what it learned
        load_weights(tmp_path / "wide.pt", vad_state=False)


def test_articulatory_targets_follow_the_phones_delayed_by_the_look_ahead():
    from backchannel.models.phones import PARAMS
    from backchannel.models.training.data import articulatory_targets

    phones = [(0.50, 0.60, "m"), (0.60, 0.80, "a"), (0.80, 0.90, "f")]
    art = articulatory_targets(phones, 120, delay_s=0.05)  # rows every 10 ms
    closure, jaw, tuck = (art[:, PARAMS.index(k)] for k in ("closure", "jaw", "tuck"))
    assert closure[55:65].min() == 1.0 and closure[:55].max() == 0.0 and closure[65:].max() == 0.0
    assert jaw[66:84].min() > jaw[56:64].max()  # the open vowel, 50 ms later than it sounds
    assert tuck[86:94].min() == 1.0 and art[96:].max() == 0.0  # and silence after the last phone


def test_recording_variation_moves_every_formant_by_one_factor_within_the_warp():
    from backchannel.models.frontend.features import LOG_FLOOR, N_MELS, mel_edges_hz, track_features
    from backchannel.models.training.data import VOCAL_TRACT_WARP, vary_recording

    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    two_formants = 0.2 * np.sin(2 * np.pi * 500 * t) + 0.2 * np.sin(2 * np.pi * 2000 * t)
    rows = track_features(two_formants.astype(np.float32))[20:80, :N_MELS]
    before = rows.copy()
    centres = mel_edges_hz()[1:-1]

    def peaks(x):  # the strongest band below and above 1 kHz
        m = x.mean(0)
        low = centres < 1000
        return np.array([centres[low][m[low].argmax()], centres[~low][m[~low].argmax()]])

    rng = np.random.default_rng(0)
    ratios = np.array([peaks(vary_recording(rows, rng)) / peaks(rows) for _ in range(200)])
    np.testing.assert_array_equal(rows, before)  # the cached rows stay as they were
    band = centres[1:] / centres[:-1]  # a band's step in frequency, largest at the bottom
    slack = band[np.searchsorted(centres, 500)]
    assert ratios.min() >= (1 - VOCAL_TRACT_WARP) / slack and ratios.max() <= (1 + VOCAL_TRACT_WARP) * slack
    # both formants move the same way in a draw (one vocal tract), and draws go both ways
    assert np.mean(np.sign(ratios[:, 0] - 1) * np.sign(ratios[:, 1] - 1) >= 0) > 0.9
    assert np.mean(ratios[:, 1] < 0.97) > 0.2 and np.mean(ratios[:, 1] > 1.03) > 0.2
    varied = vary_recording(rows, np.random.default_rng(1))
    assert varied.shape == rows.shape and varied.dtype == np.float32 and varied.min() >= np.log(LOG_FLOOR) - 1e-6


def dialogue_training_clip(dialogue, **kwargs):
    """The test dialogue as a training clip (the baseline's motion as labels), a small model fitted to it and one
    batch of 4 windows: for the loss-weighting tests."""
    from backchannel.models.generator import make_generator
    from backchannel.models.training.data import WindowSampler, make_clip
    from backchannel.models.training.loop import fit_input_statistics

    labels = generate(make_generator("baseline"), dialogue.self_audio, dialogue.other_audio, seed=0)
    clip = make_clip("dialogue", dialogue.self_audio, dialogue.other_audio, labels.motion, labels.state, **kwargs)
    model = small_model(seed=1)
    fit_input_statistics(model, [clip])
    return clip, model, WindowSampler([clip], model.cfg, frames=30).batch(np.random.default_rng(0), 4)


def latent_loss(model, batch, reply_weight=1.0, closure_weight=1.0, **masks):
    """The denoising loss of `batch` with its `reply` / `closing` masks replaced by `masks`, at fixed noise."""
    loss = LossConfig(reply_weight=reply_weight, closure_weight=closure_weight)
    torch.manual_seed(0)
    return training_loss(model, dict(batch, **masks), loss, torch.Generator().manual_seed(0))["latent"].item()


def test_frames_after_a_partner_phrase_end_weigh_more_in_the_denoising_loss(dialogue):
    from backchannel.models.training.data import PAD_FRAMES

    clip, model, batch = dialogue_training_clip(dialogue, partner_phrase_ends=[1.0, 3.0])
    reply = clip.reply[PAD_FRAMES:]
    assert reply[30:60].all() and reply[90:120].all() and reply[:29].sum() == reply[62:89].sum() == 0
    assert not clip.closing.any()  # no phone timings given
    loss = lambda weight, reply: latent_loss(model, batch, reply_weight=weight, reply=reply)  # noqa: E731

    none, some = torch.zeros_like(batch["reply"]), torch.zeros_like(batch["reply"])
    some[:2] = 1.0  # the first two windows are replies throughout
    plain = loss(1.0, none)
    # the weights are relative: all-reply or no-reply batches keep the plain loss
    assert loss(4.0, none) == pytest.approx(plain, rel=1e-5)
    assert loss(4.0, torch.ones_like(none)) == pytest.approx(plain, rel=1e-5)
    assert loss(1.0, some) == pytest.approx(plain, rel=1e-5)
    # a huge weight leaves only the reply windows' error, a neutral one mixes in the rest
    replies_only = loss(1e6, some)
    assert replies_only != pytest.approx(plain, rel=1e-3)
    assert loss(4.0, some) == pytest.approx(0.8 * replies_only + 0.2 * (2 * plain - replies_only), rel=1e-3)


def test_frames_of_the_avatars_own_p_b_m_phones_weigh_like_replies(dialogue):
    from backchannel.models.training.data import PAD_FRAMES

    self_phones = [(0.5, 0.6, "b"), (0.6, 0.9, "a"), (1.0, 1.1, "m"), (1.1, 1.3, "i"), (2.0, 2.1, "p")]
    partner_phones = [(0.5, 0.6, "m")]  # the partner's bilabials are not the avatar's lips
    clip, model, batch = dialogue_training_clip(dialogue, phones=(self_phones, partner_phones))
    closing = clip.closing[PAD_FRAMES:]
    assert np.flatnonzero(closing).tolist() == [15, 16, 17, 18, 30, 31, 32, 33, 60, 61, 62, 63]
    assert not clip.reply.any()  # no partner phrase ends given
    none, some = torch.zeros_like(batch["reply"]), torch.zeros_like(batch["reply"])
    some[:2] = 1.0
    loss = lambda rw, cw, reply, closing: latent_loss(model, batch, rw, cw, reply=reply, closing=closing)  # noqa: E731

    plain = loss(1.0, 1.0, none, none)
    assert loss(4.0, 4.0, none, none) == pytest.approx(plain, rel=1e-5)
    assert loss(1.0, 4.0, none, some) == pytest.approx(loss(4.0, 1.0, some, none), rel=1e-5)
    assert loss(1.0, 4.0, none, some) != pytest.approx(plain, rel=1e-3)


def test_blinks_show_over_the_network_s_lids_and_switch_off_to_give_them_back(dialogue):
    """The blink stage closes the lids further than the network drew them, as often as the style's blink_rate asks,
    and touches nothing else; `blinks=false` shows the network's lids. Its frames hear no audio after their own: a
    stream fed everything at once (the stage sees every frame of the call together) blinks before a cut as one whose
    audio turns to noise after it."""
    from backchannel.models.generator import Style
    from backchannel.models.infp.generator import LIDS

    from .helpers import frames_due

    model = small_model()
    a, b = dialogue.self_audio[:12 * SAMPLE_RATE], dialogue.other_audio[:12 * SAMPLE_RATE]
    often = Style(blink_rate=3.0)  # about 30 a minute: a few blinks in these 12 s
    run = lambda gen, x, y: generate(gen, x, y, seed=3, style=often, chunk_s=20)  # noqa: E731
    on = run(ModelGenerator(model=model, backend="torch"), a, b)
    off = run(ModelGenerator(model=model, backend="torch", blinks=False), a, b)
    rest = np.ones(MOTION_DIM, bool)
    rest[LIDS] = False
    np.testing.assert_array_equal(on.motion[:, rest], off.motion[:, rest])
    assert (on.motion[:, LIDS] >= off.motion[:, LIDS]).all() and on.motion[:, LIDS].max() == 1.0
    blinking = (on.motion[:, LIDS] > off.motion[:, LIDS]).any(1)
    rarely = generate(ModelGenerator(model=model, backend="torch"), a, b, seed=3, chunk_s=20)  # blink_rate 1
    assert (rarely.motion[:, LIDS] > off.motion[:, LIDS]).any(1).sum() < blinking.sum()

    cut = 8 * SAMPLE_RATE
    noise = np.random.default_rng(0).normal(0, 0.3, len(a) - cut).astype(np.float32)
    noisy = run(ModelGenerator(model=model, backend="torch"), np.concatenate([a[:cut], noise]),
                np.concatenate([b[:cut], noise]))
    due = frames_due(cut, model.cfg.lookahead_samples)
    assert blinking[:due].sum() >= 12  # something to compare: two blinks or more
    np.testing.assert_allclose(noisy.motion[:due], on.motion[:due], atol=1e-5)
    assert np.abs(noisy.motion[due:] - on.motion[due:]).max() > 1e-2  # the noise was heard after the cut
