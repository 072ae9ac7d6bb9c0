"""Audio encoder: one network for both tracks (a track embedding tells them apart), language-agnostic (no text).

Input rows at 100 Hz (log-mel + speech probability, features.TrackFeatures). A causal convolution sees the last
few rows; a GRU carries the longer context (how long someone has spoken, how long the silence is). Both are strictly
causal, so the look-ahead is set only by which row a motion frame reads (MotionModel.row_for_frame).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .features import FEATURE_DIM, LOG_FLOOR

SELF, OTHER = 0, 1


class AudioEncoder(nn.Module):
    def __init__(self, channels: int = 128, hidden: int = 128, kernel: int = 5):
        super().__init__()
        self.kernel = kernel
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))  # from the corpus (fit_statistics)
        self.register_buffer("feature_std", torch.ones(FEATURE_DIM))
        self.inp = nn.Conv1d(FEATURE_DIM, channels, kernel)
        self.track = nn.Embedding(2, channels)
        self.mix = nn.Conv1d(channels, channels, kernel)
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.hidden = hidden
        self.channels = channels

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Silence before the stream: (input history, conv history, GRU state)."""
        dev = self.feature_mean.device
        silent = (torch.full((FEATURE_DIM,), math.log(LOG_FLOOR), device=dev) - self.feature_mean) / self.feature_std
        silent[-1] = (0.0 - self.feature_mean[-1]) / self.feature_std[-1]
        x_hist = silent[None, :, None].expand(batch, FEATURE_DIM, self.kernel - 1).contiguous()
        return (x_hist, torch.zeros(batch, self.channels, self.kernel - 1, device=dev),
                torch.zeros(1, batch, self.hidden, device=dev))

    def forward(self, rows: torch.Tensor, track: int | torch.Tensor, state=None):
        """rows (B, T, FEATURE_DIM) raw features -> (B, T, hidden), new state. state=None: silence before.
        `track` is SELF or OTHER (an int, or a 0-d int64 tensor in the exported graph)."""
        b = rows.shape[0]
        x_hist, h_hist, gru_state = state if state is not None else self.initial_state(b)
        x = ((rows - self.feature_mean) / self.feature_std).transpose(1, 2)  # (B, F, T)
        x = torch.cat([x_hist, x], dim=2)
        h = F.silu(self.inp(x) + self.track.weight[track][None, :, None])
        h = torch.cat([h_hist, h], dim=2)
        y = F.silu(self.mix(h)) + h[:, :, self.kernel - 1:]
        out, gru_state = self.gru(y.transpose(1, 2), gru_state)
        new_state = (x[:, :, -(self.kernel - 1):], h[:, :, -(self.kernel - 1):], gru_state)
        return out, new_state
