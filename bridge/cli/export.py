"""`backchannel export`: the streaming model's graphs (ONNX) or a TensorRT engine built from them."""
from __future__ import annotations

from pathlib import Path

from backchannel.bridge.cli.common import check_counts


def register(commands) -> None:
    p = commands.add_parser("export", help="export the streaming model (ONNX) or build a TensorRT engine")
    p.add_argument("format", choices=("onnx", "tensorrt"))
    p.add_argument("--weights", default=None, help="motion weights (default: the shipped ones)")
    p.add_argument("--out", default="out/onnx", help="output folder")
    p.add_argument("--sampler-steps", type=int, default=None, help="sampler steps baked into the graph (default 4)")
    p.add_argument("--fp32", action="store_true", help="TensorRT: no FP16")
    p.set_defaults(func=export_command)


def export_command(args) -> int:
    from backchannel.models.infp.config import Sampling
    from backchannel.models.infp.export import build_tensorrt, export_checked
    from backchannel.models.infp.weights import load_weights

    check_counts(args, 1, "sampler_steps")
    out = Path(args.out)
    if args.format == "onnx":
        sampling = Sampling() if args.sampler_steps is None else Sampling(args.sampler_steps)  # as `run` samples
        folder, diffs = export_checked(load_weights(args.weights), out, sampling)
        print(f"wrote {folder} (encoder, frame step, style graphs and model.json); largest difference from torch: "
              + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        return 0
    for name in ("encoder", "frame_step"):
        onnx_path = out / f"{name}.onnx"
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} not found: run `backchannel export onnx --out {out}` first")
        print(f"wrote {build_tensorrt(onnx_path, out / f'{name}.plan', fp16=not args.fp32)}")
    return 0
