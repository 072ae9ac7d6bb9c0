"""`backchannel train`: the motion codec, then the motion model, on a corpus; or a recipe's stages in order."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from backchannel.bridge.cli.common import check_counts, json_object


def register(commands) -> None:
    p = commands.add_parser("train", help="train the motion codec, the motion model, or a recipe's stages",
                            epilog="A --run folder that holds a checkpoint resumes from it, given the settings it was "
                                   "started with (others are refused). Ctrl-C stops at the end of the current step "
                                   "and saves a checkpoint there. The shipped weights' recipe: "
                                   "models/training/recipes/shipped.toml.")
    p.add_argument("what", metavar="codec|motion|RECIPE.toml",
                   help="one stage, or a recipe file whose stages run in order into --run/<stage name>")
    p.add_argument("--data", required=True, help="corpus folder (backchannel data make)")
    p.add_argument("--run", default="runs/default", help="folder for checkpoints, loss logs and curves")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--train-steps", type=int, default=None,
                   help="training steps (default: 3000 codec, 4000 motion)")
    p.add_argument("--batch", type=int, default=None,
                   help="motion: windows per step (default 32); codec: motion frames per step (default 1024)")
    p.add_argument("--window", type=int, default=None, help="motion: target frames per training window (default 90)")
    p.add_argument("--lr", type=float, default=None, help="motion: peak learning rate (default 3e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=json_object, default=None, metavar="JSON",
                   help='architecture settings (models/infp/config.py ModelConfig), e.g. {"depth": 3}; with `motion`, '
                        'a new motion model on the run\'s codec')
    p.add_argument("--loss", type=json_object, default=None, metavar="JSON",
                   help='motion: loss settings (models/training/config.py LossConfig), e.g. {"reply_weight": 2.0}')
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="motion: fine-tune these weights (a motion.pt, or a run's motion-checkpoint.pt, whose EMA "
                        "weights and training-only read-out are taken) instead of starting new")
    p.add_argument("--install", action="store_true",
                   help="also install the final weights (and their exported graphs) as the shipped default")
    p.set_defaults(func=train_command)


def stage_from_args(args):
    from dataclasses import replace

    from backchannel.models.infp.config import ModelConfig
    from backchannel.models.training.config import LossConfig, TrainConfig, checked
    from backchannel.models.training.runs import Stage

    codec = args.what == "codec"
    check_counts(args, 1, "train_steps", "batch", "window")
    check_counts(args, 0, "seed")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a number > 0, got {args.lr}")
    motion_only = [f"--{name}" for name in ("init", "window", "lr", "loss") if getattr(args, name) is not None]
    if codec and motion_only:
        raise ValueError(f"{', '.join(motion_only)}: for `train motion` alone (the codec learns single frames, at "
                         "its own learning rate)")
    model = args.model or {}
    checked(ModelConfig, model, "--model")
    loss = checked(LossConfig, args.loss or {}, "--loss")
    given = {"codec_steps" if codec else "train_steps": args.train_steps,
             "codec_batch" if codec else "batch": args.batch, "window_frames": args.window, "lr": args.lr}
    train = replace(TrainConfig(seed=args.seed), **{k: v for k, v in given.items() if v is not None})
    return Stage(args.what, args.what, args.init, model, loss, train)


def train_command(args) -> int:
    from backchannel.models.training.loop import Interrupted
    from backchannel.models.training.runs import install, run_recipe, train_stage

    recipe = args.what not in ("codec", "motion")
    if recipe:
        if not args.what.endswith(".toml") or not Path(args.what).is_file():
            raise ValueError(f"{args.what!r}: give codec, motion or a recipe file (.toml)")
        flags = [f"--{n.replace('_', '-')}" for n in ("train_steps", "batch", "window", "lr", "model", "loss", "init")
                 if getattr(args, n) is not None]
        if flags:
            raise ValueError(f"{', '.join(flags)}: a recipe sets these per stage; edit a copy of the recipe instead")
    try:
        if recipe:
            path = run_recipe(args.what, args.data, Path(args.run), args.device)
        else:
            path = train_stage(stage_from_args(args), args.data, Path(args.run), args.device)
    except Interrupted as e:
        print(f"stopped at step {e.step} of {e.total}, checkpoint saved in {e.checkpoint}: run the same command "
              "again to resume", file=sys.stderr)
        return 130
    print(f"{path.stem}: {path}; losses: {path.parent / (path.stem + '-losses.png')}")
    if args.install:
        if path.name != "motion.pt":
            raise ValueError("--install: only motion weights are installed (a codec alone does not animate)")
        print(f"installed as the default: {install(path)}")
    return 0
