"""`backchannel train`, `backchannel eval` and `backchannel export`: the motion model's life cycle."""
from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

from .cli import json_object

log = logging.getLogger(__name__)


def register(commands) -> None:
    p = commands.add_parser("train", help="train the motion codec, then the motion model, on a corpus",
                            epilog="A --run folder that holds a checkpoint resumes from it, given the settings it was "
                                   "started with (others are refused). Ctrl-C stops at the end of the current step "
                                   "and saves a checkpoint there.")
    p.add_argument("what", choices=("codec", "motion"))
    p.add_argument("--data", required=True, help="corpus folder (backchannel data make)")
    p.add_argument("--run", default="runs/default", help="folder for checkpoints, loss logs and curves")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 3000 codec, 4000 motion)")
    p.add_argument("--batch", type=int, default=None,
                   help="motion: windows per step (default 32); codec: motion frames per step (default 1024)")
    p.add_argument("--window", type=int, default=None, help="motion: target frames per training window (default 90)")
    p.add_argument("--lr", type=float, default=None, help="motion: peak learning rate (default 3e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=json_object, default=None, metavar="JSON",
                   help='model config overrides (models/motion_model.py ModelConfig), e.g. {"depth": 3}; with '
                        '`motion`, a new motion model on the run\'s codec')
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="motion: fine-tune these weights (a motion.pt, or a run's motion-checkpoint.pt, whose EMA "
                        "weights and training-only read-out are taken) instead of starting new")
    p.add_argument("--weigh-engines", type=json_object, default=None, metavar="JSON",
                   help='motion: draw windows whose avatar voice came from these engines this much more often, '
                        'e.g. {"recorded": 4} for recorded speakers in the training split (data make --speech-dir)')
    p.add_argument("--install", action="store_true", help="also copy the final weights to the shipped default")
    p.set_defaults(func=train_command)

    p = commands.add_parser("eval", help="score generators on held-out clips (DESIGN.md section 6 metrics)")
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--split", action="append", default=None, help="split(s) to score (default: test, test-real)")
    p.add_argument("--generator", default="model,baseline",
                   help="comma list: model, baseline, labels (the clips' own motion), or options in brackets "
                        "separated by ';', e.g. model[steps=2] or model[noise_correlation=0.9;backend=torch]")
    p.add_argument("--clips", type=int, default=None, help="at most this many clips per split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--by-voice", action="store_true",
                   help="also tabulate the lip metrics per self voice (e.g. each recorded speaker of test-real)")
    p.add_argument("--out", default="out/eval", help="folder for the markdown table, JSON and PNG")
    p.set_defaults(func=eval_command)

    p = commands.add_parser("export", help="export the streaming model (ONNX) or build a TensorRT engine")
    p.add_argument("format", choices=("onnx", "tensorrt"))
    p.add_argument("--weights", default=None, help="motion weights (default: the shipped ones)")
    p.add_argument("--out", default="out/onnx", help="output folder")
    p.add_argument("--steps", type=int, default=None, help="sampler steps baked into the graph")
    p.add_argument("--fp32", action="store_true", help="TensorRT: no FP16")
    p.set_defaults(func=export_command)


def _training_clip(job):
    from backchannel.models.corpus.storage import read_clip
    from backchannel.models.training_data import make_clip

    split, path, cache, delay_s = job
    c = read_clip(path)
    phones = (c.meta["self_phones"], c.meta.get("other_phones", [])) if "self_phones" in c.meta else None
    return make_clip(f"{split}-{Path(path).stem}", c.self_audio, c.other_audio, c.motion, c.state, Path(cache),
                     phones, delay_s, c.partner_phrase_ends, c.meta["voices"]["self"]["engine"])


def load_training_clips(data: str, split: str, cache: Path, delay_s: float, workers: int | None = None):
    """Every clip of a split with its feature rows (computed once, in parallel, then cached) and, where the clip
    has phone timings, the articulatory targets of its rows (`delay_s`: ModelConfig.target_delay_s)."""
    import multiprocessing as mp

    from tqdm import tqdm

    from backchannel.models.corpus.dataset import Corpus
    from backchannel.models.cpus import usable_cpus

    corpus = Corpus(data)
    paths = corpus.paths(split)
    if not paths:
        raise ValueError(f"{data} has no clips in split {split!r} (splits: {', '.join(corpus.splits()) or 'none'})")
    jobs = [(split, str(p), str(cache), delay_s) for p in paths]
    with mp.get_context("spawn").Pool(workers or usable_cpus()) as pool:
        return list(tqdm(pool.imap(_training_clip, jobs, chunksize=4), total=len(jobs), desc=f"features ({split})",
                         mininterval=2))


