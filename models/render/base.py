"""The renderer interface: a portrait plus motion rows in, RGB frames out.

The warp renderer (warp.py) needs no weights; a neural renderer (INFP's first stage: appearance features of the
portrait warped by a motion-conditioned flow field, then decoded) plugs in here with the same inputs and outputs,
registered in RENDERERS.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Iterator

import numpy as np

from backchannel.models.motion import MOTION_DIM
from backchannel.models.render.portrait import Portrait

DEFAULT_RENDERER = "warp"
# name -> "module:class" in this package, imported when asked for
RENDERERS: dict[str, str] = {
    "warp": "warp:WarpRenderer",
}


class Renderer(ABC):
    """Animates one framed portrait (a square image with its landmarks)."""

    name: str = "?"

    def __init__(self, portrait: Portrait):
        h, w = portrait.image.shape[:2]
        if h != w:
            raise ValueError(f"renderers take a square framed portrait, not {w}x{h} (see frame_portrait)")
        self.portrait = portrait
        self.size = w

    @abstractmethod
    def render_frame(self, row: np.ndarray) -> np.ndarray:
        """One motion row (MOTION_DIM,) -> an RGB uint8 frame (size, size, 3)."""

    def render(self, motion: np.ndarray) -> Iterator[np.ndarray]:
        """Frames for motion rows (T, MOTION_DIM), one per row, in order; batching renderers override this."""
        for row in check_motion(motion):
            yield self.render_frame(row)


def check_motion(motion: np.ndarray) -> np.ndarray:
    motion = np.asarray(motion, np.float32)
    if motion.ndim == 1:
        motion = motion[None]
    if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
        raise ValueError(f"motion must have shape (T, {MOTION_DIM}), not {motion.shape}")
    if not np.isfinite(motion).all():
        raise ValueError("motion contains NaN or infinity")
    return motion


def make_renderer(portrait: Portrait, name: str | None = None, **options) -> Renderer:
    name = name or DEFAULT_RENDERER
    if name not in RENDERERS:
        raise ValueError(f"unknown renderer {name!r}; choose from {', '.join(sorted(RENDERERS))}")
    module, cls = RENDERERS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(portrait, **options)
