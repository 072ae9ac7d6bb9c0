"""`backchannel bake`: a dialogue line (or a batch of them) in, animation assets out that Blender, Unity, Unreal,
three.js, Live2D and Rhubarb's integrations import as they are (docs/bake.md). The motion comes from the offline
path `run` uses; the writers are bridge/bake/."""
from __future__ import annotations

import hashlib
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
        _check_writable(path)
    return plan


def _check_writable(path: Path) -> None:
    """The folder `path` goes in can be made and written: said now, in the user's terms, not after the slow part
    as an errno about a temporary."""
    import os

    if path.is_dir():
        raise ValueError(f"{path}: is a folder; name the file to write")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest folder that exists: the missing ones are made inside it
    if not folder.is_dir():
        raise ValueError(f"{path}: cannot be written, {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot be written, no permission to write in {folder}")


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
    for preview in (png, video):
        if preview is not None:
            _check_writable(preview)
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


def _write_all(args, plan, block, audio_name: str | None, own: tuple[float, float] | None = None) -> None:
    """Every asset of the plan. `own` = (offset_s, seconds): where the named audio (`audio_name`) lies in the block
    when the block holds more (a batch line's context): formats that name their sound file (Rhubarb's) hold only
    that span, their times from the start of that file."""
    from backchannel.bridge.bake import SOUND_FORMATS, write_asset

    for path, fmt in plan:
        part = block if own is None or fmt not in SOUND_FORMATS else _span(block, *own)
        try:
            write_asset(path, part, fmt, fps=args.fps, names=args.names, unity_path=args.unity_path,
                        audio_name=audio_name, head=args.head)
        except OSError as e:  # a full disk, a folder gone meanwhile: the user's name, not the temporary's
            raise ValueError(f"{path}: could not be written ({e.strerror or e})") from None


def _span(block, offset_s: float, seconds: float):
    """The frames of `block` from offset_s for seconds (at the generator's rate), renumbered from 0."""
    from backchannel.models.motion import FRAME_RATE, MotionBlock

    a = min(int(round(offset_s * FRAME_RATE)), len(block))
    b = min(a + max(int(round(seconds * FRAME_RATE)), 1), len(block))
    return MotionBlock(0, block.motion[a:b], block.state[a:b])


def _fingerprint(args, endings: list[str], seed: int, self_audio, other_audio, offset: float) -> str:
    """What a line's assets depend on: the settings that shape them and the audio they were made from (both
    tracks of its window, so a partner's line that changed counts too). A line is resumed only when it matches."""
    def file_key(path):
        stat = Path(path).stat()
        return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]

    settings = {"generator": args.generator, "seed": seed, "style": args.style, "fps": args.fps, "names": args.names,
                "unity_path": args.unity_path, "head": file_key(args.head) if args.head else None,
                "endings": sorted(endings), "png": args.png is not None,
                "video": [args.video is not None, args.portrait, getattr(args, "size", None)],
                "offset": round(offset, 4)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for audio in (self_audio, other_audio):
        digest.update(audio.tobytes())
    return digest.hexdigest()[:16]


def _old_index(path: Path) -> dict[str, dict]:
    """The lines a previous run's bake.json describes, by id (none when it is missing or unreadable)."""
    try:
        return {line["id"]: line for line in json.loads(path.read_text())["lines"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


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
    _plan(args, [str(out_dir / f"x{e}") for e in endings])  # endings, settings, the folder: before any audio
    _check_head(args)
    if args.png or args.video:
        raise ValueError("with --batch, --png and --video take no file name: one of each is written per line")
    _previews(args, Path("x.glb"))
    renderer = _renderer(args) if args.video is not None or args.portrait else None
    lines = read_lines(args.batch, args.gap)
    generator = make_generator(args.generator)
    index_path = out_dir / "bake.json"
    old = _old_index(index_path)
    # bake.json is rewritten as each line changes, so it only ever lists files made with the settings it names
    done: dict[str, dict] = {line.id: old[line.id] for line in lines if line.id in old}
    order = [line.id for line in lines]

    def write_index() -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        with replacing(index_path) as tmp:
            tmp.write_text(json.dumps({"source": str(args.batch), "lines": [done[i] for i in order if i in done]},
                                      indent=1) + "\n")

    baked = 0
    for line in tqdm(lines, unit="line", desc="bake", disable=None):
        plan = _plan(args, [str(out_dir / f"{line.id}{e}") for e in endings])
        png, video = _previews(args, plan[0][0])
        wanted = [p for p, _ in plan] + [p for p in (png, video) if p is not None]
        self_audio, other_audio, offset = tracks_for(line, lines, args.context)
        seed = (args.seed + zlib.crc32(line.id.encode())) % 2 ** 31  # per line, stable when lines move
        seconds = len(line.audio) / SAMPLE_RATE
        entry = {"id": line.id, "speaker": line.speaker, "file": str(line.file), "start_s": round(line.start, 4),
                 "line_offset_s": round(offset, 4), "seconds": round(seconds, 4),
                 "window_s": round(len(self_audio) / SAMPLE_RATE, 4), "seed": seed,
                 "settings": {"generator": args.generator or generator.name, "fps": args.fps,
                              "names": args.names or "arkit", "unity_path": args.unity_path, "head": args.head,
                              "style": args.style},
                 "fingerprint": _fingerprint(args, endings, seed, self_audio, other_audio, offset),
                 "outputs": [p.name for p in wanted]}
        previous = done.get(line.id, {})
        if (not args.force and previous.get("fingerprint") == entry["fingerprint"]
                and all(p.is_file() for p in wanted)):  # the same inputs and settings, each file whole: done
            done[line.id] = entry
            continue
        if done.pop(line.id, None) is not None:
            write_index()  # its files are about to change: unlisted until they all have
        block, _ = motion_from_tracks(generator, self_audio, other_audio, seed, style, line.id)
        _write_all(args, plan, block, line.file.name, own=(offset, seconds))
        if png is not None:
            plot_motion(block, png, {"self": self_audio, "other": other_audio}, line.id)
        if renderer is not None:
            render_video(renderer, block, self_audio, other_audio, video)
        done[line.id] = entry
        write_index()
        baked += 1
    write_index()
    print(f"baked {baked} of {len(lines)} lines into {out_dir} ({len(lines) - baked} already there with the same "
          f"settings and audio); index: {index_path}")
    return 0
