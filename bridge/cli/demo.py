"""`backchannel demo` (what `make demo` runs): the bundled two-track conversation through the default generator.

Writes the motion (JSONL and CSV), a picture of it against what was said, an mp4 of the bundled portrait animated
by it, then streams the sample through a real `serve` worker to print the latency figures.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path

from backchannel.bridge.cli.common import GENERATOR_HELP


def register(commands) -> None:
    p = commands.add_parser("demo", help="run the bundled conversation end to end and print where everything went")
    p.add_argument("--out", default="out/demo", help="folder for the results")
    p.add_argument("--generator", default=None, help=GENERATOR_HELP)
    p.add_argument("--latency-seconds", type=float, default=12.0,
                   help="seconds of the sample to stream live for the latency figures (0: skip)")
    p.set_defaults(func=demo_command)


def sample_dir() -> Path:
    from backchannel.models import ASSETS

    folder = ASSETS / "sample"
    if not (folder / "self.wav").is_file():
        raise FileNotFoundError(f"the bundled sample is missing from {folder}")
    return folder


def demo_command(args) -> int:
    import json

    from backchannel.bridge.outputs.files import write_motion
    from backchannel.models.audio import SAMPLE_RATE, load_audio
    from backchannel.models.corpus.clip import Clip
    from backchannel.models.corpus.show import draw
    from backchannel.models.generator import generate, make_generator
    from backchannel.models.render import BUNDLED_PORTRAIT, make_renderer, open_portrait
    from backchannel.models.render.video import mix_tracks, write_video

    folder = sample_dir()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    self_audio, other_audio = load_audio(folder / "self.wav"), load_audio(folder / "other.wav")
    seconds = len(self_audio) / SAMPLE_RATE
    generator = make_generator(args.generator)
    spec = args.generator or generator.name  # with its options, if any: the latency worker runs the same
    print(f"sample: {folder} ({seconds:.1f} s, two tracks); generator: {spec}")

    start = time.perf_counter()
    block = generate(generator, self_audio, other_audio, seed=0)
    elapsed = time.perf_counter() - start
    written = [write_motion(out / "motion.jsonl", block), write_motion(out / "motion.csv", block)]
    meta = json.loads((folder / "meta.json").read_text())
    written.append(draw(Clip(self_audio, other_audio, block.motion, block.state, meta), out / "motion.png",
                        title=f"demo: {spec} generator on the bundled conversation"))
    renderer = make_renderer(open_portrait(BUNDLED_PORTRAIT, size=512))
    write_video(out / "preview.mp4", renderer.render(block.motion), audio=mix_tracks(self_audio, other_audio))
    written.append(out / "preview.mp4")
    print(f"generated {len(block)} frames in {elapsed:.2f} s ({seconds / elapsed:.0f}x real time); wrote:")
    for path in written:
        print(f"  {path}")

    if args.latency_seconds > 0:
        from backchannel.bridge.latency import measure_latency

        n = int(min(seconds, args.latency_seconds) * SAMPLE_RATE)
        print(f"streaming {n / SAMPLE_RATE:.0f} s of it in real time through "
              f"`backchannel serve --generator {shlex.quote(spec)}` for latency ...")
        m = measure_latency(self_audio[:n], other_audio[:n], generator=spec)
        for key, label in (("end_to_end_ms", "audio in -> motion out, including look-ahead"),
                           ("processing_ms", "last audio needed in -> motion out")):
            p = m[key]
            print(f"  {label}: p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} ms, p99 {p['p99']:.1f} ms")
        print(f"  ({m['frames']} frames; look-ahead {m['lookahead_ms']:.0f} ms; worker used "
              f"{100 * m['worker_cpu_per_audio_s']:.0f}% of a core)")
    return 0
