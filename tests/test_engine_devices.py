"""The torch engine's device path (models/infp/engines.py TorchEngine), tested where this machine can: on the CPU.
The same code runs on CUDA with pinned staging buffers and compiled graphs; scripts/gpu-check.sh checks it there."""
import numpy as np
import pytest
import torch

from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.generator import generate, make_generator
from backchannel.models.infp.config import Sampling
from backchannel.models.infp.engines import STEP_INPUTS, TorchEngine, bucket
from backchannel.models.infp.generator import ModelGenerator

from .test_model import small_model


@pytest.fixture(scope="module")
def dialogue():
    return synthetic_dialogue(4.0, seed=3)


def example_inputs(engine, batch: int, seed: int = 0):
    cfg, rng = engine.facts.config, np.random.default_rng(seed)
    shapes = {"a_self": (cfg.guide_window, cfg.enc_hidden), "a_other": (cfg.guide_window, cfg.enc_hidden),
              "style": (cfg.style_dim,), "prev": (cfg.prev_frames, cfg.latent_dim), "noise": (cfg.chunk, cfg.latent_dim)}
    return [rng.standard_normal((batch, *shapes[name])).astype(np.float32) for name in STEP_INPUTS]


def test_the_torch_engine_on_the_cpu_gives_the_shipped_graphs_frames(dialogue):
    """The default (onnxruntime on the shipped graphs) and torch on an explicitly named device agree."""
    a, b = dialogue
    default = generate(make_generator("model"), a, b, seed=2, chunk_s=0.02)
    on_torch = make_generator("model[backend=torch;device=cpu]")
    assert on_torch.backend == "torch" and on_torch.describe()["device"] == "cpu"
    np.testing.assert_allclose(generate(on_torch, a, b, seed=2, chunk_s=0.02).motion, default.motion, atol=1e-4)


def test_each_row_of_a_batch_is_the_row_run_alone_padded_or_not():
    """Batched output equals per-session output, and padding a batch to its bucket (what compiled graphs run)
    changes no row."""
    engine = TorchEngine(small_model(), Sampling(2))
    arrays = example_inputs(engine, batch=5)
    together = engine.step(*arrays)
    for i in range(5):
        alone = engine.step(*(a[i:i + 1] for a in arrays))
        for got, want in zip(together, alone):
            np.testing.assert_allclose(got[i:i + 1], want, atol=1e-5)
    engine.pad = True
    padded = engine.step(*arrays)
    assert [len(x) for x in padded] == [5, 5, 5]  # the padding rows never come back
    for got, want in zip(padded, together):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_buckets_are_powers_of_two_at_least_the_batch():
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 1000, 1024, 1025)] == [1, 2, 4, 4, 8, 8, 16, 1024, 1024, 2048]


def test_a_batch_crosses_to_the_device_and_back_once_whatever_its_size(monkeypatch):
    """Per call: one upload per input and one download for all outputs, never one per session."""
    engine = TorchEngine(small_model(), Sampling(1))
    calls = {"up": 0, "down": 0}
    up, down = engine._upload, engine._download

    def counted_up(*args, **kwargs):
        calls["up"] += 1
        return up(*args, **kwargs)

    def counted_down(*args, **kwargs):
        calls["down"] += 1
        return down(*args, **kwargs)

    monkeypatch.setattr(engine, "_upload", counted_up)
    monkeypatch.setattr(engine, "_download", counted_down)
    for batch in (1, 16):
        calls.update(up=0, down=0)
        engine.step(*example_inputs(engine, batch))
        assert calls == {"up": len(STEP_INPUTS), "down": 1}


