"""The model's settings, without torch: what serving, training and export all read.

`ModelConfig` is the architecture (what the weights' shapes and the streaming schedule depend on); `Sampling` is how
the few-step sampler draws a chunk (fixed in an exported graph). Training's settings (loss weights, dropout,
schedule) are `models.training.config`'s.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.frontend.features import HOP, WIN
from backchannel.models.motion import FRAME_RATE

SELF, OTHER = 0, 1  # the two tracks, as the audio encoder's track input numbers them


@dataclass(frozen=True)
class ModelConfig:
    latent_dim: int = 32
    d_model: int = 128
    heads: int = 4
    depth: int = 4
    enc_channels: int = 128
    enc_hidden: int = 128
    enc_layers: int = 3  # causal convolutions before the GRU (kernel 5 each: 4 more rows of context per layer)
    bank_slots: int = 64  # per memory bank (INFP: 64)
    style_dim: int = 64
    chunk: int = 1  # frames generated per denoiser call
    prev_frames: int = 10  # INFP: temporal attention to the last 10 latents
    guide_window: int = 4
    lookahead_samples: int = 1024  # 64 ms of audio beyond a frame's own time
    # the encoder also reads the VAD's LSTM output (features.FEATURE_DIM); False: log-mel and speech probability
    # alone (the shipped recipe's first stages; a later stage widens the encoder, AudioEncoder)
    vad_state: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """From a weights file's config; settings this version does not know are one clear error."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"weights made by another version of Backchannel (settings {', '.join(unknown)})")
        return cls(**values)

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


@dataclass(frozen=True)
class Sampling:
    """How FrameStep samples: fixed in an exported graph (and part of its cache key)."""

    sampler_steps: int = 4  # network evaluations per chunk
    partner_guidance: float = 1.0  # > 1: classifier-free guidance away from "no partner heard"
    # How far the speech articulators follow the model's own previous frames. 1: one sample, conditioned on the
    # history. 0: they come from a second sample drawn without it (training drops the history for half its
    # examples, so the model knows that condition), while head, eyes and expressions keep the history. With the
    # history, the shipped weights' lips kept the previous frames' shape and missed what the encoder heard
    # (docs/experiments.md).
    mouth_history: float = 0.0

    def __post_init__(self):
        steps = self.sampler_steps
        if isinstance(steps, bool) or steps != int(steps) or steps < 1:
            raise ValueError(f"sampler_steps must be a whole number >= 1, not {steps}")
        if not (self.partner_guidance >= 0 and self.partner_guidance < float("inf")):
            raise ValueError(f"partner_guidance must be a finite number >= 0, not {self.partner_guidance}")
        if not 0.0 <= self.mouth_history <= 1.0:
            raise ValueError(f"mouth_history must be in [0, 1], not {self.mouth_history}")
