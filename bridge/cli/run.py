"""`backchannel run`: the pipeline on files, no sockets. Same generator, same frames as `serve` gives live."""
from __future__ import annotations

import time
from pathlib import Path

from backchannel.bridge.cli.common import GENERATOR_HELP, json_object
from backchannel.bridge.cli.portrait import add_portrait_arguments, open_renderer

CHANNEL_HELP = ("the channel of a stereo (or wider) file to use where --self or --other name none: left, right, "
                "mix (their mean; the default) or a channel number 0, 1, ...")


def add_audio_arguments(p, required: bool) -> None:
    """--self, --other (each FILE or FILE:CHANNEL, the same file for both when a call has a voice a side) and
    --channel, shared with `send`."""
    p.add_argument("--self", dest="self_audio", required=required, metavar="SELF.wav[:CHANNEL]",
                   help="the avatar's own voice; FILE:left, FILE:right, FILE:mix or FILE:N picks a channel")
    p.add_argument("--other", dest="other_audio", required=required, metavar="OTHER.wav[:CHANNEL]",
                   help="the partner's voice, likewise (e.g. --self call.wav:left --other call.wav:right)")
    p.add_argument("--channel", default="mix", metavar="left|right|mix|N", help=CHANNEL_HELP)


def register(commands) -> None:
    p = commands.add_parser("run", help="turn two audio files into a motion file offline")
    add_audio_arguments(p, required=True)
    p.add_argument("--out", action="append", required=True, metavar="motion.jsonl|.csv|.npz",
                   help="motion file to write (repeat for several formats)")
    p.add_argument("--generator", default=None, help=GENERATOR_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", type=json_object, default=None, metavar="JSON", help='e.g. {"expressiveness": 1.2}')
    add_portrait_arguments(p)
    p.add_argument("--video", metavar="out.mp4", help="with --portrait: the preview to write "
                   "(default: the first --out with its suffix changed to .mp4); both audio tracks are mixed in")
    p.set_defaults(func=run_command)


def audio_sources(args) -> dict:
    """{"self": (FILE, CHANNEL), "other": ...} for the tracks given; a file's own :CHANNEL wins over --channel.
    Raises ValueError on a channel that is none, before anything slow."""
    from backchannel.models.audio import check_channel, split_channel

    check_channel(args.channel, "--channel")
    sources = {}
    for track, spec in (("self", args.self_audio), ("other", args.other_audio)):
        if spec:
            path, channel = split_channel(spec)
            sources[track] = (path, channel or args.channel)
    return sources


def run_command(args) -> int:
    from backchannel.models.atomic import sigterm_exits

    with sigterm_exits():  # a `kill` cleans up as Ctrl-C does: no half-written --out or --video under its name
        return run_files(args)


def generation_style(args):
    """The seed and style checked by the rules a live session's follow; the Style to generate with. `run` and
    `bake` share it."""
    from backchannel.bridge.protocol import check_seed, check_style
    from backchannel.models.generator import Style

    check_seed(args.seed)
    return Style.from_dict(check_style(args.style or {}))


def load_tracks(sources: dict):
    """(self, other) audio at 16 kHz from audio_sources' {track: (FILE, CHANNEL)}; a track not given is silence
    (empty: `generate` pads it)."""
    import numpy as np

    from backchannel.models.audio import load_audio

    tracks = [load_audio(sources[t][0], channel=sources[t][1]) if t in sources else np.zeros(0, np.float32)
              for t in ("self", "other")]
    if not any(len(x) for x in tracks):
        names = [path for path, _ in sources.values()]
        raise ValueError(f"{' and '.join(names)} {'holds' if len(names) == 1 else 'hold'} no audio: nothing to animate")
    return tracks


def motion_from_tracks(generator, self_audio, other_audio, seed: int, style, label: str):
    """The offline path: whole tracks through a fresh stream. Returns the block and a line on how fast it went."""
    from backchannel.models.audio import SAMPLE_RATE
    from backchannel.models.generator import generate

    start = time.perf_counter()
    block = generate(generator, self_audio, other_audio, seed=seed, style=style)
    elapsed = time.perf_counter() - start
    seconds = max(len(self_audio), len(other_audio)) / SAMPLE_RATE
    return block, (f"{label}: {seconds:.1f} s of audio in {elapsed:.2f} s ({seconds / max(elapsed, 1e-9):.0f}x real "
                   f"time), look-ahead {generator.lookahead_s * 1000:.0f} ms")


def render_video(renderer, block, self_audio, other_audio, video) -> None:
    """The portrait animated by `block`, both tracks mixed in, as an mp4."""
    from tqdm import tqdm

    from backchannel.models.motion import FRAME_RATE
    from backchannel.models.render.video import mix_tracks, write_video

    start = time.perf_counter()
    frames = tqdm(renderer.render(block.motion), total=len(block), unit="frame", desc="render", leave=False,
                  disable=None)  # a bar on a terminal, nothing in logs
    write_video(video, frames, audio=mix_tracks(self_audio, other_audio))
    elapsed = time.perf_counter() - start
    print(f"wrote {video} ({len(block)} frames of {renderer.size}x{renderer.size} at {FRAME_RATE} fps with both "
          f"tracks mixed; {len(block) / max(elapsed, 1e-9):.0f} frames/s rendered and encoded)")


def run_files(args) -> int:
    from backchannel.bridge.outputs.files import FORMATS, write_motion
    from backchannel.models.generator import make_generator

    style = generation_style(args)
    for out in args.out:  # fail before the slow part
        if Path(out).suffix.lower() not in FORMATS:
            raise ValueError(f"--out {out}: use one of {', '.join(FORMATS)}")
    if args.video and not args.portrait:
        raise ValueError("--video needs --portrait IMG to animate")
    video = Path(args.video or Path(args.out[0]).with_suffix(".mp4")) if args.portrait else None
    if video is not None and video.suffix.lower() != ".mp4":
        raise ValueError(f"--video {video}: write an .mp4")
    sources = audio_sources(args)
    renderer = open_renderer(vars(args)) if args.portrait else None
    self_audio, other_audio = load_tracks(sources)
    generator = make_generator(args.generator)
    block, speed = motion_from_tracks(generator, self_audio, other_audio, args.seed, style,
                                      args.generator or generator.name)
    for out in args.out:
        print(f"wrote {write_motion(out, block)} ({len(block)} frames)")
    print(speed)
    if renderer is not None:
        render_video(renderer, block, self_audio, other_audio, video)
    return 0