def test_staging_buffers_grow_by_powers_of_two_and_serve_every_batch_as_a_view():
    """A session count that changes every tick: one buffer per input at a time, log2(N) made over the run."""
    engine = TorchEngine(small_model(), Sampling(1))
    made = set()
    for rows in [1, 5, 3, 1000, 17, 999, 2, 1024, 600]:
        buf = engine._buffer("noise", (rows, 4, 8), torch.float32)
        assert buf.shape == (rows, 4, 8)
        base = engine.staging[("noise", (4, 8), torch.float32)]
        assert buf.data_ptr() == base.data_ptr() and bucket(rows) <= len(base)
        made.add(base.data_ptr())
    assert len(engine.staging) == 1 and len(base) == 1024 and len(made) <= 4  # 1, 8, 1024 (grown, never shrunk)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs_on_the_cpu_close_to_fp32(dialogue, precision):
    """The shipped model's frame step in bf16 / fp16 (the encoder stays fp32): finite frames, within a small
    distance of fp32's (docs/benchmarks.md gives the measured figures)."""
    a, b = dialogue
    full = generate(make_generator("model[backend=torch]"), a, b, seed=1, chunk_s=0.02)
    gen = make_generator(f"model[precision={precision}]")
    assert gen.backend == "torch" and gen.engine.frame_step.pose_low.dtype != torch.float32
    reduced = generate(gen, a, b, seed=1, chunk_s=0.02)
    assert reduced.motion.dtype == np.float32 and np.isfinite(reduced.motion).all()
    assert len(reduced) == len(full)
    difference = np.abs(reduced.motion - full.motion)
    assert 0 < difference.max() < 0.05, difference.max()  # it did run in the lower precision, and stayed close
    assert (reduced.state == full.state).mean() > 0.95


def test_engine_settings_that_cannot_run_here_fail_in_one_clear_line():
    model = small_model()
    with pytest.raises(ValueError, match="precision 'fp8'"):
        TorchEngine(model, Sampling(1), precision="fp8")
    with pytest.raises(ValueError, match="CUDA option"):
        TorchEngine(model, Sampling(1), compile="reduce-overhead")
    with pytest.raises(ValueError, match="onnx graphs run fp32"):
        ModelGenerator(model=model, backend="onnx", precision="bf16")
    with pytest.raises(ValueError, match="device 'tpu"):
        TorchEngine(model, Sampling(1), device="tpu:0")


def test_cuda_asked_for_on_a_machine_without_it_says_so():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: scripts/gpu-check.sh runs the CUDA path")
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        TorchEngine(small_model(), Sampling(1), device="cuda")


def one_head(gen, stream, motion):
    """The head stage for one stream alone, written out with 1-D filters (independently of show_heads)."""
    from scipy.signal import lfilter, lfilter_zi

    from backchannel.models.infp.generator import (
        HEAD_FILTERS, HEAD_GAINS, HEAD_KNEE_DEG, HEAD_LIMIT_DEG, soft_limit)
    from backchannel.models.motion import HEAD_POSE, HEAD_ROTATION

    pose = motion[:, HEAD_POSE].astype(np.float64)
    states = stream.head_filter or [lfilter_zi(b, a) * pose[0, j] for j, (b, a) in enumerate(HEAD_FILTERS)]
    filtered = [lfilter(b, a, pose[:, j], zi=zi) for j, ((b, a), zi) in enumerate(zip(HEAD_FILTERS, states))]
    stream.head_filter = [zi for _, zi in filtered]
    motion[:, HEAD_POSE] = np.clip(gen.head_gain * np.stack([y for y, _ in filtered], 1) * HEAD_GAINS,
                                   *gen.pose_bounds)
    motion[:, HEAD_ROTATION] = soft_limit(motion[:, HEAD_ROTATION], np.radians(HEAD_KNEE_DEG),
                                          np.radians(HEAD_LIMIT_DEG))


def test_the_head_stage_of_many_streams_at_once_is_each_stream_s_alone():
    """The head filters run once per axis for all streams with as many new frames (the per-session CPU work that
    stays on the host whatever runs the networks): exactly what each stream's own pass gives, states carried."""
    from backchannel.models.infp.generator import show_heads
    from backchannel.models.motion import HEAD_POSE, MOTION_DIM

    gen = ModelGenerator(model=small_model(), backend="torch")
    together = [gen.open_stream(seed=i) for i in range(3)]
    alone = [gen.open_stream(seed=i) for i in range(3)]
    rng = np.random.default_rng(0)
    for frames in (4, 1, 3):  # three calls: the filters' states carry over
        motions = [rng.normal(0, 0.2, (frames, MOTION_DIM)).astype(np.float32) for _ in together]
        copies = [m.copy() for m in motions]
        show_heads(gen, together, motions)
        for stream, motion in zip(alone, copies):
            one_head(gen, stream, motion)
        for got, want in zip(motions, copies):
            np.testing.assert_array_equal(got, want)
        assert np.abs(motions[0][:, HEAD_POSE]).max() > 0  # something was shown
    for a, b in zip(together, alone):
        for x, y in zip(a.head_filter, b.head_filter):
            np.testing.assert_array_equal(x, y)
