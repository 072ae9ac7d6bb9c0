"""The motion model's training loss: denoising, the same error in motion space, the state head and the
articulatory read-out, with the dropouts classifier-free guidance needs and noise on the remembered history."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from backchannel.models.infp.codec import CHANNEL_WEIGHT
from backchannel.models.infp.config import OTHER, SELF
from backchannel.models.infp.flow import add_noise
from backchannel.models.infp.network import ARTICULATORS, MotionModel
from backchannel.models.training.config import LossConfig


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


def training_loss(model: MotionModel, batch: dict, loss: LossConfig,
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One window per batch row.

    batch: rows_self, rows_other (B, R, F) feature rows; frame_rows (B, P + T) row index of each motion frame;
    motion (B, P + T, 62) with P = prev_frames of history first; state (B, P + T) int64;
    ref_motion (B, Rm, 62) another stretch of the same person's motion (style reference); reply (B, P + T) 1 on
    frames just after a partner's phrase ends (weighed by reply_weight); closing (B, P + T) 1 on frames of the
    avatar's own P/B/M phones (weighed by closure_weight).
    """
    cfg = model.cfg
    P, C, W = cfg.prev_frames, cfg.chunk, cfg.guide_window
    motion = batch["motion"]
    b, total, _ = motion.shape
    dev = motion.device
    rand = lambda *shape: torch.rand(*shape, generator=generator, device=dev)  # noqa: E731

    with torch.no_grad():
        z = model.codec.encode(motion)  # (B, P + T, L), the codec is trained first and frozen here
    tracks = torch.tensor([SELF] * b + [OTHER] * b, device=dev)
    encoded, _ = model.encoder(torch.cat([batch["rows_self"], batch["rows_other"]]), tracks)
    art_loss = articulation_loss(model, encoded, torch.cat([batch["art_self"], batch["art_other"]]))
    a_self, a_other = encoded.chunk(2)
    rows = batch["frame_rows"][:, :, None].expand(-1, -1, a_self.shape[2])
    a_self, a_other = a_self.gather(1, rows), a_other.gather(1, rows)  # (B, P + T, A)

    style = model.style_vector(batch["ref_motion"], b)
    style = torch.where((rand(b) < loss.p_drop_style)[:, None], model.style_encoder.null.expand_as(style), style)
    g, state_logits = model.guider(a_self, a_other, style, drop_partner=rand(b) < loss.p_drop_partner)

    # every chunk of the T target frames is one denoising example with its own history and noise level
    starts = torch.arange(P, total - C + 1, C, device=dev)  # chunk start frames in the window
    if 0 < loss.loss_frames < len(starts) * C:
        starts = starts[torch.randperm(len(starts), generator=generator, device=dev)[:max(1, loss.loss_frames // C)]]
    n = len(starts)
    z_chunk = torch.stack([z[:, s:s + C] for s in starts.tolist()], 1).flatten(0, 1)  # (B*n, C, L)
    prev = torch.stack([z[:, s - P:s] for s in starts.tolist()], 1).flatten(0, 1)  # (B*n, P, L)
    guide = torch.stack([g[:, s + C - W:s + C] for s in starts.tolist()], 1).flatten(0, 1)  # (B*n, W, d)
    styles = style.repeat_interleave(n, 0)
    prev = prev + history_noise(prev.shape, loss.prev_noise, loss.prev_noise_smooth, generator, dev)
    x0 = z_chunk
    t = rand(b * n)
    noise = torch.randn(x0.shape, generator=generator, device=dev)
    x0_hat = model.denoiser(add_noise(x0, noise, t), t, guide, prev, styles, drop_prev=rand(b * n) < loss.p_drop_prev)

    per_chunk = lambda key: batch[key][:, starts].flatten()[:, None, None]  # noqa: E731  (B*n, 1, 1), as z_chunk
    w = 1 + (loss.reply_weight - 1) * per_chunk("reply") + (loss.closure_weight - 1) * per_chunk("closing")
    w = w / w.mean()  # the same loss scale whatever share of examples are weighed up

    latent_loss = (w * (x0_hat - x0) ** 2).mean()
    # the same error seen in motion space, weighted towards mouth and eyelids: what viewers judge
    target = torch.stack([motion[:, s:s + C] for s in starts.tolist()], 1).flatten(0, 1)
    decoded = model.codec.decode(x0_hat, clip=False)
    weight = torch.as_tensor(CHANNEL_WEIGHT, device=dev)
    motion_loss = (w * ((decoded - target) / model.codec.motion_std) ** 2 * weight).mean()
    state_loss = F.cross_entropy(state_logits[:, P:].transpose(1, 2), batch["state"][:, P:])
    total_loss = latent_loss + 0.5 * motion_loss + 0.2 * state_loss + loss.articulation_weight * art_loss
    return {"loss": total_loss, "latent": latent_loss.detach(), "motion": motion_loss.detach(),
            "state": state_loss.detach(), "articulation": art_loss.detach()}

def articulation_loss(model: MotionModel, encoded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE of the articulation read from encoder rows (B, R, A) against targets (B, R, ARTICULATORS + 1),
    whose last column marks rows with a known target (clips without phone timings have none)."""
    known = targets[..., -1:]
    err = ((model.articulation(encoded) - targets[..., :-1]) ** 2 * known).sum()
    return err / (known.sum() * ARTICULATORS).clamp_min(1.0)