def check_counts(args, low: int, *names: str) -> None:
    """Whole-number flags that must be at least `low`; None (not given) stands for the default, 0 never does."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < low:
            raise ValueError(f"--{name} must be a whole number >= {low}, got {value}")


def check_device(name: str) -> None:
    """Up front, in one line: torch fails late (after the features load), by an assertion on a CPU-only build, or
    with a list of every device type it knows."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device: give cpu, cuda or cuda:N") from None
    try:
        torch.empty(0, device=device)
    except (AssertionError, RuntimeError) as e:  # a CPU-only torch asserts; a missing GPU is a RuntimeError
        reason = str(e).strip().partition("\n")[0]
        raise RuntimeError(f"--device {name} is not available here: {reason}") from None


def model_config(overrides: dict | None) -> dict:
    """--config's overrides, each a ModelConfig setting given a value of its default's type."""
    from dataclasses import fields

    from backchannel.models.motion_model import ModelConfig

    defaults = {f.name: f.default for f in fields(ModelConfig)}
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"--config: unknown setting(s) {', '.join(unknown)}")
    for key, value in overrides.items():
        kind = type(defaults[key])
        # JSON has one kind of number: a whole one will do where a float is wanted (but true/false for no number)
        if not (type(value) is kind or (kind is float and type(value) is int)) or value != value:  # NaN too
            raise ValueError(f"--config: {key} must be {kind.__name__} like its default {defaults[key]!r}, "
                             f"got {value!r}")
    return overrides


def corpus_identity(data: str) -> dict:
    from backchannel.models.corpus.storage import read_corpus_info

    info = read_corpus_info(Path(data))
    return {"settings": info.get("settings"), "split_clips": info.get("split_clips")}


