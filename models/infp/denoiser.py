"""Denoiser: DiT-style blocks over a short chunk of motion latents (the frames being generated now).

Each block: self-attention among the chunk's frames -> cross-attention to the guider's features of the latest
frames -> temporal attention to the previous motion latents (what was already shown) -> MLP. adaLN-Zero
(DiT) modulates the self-attention and MLP by the diffusion time and the style. Prediction target: the clean
latents (x0), which keeps few-step sampling stable.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion time t in [0, 1], (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """x (B, N, d) attends over ctx (B, M, d)."""
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(x).view(b, n, self.heads, hd).transpose(1, 2)
        k, v = self.kv(ctx).view(b, -1, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        return self.out((w @ v).transpose(1, 2).reshape(b, n, d))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.norm_self = nn.LayerNorm(d, elementwise_affine=False)
        self.self_attn = Attention(d, heads)
        self.norm_cross = nn.LayerNorm(d)
        self.cross_attn = Attention(d, heads)
        self.norm_prev = nn.LayerNorm(d)
        self.prev_attn = Attention(d, heads)
        self.norm_mlp = nn.LayerNorm(d, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)  # adaLN-Zero: each block starts as the identity
        nn.init.zeros_(self.ada.bias)

    def forward(self, x, cond, guide, prev):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(cond)).chunk(6, dim=1)
        h = modulate(self.norm_self(x), shift1, scale1)
        x = x + gate1[:, None] * self.self_attn(h, h)
        x = x + self.cross_attn(self.norm_cross(x), guide)
        x = x + self.prev_attn(self.norm_prev(x), prev)
        return x + gate2[:, None] * self.mlp(modulate(self.norm_mlp(x), shift2, scale2))


class Denoiser(nn.Module):
    def __init__(self, latent_dim: int, d: int, depth: int, heads: int, chunk: int, prev_frames: int,
                 guide_window: int, style_dim: int):
        super().__init__()
        self.d = d
        self.inp = nn.Linear(latent_dim, d)
        self.prev_inp = nn.Linear(latent_dim, d)
        self.pos_chunk = nn.Parameter(torch.randn(chunk, d) * 0.02)
        self.pos_prev = nn.Parameter(torch.randn(prev_frames, d) * 0.02)
        self.pos_guide = nn.Parameter(torch.randn(guide_window, d) * 0.02)
        self.null_prev = nn.Parameter(torch.zeros(prev_frames, d))  # "no history" for guidance / training dropout
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.style = nn.Linear(style_dim, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False)
        self.ada_out = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, latent_dim)
        for layer in (self.ada_out, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x_t, t, guide, prev, style, drop_prev=None):
        """x_t (B, C, L) noisy chunk; t (B,); guide (B, W, d); prev (B, P, L); style (B, S) -> x0 (B, C, L)."""
        cond = self.time(time_embedding(t, self.d)) + self.style(style)
        x = self.inp(x_t) + self.pos_chunk
        p = self.prev_inp(prev) + self.pos_prev
        if drop_prev is not None:
            p = torch.where(drop_prev[:, None, None], self.null_prev.expand_as(p), p)
        g = guide + self.pos_guide
        for block in self.blocks:
            x = block(x, cond, g, p)
        shift, scale = self.ada_out(F.silu(cond)).chunk(2, dim=1)
        return self.out(modulate(self.norm_out(x), shift, scale))
