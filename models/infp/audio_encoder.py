"""Audio encoder: one network for both tracks (a track embedding tells them apart), language-agnostic (no text).

Input rows at 100 Hz (log-mel + speech probability, features.TrackFeatures). A causal convolution sees the last
few rows; a GRU carries the longer context (how long someone has spoken, how long the silence is). Both are strictly
causal, so the look-ahead is set only by which row a motion frame reads (MotionModel.row_for_frame).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from backchannel.models.frontend.features import FEATURE_DIM, silence_rows


class AudioEncoder(nn.Module):
    def __init__(self, channels: int = 128, hidden: int = 128, kernel: int = 5, layers: int = 2,
                 inputs: int = FEATURE_DIM):
        """`inputs`: how many of a feature row's columns it reads, from the first (features.VAD_STATE: log-mel and
        speech probability, as weights trained before the VAD's LSTM output was a feature did)."""
        super().__init__()
        self.kernel = kernel
        self.inputs = inputs
        self.widened_from: int | None = None  # set when loaded from weights that read fewer columns
        self.register_buffer("feature_mean", torch.zeros(inputs))  # from the corpus (fit_input_statistics)
        self.register_buffer("feature_std", torch.ones(inputs))
        self.inp = nn.Conv1d(inputs, channels, kernel)
        self.track = nn.Embedding(2, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel) for _ in range(layers - 1))
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.hidden = hidden
        self.channels = channels

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Silence before the stream: each convolution's input history, then the GRU state."""
        dev = self.feature_mean.device
        silent = (torch.as_tensor(silence_rows(1)[0, :self.inputs], device=dev) - self.feature_mean) / self.feature_std
        x_hist = silent[None, :, None].expand(batch, self.inputs, self.kernel - 1).contiguous()
        h_hists = [torch.zeros(batch, self.channels, self.kernel - 1, device=dev) for _ in self.convs]
        return (x_hist, *h_hists, torch.zeros(1, batch, self.hidden, device=dev))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights that read fewer columns, fine-tuned to read more: the new columns start unheard (zero weights; their
        # statistics are refitted from the corpus, training.loop.fit_feature_statistics) so the model starts as it was
        w, mean, std = (prefix + k for k in ("inp.weight", "feature_mean", "feature_std"))
        if w in state_dict and state_dict[w].shape[1] < self.inputs:
            old = state_dict[w].shape[1]
            state_dict[w] = torch.cat([state_dict[w], state_dict[w].new_zeros(
                state_dict[w].shape[0], self.inputs - old, self.kernel)], dim=1)
            state_dict[mean] = torch.cat([state_dict[mean], self.feature_mean[old:].to(state_dict[mean])])
            state_dict[std] = torch.cat([state_dict[std], self.feature_std[old:].to(state_dict[std])])
            self.widened_from = old
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, rows: torch.Tensor, track: int | torch.Tensor, state=None):
        """rows (B, T, FEATURE_DIM) raw features -> (B, T, hidden), new state. state=None: silence before.
        `track` is SELF or OTHER (an int, or a 0-d int64 tensor in the exported graph), or a (B,) tensor of them
        (training encodes both tracks in one batch)."""
        *hists, gru_state = state if state is not None else self.initial_state(rows.shape[0])
        keep = self.kernel - 1
        rows = rows[..., :self.inputs]
        x = torch.cat([hists[0], ((rows - self.feature_mean) / self.feature_std).transpose(1, 2)], dim=2)
        new_hists = [x[:, :, -keep:]]
        h = F.silu(self.inp(x) + self.track.weight[track][..., None])  # (B, C, T)
        for conv, hist in zip(self.convs, hists[1:]):  # residual causal convolutions
            padded = torch.cat([hist, h], dim=2)
            new_hists.append(padded[:, :, -keep:])
            h = F.silu(conv(padded)) + h
        out, gru_state = self.gru(h.transpose(1, 2), gru_state)
        return out, (*new_hists, gru_state)
