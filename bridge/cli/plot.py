"""`backchannel plot`: a picture of any motion file (JSONL, CSV or NPZ), with its audio when given."""
from __future__ import annotations

from pathlib import Path


def register(commands) -> None:
    p = commands.add_parser("plot", help="draw a motion file (blendshapes, role, head, gaze) as a PNG")
    p.add_argument("motion", metavar="MOTION.jsonl|.csv|.npz")
    p.add_argument("--png", metavar="OUT.png", help="the picture to write (default: MOTION with .png, if no such file exists)")
    p.add_argument("--self", dest="self_audio", metavar="SELF.wav", help="draw this track above the motion")
    p.add_argument("--other", dest="other_audio", metavar="OTHER.wav", help="and this one")
    p.set_defaults(func=plot_command)


def plot_command(args) -> int:
    from backchannel.bridge.bake.plot import plot_motion
    from backchannel.bridge.outputs.files import read_motion
    from backchannel.models.audio import load_audio

    png = Path(args.png or Path(args.motion).with_suffix(".png"))
    if not args.png and png.exists():  # a name the user did not give: never written over unasked
        raise ValueError(f"{png} exists; give --png {png} to replace it, or another --png name")
    if png.suffix.lower() != ".png":
        raise ValueError(f"--png {png}: write a .png")
    block = read_motion(args.motion)
    if not len(block):
        raise ValueError(f"{args.motion} holds no frames to draw")
    tracks = {name: load_audio(path) for name, path in (("self", args.self_audio), ("other", args.other_audio)) if path}
    print(f"wrote {plot_motion(block, png, tracks, Path(args.motion).name)} ({len(block)} frames)")
    return 0
