"""What the bake tests share: a 3 s exchange (the partner finishing a question, the avatar starting its answer)
written as two wav files, and the motion file a bake writes beside its assets, read back by name."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import ARKIT_NAMES

from .speech import two_track_dialogue

WINDOW_S = (7.0, 10.0)  # the partner's question ends at 7.8 s, the avatar answers from 9.1 s


def write_exchange(folder: Path) -> tuple[Path, Path]:
    d = two_track_dialogue()
    a, b = (int(t * SAMPLE_RATE) for t in WINDOW_S)
    folder.mkdir(parents=True, exist_ok=True)
    line, partner = folder / "line.wav", folder / "partner.wav"
    sf.write(line, d.self_audio[a:b], SAMPLE_RATE)
    sf.write(partner, d.other_audio[a:b], SAMPLE_RATE)
    return line, partner


def read_jsonl(path: Path) -> dict:
    """{"weights": (T, 52) by ARKit order, "head": (T, 3), "gaze": (T, 4), "state": [...]} from a motion JSONL,
    read as plain JSON (not through our reader)."""
    frames = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {"weights": np.array([[f["blendshapes"][n] for n in ARKIT_NAMES] for f in frames]),
            "head": np.array([f["head_rotation"] for f in frames]),
            "gaze": np.array([f["gaze"] for f in frames]),
            "state": [f["state"] for f in frames]}
