"""A picture of any motion: the audio tracks when given, the role per frame, the mouth, eye and brow shapes that
read most, the head rotation and the gaze. For `backchannel plot` and `bake --png`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from backchannel.models.atomic import replacing
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.measures import mouth_openness
from backchannel.models.motion import BS, FRAME_RATE, GAZE, GAZE_NAMES, HEAD_ROTATION, HEAD_ROTATION_NAMES, STATES, MotionBlock

_STATE_COLOURS = {"idle": "#dddddd", "speaking": "#4c78a8", "listening": "#54a24b"}
_SHAPES = (("JawOpen", "#4c78a8"), ("MouthClose", "#72b7b2"), ("MouthPucker", "#b279a2"),
           ("MouthSmileLeft", "#f58518"), ("EyeBlinkLeft", "#9d755d"), ("BrowInnerUp", "#eeca3b"))


def plot_motion(block: MotionBlock, png: str | Path, tracks: dict[str, np.ndarray] | None = None,
                title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracks = {k: v for k, v in (tracks or {}).items() if v is not None and len(v)}
    t = (block.first + np.arange(len(block))) / FRAME_RATE
    rows = [0.9] * len(tracks) + [0.3, 1.6, 1.0, 0.8]
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.6 * sum(rows) + 1), sharex=True,
                             gridspec_kw={"height_ratios": rows}, squeeze=False)
    axes = axes[:, 0]
    for ax, (name, x) in zip(axes, tracks.items()):
        step = max(1, len(x) // 20000)
        ax.plot(np.arange(0, len(x), step) / SAMPLE_RATE, x[::step], lw=0.4, color="#333333")
        ax.set_ylabel(name, fontsize=8)
    ax = axes[len(tracks)]
    for k, name in enumerate(STATES):
        ax.fill_between(t, 0, 1, where=block.state == k, color=_STATE_COLOURS[name], step="post", label=name)
    ax.set_yticks([])
    ax.set_ylabel("role", fontsize=8)
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    ax = axes[len(tracks) + 1]
    for name, colour in _SHAPES:
        ax.plot(t, block.motion[:, BS[name]], lw=0.9, label=name, color=colour)
    ax.plot(t, mouth_openness(block.motion), lw=1.2, color="black", label="mouth openness")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("blendshapes", fontsize=8)
    ax.legend(loc="upper right", fontsize=7, ncol=4)
    for ax, columns, names, label in ((axes[-2], HEAD_ROTATION, HEAD_ROTATION_NAMES, "head (deg)"),
                                      (axes[-1], GAZE, GAZE_NAMES, "gaze (deg)")):
        for k, name in enumerate(names):
            ax.plot(t, np.degrees(block.motion[:, columns.start + k]), lw=0.9, label=name)
        ax.set_ylabel(label, fontsize=8)
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title or f"{len(block)} frames at {FRAME_RATE} fps", fontsize=10)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with replacing(png) as tmp, tmp.open("wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return png
