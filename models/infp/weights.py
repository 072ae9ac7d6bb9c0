"""Where the shipped model lives and how weights files load (torch).

Two forms ship in models/weights/: `motion.pt` (float16 torch weights: to fine-tune, export, or run on CUDA) and
`motion-onnx/` (`backchannel export onnx` of it with the default sampler: what serving runs, with no torch).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from backchannel.models.infp.config import ModelConfig

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
WEIGHTS = WEIGHTS_DIR / "motion.pt"
GRAPHS = WEIGHTS_DIR / "motion-onnx"
# the sampler steps whose frame steps ship in motion-onnx/ (the first is its default): the governor's model tiers
SHIPPED_SAMPLER_STEPS = (4, 2, 1)
TRAINING_ONLY = ("articulation.",)  # parameters used in training alone: not shipped, not needed to run


def read_weights(path) -> dict:
    """torch.load of weights or a training checkpoint, failing in one line that names the file when it is missing,
    not one of ours, or damaged (torch.load itself fails in many ways that do not name it)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling, zip, EOF, key errors...: whatever torch says, the file is not usable
        raise ValueError(f"{path} is not a Backchannel weights file, or is damaged") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a Backchannel weights file")
    return ckpt


def load_weights(path=None, **changes):
    """A trained MotionModel: shipped weights (`motion.pt`, float16, no training-only read-out) or a run's
    `motion-checkpoint.pt` (its EMA weights, read-out included), to run or to train further. The architecture is
    the file's; `changes` may only turn `vad_state` on, to fine-tune weights that never read the VAD's output
    (AudioEncoder widens them)."""
    from backchannel.models.infp.network import MotionModel

    path = Path(path or WEIGHTS)
    ckpt = read_weights(path)
    if "config" not in ckpt or not ({"model", "ema"} & set(ckpt)):
        raise ValueError(f"{path} holds neither motion weights nor a motion training checkpoint")
    stage = (ckpt.get("meta") or {}).get("stage", "motion")
    if stage != "motion":  # a codec.pt has a config and a model too, but its motion model never trained
        raise ValueError(f"{path} holds {stage} weights (`backchannel train {stage}`), not a trained motion model")
    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if set(changes) - {"vad_state"} or (cfg.vad_state and changes.get("vad_state") is False):
        raise ValueError(f"{path}: a model keeps the architecture it was trained with (only vad_state may be "
                         f"turned on), not {changes}")
    model = MotionModel(replace(cfg, **changes))
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.get("ema", ckpt.get("model")).items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape changed
        raise ValueError(f"{path} does not fit its own config ({e})") from None
    wrong = [k for k in missing if not k.startswith(TRAINING_ONLY)] + list(unexpected)
    if wrong:
        raise ValueError(f"{path} does not fit this version's model (e.g. {', '.join(wrong[:3])})")
    return model.eval()
