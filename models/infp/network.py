"""The INFP-style motion model, made streaming: audio encoder -> interactive motion guider -> denoiser -> codec.

Frame k (audio time k / 30 s) is generated from
  - the two tracks' encoder outputs at row `row_for_frame(k)` (audio up to k / 30 s + 64 ms, nothing later),
  - the guider's features of the last `guide_window` frames,
  - the previous `prev_frames` motion latents (what the avatar already showed), and
  - a style vector (from reference motion, or the learned "no reference" one),
in `chunk`-frame pieces, so the cost per frame is constant however long the conversation runs.
"""
from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from backchannel.models.frontend.features import FEATURE_DIM, VAD_STATE
from backchannel.models.infp.audio_encoder import AudioEncoder
from backchannel.models.infp.codec import MotionCodec
from backchannel.models.infp.config import ModelConfig, Sampling
from backchannel.models.infp.denoiser import Denoiser
from backchannel.models.infp.flow import sample
from backchannel.models.infp.guider import InteractiveMotionGuider, StyleEncoder
from backchannel.models.motion import BS, HEAD_POSE
from backchannel.models.phones import PARAMS

ARTICULATORS = len(PARAMS)  # jaw, closure, press, pucker, funnel, spread, tuck, tongue, raise
TRAINING_ONLY = ("articulation.",)  # parameters used in training alone: not shipped, not needed to run


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

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def style_vector(self, ref_motion: torch.Tensor | None, batch: int) -> torch.Tensor:
        if ref_motion is None:
            return self.style_encoder.null.expand(batch, -1)
        return self.style_encoder(self.codec.encode(ref_motion))

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
# and held there (5 of 12 validation runs of an early model); out of the range it was trained on, nothing pulls it back.
POSE_BOUND_STD = 4.0


class FrameStep(nn.Module):
    """Everything after the audio encoder for one chunk: guider -> few-step denoising -> codec decoder.

    This is what runs per tick (batched across sessions) and what `backchannel export onnx` exports. It keeps no
    state: the caller passes the encoder outputs and latents of the recent past and gets the new latents back.
    """

    def __init__(self, model: MotionModel, sampling: Sampling | None = None):
        super().__init__()
        self.model = model
        self.sampling = sampling or Sampling()
        mix = torch.ones(model.codec.motion_mean.shape[-1])
        mix[list(SPEECH_CHANNELS)] = self.sampling.mouth_history
        self.register_buffer("history_mix", mix, persistent=False)  # per motion channel: weight of the history
        low, high = model.pose_bounds()
        self.register_buffer("pose_low", low, persistent=False)
        self.register_buffer("pose_high", high, persistent=False)

    def forward(self, a_self, a_other, style, prev, noise):
        """a_self, a_other (B, W, A) encoder outputs of the guide window's frames, the chunk's last; style (B, S);
        prev (B, P, L); noise (B, C, L) -> latents (B, C, L), motion (B, C, 62), state logits (B, C, 3).

        The guider reads the whole window once per condition, so "no partner heard" holds for the window as it
        did in training, not only for the newest frames."""
        m, s = self.model, self.sampling
        # per example, a condition not applied (~off: applied); from a tensor so ONNX keeps the batch dynamic
        off = torch.zeros_like(noise[:, 0, 0]).bool()
        g, logits = m.guider(a_self, a_other, style)
        # samples drawn side by side: with history, and (mouth_history < 1) without it; the lips come from the last
        h = 1 if s.mouth_history == 1.0 else 2
        # one batch: each sample as heard, then (partner guidance) each sample with no partner heard
        rows = [(g, i) for i in range(h)]
        if s.partner_guidance != 1.0:
            unheard = m.guider(a_self, a_other, style, drop_partner=~off)[0]
            rows += [(unheard, i) for i in range(h)]
        # Guidance acts where the sample's shape is decided, in the first half of the steps (docs/experiments.md);
        # the later steps save the extra rows.
        guided_steps = (s.sampler_steps + 1) // 2

        def conditions(now):  # the denoiser's inputs other than x and t for these rows, built once per chunk
            return (torch.cat([gd for gd, _ in now]), prev.repeat(len(now), 1, 1), style.repeat(len(now), 1),
                    torch.cat([~off if i else off for _, i in now]) if h == 2 else None)

        every_row = (rows, conditions(rows))
        heard_rows = (rows[:h], conditions(rows[:h])) if len(rows) > h else every_row

        def denoise(x, t, step):  # x (h * B, C, L): one per sample
            now, (guide, prev_all, style_all, drop_prev) = every_row if step < guided_steps else heard_rows
            xs, ts = x.chunk(h), t.chunk(h)
            out = m.denoiser(torch.cat([xs[i] for _, i in now]), torch.cat([ts[i] for _, i in now]), guide,
                             prev_all, style_all, drop_prev=drop_prev).chunk(len(now))
            mixed = list(out[:h])
            for (_, i), unheard_out in zip(now[h:], out[h:]):
                mixed[i] = mixed[i] + (s.partner_guidance - 1) * (out[i] - unheard_out)
            return torch.cat(mixed)

        z = sample(denoise, noise.repeat(h, 1, 1), s.sampler_steps)
        motion = m.codec.decode(z)
        if h == 2:
            with_history, audio_only = motion.chunk(2)
            motion = audio_only + self.history_mix * (with_history - audio_only)
        pose = torch.minimum(torch.maximum(motion[..., HEAD_POSE], self.pose_low), self.pose_high)
        motion = torch.cat([motion[..., :HEAD_POSE.start], pose, motion[..., HEAD_POSE.stop:]], dim=-1)
        return m.codec.encode(motion), motion, logits[:, -noise.shape[1]:]
