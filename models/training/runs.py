"""Training runs as `backchannel train` makes them: one stage (codec or motion) into a run folder, or a recipe's
stages in order, each fine-tuning the last. Features load once per clip, in parallel, and are cached in the corpus.

A run folder resumes only with the settings it began with (Run.check_settings): the corpus and --init are known
by what they hold (a corpus's build settings and size, the weights' bytes), not by path, so a run may move.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from backchannel.models.infp.config import ModelConfig
from backchannel.models.training.config import LossConfig, TrainConfig, checked

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)
RECIPES = Path(__file__).parent / "recipes"
SHIPPED_RECIPE = RECIPES / "shipped.toml"


@dataclass(frozen=True)
class Stage:
    """One training stage. `init`: motion weights or a checkpoint to fine-tune (None: a new motion model on the
    run's codec); `model`: architecture settings of a new model (or vad_state turned on over `init`)."""

    what: str  # codec | motion
    name: str = ""
    init: str | None = None
    model: dict = field(default_factory=dict)
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()


def _training_clip(job):
    from backchannel.models.corpus.storage import read_clip
    from backchannel.models.training.data import make_clip

    split, path, cache, delay_s = job
    c = read_clip(path)
    phones = (c.meta["self_phones"], c.meta.get("other_phones", [])) if "self_phones" in c.meta else None
    return make_clip(f"{split}-{Path(path).stem}", c.self_audio, c.other_audio, c.motion, c.state, Path(cache),
                     phones, delay_s, c.partner_phrase_ends)


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


def corpus_identity(data: str) -> dict:
    from backchannel.models.corpus.storage import read_corpus_info

    info = read_corpus_info(Path(data))
    return {"settings": info.get("settings"), "split_clips": info.get("split_clips")}


def file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def model_from_codec(path, **changes):
    """A fresh motion model on a trained codec (`train codec`'s codec.pt): its codec and input statistics are loaded,
    everything else starts new; `changes` override the codec run's architecture settings (not the codec's own)."""
    from backchannel.models.infp.network import MotionModel
    from backchannel.models.infp.weights import read_weights

    ckpt = read_weights(path)
    if "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} holds no codec weights (`backchannel train codec` writes them)")
    try:
        cfg = replace(ModelConfig.from_dict(ckpt["config"]), **changes)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None
    if cfg.latent_dim != ckpt["config"]["latent_dim"]:
        raise ValueError("latent_dim belongs to the codec: train a new codec to change it")
    model = MotionModel(cfg)
    kept = {k: v.float() for k, v in ckpt["model"].items()
            if k.startswith("codec.") or k in ("encoder.feature_mean", "encoder.feature_std")}
    model.load_state_dict(kept, strict=False)
    return model


def train_stage(stage: Stage, data: str, run_dir: Path, device: str = "cpu", codec: Path | None = None,
                progress: bool = True) -> Path:
    """One stage into `run_dir`; returns its weights (codec.pt or motion.pt). `codec`: the codec a new motion model
    starts on (default: the run folder's). Raises training.loop.Interrupted on Ctrl-C, with a checkpoint saved."""
    import torch

    from backchannel.models.infp.network import MotionModel
    from backchannel.models.infp.weights import load_weights
    from backchannel.models.training.loop import (
        Run,
        fit_feature_statistics,
        fit_input_statistics,
        save_weights,
        train_codec,
        train_motion,
    )

    check_device(device)
    tc = stage.train
    torch.manual_seed(tc.seed)
    run_dir = Path(run_dir)
    if stage.what == "codec":
        model = MotionModel(ModelConfig(**stage.model))
    elif stage.init:  # fine-tuning; a run folder that already has a checkpoint resumes that instead
        model = load_weights(stage.init, **stage.model).train()
    else:  # the motion model starts new on the codec (architecture settings may differ from the codec run's)
        codec = Path(codec or run_dir / "codec.pt")
        if not codec.is_file():
            raise FileNotFoundError(f"{codec} not found: run `backchannel train codec --run {run_dir}` first")
        model = model_from_codec(codec, **stage.model).train()
    # what a resumed run must be given again: its checkpoint goes on only with the settings it was made with
    settings = {"data": corpus_identity(data), "seed": tc.seed, "model": asdict(model.cfg)}
    if stage.what == "codec":
        settings.update({"train-steps": tc.codec_steps, "batch": tc.codec_batch})
    else:
        settings.update({"init": file_digest(stage.init) if stage.init else None, "train-steps": tc.train_steps,
                         "batch": tc.batch, "window": tc.window_frames, "lr": tc.lr, "loss": asdict(stage.loss),
                         "vary-recordings": tc.vary_recordings})
    run = Run(run_dir, stage.what, settings)
    run.check_settings()  # before the features load, which takes minutes on a real corpus
    clips = load_training_clips(data, "train", Path(data) / ".cache" / "features", model.cfg.target_delay_s)
    if model.encoder.widened_from:  # --init weights that read fewer feature columns: the new ones' statistics
        fit_feature_statistics(model, clips, first_column=model.encoder.widened_from)
    if stage.what == "codec":
        fit_input_statistics(model, clips)
        train_codec(model, clips, run, tc, device, progress=progress)
        return save_weights(model, run_dir / "codec.pt", {"stage": "codec", "data": str(data)})
    ema = train_motion(model, clips, run, tc, stage.loss, device, progress=progress)
    meta = {"stage": "motion", "data": str(data), "init": stage.init, "train": asdict(tc), "loss": asdict(stage.loss),
            "train_frames": sum(c.frames for c in clips)}
    return save_weights(ema, run_dir / "motion.pt", meta)