def file_digest(path: str) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def train_command(args) -> int:
    from dataclasses import replace

    import torch

    from backchannel.models.model_generator import WEIGHTS
    from backchannel.models.motion_model import ModelConfig, MotionModel
    from backchannel.models.train import (Interrupted, Run, TrainConfig, fit_feature_statistics, fit_input_statistics,
                                          new_model, save_weights, train_codec, train_motion)

    codec = args.what == "codec"
    check_counts(args, 1, "steps", "batch", "window")
    check_counts(args, 0, "seed")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a number > 0, got {args.lr}")
    motion_only = [f"--{name.replace('_', '-')}" for name in ("init", "weigh_engines", "window", "lr")
                   if getattr(args, name) is not None]
    if codec and motion_only:
        raise ValueError(f"{', '.join(motion_only)}: for `train motion` alone (the codec learns single frames, at "
                         "its own learning rate)")
    config = model_config(args.config)
    check_device(args.device)
    given = {"codec_steps" if codec else "steps": args.steps, "codec_batch" if codec else "batch": args.batch,
             "window_frames": args.window, "lr": args.lr}
    tc = replace(TrainConfig(seed=args.seed, engine_weights=args.weigh_engines),
                 **{k: v for k, v in given.items() if v is not None})

    torch.manual_seed(args.seed)
    run_dir = Path(args.run)
    codec_path = run_dir / "codec.pt"
    if codec:
        model = new_model(ModelConfig(**config), args.seed)
    elif args.init:  # fine-tuning; a run folder that already has a checkpoint resumes that instead
        model = MotionModel.from_weights(args.init, **config).train()
    elif not codec_path.is_file():
        raise FileNotFoundError(f"{codec_path} not found: run `backchannel train codec --run {run_dir}` first")
    else:  # the motion model starts new on the run's codec (settings may differ from the codec run's)
        model = MotionModel.from_codec(codec_path, **config).train()
    # what a resumed run must be given again: its checkpoint goes on only with the settings it was made with. The
    # corpus and --init are known by what they hold (a corpus's build settings and size, the weights' bytes), not
    # by path, so a run may move to another folder or machine; the config as the model has it, overrides applied.
    settings = {"data": corpus_identity(args.data), "seed": args.seed, "config": model.config_dict()}
    if codec:
        settings.update(steps=tc.codec_steps, batch=tc.codec_batch)
    else:
        settings.update({"init": file_digest(args.init) if args.init else None, "steps": tc.steps,
                         "batch": tc.batch, "window": tc.window_frames, "lr": tc.lr,
                         "weigh-engines": tc.engine_weights or None})
    run = Run(run_dir, args.what, settings)
    run.check_settings()  # before the features load, which takes minutes on a real corpus
    clips = load_training_clips(args.data, "train", Path(args.data) / ".cache" / "features", model.cfg.target_delay_s)
    if model.encoder.widened_from:  # --init weights that read fewer feature columns: the new ones' statistics
        fit_feature_statistics(model, clips, first_column=model.encoder.widened_from)
    try:
        if codec:
            fit_input_statistics(model, clips)
            train_codec(model, clips, run, tc, args.device, progress=True)
        else:
            ema = train_motion(model, clips, run, tc, args.device, progress=True)
    except Interrupted as e:
        print(f"stopped at step {e.step} of {tc.codec_steps if codec else tc.steps}, checkpoint saved in "
              f"{run.checkpoint}: run the same command again to resume", file=sys.stderr)
        return 130
    if codec:
        path = save_weights(model, codec_path, {"stage": "codec", "data": str(args.data)})
        print(f"codec: {path}; losses: {run_dir / 'codec-losses.png'}")
        return 0
    meta = {"stage": "motion", "data": str(args.data), "steps": tc.steps, "batch": tc.batch,
            "window_frames": tc.window_frames, "vary_recordings": tc.vary_recordings,
            "engine_weights": tc.engine_weights, "seed": args.seed, "init": args.init,
            "train_frames": sum(c.frames for c in clips)}
    path = save_weights(ema, run_dir / "motion.pt", meta)
    print(f"motion model: {path}; losses: {run_dir / 'motion-losses.png'}")
    if args.install:
        save_weights(ema, WEIGHTS, meta)
        print(f"installed as the default: {WEIGHTS}")
    return 0


def eval_command(args) -> int:
    from itertools import islice

    from backchannel.models.corpus.dataset import Corpus
    from backchannel.models.evaluate import (eval_clip, evaluate, markdown_table, plot_results, plot_voices,
                                             voice_table)
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
                         "model[steps=2]")
    for spec in generators:  # a bad spec fails now, not after minutes of scoring the ones before it
        name, _ = parse_spec(spec)
        if name not in GENERATORS and name != "labels":
            raise ValueError(f"unknown generator {name!r}; choose from {', '.join(sorted(GENERATORS))} or labels")
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
        plot_results(results, out / f"eval-{split}.png", title)
        everything[split] = results
    (out / "eval.md").write_text("\n".join(report))
    (out / "eval.json").write_text(json.dumps(everything, indent=1))
    print("\n".join(report))
    pictures = [out / f"eval-{s}.png" for s in splits] + [out / f"eval-{s}-voices.png" for s in splits if args.by_voice]
    print(f"wrote {out / 'eval.md'}, {out / 'eval.json'} and " + ", ".join(map(str, pictures)))
    return 0


def export_command(args) -> int:
    from backchannel.models.export import build_tensorrt, export_checked
    from backchannel.models.model_generator import MOUTH_HISTORY, load_model
    from backchannel.models.motion_model import Sampling

    check_counts(args, 1, "steps")
    out = Path(args.out)
    if args.format == "onnx":
        model = load_model(args.weights)
        steps = model.cfg.steps if args.steps is None else args.steps
        (enc, step), diffs = export_checked(model, out, Sampling(steps, mouth_history=MOUTH_HISTORY))  # as `run`
        print(f"wrote {enc} and {step}; largest difference from torch: "
              + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        return 0
    for name in ("encoder", "frame_step"):
        onnx_path = out / f"{name}.onnx"
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} not found: run `backchannel export onnx --out {out}` first")
        print(f"wrote {build_tensorrt(onnx_path, out / f'{name}.plan', fp16=not args.fp32)}")
    return 0
