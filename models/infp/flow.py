"""Few-step sampler: rectified flow (flow matching) with clean-sample (x0) prediction.

Noisy latents are x_t = (1 - t) x0 + t * noise, t in [0, 1]. The denoiser predicts x0; a deterministic step to a
lower t re-noises that prediction with the noise it implies (DDIM's update for this path). One step is the
conditional mean; more steps add the variety the data has. INFP used DDIM with 20 steps; we measure 1-8 (eval).
"""
from __future__ import annotations

from typing import Callable

import torch


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def sample(denoise: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], noise: torch.Tensor,
           steps: int) -> torch.Tensor:
    """Integrate from pure noise (t = 1) to data (t = 0) in `steps` network evaluations; `denoise(x, t, step)`
    gets the step's index too."""
    x = noise
    times = [1.0 - i / steps for i in range(steps + 1)]  # plain floats: the schedule is fixed, not traced
    for step, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        x0 = denoise(x, torch.zeros_like(x[:, 0, 0]) + t, step)  # (B,) written so ONNX keeps the batch dynamic
        if t_next <= 0.0:
            return x0
        implied_noise = (x - (1 - t) * x0) / t
        x = (1 - t_next) * x0 + t_next * implied_noise
    return x