def read_recipe(path: str | Path) -> list[Stage]:
    """A recipe file (TOML): `[[stage]]` tables in order, each with `what` (codec | motion), `name`, and optional
    `init` ("checkpoint" or "weights": of the stage before; default a new model), `model`, `loss` and `train`
    tables of ModelConfig, LossConfig and TrainConfig settings. Mistakes are one line naming the stage and key."""
    path = Path(path)
    try:
        recipe = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not TOML: {e}") from None
    stages, names = [], set()
    for i, table in enumerate(recipe.get("stage", [])):
        where = f"{path} stage {table.get('name', i + 1)}"
        unknown = sorted(set(table) - {"what", "name", "init", "model", "loss", "train"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        if table.get("what") not in ("codec", "motion"):
            raise ValueError(f"{where}: what must be codec or motion, not {table.get('what')!r}")
        name = str(table.get("name") or f"{i + 1}-{table['what']}")
        if name in names or "/" in name or name.startswith("."):
            raise ValueError(f"{where}: stage names must be unique folder names")
        names.add(name)
        if table.get("init") not in (None, "checkpoint", "weights"):
            raise ValueError(f"{where}: init must be 'checkpoint' or 'weights' (of the stage before)")
        model = table.get("model", {})
        checked(ModelConfig, model, f"{where} [model]")
        stages.append(Stage(table["what"], name, table.get("init"), model,
                            checked(LossConfig, table.get("loss", {}), f"{where} [loss]"),
                            checked(TrainConfig, table.get("train", {}), f"{where} [train]")))
    if not stages:
        raise ValueError(f"{path} has no [[stage]]")
    return stages


def run_recipe(path: str | Path, data: str, run_dir: Path, device: str = "cpu", progress: bool = True) -> Path:
    """Every stage of a recipe in order, each in `run_dir/<name>/`; stages already finished are skipped (a stage
    stopped part-way resumes from its checkpoint). Returns the last stage's weights."""
    stages = read_recipe(path)
    run_dir = Path(run_dir)
    codec, previous = None, None  # the codec's weights; the last motion stage's folder
    for stage in stages:
        folder = run_dir / stage.name
        if stage.what == "motion" and stage.init:
            if previous is None:
                raise ValueError(f"{path} stage {stage.name}: init {stage.init!r} of which stage? none trains before")
            stage = replace(stage, init=str(previous / ("motion-checkpoint.pt" if stage.init == "checkpoint"
                                                         else "motion.pt")))
        out = folder / ("codec.pt" if stage.what == "codec" else "motion.pt")
        if out.is_file() and (folder / f"{stage.what}-checkpoint.pt").is_file():
            log.info("stage %s: done (%s)", stage.name, out)
        else:
            log.info("stage %s: training %s into %s", stage.name, stage.what, folder)
            out = train_stage(stage, data, folder, device, codec=codec, progress=progress)
        if stage.what == "codec":
            codec = out
        else:
            previous = folder
    return out


def install(weights: Path) -> Path:
    """Copy trained motion weights over the shipped ones, and export their graphs beside them."""
    from backchannel.models.infp.export import export_checked
    from backchannel.models.infp.weights import GRAPHS, WEIGHTS, load_weights

    # load_weights refuses anything that is not motion weights before the shipped ones are touched
    export_checked(load_weights(weights), GRAPHS)
    shutil.copyfile(weights, WEIGHTS)
    return WEIGHTS
