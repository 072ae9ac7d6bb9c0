"""Training: first the motion codec (frames <-> latents), then the motion model (audio -> latents) with it frozen.

Runs keep everything in one folder, per stage (codec, motion): `<stage>-checkpoint.pt` (model, optimiser, EMA,
step, random states, the run's settings: resumable and reproducible by seed), `<stage>-losses.jsonl`,
`<stage>-losses.png`, and the final weights (`codec.pt`, `motion.pt`: EMA, float16) for shipping. Files are
written whole or not at all (save_file), and Ctrl-C ends a run at a step's end with a checkpoint there.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from backchannel.models.atomic import replacing
from backchannel.models.infp.network import MotionModel
from backchannel.models.infp.weights import TRAINING_ONLY, read_weights
from backchannel.models.training.config import LossConfig, TrainConfig
from backchannel.models.training.data import PAD_FRAMES, TrainingClip, WindowSampler
from backchannel.models.training.loss import training_loss

log = logging.getLogger(__name__)


def lr_at(step: int, tc: TrainConfig, total: int) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    progress = (step - tc.warmup) / max(1, total - tc.warmup)
    return tc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def all_motion(clips: list[TrainingClip]) -> np.ndarray:
    return np.concatenate([c.motion[PAD_FRAMES:] for c in clips])


def fit_input_statistics(model: MotionModel, clips: list[TrainingClip]) -> None:
    """Feature and motion normalisation from the training clips (never from validation or test)."""
    fit_feature_statistics(model, clips)
    model.codec.fit_statistics(all_motion(clips))


def fit_feature_statistics(model: MotionModel, clips: list[TrainingClip], first_column: int = 0) -> None:
    """The encoder's feature normalisation from the training clips, for the columns from `first_column` on (the
    new inputs of widened weights, AudioEncoder.widened_from)."""
    n, total, squares = 0, 0.0, 0.0
    for c in clips:  # one clip at a time: every row at once would take gigabytes
        for rows in (c.rows_self, c.rows_other):
            x = np.asarray(rows[:, first_column:model.encoder.inputs], np.float64)
            n, total, squares = n + len(x), total + x.sum(0), squares + (x * x).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0)).clip(0.05)
    model.encoder.feature_mean[first_column:] = torch.as_tensor(mean)
    model.encoder.feature_std[first_column:] = torch.as_tensor(std)


class Run:
    """One training run's folder: checkpoint, loss log, curves. `settings` (flag -> value, what the run was asked
    for) go into the checkpoint; resuming it with others is refused, as that would mix two trainings in weights
    that claim the second's settings."""

    def __init__(self, folder: Path, what: str, settings: dict | None = None):
        self.folder, self.what = Path(folder), what
        self.folder.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.folder / f"{what}-checkpoint.pt"
        self.losses = self.folder / f"{what}-losses.jsonl"
        self.settings = settings or {}

    def check_settings(self) -> dict | None:
        """The checkpoint, if there is one, once it is known to have been made with this run's settings. It is read
        once: `train` checks before loading the features, and the training loop resumes from the same read."""
        return self._verified_checkpoint

    @cached_property
    def _verified_checkpoint(self) -> dict | None:
        if not self.checkpoint.is_file():
            return None
        ckpt = read_weights(self.checkpoint)
        stored = ckpt.get("settings", {})  # checkpoints from before settings were stored: nothing to compare
        changed = [_difference(k, stored[k], v) for k, v in self.settings.items() if k in stored and stored[k] != v]
        if changed:
            raise ValueError(f"{self.checkpoint} was made with other settings: {', '.join(changed)}; use a new --run "
                             "folder")
        return ckpt

    def resume(self) -> dict | None:
        """check_settings' checkpoint, if any, and a loss log cut back to the steps before it: a run stopped between
        checkpoints logged steps that its resumption logs again."""
        ckpt = self.check_settings()
        start = ckpt["step"] if ckpt else 0
        if self.losses.is_file():
            lines = self.losses.read_text().splitlines(keepends=True)
            self.losses.write_text("".join(line for line in lines if _logged_step(line) < start))
        if ckpt:
            log.info("resuming %s training at step %d", self.what, start)
        return ckpt

    def log_losses(self, step: int, values: dict[str, float]) -> None:
        with self.losses.open("a") as f:
            f.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in values.items()}}) + "\n")

    def plot(self) -> Path | None:
        if not self.losses.is_file():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [json.loads(line) for line in self.losses.open()]
        keys = [k for k in rows[-1] if k != "step"]
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.2 * len(keys)), sharex=True, squeeze=False)
        steps = np.array([r["step"] for r in rows])
        for ax, key in zip(axes[:, 0], keys):
            vals = np.array([r.get(key, np.nan) for r in rows], np.float64)
            ax.plot(steps, vals, lw=0.6, alpha=0.5)
            if len(vals) > 20:  # a running mean shows the trend under the noise
                k = max(5, len(vals) // 50)
                ax.plot(steps[k - 1:], np.convolve(vals, np.ones(k) / k, mode="valid"), lw=1.5)
            ax.set_ylabel(key)
            ax.set_yscale("log" if np.nanmin(vals) > 0 else "linear")
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        fig.suptitle(f"{self.what} training")
        fig.tight_layout()
        out = self.folder / f"{self.what}-losses.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return out


def _difference(flag: str, was, now) -> str:
    """One setting that differs, as a user would read it: for a map (the config, the corpus), the keys that do."""
    if isinstance(was, dict) and isinstance(now, dict):
        keys = sorted(k for k in {*was, *now} if was.get(k) != now.get(k))
        return f"--{flag} " + ", ".join(f"{k} {was.get(k)} (now {now.get(k)})" for k in keys)
    return f"--{flag} {was} (now {now})"


def _logged_step(line: str) -> float:
    """A loss-log line's step; a line cut short by a kill mid-write counts as after any checkpoint (dropped)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError):
        return math.inf


def save_file(obj, path: Path) -> None:
    """torch.save, whole or not at all (a checkpoint cut short would lose the run)."""
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def save_weights(model: MotionModel, path: Path, meta: dict) -> Path:
    """The shipped form: float16 tensors + config + how they were made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()
             if not k.startswith(TRAINING_ONLY)}
    save_file({"config": model.config_dict(), "model": state, "meta": meta}, path)
    return path


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, raised at the end of a step once a checkpoint there is saved."""

    def __init__(self, step: int, total: int, checkpoint: Path):
        super().__init__(step)
        self.step, self.total, self.checkpoint = step, total, checkpoint


@contextmanager
def stop_between_steps():
    """An event that Ctrl-C sets (a second Ctrl-C stops at once), for the training loops to check at each step's
    end: there model, optimiser and random states agree, so a checkpoint resumes to what an unbroken run would
    train; one taken mid-step would hold half an update, or random draws a resumed run would not repeat."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield stop  # only the main thread gets signals; an ignored Ctrl-C stays ignored
        return

    def press(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, press)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def train_codec(model: MotionModel, clips: list[TrainingClip], run: Run, tc: TrainConfig, device: str,
                progress: bool = True) -> None:
    """Autoencoder on single frames; ends by fitting the latent scale the diffusion model works in."""
    from tqdm import tqdm

    motion = torch.as_tensor(all_motion(clips))
    codec = model.codec.to(device)
    opt = torch.optim.AdamW(list(codec.encoder.parameters()) + list(codec.decoder.parameters()), lr=1e-3)
    start = 0
    ckpt = run.resume()
    if ckpt:
        codec.load_state_dict(ckpt["codec"])
        opt.load_state_dict(ckpt["opt"])
        start = ckpt["step"]
    gen = torch.Generator().manual_seed(tc.seed)
    for _ in range(start):  # replay the sampler so a resumed run draws what an unbroken one would
        torch.randint(len(motion), (tc.codec_batch,), generator=gen)

    def checkpoint(step: int) -> None:
        save_file({"codec": codec.state_dict(), "opt": opt.state_dict(), "step": step, "settings": run.settings},
                  run.checkpoint)

    with stop_between_steps() as stop, tqdm(range(start, tc.codec_steps), desc="codec", disable=not progress,
                                            initial=start, total=tc.codec_steps) as bar:
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / tc.codec_steps))
            idx = torch.randint(len(motion), (tc.codec_batch,), generator=gen)
            loss = codec.reconstruction_loss(motion[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 20 == 0 or step == tc.codec_steps - 1:
                run.log_losses(step, {"reconstruction": loss.item()})
                bar.set_postfix(loss=f"{loss.item():.4f}")
            stopping = stop.is_set()  # read once: a Ctrl-C between two reads would stop without the checkpoint
            if (step + 1) % tc.checkpoint_every == 0 or stopping:
                checkpoint(step + 1)
            if stopping and step + 1 < tc.codec_steps:
                raise Interrupted(step + 1, tc.codec_steps, run.checkpoint)
    codec.cpu().fit_latent_statistics(all_motion(clips))
    checkpoint(tc.codec_steps)
    run.plot()


def train_motion(model: MotionModel, clips: list[TrainingClip], run: Run, tc: TrainConfig, loss: LossConfig,
                 device: str, progress: bool = True) -> MotionModel:
    """The diffusion model with the codec frozen. Returns the EMA model (what gets shipped)."""
    from tqdm import tqdm

    model.to(device)
    model.codec.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if not n.startswith("codec.")]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    ema = copy.deepcopy(model).eval()
    sampler = WindowSampler(clips, model.cfg, frames=tc.window_frames, vary_recordings=tc.vary_recordings)
    rng = np.random.default_rng(tc.seed)
    gen = torch.Generator(device=device).manual_seed(tc.seed)
    start = 0
    ckpt = run.resume()
    if ckpt:  # load_state_dict moves the tensors to the model's device
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        rng.bit_generator.state = ckpt["rng"]
        gen.set_state(ckpt["torch_rng"])  # a generator's state is a CPU byte tensor whatever its device
        start = ckpt["step"]
    model.train()
    tic = time.perf_counter()
    with stop_between_steps() as stop, tqdm(range(start, tc.train_steps), desc="motion", disable=not progress,
                                            initial=start, total=tc.train_steps) as bar:
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, tc, tc.train_steps)
            batch = {k: v.to(device) for k, v in sampler.batch(rng, tc.batch).items()}
            losses = training_loss(model, batch, loss, generator=gen)
            opt.zero_grad()
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                decay = min(tc.ema, (1 + step) / (10 + step))
                for p_ema, p in zip(ema.parameters(), model.parameters()):
                    p_ema.lerp_(p, 1 - decay)
            last = step == tc.train_steps - 1
            if step % 10 == 0 or last:
                values = {k: v.item() for k, v in losses.items()}
                run.log_losses(step, values)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            stopping = stop.is_set()  # read once: a Ctrl-C between two reads would stop without the checkpoint
            if (step + 1) % tc.checkpoint_every == 0 or last or stopping:
                save_file({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                           "rng": rng.bit_generator.state, "torch_rng": gen.get_state(), "step": step + 1,
                           "config": model.config_dict(), "settings": run.settings}, run.checkpoint)
                run.plot()
            if stopping and not last:
                raise Interrupted(step + 1, tc.train_steps, run.checkpoint)
    log.info("motion training: %d steps in %.0f s", tc.train_steps - start, time.perf_counter() - tic)
    return ema.cpu()
