"""The on-disk corpus format (docs/dataset.md): how clips are written, found and read.

    DIR/corpus.json                       what was built: seed, settings, speaker -> split, counts
    DIR/<split>/<shard>/<name>.npz        one clip per file, SHARD_SIZE clips per shard folder

Only that layout holds clips (find_clips): anything else in DIR (a training features cache in DIR/.cache, notes)
is never read as one. Hidden names (".*") and temporaries ("*.tmp*") never count.

A clip file is an uncompressed .npz (fast to open, no pickle) holding
    self, other   int16 (n,)     the two tracks at 16 kHz, as the model should hear them
    motion        float32 (T, 62) the self avatar's motion at 30 fps (models/motion.py layout)
    state         int8 (T,)      idle / speaking / listening per frame
    meta          str            JSON metadata (segments, phones, words, phrase ends, voices, style, ...)

A clip may also be a folder in the same place, DIR/<split>/<shard>/<name>/ (easier to make by hand from real
recordings): self.wav and other.wav (any rate, mono or not), motion.npz (motion, state) and meta.json.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from backchannel.models.atomic import replacing
from backchannel.models.audio import SAMPLE_RATE, encode_pcm
from backchannel.models.corpus.clip import Clip
from backchannel.models.motion import MOTION_DIM, frame_count

SHARD_SIZE = 256
CORPUS_FILE = "corpus.json"
CLIP_KEYS = ("self", "other", "motion", "state", "meta")


def clip_path(root: str | Path, split: str, index: int, name: str) -> Path:
    return Path(root, split, f"{index // SHARD_SIZE:04d}", f"{name}.npz")


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.frombuffer(encode_pcm(x, "s16le"), "<i2")


def write_clip(path: str | Path, clip: Clip) -> None:
    """Write atomically: a temporary file renamed into place, so a file with the final name is always whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, self=_pcm16(clip.self_audio), other=_pcm16(clip.other_audio),
                 motion=np.asarray(clip.motion, np.float32), state=np.asarray(clip.state, np.int8),
                 meta=np.array(json.dumps(clip.meta, ensure_ascii=False)))


def write_clip_folder(folder: str | Path, clip: Clip) -> None:
    """The folder form: two wav files (16 kHz mono s16), motion.npz and meta.json."""
    from backchannel.models.audio import save_audio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_audio(folder / "self.wav", clip.self_audio)
    save_audio(folder / "other.wav", clip.other_audio)
    with open(folder / "motion.npz", "wb") as f:
        np.savez(f, motion=np.asarray(clip.motion, np.float32), state=np.asarray(clip.state, np.int8))
    (folder / "meta.json").write_text(json.dumps(clip.meta, ensure_ascii=False, indent=1) + "\n")


def read_clip(path: str | Path, audio: bool = True) -> Clip:
    """Read either form. `audio=False` skips the tracks (empty arrays) when only labels are needed."""
    path = Path(path)
    if path.is_dir():
        from backchannel.models.audio import load_audio

        if not (path / "meta.json").is_file():
            raise FileNotFoundError(f"{path} is not a clip folder (no meta.json)")
        meta = json.loads((path / "meta.json").read_text())
        with np.load(path / "motion.npz") as z:
            motion, state = z["motion"], z["state"]
        tracks = [load_audio(path / f"{t}.wav") if audio else np.zeros(0, np.float32) for t in ("self", "other")]
    else:
        if not path.is_file():
            raise FileNotFoundError(f"clip not found: {path}")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a clip file: not an .npz archive")
        with np.load(path) as z:
            missing = [k for k in CLIP_KEYS if k not in z.files]
            if missing:
                raise ValueError(f"{path} is not a clip file: it has no {', '.join(missing)} (docs/dataset.md)")
            meta = json.loads(str(z["meta"]))
            motion, state = z["motion"], z["state"]
            tracks = [(z[t].astype(np.float32) / 32768.0) if audio else np.zeros(0, np.float32)
                      for t in ("self", "other")]
    check(motion, state, meta, *tracks)
    return Clip(tracks[0], tracks[1], motion, state, meta)


def check(motion: np.ndarray, state: np.ndarray, meta: dict, self_audio: np.ndarray, other_audio: np.ndarray):
    """Shapes agree with each other and with the metadata; raises ValueError naming what is wrong."""
    frames = meta.get("frames", len(motion))
    if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
        raise ValueError(f"motion must be (T, {MOTION_DIM}), got {motion.shape}")
    if len(motion) != frames or len(state) != frames:
        raise ValueError(f"{len(motion)} motion rows and {len(state)} states, metadata says {frames} frames")
    for name, x in (("self", self_audio), ("other", other_audio)):
        if len(x) and abs(frame_count(len(x) / SAMPLE_RATE) - frames) > 1:
            raise ValueError(f"{name} audio lasts {len(x) / SAMPLE_RATE:.2f} s but the motion {frames} frames")


def _visible(folder: Path) -> list[Path]:
    """A folder's entries that may hold data: not hidden, not a temporary."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if not p.name.startswith(".") and ".tmp" not in p.name]


def find_clips(root: str | Path, split: str | None = None) -> list[Path]:
    """The clips of a corpus (or of one split), sorted: clip files DIR/<split>/<shard>/<name>.npz and clip folders
    DIR/<split>/<shard>/<name>/. Nothing outside that layout is a clip."""
    splits = [Path(root, split)] if split else [p for p in _visible(Path(root)) if p.is_dir()]
    shards = [p for s in splits for p in _visible(s) if p.is_dir()]
    return sorted(p for shard in shards for p in _visible(shard) if p.is_dir() or p.suffix == ".npz")


def find_splits(root: str | Path) -> list[str]:
    """The split folders of a corpus that hold clips."""
    return sorted(p.name for p in _visible(Path(root)) if p.is_dir() and find_clips(root, p.name))


def read_corpus_info(root: str | Path) -> dict:
    path = Path(root, CORPUS_FILE)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_corpus_info(root: str | Path, info: dict) -> None:
    path = Path(root, CORPUS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(info, indent=1) + "\n")
