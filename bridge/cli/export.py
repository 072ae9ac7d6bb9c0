"""`backchannel export`: the streaming model's graphs (ONNX) or a TensorRT engine built from them."""
from __future__ import annotations

from pathlib import Path

def steps_list(text: str) -> tuple[int, ...]:
    """"4,2,1" -> (4, 2, 1), each a whole number >= 1."""
    import argparse

    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: whole numbers >= 1, separated by commas") from None


def register(commands) -> None:
    p = commands.add_parser("export", help="export the streaming model (ONNX) or build a TensorRT engine")
    p.add_argument("format", choices=("onnx", "tensorrt"))
    p.add_argument("--weights", default=None, help="motion weights (default: the shipped ones)")
    p.add_argument("--out", default="out/onnx", help="output folder")
    p.add_argument("--sampler-steps", type=steps_list, default=None, metavar="N[,N...]",
                   help="sampler steps of the frame steps exported: the first is the folder's default, the others go "
                        "beside it (default 4,2,1, as shipped)")
    p.add_argument("--fp32", action="store_true", help="TensorRT: no FP16")
    p.set_defaults(func=export_command)


def export_command(args) -> int:
    from backchannel.models.infp.export import build_tensorrt, export_checked
    from backchannel.models.infp.weights import SHIPPED_SAMPLER_STEPS, load_weights

    for steps in args.sampler_steps or ():
        if steps < 1:
            raise ValueError(f"--sampler-steps must be a whole number >= 1, got {steps}")
    out = Path(args.out)
    if args.format == "onnx":
        folder, diffs = export_checked(load_weights(args.weights), out, args.sampler_steps or SHIPPED_SAMPLER_STEPS)
        print(f"wrote {folder} (encoder, frame step, style graphs and model.json); largest difference from torch: "
              + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        return 0
    for name in ("encoder", "frame_step"):
        onnx_path = out / f"{name}.onnx"
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} not found: run `backchannel export onnx --out {out}` first")
        print(f"wrote {build_tensorrt(onnx_path, out / f'{name}.plan', fp16=not args.fp32)}")
    return 0
