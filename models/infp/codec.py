"""Motion codec: a MotionFrame row (62 numbers) <-> a low-dimensional motion latent, frame by frame.

The diffusion model works in this latent space and the bridge can publish latents raw. Frame-wise (no time
context) so streaming needs no state here; temporal structure is the denoiser's job.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backchannel.models.motion import BLENDSHAPES, BS, MOTION_DIM

# Reconstruction weight per channel: the mouth and eyelids are what viewers judge first.
CHANNEL_WEIGHT = np.ones(MOTION_DIM, np.float32)
for _name in ("JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthPressLeft", "MouthPressRight",
              "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight",
              "MouthRollLower", "MouthRollUpper", "EyeBlinkLeft", "EyeBlinkRight"):
    CHANNEL_WEIGHT[BS[_name]] = 3.0


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, d_out))


class MotionCodec(nn.Module):
    def __init__(self, latent_dim: int = 32, hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = mlp(MOTION_DIM, hidden, latent_dim)
        self.decoder = mlp(latent_dim, hidden, MOTION_DIM)
        # data statistics, set once from the corpus before training (fit_statistics)
        self.register_buffer("motion_mean", torch.zeros(MOTION_DIM))
        self.register_buffer("motion_std", torch.ones(MOTION_DIM))
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))

    def fit_statistics(self, motion: np.ndarray) -> None:
        """Per-channel normalisation from training motion (N, 62); floors keep near-constant channels sane."""
        m = torch.as_tensor(motion, dtype=torch.float32)
        self.motion_mean.copy_(m.mean(0))
        self.motion_std.copy_(m.std(0).clamp_min(0.02))

    @torch.no_grad()
    def fit_latent_statistics(self, motion: np.ndarray) -> None:
        """Scale latents to zero mean, unit variance so the diffusion noise level means the same in every dim."""
        z = self.encoder(self.normalise(torch.as_tensor(motion, dtype=torch.float32)))
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(1e-3))

    def normalise(self, motion: torch.Tensor) -> torch.Tensor:
        return (motion - self.motion_mean) / self.motion_std

    def encode(self, motion: torch.Tensor) -> torch.Tensor:
        """(..., 62) motion -> (..., latent_dim) standardised latent."""
        return (self.encoder(self.normalise(motion)) - self.latent_mean) / self.latent_std

    def decode(self, z: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """(..., latent_dim) standardised latent -> (..., 62) motion; blendshapes clipped to [0, 1] unless asked."""
        motion = self.decoder(z * self.latent_std + self.latent_mean) * self.motion_std + self.motion_mean
        if clip:
            motion = torch.cat([motion[..., BLENDSHAPES].clamp(0.0, 1.0), motion[..., 52:]], dim=-1)
        return motion

    def reconstruction_loss(self, motion: torch.Tensor) -> torch.Tensor:
        """Weighted MSE in normalised units, through the raw (unstandardised) latent."""
        x = self.normalise(motion)
        err = (self.decoder(self.encoder(x)) - x) ** 2
        return (err * torch.as_tensor(CHANNEL_WEIGHT, device=motion.device)).mean()
