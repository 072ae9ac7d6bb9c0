"""One picture of a clip: both audio tracks with their segments, the role timeline, key mouth/eye/brow curves
with the P/B/M phones marked, and head rotation with nods and the partner's phrase ends."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from backchannel.models import measures
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.storage import read_clip
from backchannel.models.motion import BS, FRAME_RATE, HEAD_ROTATION, STATES
from backchannel.models.phones import is_bilabial_closure

_KIND_COLOURS = {"turn": "#4c78a8", "backchannel": "#f58518", "laugh": "#e45756"}
_STATE_COLOURS = {"idle": "#dddddd", "speaking": "#4c78a8", "listening": "#54a24b"}


def show(clip_path: str | Path, png: str | Path, start: float = 0.0, end: float | None = None) -> Path:
    return draw(read_clip(clip_path), png, start, end, Path(clip_path).stem)


def draw(clip, png: str | Path, start: float = 0.0, end: float | None = None, name: str = "",
         title: str | None = None) -> Path:
    """The picture for any clip-shaped thing: its tracks and metadata with this motion and state (the labels, or
    what a generator made of the same audio)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, motion = clip.meta, clip.motion
    end = min(end or meta["seconds"], meta["seconds"])
    if end <= start:
        raise ValueError(f"empty time range {start}..{end} s")
    t = np.arange(len(motion)) / FRAME_RATE
    sel = (t >= start) & (t <= end)
    label_phones = end - start <= 12  # phone names stay readable up to about 12 s

    fig, axes = plt.subplots(5, 1, figsize=(16, 11), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1.2, 0.35, 1.6, 1.2]})
    for ax, track in zip(axes[:2], ("self", "other")):
        x = clip.self_audio if track == "self" else clip.other_audio
        a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        step = max(1, (b - a) // 20000)
        ax.plot(np.arange(a, min(b, len(x)), step) / SAMPLE_RATE, x[a:b:step], lw=0.4, color="#333333")
        for s in meta["segments"]:
            if s["track"] == track and s["end"] > start and s["start"] < end:
                ax.axvspan(s["start"], s["end"], color=_KIND_COLOURS.get(s["kind"], "#999999"), alpha=0.18)
        if label_phones:
            for a_, b_, name in meta[f"{track}_phones"]:
                if start <= a_ <= end:
                    ax.text((a_ + b_) / 2, 0.92, name, transform=ax.get_xaxis_transform(), fontsize=6,
                            ha="center", color="#b00000" if is_bilabial_closure(name) else "#555555")
        v = meta["voices"][track]
        ax.set_ylabel(f"{track}\n{v.get('engine', '')}:{v.get('voice', '')}\n{v.get('language', '')}", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.3) for c in _KIND_COLOURS.values()]
    axes[0].legend(handles, list(_KIND_COLOURS), loc="upper right", fontsize=7, ncol=3)

    ax = axes[2]
    for k, name in enumerate(STATES):
        mask = (clip.state == k) & sel
        ax.fill_between(t, 0, 1, where=mask, color=_STATE_COLOURS[name], step="post", label=name)
    ax.set_yticks([])
    ax.set_ylabel("role", fontsize=8)
    ax.legend(loc="upper right", fontsize=7, ncol=3)

    ax = axes[3]
    for name, colour in (("JawOpen", "#4c78a8"), ("MouthClose", "#72b7b2"), ("MouthPucker", "#b279a2"),
                         ("EyeBlinkLeft", "#9d755d"), ("BrowInnerUp", "#eeca3b"), ("MouthSmileLeft", "#f58518")):
        ax.plot(t[sel], motion[sel, BS[name]], lw=0.9, label=name, color=colour)
    ax.plot(t[sel], measures.mouth_openness(motion)[sel], lw=1.2, color="black", label="mouth openness")
    ax.axhline(measures.LIPS_SHUT_OPENNESS, color="black", lw=0.5, ls=":")
    for a_, b_, name in meta["self_phones"]:
        if is_bilabial_closure(name) and start <= a_ <= end:
            ax.axvspan(a_, b_, color="#e45756", alpha=0.25, lw=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("blendshapes\n(red: P/B/M)", fontsize=8)
    ax.legend(loc="upper right", fontsize=7, ncol=7)

    ax = axes[4]
    for i, (name, colour) in enumerate((("pitch", "#4c78a8"), ("yaw", "#54a24b"), ("roll", "#b279a2"))):
        ax.plot(t[sel], np.degrees(motion[sel, HEAD_ROTATION.start + i]), lw=0.9, label=f"head {name}",
                color=colour)
    nods = measures.nod_frames(motion) / FRAME_RATE
    nods = nods[(nods >= start) & (nods <= end)]
    ax.plot(nods, np.degrees(motion[(nods * FRAME_RATE).round().astype(int), HEAD_ROTATION.start]), "v",
            color="#4c78a8", ms=6, label="nod (detected)")
    for e in meta["other_phrase_ends"]:
        if start <= e["t"] <= end:
            ax.axvline(e["t"], color="#54a24b" if e["listened"] else "#bbbbbb", lw=0.8, ls="--")
    ax.set_ylabel("head (deg, +pitch down)\n-- partner phrase end", fontsize=8)
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=7, ncol=4)
    ax.set_xlim(start, end)
    fig.suptitle(title or f"{meta.get('name', name)}  split={meta.get('split', '?')}  "
                 f"scenario={meta.get('habits', {}).get('scenario', '?')}", fontsize=10)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
