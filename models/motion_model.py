"""The INFP-style motion model, made streaming: audio encoder -> interactive motion guider -> denoiser -> codec.

Frame k (audio time k / 30 s) is generated from
  - the two tracks' encoder outputs at row `row_for_frame(k)` (audio up to k / 30 s + 64 ms, nothing later),
  - the guider's features of the last `guide_window` frames,
  - the previous `prev_frames` motion latents (what the avatar already showed), and
  - a style vector (from reference motion, or the learned "no reference" one),
in `chunk`-frame pieces, so the cost per frame is constant however long the conversation runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .audio import SAMPLE_RATE
from .audio_encoder import OTHER, SELF, AudioEncoder
from .codec import CHANNEL_WEIGHT, MotionCodec
from .denoiser import Denoiser
from .features import FEATURE_DIM, HOP, VAD_STATE, WIN
from .flow import add_noise, sample
from .guider import InteractiveMotionGuider, StyleEncoder
from .corpus.phones import PARAMS
from .motion import BS, FRAME_RATE, HEAD_POSE

ARTICULATORS = len(PARAMS)  # jaw, closure, press, pucker, funnel, spread, tuck, tongue, raise
TRAINING_ONLY = ("articulation.",)  # parameters used in training alone: not shipped, not needed to run


@dataclass
class ModelConfig:
    latent_dim: int = 32
    d_model: int = 128
    heads: int = 4
    depth: int = 4
    enc_channels: int = 128
    enc_hidden: int = 128
    enc_layers: int = 2  # causal convolutions before the GRU (kernel 5 each: 4 more rows of context per layer)
    bank_slots: int = 64  # per memory bank (INFP: 64)
    style_dim: int = 64
    chunk: int = 1  # frames generated per denoiser call
    prev_frames: int = 10  # INFP: temporal attention to the last 10 latents
    guide_window: int = 4
    lookahead_samples: int = 1024  # 64 ms of audio beyond a frame's own time
    steps: int = 4  # network evaluations per chunk at inference
    # training-time dropout for classifier-free guidance (INFP: style 0.3, previous motion 0.5)
    p_drop_style: float = 0.3
    p_drop_prev: float = 0.5
    p_drop_partner: float = 0.1
    # the avatar's own voice, for guidance on it (Sampling.self_guidance); 0 in weights trained before it existed
    p_drop_self: float = 0.0
    # the encoder also reads the VAD's LSTM output (features.FEATURE_DIM), learned from real voices where ours are
    # synthetic; False in weights trained before it existed (they read log-mel and speech probability)
    vad_state: bool = False
    # noise on the previous latents in training (per window, a scale up to this): at 0.1 the model leaned on its own
    # history so hard that on some audio its head ran away to 20-25 degrees and stayed (docs/model.md)
    prev_noise: float = 0.5
    # share of those windows whose history noise is smooth (an offset and a trend per latent channel, like the drift
    # of the model's own output) instead of independent per frame: with half, the model leans on the audio more and
    # on its history less (more nods after phrase ends, and a steadier head at a lower temperature; docs/model.md)
    prev_noise_smooth: float = 0.5
    articulation_weight: float = 0.5  # the encoder also predicts the mouth shapes of the phones it hears
    # denoising loss weight of frames within a second after a partner's phrase ends (1: like any other frame):
    # listeners nod there, rare moments that an even weighting leaves to the mean
    reply_weight: float = 1.0
    # the same for the frames of the avatar's own P/B/M phones: brief closures the lips must not average away
    closure_weight: float = 1.0
    loss_frames: int = 0  # frames per window that train the denoiser (0: all); fewer = more windows per second
    # what the denoiser predicts: "latent" (the frame's latent) or "step" (its change from the previous frame, in
    # units of the data's frame-to-frame change): a step keeps slow channels (head, gaze) as precise per frame as
    # fast ones (lips), where latent-sized errors showed as jitter
    predict: str = "latent"

    @property
    def lookahead_s(self) -> float:
        return self.lookahead_samples / SAMPLE_RATE

    @property
    def target_delay_s(self) -> float:
        """How far a feature row's centre lies after the motion frame that reads it."""
        return (self.lookahead_samples - WIN // 2) / SAMPLE_RATE

    def row_for_frame(self, k):
        """Newest feature row whose analysis window ends by frame k's time plus the look-ahead."""
        # row j's window ends at sample j * HOP + WIN / 2; frame k sits at sample k * SAMPLE_RATE / FRAME_RATE
        return (k * SAMPLE_RATE + FRAME_RATE * (self.lookahead_samples - WIN // 2)) // (FRAME_RATE * HOP)


def read_weights(path) -> dict:
    """torch.load of weights or a training checkpoint, failing in one line that names the file when it is missing,
    not one of ours, or damaged (torch.load itself fails in many ways that do not name it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling, zip, EOF, key errors...: whatever torch says, the file is not usable
        raise ValueError(f"{path} is not a Backchannel weights file, or is damaged") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a Backchannel weights file")
    return ckpt


def history_noise(shape, scale: float, smooth_share: float, generator=None, device=None) -> torch.Tensor:
    """Noise for training histories (N, P, L), each example's at a random level up to `scale`: for `smooth_share`
    of the examples an offset and a trend per latent channel (how the model's own output drifts), for the rest
    independent per frame."""
    n, frames, channels = shape
    rand = lambda *s: torch.rand(*s, generator=generator, device=device)  # noqa: E731
    white = torch.randn(shape, generator=generator, device=device)
    offset, trend = torch.randn(2, n, 1, channels, generator=generator, device=device)
    # unit spread: per frame the variance is 1 + u^2, u on [-1, 0], 4/3 averaged over the frames (1.15 ~ sqrt(4/3))
    drift = (offset + trend * torch.linspace(-1.0, 0.0, frames, device=device)[:, None]) / 1.15
    smooth = (rand(n, 1, 1) < smooth_share).float()
    return scale * rand(n, 1, 1) * (smooth * drift + (1 - smooth) * white)


class MotionModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.codec = MotionCodec(cfg.latent_dim)
        self.encoder = AudioEncoder(cfg.enc_channels, cfg.enc_hidden, layers=cfg.enc_layers,
                                    inputs=FEATURE_DIM if cfg.vad_state else VAD_STATE)
        self.style_encoder = StyleEncoder(cfg.latent_dim, cfg.d_model, cfg.style_dim)
        self.guider = InteractiveMotionGuider(cfg.enc_hidden, cfg.d_model, cfg.bank_slots, cfg.heads, cfg.style_dim)
        self.denoiser = Denoiser(cfg.latent_dim, cfg.d_model, cfg.depth, cfg.heads, cfg.chunk, cfg.prev_frames,
                                 cfg.guide_window, cfg.style_dim)
        # training only: what the mouth of whoever speaks on a track is doing (from phone timings), read from the
        # encoder; it teaches the shared acoustic front end the distinctions lips need (closures, rounding...)
        self.articulation = nn.Linear(cfg.enc_hidden, ARTICULATORS)
        if cfg.predict not in ("latent", "step"):
            raise ValueError(f"predict must be 'latent' or 'step', not {cfg.predict!r}")
        self.register_buffer("step_scale", torch.ones(cfg.latent_dim))  # frame-to-frame latent change (fit_steps)

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved before step prediction existed have no step_scale; they predict latents, where it is unused
        state_dict.setdefault(prefix + "step_scale", torch.ones_like(self.step_scale))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def from_codec(cls, path, **changes) -> "MotionModel":
        """A fresh model on a trained codec (`train codec`'s codec.pt): its codec and input statistics are loaded,
        everything else starts new; `changes` override the codec run's settings (not the codec's own)."""
        ckpt = read_weights(path)
        if "config" not in ckpt or "model" not in ckpt:
            raise ValueError(f"{path} holds no codec weights (`backchannel train codec` writes them)")
        cfg = replace(ModelConfig(**ckpt["config"]), **changes)
        if cfg.latent_dim != ckpt["config"]["latent_dim"]:
            raise ValueError("latent_dim belongs to the codec: train a new codec to change it")
        model = cls(cfg)
        kept = {k: v.float() for k, v in ckpt["model"].items()
                if k.startswith("codec.") or k in ("encoder.feature_mean", "encoder.feature_std")}
        model.load_state_dict(kept, strict=False)
        return model

    @classmethod
    def from_weights(cls, path, **changes) -> "MotionModel":
        """A trained model: shipped weights (`motion.pt`, float16, no training-only read-out) or a run's
        `motion-checkpoint.pt` (its EMA weights, read-out included), to run or to train further. `changes` may only
        touch settings that leave the parameters' shapes alone (loss weights, dropout rates, sampler settings), or
        turn `vad_state` on, to fine-tune weights that never read the VAD's output (AudioEncoder widens them)."""
        ckpt = read_weights(path)
        if "config" not in ckpt or not ({"model", "ema"} & set(ckpt)):
            raise ValueError(f"{path} holds neither motion weights nor a motion training checkpoint")
        stage = (ckpt.get("meta") or {}).get("stage", "motion")
        if stage != "motion":  # a codec.pt has a config and a model too, but its motion model never trained
            raise ValueError(f"{path} holds {stage} weights (`backchannel train {stage}`), not a trained motion model")
        model = cls(replace(ModelConfig(**ckpt["config"]), **changes))
        state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.get("ema", ckpt.get("model")).items()}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a shape changed
            raise ValueError(f"{path} does not fit these settings: a model keeps the architecture it was trained "
                             f"with ({e})") from None
        wrong = [k for k in missing if not k.startswith(TRAINING_ONLY)] + list(unexpected)
        if wrong:
            raise ValueError(f"{path} does not fit these settings (e.g. {', '.join(wrong[:3])}): a model keeps the "
                             "architecture it was trained with")
        return model

    @torch.no_grad()
    def fit_steps(self, clips_motion: list) -> None:
        """The spread of frame-to-frame latent changes in the training motion (one (T, 62) array per clip)."""
        steps = torch.cat([torch.diff(self.codec.encode(torch.as_tensor(m, dtype=torch.float32)), dim=0)
                           for m in clips_motion])
        self.step_scale.copy_(steps.std(0).clamp_min(1e-3))

    def to_target(self, z: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Chunk latents (N, C, L) after the latent `last` (N, 1, L) -> what the denoiser predicts."""
        if self.cfg.predict == "latent":
            return z
        return torch.diff(torch.cat([last, z], dim=1), dim=1) / self.step_scale

    def from_target(self, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        if self.cfg.predict == "latent":
            return x
        return last + torch.cumsum(x * self.step_scale, dim=1)

    def style_vector(self, ref_motion: torch.Tensor | None, batch: int) -> torch.Tensor:
        if ref_motion is None:
            return self.style_encoder.null.expand(batch, -1)
        return self.style_encoder(self.codec.encode(ref_motion))

    # ---- training ----------------------------------------------------------------------------------------------
    def training_loss(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One window per batch row.

        batch: rows_self, rows_other (B, R, F) feature rows; frame_rows (B, P + T) row index of each motion frame;
        motion (B, P + T, 62) with P = prev_frames of history first; state (B, P + T) int64;
        ref_motion (B, Rm, 62) another stretch of the same person's motion (style reference); reply (B, P + T) 1 on
        frames just after a partner's phrase ends (weighed by reply_weight); closing (B, P + T) 1 on frames of the
        avatar's own P/B/M phones (weighed by closure_weight).
        """
        cfg = self.cfg
        P, C, W = cfg.prev_frames, cfg.chunk, cfg.guide_window
        motion = batch["motion"]
        b, total, _ = motion.shape
        T = total - P
        dev = motion.device
        rand = lambda *shape: torch.rand(*shape, generator=generator, device=dev)  # noqa: E731

        with torch.no_grad():
            z = self.codec.encode(motion)  # (B, P + T, L), the codec is trained first and frozen here
        tracks = torch.tensor([SELF] * b + [OTHER] * b, device=dev)
        encoded, _ = self.encoder(torch.cat([batch["rows_self"], batch["rows_other"]]), tracks)
        art_loss = self.articulation_loss(encoded, torch.cat([batch["art_self"], batch["art_other"]]))
        a_self, a_other = encoded.chunk(2)
        rows = batch["frame_rows"][:, :, None].expand(-1, -1, a_self.shape[2])
        a_self, a_other = a_self.gather(1, rows), a_other.gather(1, rows)  # (B, P + T, A)

        style = self.style_vector(batch["ref_motion"], b)
        style = torch.where((rand(b) < cfg.p_drop_style)[:, None], self.style_encoder.null.expand_as(style), style)
        drop_self = rand(b) < cfg.p_drop_self
        g, state_logits = self.guider(a_self, a_other, style, drop_partner=rand(b) < cfg.p_drop_partner,
                                      drop_self=drop_self)

        # every chunk of the T target frames is one denoising example with its own history and noise level
        starts = torch.arange(P, total - C + 1, C, device=dev)  # chunk start frames in the window
        if 0 < cfg.loss_frames < len(starts) * C:
            starts = starts[torch.randperm(len(starts), generator=generator, device=dev)[:max(1, cfg.loss_frames // C)]]
        n = len(starts)
        z_chunk = torch.stack([z[:, s:s + C] for s in starts.tolist()], 1).flatten(0, 1)  # (B*n, C, L)
        prev = torch.stack([z[:, s - P:s] for s in starts.tolist()], 1).flatten(0, 1)  # (B*n, P, L)
        guide = torch.stack([g[:, s + C - W:s + C] for s in starts.tolist()], 1).flatten(0, 1)  # (B*n, W, d)
        styles = style.repeat_interleave(n, 0)
        prev = prev + history_noise(prev.shape, cfg.prev_noise, cfg.prev_noise_smooth, generator, dev)
        x0 = self.to_target(z_chunk, prev[:, -1:])  # steps from the (noisy) history: learn to correct drift too
        t = rand(b * n)
        noise = torch.randn(x0.shape, generator=generator, device=dev)
        x0_hat = self.denoiser(add_noise(x0, noise, t), t, guide, prev, styles, drop_prev=rand(b * n) < cfg.p_drop_prev)

        per_chunk = lambda key: batch[key][:, starts].flatten()[:, None, None]  # noqa: E731  (B*n, 1, 1), as z_chunk
        w = 1 + (cfg.reply_weight - 1) * per_chunk("reply") + (cfg.closure_weight - 1) * per_chunk("closing")
        w = w / w.mean()  # the same loss scale whatever share of examples are weighed up

        latent_loss = (w * (x0_hat - x0) ** 2).mean()
        # the same error seen in motion space, weighted towards mouth and eyelids: what viewers judge
        target = torch.stack([motion[:, s:s + C] for s in starts.tolist()], 1).flatten(0, 1)
        decoded = self.codec.decode(self.from_target(x0_hat, prev[:, -1:]), clip=False)
        weight = torch.as_tensor(CHANNEL_WEIGHT, device=dev)
        motion_loss = (w * ((decoded - target) / self.codec.motion_std) ** 2 * weight).mean()
        # whether the avatar speaks is not for the state head to guess with its own voice unheard
        ce = F.cross_entropy(state_logits[:, P:].transpose(1, 2), batch["state"][:, P:], reduction="none")  # (B, T)
        heard = (~drop_self).float()[:, None]
        state_loss = (ce * heard).sum() / (heard.sum() * T).clamp_min(1.0)
        total_loss = latent_loss + 0.5 * motion_loss + 0.2 * state_loss + cfg.articulation_weight * art_loss
        return {"loss": total_loss, "latent": latent_loss.detach(), "motion": motion_loss.detach(),
                "state": state_loss.detach(), "articulation": art_loss.detach()}

    def articulation_loss(self, encoded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """MSE of the articulation read from encoder rows (B, R, A) against targets (B, R, ARTICULATORS + 1),
        whose last column marks rows with a known target (clips without phone timings have none)."""
        known = targets[..., -1:]
        err = ((self.articulation(encoded) - targets[..., :-1]) ** 2 * known).sum()
        return err / (known.sum() * ARTICULATORS).clamp_min(1.0)

    # ---- streaming inference -----------------------------------------------------------------------------------
    def pose_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The lowest and highest head pose a frame may show or remember (POSE_BOUND_STD)."""
        mean, std = self.codec.motion_mean[HEAD_POSE].detach(), self.codec.motion_std[HEAD_POSE].detach()
        return mean - POSE_BOUND_STD * std, mean + POSE_BOUND_STD * std

    def rest_latent(self) -> torch.Tensor:
        """The latent of the neutral face, used as history before a stream's first frame."""
        return self.codec.encode(torch.zeros_like(self.codec.motion_mean)[None])[0]


# The speech articulators (the blendshapes corpus.visemes.lips_to_blendshapes writes): what `mouth_history` acts on.
# Expressions (smiles, frowns, cheeks), eyes, head and gaze stay with the history, which keeps slow motion coherent.
SPEECH_CHANNELS = tuple(BS[name] for name in (
    "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft",
    "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "TongueOut"))


# The head pose a frame shows, and remembers as history, stays within this many of the training motion's standard
# deviations of its mean (about the labels' 99.9th percentile: +-10 deg of pitch, +-12 of yaw, +-9 of roll). The
# model reads its own last latents, and on some audio that feedback compounded into a head tilted 20-25 degrees
# and held there (5 of 12 validation runs of runs/v6); out of the range it was trained on, nothing pulls it back.
POSE_BOUND_STD = 4.0


@dataclass(frozen=True)
class Sampling:
    """How FrameStep samples: fixed in an exported graph (and part of its cache key)."""

    steps: int = 4  # network evaluations per chunk
    partner_guidance: float = 1.0  # > 1: classifier-free guidance away from "no partner heard"
    # How far the speech articulators follow the model's own previous frames. 1: one sample, conditioned on the
    # history. 0: they come from a second sample drawn without it (training drops the history for half its
    # examples, so the model knows that condition), while head, eyes and expressions keep the history. Measured on
    # the shipped weights: with history the lips missed closures and loudness the encoder heard (docs/model.md).
    mouth_history: float = 1.0
    # > 1: classifier-free guidance away from "own voice unheard" (weights trained with p_drop_self > 0)
    self_guidance: float = 1.0


class FrameStep(nn.Module):
    """Everything after the audio encoder for one chunk: guider -> few-step denoising -> codec decoder.

    This is what runs per tick (batched across sessions) and what `backchannel export onnx` exports. It keeps no
    state: the caller passes the encoder outputs and latents of the recent past and gets the new latents back.
    """

    def __init__(self, model: MotionModel, sampling: Sampling | None = None):
        super().__init__()
        self.model = model
        self.sampling = sampling or Sampling(model.cfg.steps)
        if self.sampling.self_guidance != 1.0 and model.cfg.p_drop_self == 0:
            raise ValueError("self_guidance needs weights trained with the own voice dropped (p_drop_self > 0): "
                             "these never learnt what to do without it")
        mix = torch.ones(model.codec.motion_mean.shape[-1])
        mix[list(SPEECH_CHANNELS)] = self.sampling.mouth_history
        self.register_buffer("history_mix", mix, persistent=False)  # per motion channel: weight of the history
        low, high = model.pose_bounds()
        self.register_buffer("pose_low", low, persistent=False)
        self.register_buffer("pose_high", high, persistent=False)

    def forward(self, a_self, a_other, style, prev, noise):
        """a_self, a_other (B, W, A) encoder outputs of the guide window's frames, the chunk's last; style (B, S);
        prev (B, P, L); noise (B, C, L) -> latents (B, C, L), motion (B, C, 62), state logits (B, C, 3).

        The guider reads the whole window once per condition, so a guided condition ("no partner heard", "own
        voice unheard") holds for the window as it did in training, not only for the newest frames."""
        m, s = self.model, self.sampling
        # per example, a condition not applied (~off: applied); from a tensor so ONNX keeps the batch dynamic
        off = torch.zeros_like(noise[:, 0, 0]).bool()
        g, logits = m.guider(a_self, a_other, style)
        # samples drawn side by side: with history, and (mouth_history < 1) without it; the lips come from the last
        h = 1 if s.mouth_history == 1.0 else 2
        lips = h - 1
        # guided conditions: scale, guider features, the samples guided. The own voice guides the lips' sample
        # alone: guiding the head's too made it busier (more nods at random moments, more jitter; docs/model.md).
        guided = [(scale, m.guider(a_self, a_other, style, **{drop: ~off})[0], samples)
                  for scale, drop, samples in ((s.partner_guidance, "drop_partner", range(h)),
                                               (s.self_guidance, "drop_self", [lips])) if scale != 1.0]
        # one batch: each sample as heard, then each guided sample under its condition (guide, sample, scale)
        rows = [(g, i, 1.0) for i in range(h)] + [(gd, i, scale) for scale, gd, samples in guided for i in samples]
        # Guidance acts where the sample's shape is decided: on 30 validation clips, own-voice guidance in the first
        # two of four steps closed as many P/B/M phones as in all four, in the last two none more than without it
        # (docs/model.md); the later steps save the extra rows.
        guided_steps = (s.steps + 1) // 2

        def conditions(now):  # the denoiser's inputs other than x and t for these rows, built once per chunk
            return (torch.cat([gd for gd, _, _ in now]), prev.repeat(len(now), 1, 1), style.repeat(len(now), 1),
                    torch.cat([~off if i else off for _, i, _ in now]) if h == 2 else None)

        every_row = (rows, conditions(rows))
        heard_rows = (rows[:h], conditions(rows[:h])) if guided else every_row

        def denoise(x, t, step):  # x (h * B, C, L): one per sample
            now, (guide, prev_all, style_all, drop_prev) = every_row if step < guided_steps else heard_rows
            xs, ts = x.chunk(h), t.chunk(h)
            out = m.denoiser(torch.cat([xs[i] for _, i, _ in now]), torch.cat([ts[i] for _, i, _ in now]), guide,
                             prev_all, style_all, drop_prev=drop_prev).chunk(len(now))
            mixed = list(out[:h])
            for (_, i, scale), unheard in zip(now[h:], out[h:]):
                mixed[i] = mixed[i] + (scale - 1) * (out[i] - unheard)
            return torch.cat(mixed)

        z = m.from_target(sample(denoise, noise.repeat(h, 1, 1), s.steps), prev.repeat(h, 1, 1)[:, -1:])
        motion = m.codec.decode(z)
        if h == 2:
            with_history, audio_only = motion.chunk(2)
            motion = audio_only + self.history_mix * (with_history - audio_only)
        pose = torch.minimum(torch.maximum(motion[..., HEAD_POSE], self.pose_low), self.pose_high)
        motion = torch.cat([motion[..., :HEAD_POSE.start], pose, motion[..., HEAD_POSE.stop:]], dim=-1)
        return m.codec.encode(motion), motion, logits[:, -noise.shape[1]:]
