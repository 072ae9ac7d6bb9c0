"""`backchannel data ...`: build the synthetic dyadic corpus, look at a clip, measure a corpus, make the demo."""
from __future__ import annotations

import json
import math
from pathlib import Path


def register(commands) -> None:
    p = commands.add_parser("data", help="build and inspect the synthetic two-voice training corpus")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    m = sub.add_parser("make", help="generate a corpus (resumable, deterministic for a seed)")
    m.add_argument("--out", required=True, help="corpus folder (created; re-running resumes)")
    m.add_argument("--hours", type=float, required=True, help="hours of conversation to generate")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--workers", type=int, default=0, help="processes (default 0: the CPUs this process may use)")
    m.add_argument("--speech-dir", action="append", default=[], metavar="DIR",
                   help="real recorded speech: wavs + transcripts.txt (`name: text`); repeatable, one per speaker")
    m.add_argument("--clip-seconds", type=float, default=30.0, help="length of each clip (default 30)")
    m.add_argument("--real-split", choices=("test-real", "train"), default="test-real",
                   help="where recorded speakers go: held out as the test-real split (default) or into train")
    m.add_argument("--augment", type=float, default=1.0, help="augmentation strength 0..1 (0: clean audio)")
    m.add_argument("--cache-dir", default=None, help="forced-alignment cache (default "
                   "$XDG_CACHE_HOME/backchannel/alignments, else ~/.cache/backchannel/alignments)")
    m.set_defaults(func=make_command)

    s = sub.add_parser("show", help="draw one clip (tracks, roles, curves, head) as a PNG")
    s.add_argument("clip", help="a clip .npz file or clip folder")
    s.add_argument("--png", required=True, help="picture to write")
    s.add_argument("--start", type=float, default=0.0, help="seconds (phone names appear for spans <= 12 s)")
    s.add_argument("--end", type=float, default=None)
    s.set_defaults(func=show_command)

    t = sub.add_parser("stats", help="hours, clips, voices, splits and label-quality numbers of a corpus")
    t.add_argument("dir")
    t.add_argument("--split", default=None, help="only this split")
    t.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    t.set_defaults(func=stats_command)

    a = sub.add_parser("sample", help="make the bundled demo conversation (real self voice, synthetic partner)")
    a.add_argument("--speech-dir", required=True, help="the real speaker (e.g. models/assets/speech/allison)")
    a.add_argument("--out", default="models/assets/sample")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--seconds", type=float, default=25.0)
    a.add_argument("--cache-dir", default=None)
    a.set_defaults(func=sample_command)


def make_command(args) -> int:
    from backchannel.models.corpus.build import BuildConfig, build

    config = BuildConfig(Path(args.out), args.hours, args.seed, args.workers, args.speech_dir, args.clip_seconds,
                         args.real_split, args.augment, args.cache_dir)
    result = build(config)
    print(f"{args.out}: {result['clips']} clips planned, {result['made']} made, {result['skipped']} already there, "
          f"{len(result['failed'])} failed; {result['seconds']:.1f} s on {result['workers']} workers")
    for name, error in result["failed"][:10]:
        print(f"  failed {name}: {error}")
    return 1 if result["failed"] else 0


def show_command(args) -> int:
    from backchannel.models.corpus.show import show

    # NaN fails every comparison, so it is refused too
    if not 0 <= args.start < math.inf or (args.end is not None and not args.end > args.start):
        raise ValueError(f"--start must be a number >= 0 and --end one after it, got {args.start}..{args.end}")
    print(f"wrote {show(args.clip, args.png, args.start, args.end)}")
    return 0


def stats_command(args) -> int:
    from backchannel.models.corpus.stats import corpus_stats, format_stats

    stats = corpus_stats(args.dir, args.split)
    print(format_stats(stats))
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=1, default=str) + "\n")
    return 0


def sample_command(args) -> int:
    from backchannel.models.corpus.sample import make_sample

    if not 5 <= args.seconds < math.inf:  # NaN fails the comparison too
        raise ValueError(f"--seconds must be a number >= 5, got {args.seconds}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    out, meta = make_sample(args.speech_dir, args.out, args.seed, args.seconds, cache_dir=args.cache_dir)
    kinds = {}
    for s in meta["segments"]:
        kinds[f"{s['track']} {s['kind']}"] = kinds.get(f"{s['track']} {s['kind']}", 0) + 1
    print(f"wrote {out}: {meta['seconds']:.0f} s, seed {meta['seed'][0]}, " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
    return 0
