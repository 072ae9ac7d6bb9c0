"""Export the streaming model to ONNX (what engines.OnnxEngine runs), and build TensorRT engines from the graphs.

Two graphs make one streaming step: `encoder.onnx` (new feature rows of one track + its state -> encoder rows +
new state; the track is an input, so both tracks share one graph) and `frame_step.onnx` (guider -> the few-step
sampler, unrolled -> codec decoder; network.FrameStep). Batch and row counts are dynamic. `style.onnx` turns
reference motion into a style vector, and `model.json` holds the facts the generator needs beside them
(engines.ModelFacts). The shipped `models/weights/motion-onnx/` is this export of the shipped weights.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from backchannel.models.frontend.features import FEATURE_DIM, N_MELS
from backchannel.models.infp.config import Sampling
from backchannel.models.infp.engines import (STEP_INPUTS, STEP_OUTPUTS, ModelFacts, OnnxEngine, frame_steps,
                                             onnx_session)
from backchannel.models.infp.network import FrameStep, MotionModel
from backchannel.models.infp.weights import SHIPPED_SAMPLER_STEPS, TRAINING_ONLY
from backchannel.models.motion import MOTION_DIM

log = logging.getLogger(__name__)
OPSET = 17


def encoder_state_names(model: MotionModel) -> list[str]:
    """The encoder's streaming state: one history per convolution, then the GRU's."""
    return [f"hist{i}" for i in range(len(model.encoder.convs) + 1)] + ["gru_state"]


class _EncoderGraph(torch.nn.Module):
    def __init__(self, model: MotionModel):
        super().__init__()
        self.encoder = model.encoder

    def forward(self, rows, track, *state):
        out, new_state = self.encoder(rows, track, state)
        return (out, *new_state)


class _StyleGraph(torch.nn.Module):
    def __init__(self, model: MotionModel):
        super().__init__()
        self.model = model

    def forward(self, reference):
        return self.model.style_vector(reference, reference.shape[0])


def example_inputs(model: MotionModel, batch: int = 2, rows: int = 4):
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    x = r(batch, rows, FEATURE_DIM)  # log-mel near log power -8, the VAD's probability and LSTM output in (-1, 1)
    rows_in = torch.where(torch.arange(FEATURE_DIM) < N_MELS, x * 3 - 8, torch.tanh(x))
    encoder = (rows_in, torch.tensor(1, dtype=torch.int64), *model.encoder.initial_state(batch))
    step = (r(batch, cfg.guide_window, cfg.enc_hidden), r(batch, cfg.guide_window, cfg.enc_hidden),
            r(batch, cfg.style_dim), r(batch, cfg.prev_frames, cfg.latent_dim), r(batch, cfg.chunk, cfg.latent_dim))
    return encoder, step


def export_onnx(model: MotionModel, out_dir: str | Path, sampling: Sampling | None = None,
                also: tuple[Sampling, ...] = ()) -> Path:
    """The graphs and model.json (engines.GRAPH_FILES) into `out_dir`; returns it. `also`: other sampler settings
    whose frame steps go beside the default's (frame_step.1.onnx, ...; model.json's `frame_steps` names them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    sampling = sampling or Sampling()
    enc_in, step_in = example_inputs(model)
    enc_path, step_path = out_dir / "encoder.onnx", out_dir / "frame_step.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        # tracing notes that Python-side shapes become constants: true of the step count and head sizes, by design
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*RNN.*batch_first.*")
        # asks for the GRU's initial state as a graph input when the batch varies: it is one (the `gru*` inputs)
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        state = encoder_state_names(model)
        batch_axes = {name: {1 if name.startswith("gru") else 0: "batch"} for name in state + [n + "_out" for n in state]}
        torch.onnx.export(_EncoderGraph(model), enc_in, str(enc_path), input_names=["rows", "track", *state],
                          output_names=["out", *(n + "_out" for n in state)], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"rows": {0: "batch", 1: "rows"}, "out": {0: "batch", 1: "rows"}, **batch_axes})

        def export_step(settings: Sampling, path: Path) -> None:  # the default's, and each of `also`
            torch.onnx.export(FrameStep(model, settings).eval(), step_in, str(path), input_names=STEP_INPUTS,
                              output_names=STEP_OUTPUTS, opset_version=OPSET, dynamo=False,
                              dynamic_axes={name: {0: "batch"} for name in STEP_INPUTS + STEP_OUTPUTS})
            _stamp(path, sampling=json.dumps(asdict(settings)))

        export_step(sampling, step_path)
        reference = torch.zeros(1, 30, MOTION_DIM)
        torch.onnx.export(_StyleGraph(model), (reference,), str(out_dir / "style.onnx"), input_names=["reference"],
                          output_names=["style"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"reference": {0: "batch", 1: "frames"}, "style": {0: "batch"}})
        variants = {}
        for i, other in enumerate(also, 1):
            path = out_dir / f"frame_step.{i}.onnx"
            export_step(other, path)
            variants[path.name] = asdict(other)
    (out_dir / "model.json").write_text(json.dumps({**ModelFacts.of(model, sampling).to_json(),
                                                    "frame_steps": variants}))
    return out_dir


def _stamp(path: Path, **meta: str) -> None:
    """Record facts the graph cannot show (the sampler's settings) in the model's metadata."""
    import onnx

    proto = onnx.load(str(path))
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def stamped(step_path: Path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(step_path), load_external_data=False).metadata_props}


