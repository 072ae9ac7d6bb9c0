"""What runs the networks for the streaming generator, numpy in and numpy out: onnxruntime on exported graphs (the
default; no torch), or torch (CUDA, or weights and sampler settings no graph was exported for).

An engine also answers the facts the generator needs of its model besides running it (ModelFacts): the config and
sampler settings, the neutral face's latent, the head pose bounds, the "no reference" style and the encoder's
starting state. Exported graphs carry them in `model.json` beside them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from backchannel.models.infp.config import ModelConfig, Sampling

STEP_INPUTS = ["a_self", "a_other", "style", "prev", "noise"]
STEP_OUTPUTS = ["latents", "motion", "state_logits"]
GRAPH_FILES = ("encoder.onnx", "frame_step.onnx", "style.onnx", "model.json")


@dataclass(frozen=True)
class ModelFacts:
    config: ModelConfig
    sampling: Sampling
    rest_latent: np.ndarray  # (L,) the neutral face, history before a stream's first frame
    pose_low: np.ndarray  # the head pose a frame may show, per HEAD_POSE column (network.POSE_BOUND_STD)
    pose_high: np.ndarray
    style_null: np.ndarray  # (S,) "no reference motion"
    encoder_state: tuple[np.ndarray, ...]  # one stream's starting state (AudioEncoder.initial_state)

    def to_json(self) -> dict:
        return {"config": asdict(self.config), "sampling": asdict(self.sampling),
                **{k: getattr(self, k).tolist() for k in ("rest_latent", "pose_low", "pose_high", "style_null")},
                "encoder_state": [s.tolist() for s in self.encoder_state]}

    @classmethod
    def from_json(cls, d: dict) -> "ModelFacts":
        arr = lambda x: np.asarray(x, np.float32)  # noqa: E731
        return cls(ModelConfig(**d["config"]), Sampling(**d["sampling"]), arr(d["rest_latent"]), arr(d["pose_low"]),
                   arr(d["pose_high"]), arr(d["style_null"]), tuple(arr(s) for s in d["encoder_state"]))

    @classmethod
    def of(cls, model, sampling: Sampling) -> "ModelFacts":
        """From a torch MotionModel."""
        import torch

        with torch.no_grad():
            low, high = model.pose_bounds()
            numpy = lambda t: t.detach().cpu().float().numpy()  # noqa: E731
            return cls(model.cfg, sampling, numpy(model.rest_latent()), numpy(low), numpy(high),
                       numpy(model.style_encoder.null), tuple(numpy(s) for s in model.encoder.initial_state(1)))


def frame_steps(described: dict) -> dict[Sampling, str]:
    """An export's model.json -> its frame step graph per sampler settings (the default's, then `frame_steps`')."""
    return {Sampling(**described["sampling"]): "frame_step.onnx",
            **{Sampling(**s): name for name, s in described.get("frame_steps", {}).items()}}


def exported_samplings(folder: Path) -> set[Sampling]:
    """The sampler settings a folder of exported graphs has frame steps for (none when it is no such folder)."""
    try:
        return set(frame_steps(json.loads((Path(folder) / "model.json").read_text())))
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def onnx_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # small graphs: one thread per call beats fan-out; sessions run side by side
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """A folder of exported graphs (GRAPH_FILES; `backchannel export onnx`) on onnxruntime's CPU provider."""

    def __init__(self, folder: str | Path, sampling: Sampling | None = None):
        """`sampling`: run the frame step exported with these settings (default: the folder's own)."""
        self.folder = folder = Path(folder)
        missing = [name for name in GRAPH_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}: make it with `backchannel export onnx "
                                    f"--out {folder}`")
        try:
            described = json.loads((folder / "model.json").read_text())
            self.facts = ModelFacts.from_json(described)
            steps = frame_steps(described)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{folder / 'model.json'} is not an exported model's description ({e})") from None
        sampling = sampling or self.facts.sampling
        if sampling not in steps:
            raise ValueError(f"{folder} holds no frame step for {sampling} (it has: "
                             f"{', '.join(str(s) for s in steps)})")
        self.facts = replace(self.facts, sampling=sampling)
        self.encoder = onnx_session(folder / "encoder.onnx")
        self.encoder_inputs = [i.name for i in self.encoder.get_inputs()]  # rows, track, the streaming state
        self.frame_step = onnx_session(folder / steps[sampling])
        self.style = onnx_session(folder / "style.onnx")

    def encode(self, rows: np.ndarray, track: int, state):
        """rows (B, T, F) of one track, the batched state (join_states) -> outputs (B, T, H), the new state."""
        out, *state = self.encoder.run(None, dict(zip(self.encoder_inputs, (np.asarray(rows, np.float32),
                                                                       np.array(track, np.int64), *state))))
        return out, tuple(state)

    def step(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.frame_step.run(None, dict(zip(STEP_INPUTS, (np.asarray(a, np.float32) for a in arrays)))))

    def style_vector(self, reference: np.ndarray) -> np.ndarray:
        """Reference motion (N, 62) -> style vector (S,)."""
        return self.style.run(None, {"reference": np.asarray(reference, np.float32)[None]})[0][0]


PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # --precision -> torch dtype
# torch.compile modes for the frame step (CUDA only): "reduce-overhead" replays it as CUDA graphs
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def bucket(rows: int) -> int:
    """The batch a compiled frame step runs for `rows` sessions: the next power of two, so a session count that
    changes every tick costs a handful of compiled graphs, not one per count."""
    return 1 << max(0, rows - 1).bit_length()


