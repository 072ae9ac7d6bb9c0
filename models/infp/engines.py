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


class TorchEngine:
    """The same interface with torch (CPU or CUDA), from a MotionModel."""

    def __init__(self, model, sampling: Sampling, device: str = "cpu"):
        import torch

        from backchannel.models.infp.network import FrameStep

        if device == "cpu":
            # per-tick graphs are tiny: a second intra-op thread only spin-waits, and on two busy cores that made
            # each call about five times slower (measured); batch size, not threads, is what scales
            torch.set_num_threads(1)
        self.torch, self.device = torch, device
        self.model = model.to(device).eval()
        self.frame_step = FrameStep(self.model, sampling).eval()
        self.facts = ModelFacts.of(self.model, sampling)

    def encode(self, rows: np.ndarray, track: int, state):
        torch, dev = self.torch, self.device
        with torch.no_grad():
            out, state = self.model.encoder(torch.as_tensor(rows, device=dev), track,
                                            tuple(torch.as_tensor(s, device=dev) for s in state))
        return out.cpu().numpy(), tuple(s.cpu().numpy() for s in state)

    def step(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        torch = self.torch
        with torch.no_grad():
            outputs = self.frame_step(*(torch.as_tensor(a, device=self.device) for a in arrays))
        return tuple(o.cpu().numpy() for o in outputs)

    def style_vector(self, reference: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            ref = torch.as_tensor(np.asarray(reference, np.float32)[None], device=self.device)
            return self.model.style_vector(ref, 1)[0].cpu().numpy()
