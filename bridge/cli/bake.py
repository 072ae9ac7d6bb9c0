"""`backchannel bake`: a dialogue line (or a batch of them) in, animation assets out that Blender, Unity, Unreal,
three.js, Live2D and Rhubarb's integrations import as they are (docs/bake.md). The motion comes from the offline
path `run` uses; the writers are bridge/bake/."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

from backchannel.bridge.cli.common import GENERATOR_HELP, json_object
from backchannel.bridge.cli.portrait import add_portrait_arguments
from backchannel.bridge.cli.run import CHANNEL_HELP

ENDINGS_HELP = ".glb .gltf .anim .unreal.csv .motion3.json .tsv .rhubarb.json .jsonl .csv .npz"


def register(commands) -> None:
    p = commands.add_parser("bake", help="turn a dialogue line into animation assets (glTF, Unity, Unreal, Live2D, "
                            "Rhubarb cues)", description=__doc__.split("\n\n")[0])
    p.add_argument("--self", dest="self_audio", metavar="LINE.wav[:CHANNEL]", help="the line: the avatar's own voice")
    p.add_argument("--other", dest="other_audio", metavar="PARTNER.wav[:CHANNEL]",
                   help="what the partner says meanwhile (default: silence)")
    p.add_argument("--channel", default="mix", metavar="left|right|mix|N", help=CHANNEL_HELP)
    p.add_argument("--out", action="append", metavar="NAME.EXT",
                   help=f"asset to write, its format from the ending ({ENDINGS_HELP}); repeat for several")
    p.add_argument("--batch", metavar="FOLDER|SCRIPT.csv|SCRIPT.json",
                   help="bake many lines: a folder of recordings, or a script of lines (speaker, file, partner, "
                   "start, id) on one timeline where each line's partner track is the others' lines around it")
    p.add_argument("--out-dir", metavar="DIR", help="with --batch: where the assets go (one per line and --to)")
    p.add_argument("--to", action="append", metavar="ENDING", help="with --batch: the endings to write per line, "
                   "e.g. --to .glb --to .motion3.json (default .glb)")
    p.add_argument("--format", help="write --out in this format whatever its ending: glb, gltf, unity, unreal, "
                   "live2d, rhubarb-tsv, rhubarb-json, jsonl, csv, npz")
    p.add_argument("--names", help="the blendshape names of .glb/.gltf/.anim/.unreal.csv: arkit (default), vrm0 "
                   "or vrm1 (calibration/rigs.py); .motion3.json always holds Live2D's standard parameters")
    p.add_argument("--fps", type=int, default=30, help="keys per second in the assets: 30 (the generator's) or 60")
    p.add_argument("--head", metavar="HEAD.glb|.vrm", help="animate this glTF/VRM model in the .glb/.gltf instead "
                   "of the face proxy: its morph targets by name (--names), its head and eye bones")
    p.add_argument("--unity-path", default="Face", metavar="PATH",
                   help="the SkinnedMeshRenderer's transform path under the animated object in a .anim (default Face)")
    p.add_argument("--generator", default=None, help=GENERATOR_HELP)
    p.add_argument("--seed", type=int, default=0, help="same seed, same audio: the same assets (batch lines each "
                   "get this seed mixed with their id)")
    p.add_argument("--style", type=json_object, default=None, metavar="JSON", help='e.g. {"expressiveness": 1.2}')
    p.add_argument("--gap", type=float, default=0.25, metavar="S",
                   help="with a script: seconds between lines that give no start (default 0.25)")
    p.add_argument("--context", type=float, default=1.0, metavar="S",
                   help="with a script: seconds of the scene before and after each line its asset holds (default 1)")
    p.add_argument("--force", action="store_true", help="with --batch: bake lines whose outputs already exist")
    p.add_argument("--png", nargs="?", const="", metavar="OUT.png",
                   help="also a plot of the motion (default: beside the first output)")
    p.add_argument("--video", nargs="?", const="", metavar="OUT.mp4",
                   help="also the rendered portrait (default: the bundled one; beside the first output)")
    add_portrait_arguments(p)
    p.set_defaults(func=bake_command)


def bake_command(args) -> int:
    from backchannel.models.atomic import sigterm_exits

    with sigterm_exits():  # a kill leaves no half-written asset under its name
        return bake_batch(args) if args.batch else bake_line(args)


def _plan(args, outs: list[str]) -> list[tuple[Path, str]]:
    """(path, format) per output, every setting checked before anything slow."""
    from backchannel.bridge.bake import check_asset, format_of
    from backchannel.bridge.bake.unity import check_renderer_path

    if args.format and len(outs) > 1:
        raise ValueError("--format applies to one --out; several outputs each say theirs by their ending")
    plan = [(Path(out), format_of(out, args.format)) for out in outs]
    if args.head and not any(fmt in ("glb", "gltf") for _, fmt in plan):
        raise ValueError("--head goes with a .glb or .gltf output")
    for path, fmt in plan:
        check_asset(path, fmt, args.fps, args.names)
        if fmt == "unity":
            check_renderer_path(args.unity_path)
    return plan


def _check_head(args) -> None:
    """--head, read once before the slow part: a binary glTF with targets the rig names."""
    from backchannel.bridge.bake.gltf import check_head

    if args.head:
        if not Path(args.head).is_file():
            raise ValueError(f"--head {args.head}: no such file")
        check_head(args.head, args.names or "arkit")


def _previews(args, first: Path) -> tuple[Path | None, Path | None]:
    """(png, mp4) asked for: given, or beside the first output."""
    png = None if args.png is None else Path(args.png or _beside(first, ".png"))
    video = None if args.video is None and not args.portrait else Path(args.video or _beside(first, ".mp4"))
    if png is not None and png.suffix.lower() != ".png":
        raise ValueError(f"--png {png}: write a .png")
    if png is not None:
        import matplotlib  # noqa: F401  (an extra: missing, say so before the slow part)
    if video is not None and video.suffix.lower() != ".mp4":
        raise ValueError(f"--video {video}: write an .mp4")
    return png, video


def _renderer(args):
    """The portrait renderer, opened before the slow part so a bad portrait fails first (the bundled one unless
    --portrait names another)."""
    from backchannel.bridge.cli.portrait import open_renderer
    from backchannel.models.render import BUNDLED_PORTRAIT

    return open_renderer({**vars(args), "portrait": args.portrait or str(BUNDLED_PORTRAIT)})


def _beside(path: Path, suffix: str) -> Path:
    """NAME.motion3.json -> NAME.png: the whole format ending replaced."""
    from backchannel.bridge.bake import clip_name

    return path.with_name(clip_name(path) + suffix)


def _write_all(args, plan, block, audio_name: str | None) -> None:
    from backchannel.bridge.bake import write_asset

    for path, fmt in plan:
        write_asset(path, block, fmt, fps=args.fps, names=args.names, unity_path=args.unity_path,
                    audio_name=audio_name, head=args.head)


def bake_line(args) -> int:
    from backchannel.bridge.bake.plot import plot_motion
    from backchannel.bridge.cli.run import audio_sources, generation_style, load_tracks, motion_from_tracks, render_video
    from backchannel.models.generator import make_generator
    from backchannel.models.motion import FRAME_RATE

    if not args.self_audio or not args.out:
        raise ValueError("give --self LINE.wav and --out NAME.EXT (or --batch FOLDER|SCRIPT with --out-dir)")
    if args.out_dir or args.to:
        raise ValueError("--out-dir and --to go with --batch; a single line takes --out")
    style = generation_style(args)
    plan = _plan(args, args.out)
    _check_head(args)
    png, video = _previews(args, plan[0][0])
    renderer = _renderer(args) if video else None
    self_audio, other_audio = load_tracks(audio_sources(args))
    generator = make_generator(args.generator)
    block, speed = motion_from_tracks(generator, self_audio, other_audio, args.seed, style,
                                      args.generator or generator.name)
    _write_all(args, plan, block, Path(args.self_audio).name)
    for path, fmt in plan:
        keys = f" as {args.fps} fps keys" if args.fps != FRAME_RATE else ""
        print(f"wrote {path} ({fmt}, {len(block)} frames at {FRAME_RATE} fps{keys})")
    print(speed)
    if png is not None:
        print(f"wrote {plot_motion(block, png, {'self': self_audio, 'other': other_audio}, Path(args.self_audio).name)}")
    if renderer is not None:
        render_video(renderer, block, self_audio, other_audio, video)
    return 0


def bake_batch(args) -> int:
    from tqdm import tqdm

    from backchannel.bridge.bake.plot import plot_motion
    from backchannel.bridge.bake.script import read_lines, tracks_for
    from backchannel.bridge.cli.run import generation_style, motion_from_tracks, render_video
    from backchannel.models.atomic import replacing
    from backchannel.models.audio import SAMPLE_RATE
    from backchannel.models.generator import make_generator

    if args.self_audio or args.other_audio or args.out:
        raise ValueError("--batch takes its audio from the folder or script and writes to --out-dir, "
                         "not --self/--other/--out")
    if not args.out_dir:
        raise ValueError("--batch needs --out-dir DIR")
    if args.format:
        raise ValueError("--batch writes the endings --to names; --format is for one --out")
    for name, value in (("gap", args.gap), ("context", args.context)):
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"--{name} must be a number of seconds >= 0, got {value}")
    style = generation_style(args)
    out_dir = Path(args.out_dir)
    endings = args.to or [".glb"]
    _plan(args, [f"x{e}" for e in endings])  # the endings and settings, checked before reading any audio
    _check_head(args)
    if args.png or args.video:
        raise ValueError("with --batch, --png and --video take no file name: one of each is written per line")
    _previews(args, Path("x.glb"))
    renderer = _renderer(args) if args.video is not None or args.portrait else None
    lines = read_lines(args.batch, args.gap)
    generator = make_generator(args.generator)
    manifest, baked = [], 0
    for line in tqdm(lines, unit="line", desc="bake", disable=None):
        plan = _plan(args, [str(out_dir / f"{line.id}{e}") for e in endings])
        png, video = _previews(args, plan[0][0])
        wanted = [p for p, _ in plan] + [p for p in (png, video) if p is not None]
        self_audio, other_audio, offset = tracks_for(line, lines, args.context)
        seed = (args.seed + zlib.crc32(line.id.encode())) % 2 ** 31  # per line, stable when lines move
        manifest.append({"id": line.id, "speaker": line.speaker, "file": str(line.file), "start_s": round(line.start, 4),
                         "line_offset_s": round(offset, 4), "seconds": round(len(self_audio) / SAMPLE_RATE, 4),
                         "seed": seed, "outputs": [p.name for p in wanted]})
        if not args.force and all(p.is_file() for p in wanted):  # each written whole or not at all: done
            continue
        block, _ = motion_from_tracks(generator, self_audio, other_audio, seed, style, line.id)
        _write_all(args, plan, block, line.file.name)
        if png is not None:
            plot_motion(block, png, {"self": self_audio, "other": other_audio}, line.id)
        if renderer is not None:
            render_video(renderer, block, self_audio, other_audio, video)
        baked += 1
    with replacing(out_dir / "bake.json") as tmp:
        tmp.write_text(json.dumps({"source": str(args.batch), "fps": args.fps, "lines": manifest}, indent=1) + "\n")
    print(f"baked {baked} of {len(lines)} lines into {out_dir} ({len(lines) - baked} already there); "
          f"index: {out_dir / 'bake.json'}")
    return 0