class TorchEngine:
    """The same interface with torch, on any device (cpu, cuda, cuda:N). Per call, every session's inputs cross to
    the device together (through reused pinned buffers on CUDA, asynchronously), the network runs once for the
    batch, and the outputs come back with one synchronisation: never one per session.

    `precision` runs the frame step (guider, denoiser, codec) in bf16 or fp16 (autocast over weights cast once);
    the audio encoder, whose recurrent state runs through a whole conversation, stays fp32. `compile` wraps the
    frame step in torch.compile (CUDA only; batches then padded to `bucket` sizes)."""

    def __init__(self, model, sampling: Sampling, device: str = "cpu", precision: str = "fp32",
                 compile: str = "off"):
        import copy

        import torch

        from backchannel.models.infp.network import FrameStep

        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile {compile!r}: choose from {', '.join(COMPILE_MODES)}")
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise ValueError(f"device {device!r}: {e}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device}: torch {torch.__version__} sees no CUDA GPU here (a CPU build of "
                               "torch, no driver, or no GPU)")
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device {device!r}: cpu, cuda or cuda:N")
        if compile != "off" and self.device.type != "cuda":
            raise ValueError(f"compile {compile} is a CUDA option (its gain is launch overhead and CUDA graphs); "
                             "on the CPU the shipped graphs run on onnxruntime")
        if self.device.type == "cpu":
            # per-tick graphs are tiny: a second intra-op thread only spin-waits, and on two busy cores that made
            # each call about five times slower (measured); batch size, not threads, is what scales
            torch.set_num_threads(1)
        self.torch, self.cuda = torch, self.device.type == "cuda"
        self.dtype = getattr(torch, PRECISIONS[precision])
        self.precision, self.compile = precision, compile
        self.model = model.to(self.device).eval()  # fp32: the encoder and the style encoder run on it
        # the frame step's own copy in its precision (buffers too: the history mix and the pose bounds)
        step_model = self.model if precision == "fp32" else copy.deepcopy(self.model)
        self.frame_step = FrameStep(step_model, sampling).to(self.device, self.dtype).eval()
        self.run_step = self.frame_step if compile == "off" else torch.compile(self.frame_step, mode=compile)
        self.pad = compile != "off"  # compiled graphs are per shape: batches padded to bucket sizes
        # (name, row shape, dtype) -> a pinned host buffer of a power-of-two number of rows, reused call after call
        # (CUDA): a batch takes a view of its first rows, so a session count that changes every tick makes a few
        # buffers over a run (each replacing the last), not one per count
        self.staging: dict = {}
        self.facts = ModelFacts.of(self.model, sampling)

    def _autocast(self):
        torch = self.torch
        if self.dtype == torch.float32:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _buffer(self, key, shape, dtype):
        """A host buffer of this shape (pinned on CUDA): a view of the first rows of this key's buffer, which grows
        to the next power of two of rows when a batch outgrows it."""
        rows, row = shape[0], tuple(shape[1:])
        buf = self.staging.get((key, row, dtype))
        if buf is None or len(buf) < rows:
            buf = self.staging[(key, row, dtype)] = self.torch.empty((bucket(rows), *row), dtype=dtype,
                                                                     pin_memory=self.cuda)
        return buf[:rows]

    def _upload(self, key: str, array: np.ndarray, rows: int | None = None, dtype=None):
        """Host array -> device tensor (`rows`: zero-padded to this batch). On CUDA through a pinned buffer,
        without waiting: the copy queues ahead of the network on the same stream."""
        torch = self.torch
        host = torch.from_numpy(np.ascontiguousarray(array, np.float32))
        n = len(host)
        if rows is not None and rows > n:
            host = torch.cat([host, host.new_zeros((rows - n, *host.shape[1:]))])
        if self.cuda:
            host = self._buffer(key, tuple(host.shape), host.dtype).copy_(host)
        return host.to(self.device, dtype or host.dtype, non_blocking=True)

    def _download(self, key: str, tensors, rows: int | None = None) -> list[np.ndarray]:
        """Device tensors (their first `rows`) -> host arrays, float32, with one synchronisation for them all."""
        torch = self.torch
        tensors = [t[:rows].float() if rows is not None else t.float() for t in tensors]
        if not self.cuda:
            return [t.numpy() for t in tensors]
        hosts = [self._buffer(f"{key}{i}", tuple(t.shape), torch.float32).copy_(t, non_blocking=True)
                 for i, t in enumerate(tensors)]
        torch.cuda.current_stream(self.device).synchronize()  # the one wait of this call
        return [h.numpy().copy() for h in hosts]  # the buffers are reused by the next call

    def encode(self, rows: np.ndarray, track: int, state):
        torch = self.torch
        with torch.no_grad():
            out, state = self.model.encoder(self._upload("rows", rows), track,
                                            tuple(self._upload(f"state{i}", s) for i, s in enumerate(state)))
            out, *state = self._download("enc", (out, *state))
        return out, tuple(state)

    def step(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        torch = self.torch
        n = len(arrays[0])
        rows = bucket(n) if self.pad else None
        with torch.no_grad(), self._autocast():
            inputs = [self._upload(name, a, rows, self.dtype) for name, a in zip(STEP_INPUTS, arrays)]
            outputs = self.run_step(*inputs)
            return tuple(self._download("step", outputs, n if rows is not None else None))

    def style_vector(self, reference: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            ref = torch.as_tensor(np.asarray(reference, np.float32)[None], device=self.device)
            return self.model.style_vector(ref, 1)[0].cpu().numpy()