def cache_root() -> Path:
    return Path(os.environ.get("BACKCHANNEL_CACHE") or Path.home() / ".cache" / "backchannel")


def graph_cache_dir(model: MotionModel, sampling: Sampling) -> Path:
    """Keyed by the weights, the sampler's settings, torch's version and the source of every module in the graphs,
    so a change to any of them exports afresh instead of running a stale graph. Training-only parameters are left
    out: they are not in the graphs, and shipped weights lack them (they are randomly initialised on load), which
    made the key differ in every process and the cache never hit."""
    from backchannel.models.infp import audio_encoder, codec, config, denoiser, engines, flow, guider, network

    h = hashlib.sha256(f"{json.dumps(asdict(sampling))} {torch.__version__} {OPSET}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(TRAINING_ONLY):
            continue
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    for module in (audio_encoder, codec, config, denoiser, engines, flow, guider, network, sys.modules[__name__]):
        h.update(Path(module.__file__).read_bytes())
    return cache_root() / "onnx" / h.hexdigest()[:20]


def cached_graphs(model: MotionModel, sampling: Sampling) -> Path:
    """Export once per (weights, sampler settings, graph code) into the cache, then reuse."""
    import shutil
    import tempfile

    folder = graph_cache_dir(model, sampling)
    if not (folder / "model.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        export_onnx(model, tmp, sampling)
        try:
            tmp.rename(folder)  # atomic: a concurrent process either sees whole graphs or exports its own
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process got there first
    return folder


def check_onnx(model: MotionModel, folder: Path, batch: int = 3, rows: int = 7) -> dict:
    """Largest difference between torch and onnxruntime on the same inputs, per graph: absolute, and relative to
    the value where that exceeds 1 (float32 rounding grows with the value: the encoder's convolution histories)."""
    folder = Path(folder)
    enc_in, step_in = example_inputs(model, batch, rows)
    diff = lambda want, got: max(float((np.abs(w.numpy() - g) / np.maximum(1.0, np.abs(w.numpy()))).max())  # noqa: E731
                                 for w, g in zip(want, got))
    engine = OnnxEngine(folder)
    with torch.no_grad():
        want_enc = _EncoderGraph(model)(*enc_in)
    got_enc = engine.encoder.run(None, dict(zip(engine.encoder_inputs, (t.numpy() for t in enc_in))))
    diffs = {"encoder": diff(want_enc, got_enc)}
    for name in frame_steps(json.loads((folder / "model.json").read_text())).values():
        # each frame step against torch's with the settings stamped in the graph itself
        sampling = Sampling(**json.loads(stamped(folder / name)["sampling"]))
        with torch.no_grad():
            want_step = FrameStep(model, sampling).eval()(*step_in)
        got_step = onnx_session(folder / name).run(None, dict(zip(STEP_INPUTS, (t.numpy() for t in step_in))))
        diffs[name.removesuffix(".onnx")] = diff(want_step, got_step)
    return diffs


def export_checked(model: MotionModel, out_dir: str | Path, sampler_steps: tuple[int, ...] = SHIPPED_SAMPLER_STEPS,
                   tolerance: float = 1e-3) -> tuple[Path, dict]:
    """export_onnx of a frame step per `sampler_steps` (the first the folder's default; as shipped: the governor's
    tiers), then check_onnx, in a temporary folder beside `out_dir`; the graphs move into `out_dir` only once they
    agree with torch within `tolerance`, so a failed export or check leaves what was there."""
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        first, *rest = (Sampling(steps) for steps in sampler_steps)  # the other settings as `run` samples
        diffs = check_onnx(model, export_onnx(model, tmp, first, tuple(rest)))
        if max(diffs.values()) > tolerance:
            raise RuntimeError(f"the exported graphs disagree with torch beyond {tolerance:g} ("
                               + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) + f"): {out_dir} left as it was")
        out_dir.mkdir(exist_ok=True)
        for stale in out_dir.glob("frame_step.*.onnx"):  # variants of an earlier export
            stale.unlink()
        for path in tmp.iterdir():
            os.replace(path, out_dir / path.name)
        return out_dir, diffs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_tensorrt(onnx_path: str | Path, engine_path: str | Path, fp16: bool = True) -> Path:
    """Serialise a TensorRT engine from an exported graph. Needs the `tensorrt` package and an NVIDIA GPU; this
    project's CI and development machines have neither, so this path is written to TensorRT's documented
    builder API but has not been run here, and no runtime in this project loads the engines yet."""
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeError("tensorrt is not installed: install NVIDIA TensorRT (pip install tensorrt) on a machine "
                           "with an NVIDIA GPU, or use the onnxruntime backend") from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):  # sessions 1 .. 1024 (64 typical), new feature rows 1 .. 64 (4 typical)
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        batch_axis = 1 if tensor.name.startswith("gru_state") else 0  # the GRU state is (layers, batch, hidden)
        ranges = {batch_axis: (1, 64, 1024), **({1: (1, 4, 64)} if tensor.name == "rows" else {})}
        lo, opt, hi = ([ranges[j][k] if j in ranges and d == -1 else d for j, d in enumerate(shape)] for k in range(3))
        profile.set_shape(tensor.name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    engine_path = Path(engine_path)
    engine_path.write_bytes(bytes(serialized))
    return engine_path
