"""Reading a corpus.

`Corpus(root)` lists clips per split and reads whole clips (evaluation, and the motion model's training, which
cuts its windows from cached audio features: models/training/data.py). `WindowDataset` is a general raw-audio
window loader, a torch Dataset for other models and for users bringing their own data: fixed-length windows of
both tracks' 16 kHz audio, motion (T, 62), state (T,) and per-frame masks. Windows start on whole frames; frame k
covers audio [k / 30, (k + 1) / 30) s, so a window of F frames from frame k0 holds audio samples
k0 * 16000 // 30 .. + F * 16000 // 30.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.clip import Clip
from backchannel.models.corpus.storage import find_clips, find_splits, read_clip, read_corpus_info
from backchannel.models.corpus.visemes import closure_window
from backchannel.models.measures import spans_mask
from backchannel.models.motion import FRAME_RATE
from backchannel.models.phones import is_bilabial_closure


class Corpus:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"corpus folder not found: {self.root}")
        self.info = read_corpus_info(self.root)

    def splits(self) -> list[str]:
        return find_splits(self.root)

    def paths(self, split: str | None = None) -> list[Path]:
        return find_clips(self.root, split)

    def clips(self, split: str | None = None, audio: bool = True):
        """Whole clips, one at a time (for evaluation)."""
        for path in self.paths(split):
            yield read_clip(path, audio)


def frame_masks(meta: dict, frames: int) -> dict[str, np.ndarray]:
    """Per-frame bool masks from a clip's metadata: where each track speaks, and where the lips must be shut
    (inside P/B/M closures)."""
    segs = meta["segments"]
    return {
        "self_speech": spans_mask([(s["start"], s["end"]) for s in segs if s["track"] == "self"], frames),
        "other_speech": spans_mask([(s["start"], s["end"]) for s in segs if s["track"] == "other"], frames),
        "lips_shut": spans_mask([closure_window(a, b) for a, b, n in meta["self_phones"] if is_bilabial_closure(n)],
                                frames),
    }


def samples_per_frame_window(frames: int) -> int:
    return frames * SAMPLE_RATE // FRAME_RATE


def window(clip: Clip, first: int, frames: int) -> dict[str, np.ndarray]:
    """Frames [first, first + frames) of a clip and their audio, zero-padded past the clip's end
    (`valid` marks real frames)."""
    n = samples_per_frame_window(frames)
    a = first * SAMPLE_RATE // FRAME_RATE
    total = len(clip.motion)

    def crop(x: np.ndarray, start: int, length: int) -> np.ndarray:
        out = np.zeros((length,) + x.shape[1:], x.dtype)
        piece = x[start:start + length]
        out[: len(piece)] = piece
        return out

    masks = frame_masks(clip.meta, total)
    item = {
        "self_audio": crop(clip.self_audio, a, n),
        "other_audio": crop(clip.other_audio, a, n),
        "motion": crop(clip.motion, first, frames),
        "state": crop(clip.state.astype(np.int64), first, frames),
        "valid": crop(np.ones(total, bool), first, frames),
    }
    item.update({k: crop(v, first, frames) for k, v in masks.items()})
    return item


class WindowDataset(torch.utils.data.Dataset):
    """Fixed-length raw-audio windows from a corpus split (Backchannel's own model trains from cached features
    instead: models/training/data.py).

    random=True (training): item i is a random window of clip i % len(clips), drawn from (seed, epoch, i),
    `windows_per_clip` items per clip per epoch; call set_epoch(e) for fresh windows each epoch.
    random=False (evaluation): every clip tiled with windows `stride_s` apart, in order.
    """

    def __init__(self, root: str | Path, split: str, seconds: float = 4.0, random: bool = True,
                 windows_per_clip: int = 8, stride_s: float | None = None, seed: int = 0):
        self.paths = find_clips(root, split)
        if not self.paths:
            raise FileNotFoundError(f"no clips in split {split!r} under {root}")
        self.frames = int(round(seconds * FRAME_RATE))
        self.random, self.windows_per_clip, self.seed, self.epoch = random, windows_per_clip, seed, 0
        self._lengths = [len(read_clip(p, audio=False).motion) for p in self.paths]
        stride = max(1, int(round((stride_s or seconds) * FRAME_RATE)))
        self._tiles = [(c, k) for c, n in enumerate(self._lengths)
                       for k in range(0, max(1, n - self.frames + 1), stride)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths) * self.windows_per_clip if self.random else len(self._tiles)

    def __getitem__(self, i: int) -> dict:
        if self.random:
            c = i % len(self.paths)
            rng = np.random.default_rng([self.seed, self.epoch, i])
            first = int(rng.integers(0, max(1, self._lengths[c] - self.frames + 1)))
        else:
            c, first = self._tiles[i]
        out = {k: torch.from_numpy(v) for k, v in window(read_clip(self.paths[c]), first, self.frames).items()}
        out["clip"], out["first_frame"] = str(self.paths[c]), first
        return out


def loader(root: str | Path, split: str, batch_size: int = 16, seconds: float = 4.0, random: bool = True,
           workers: int = 0, seed: int = 0, **kwargs):
    """A torch DataLoader over WindowDataset (shuffled when random)."""
    ds = WindowDataset(root, split, seconds, random=random, seed=seed, **kwargs)
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=random, num_workers=workers, generator=g)
