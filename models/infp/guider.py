"""Interactive motion guider (INFP): audio features query two learnable memory banks.

The verbal bank is queried by the avatar's own voice only, so what drives the lips never hears the partner
(ECHO's point about cross-signal interference); the non-verbal bank is queried by both voices, because listening
behaviour depends on who is talking. The two readings are fused (add + MLP, as INFP) and modulated by a style
vector (FiLM). A small head reads the speaking/listening/idle state from the same features.
"""
from __future__ import annotations

import torch
from torch import nn


class MemoryBank(nn.Module):
    """`slots` learnable motion prototypes; a query attends over them and reads a mix."""

    def __init__(self, d_query: int, d: int, slots: int, heads: int):
        super().__init__()
        self.slots = nn.Parameter(torch.randn(slots, d) * 0.02)
        self.query = nn.Linear(d_query, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.heads = heads

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q (B, T, d_query) -> (B, T, d)."""
        b, t, _ = q.shape
        d = self.slots.shape[1]
        hd = d // self.heads
        qh = self.query(q).view(b, t, self.heads, hd).transpose(1, 2)  # (B, H, T, hd)
        kh = self.key(self.slots).view(-1, self.heads, hd).transpose(0, 1)  # (H, S, hd)
        vh = self.value(self.slots).view(-1, self.heads, hd).transpose(0, 1)
        w = torch.softmax(qh @ kh.transpose(1, 2) / hd ** 0.5, dim=-1)  # (B, H, T, S)
        return self.out((w @ vh).transpose(1, 2).reshape(b, t, d))


class InteractiveMotionGuider(nn.Module):
    def __init__(self, audio_dim: int, d: int, slots: int, heads: int, style_dim: int):
        super().__init__()
        self.verbal = MemoryBank(audio_dim, d, slots, heads)
        self.nonverbal = MemoryBank(2 * audio_dim, d, slots, heads)
        self.fuse = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.style = nn.Linear(style_dim, 2 * d)
        nn.init.zeros_(self.style.weight)
        nn.init.zeros_(self.style.bias)
        self.null_partner = nn.Parameter(torch.zeros(audio_dim))  # "no partner" for classifier-free guidance
        self.state_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 3))

    def forward(self, a_self: torch.Tensor, a_other: torch.Tensor, style: torch.Tensor,
                drop_partner: torch.Tensor | None = None):
        """a_self, a_other (B, T, A); style (B, S); drop_partner (B,) bool -> features (B, T, d), state logits."""
        if drop_partner is not None:
            a_other = torch.where(drop_partner[:, None, None], self.null_partner.expand_as(a_other), a_other)
        g = self.verbal(a_self) + self.nonverbal(torch.cat([a_self, a_other], dim=-1))
        g = g + self.fuse(g)
        scale, shift = self.style(style).chunk(2, dim=-1)
        g = g * (1 + scale[:, None]) + shift[:, None]
        return g, self.state_head(g)


class StyleEncoder(nn.Module):
    """Reference motion latents (B, R, L) -> style vector (B, S): how this person moves, not what they say."""

    def __init__(self, latent_dim: int, d: int, style_dim: int):
        super().__init__()
        self.inp = nn.Linear(latent_dim, d)
        self.conv = nn.Conv1d(d, d, 5, padding=2)
        self.out = nn.Linear(2 * d, style_dim)
        self.null = nn.Parameter(torch.zeros(style_dim))  # "no reference" (dropped in training, default live)

    def forward(self, ref: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.inp(ref)).transpose(1, 2)
        h = torch.nn.functional.silu(self.conv(h))
        return self.out(torch.cat([h.mean(2), h.std(2)], dim=1))  # level and spread of each feature
