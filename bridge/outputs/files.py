"""Motion tracks on disk: JSONL (one frame per line), CSV (one column per channel) and NPZ (arrays)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from backchannel.models.atomic import replacing
from backchannel.models.motion import CHANNEL_NAMES, MOTION_DIM, STATES, MotionBlock, MotionFrame, frame_time

FORMATS = (".jsonl", ".csv", ".npz")
OPEN_AS = {".jsonl": {"mode": "w"}, ".csv": {"mode": "w", "newline": ""}, ".npz": {"mode": "wb"}}


def write_motion(path: str | Path, block: MotionBlock) -> Path:
    """Write a block in the format the file name asks for."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write motion as {path.name}: use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, tmp.open(**OPEN_AS[suffix]) as f:
        _write(f, suffix, block)
    return path


def _write(f, suffix: str, block: MotionBlock) -> None:
    seqs = np.arange(block.first, block.first + len(block))
    if suffix == ".npz":  # to an open file, which np.savez does not rename (to a path it appends .npz: x.NPZ.npz)
        np.savez_compressed(f, seq=seqs, t=frame_time(seqs), motion=block.motion, state=block.state,
                            channels=np.array(CHANNEL_NAMES), states=np.array(STATES),
                            **({"latent": block.latent} if block.latent is not None else {}))
        return
    if suffix == ".jsonl":
        for frame in block.frames():
            f.write(json.dumps(frame.to_dict(), separators=(",", ":")) + "\n")
    else:
        w = csv.writer(f)
        w.writerow(("seq", "t", "state") + CHANNEL_NAMES)
        for seq, row, state in zip(seqs, block.motion, block.state):
            w.writerow([int(seq), f"{frame_time(seq):.6f}", STATES[state]] + [f"{v:.5f}" for v in row])


def read_motion(path: str | Path) -> MotionBlock:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        z = np.load(path)
        seq = z["seq"]
        return MotionBlock(int(seq[0]) if len(seq) else 0, z["motion"], z["state"],
                           z["latent"] if "latent" in z else None)
    if suffix == ".jsonl":
        rows, states, first = [], [], None
        with path.open() as f:
            for line in f:
                if line.strip():
                    frame = MotionFrame.from_dict(json.loads(line))
                    first = frame.seq if first is None else first
                    rows.append(frame.to_row())
                    states.append(STATES.index(frame.state))
        return MotionBlock(first or 0, np.array(rows, np.float32).reshape(-1, MOTION_DIM), states)
    if suffix == ".csv":
        with path.open(newline="") as f:
            r = csv.reader(f)
            header = next(r)
            if tuple(header[3:]) != CHANNEL_NAMES:
                raise ValueError(f"{path}: unexpected CSV columns")
            data = list(r)
        motion = np.array([[float(v) for v in row[3:]] for row in data], np.float32).reshape(-1, MOTION_DIM)
        return MotionBlock(int(data[0][0]) if data else 0, motion, [STATES.index(row[2]) for row in data])
    raise ValueError(f"cannot read motion from {path.name}: use one of {', '.join(FORMATS)}")
