"""Training's settings: what the loss weighs and drops (LossConfig) and the schedule (TrainConfig). The architecture
is models.infp.config.ModelConfig; a recipe (recipes/*.toml) sets all three per stage."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LossConfig:
    # dropout for classifier-free guidance (INFP: style 0.3, previous motion 0.5)
    p_drop_style: float = 0.3
    p_drop_prev: float = 0.5
    p_drop_partner: float = 0.1
    # noise on the previous latents (per window, a scale up to this): at 0.1 the model leaned on its own history so
    # hard that on some audio its head ran away to 20-25 degrees and stayed (docs/experiments.md)
    prev_noise: float = 0.5
    # share of those windows whose history noise is smooth (an offset and a trend per latent channel, like the drift
    # of the model's own output) instead of independent per frame
    prev_noise_smooth: float = 0.5
    articulation_weight: float = 0.5  # the encoder also predicts the mouth shapes of the phones it hears
    # denoising loss weight of frames within a second after a partner's phrase ends (listeners nod there: rare
    # moments that an even weighting leaves to the mean), and of the avatar's own P/B/M phones (brief closures)
    reply_weight: float = 4.0
    closure_weight: float = 4.0
    loss_frames: int = 20  # frames per window that train the denoiser (0: all); fewer = more windows per second


@dataclass(frozen=True)
class TrainConfig:
    train_steps: int = 4000
    batch: int = 32
    window_frames: int = 90
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 200
    ema: float = 0.999
    seed: int = 0
    checkpoint_every: int = 250
    vary_recordings: bool = True  # training.data.vary_recording: other vocal tracts and microphones than the corpus's
    codec_steps: int = 3000
    codec_batch: int = 1024


def checked(kind, values: dict, where: str):
    """A dataclass of `kind` from `values`, each of its default's type (a whole number will do for a float), or one
    line naming the key."""
    defaults = {f.name: f.default for f in fields(kind)}
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(defaults)})")
    for key, value in values.items():
        want = type(defaults[key])
        if not (type(value) is want or (want is float and type(value) is int)) or value != value:  # NaN too
            raise ValueError(f"{where}: {key} must be {want.__name__} like its default {defaults[key]!r}, "
                             f"got {value!r}")
    return kind(**values)
