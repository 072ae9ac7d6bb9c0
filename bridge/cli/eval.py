"""`backchannel eval`: score generators on held-out clips (models/evaluation)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from backchannel.bridge.cli.common import check_counts


def register(commands) -> None:
    p = commands.add_parser("eval", help="score generators on held-out clips (the metrics of docs/model.md, Results)")
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--split", action="append", default=None, help="split(s) to score (default: test, test-real)")
    p.add_argument("--generator", default="model,baseline",
                   help="comma list: model, baseline, labels (the clips' own motion), the peers "
                        "openfacefx-energy, pocketsphinx-openfacefx and pylipsync (the `peers` extra), or options "
                        "in brackets separated by ';', e.g. model[sampler_steps=2] or "
                        "model[noise_correlation=0.9;backend=torch]")
    p.add_argument("--clips", type=int, default=None, help="at most this many clips per split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--by-voice", action="store_true",
                   help="also tabulate the lip metrics per self voice (e.g. each recorded speaker of test-real), "
                        "beside the same figures pooled over every voice")
    p.add_argument("--out", default="out/eval", help="folder for the markdown table, JSON and PNG")
    p.set_defaults(func=eval_command)


def eval_command(args) -> int:
    from itertools import islice

    from backchannel.models.corpus.dataset import Corpus
    from backchannel.models.corpus.voices import REAL_TEST_SPLIT
    from backchannel.models.evaluation.metrics import eval_clip, evaluate
    from backchannel.models.evaluation.peers import PEERS, check_installed
    from backchannel.models.evaluation.report import markdown_table, plot_results, plot_voices, voice_table
    from backchannel.models.evaluation.rule import rule_section, verdicts
    from backchannel.models.generator import GENERATORS, parse_spec, split_specs

    check_counts(args, 1, "clips")
    check_counts(args, 0, "seed")
    corpus = Corpus(args.data)
    available = corpus.splits()
    missing = [s for s in args.split or [] if s not in available]
    if missing:
        raise ValueError(f"{args.data} has no clips in split {', '.join(missing)} "
                         f"(splits: {', '.join(available) or 'none'})")
    splits = args.split or [s for s in ("test", "test-real") if s in available]
    if not splits:
        raise ValueError(f"{args.data} has no test split: name one with --split (splits: "
                         f"{', '.join(available) or 'none'})")
    generators = split_specs(args.generator)
    if not generators:  # blank, or only commas
        raise ValueError(f"--generator {args.generator!r} names no generator: give e.g. model,baseline or "
                         "model[sampler_steps=2]")
    for spec in generators:  # a bad spec fails now, not after minutes of scoring the ones before it
        name, _ = parse_spec(spec)
        if name not in GENERATORS and name != "labels" and name not in PEERS:
            raise ValueError(f"unknown generator {name!r}; choose from {', '.join(sorted(GENERATORS))}, labels or "
                             f"a peer ({', '.join(PEERS)})")
        if name in PEERS:
            check_installed(name)
    out = Path(args.out)
    report, everything = [], {}
    for split in splits:
        clips = [eval_clip(c) for c in islice(corpus.clips(split), args.clips)]
        results = evaluate(clips, generators, seed=args.seed, progress=sys.stderr.isatty(), by_voice=args.by_voice)
        out.mkdir(parents=True, exist_ok=True)  # once there are results: a generator that fails to load leaves none
        seconds = sum(len(c.self_audio) for c in clips) / 16000
        title = f"{split}: {len(clips)} clips, {seconds / 60:.1f} min"
        report.append(markdown_table(results, title))
        if args.by_voice:
            report.append(voice_table(results, split))
            plot_voices(results, out / f"eval-{split}-voices.png", split)
        if split == REAL_TEST_SPLIT:  # the default rule reads real voices never trained on
            judged = verdicts(results)
            report.append(rule_section(results, split, judged))
            for spec, verdict in judged.items():
                results[spec]["default_rule"] = {"default": verdict.default, "failed": verdict.failed}
        plot_results(results, out / f"eval-{split}.png", title)
        everything[split] = results
    (out / "eval.md").write_text("\n".join(report))
    (out / "eval.json").write_text(json.dumps(everything, indent=1))
    print("\n".join(report))
    pictures = [out / f"eval-{s}.png" for s in splits] + [out / f"eval-{s}-voices.png" for s in splits if args.by_voice]
    print(f"wrote {out / 'eval.md'}, {out / 'eval.json'} and " + ", ".join(map(str, pictures)))
    return 0
