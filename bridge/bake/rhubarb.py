"""Rhubarb Lip Sync's mouth cues (its README, "Output formats"): TSV lines `start<TAB>shape`, or JSON
`{"metadata": {"soundFile", "duration"}, "mouthCues": [{"start", "end", "value"}]}`, times in seconds with two
decimals, shapes A-H and X (calibration/rigs.py RHUBARB_SHAPES). A cue lasts until the next one starts; the last is
X, the mouth at rest, from the end of the line on, as Rhubarb ends its own. So the Spine, After Effects, Blender and
Godot integrations written for Rhubarb read ours."""
from __future__ import annotations

import json
import math
from pathlib import Path

from backchannel.bridge.bake import Take
from backchannel.calibration.rigs import rhubarb_shapes
from backchannel.models.atomic import replacing
from backchannel.models.motion import SPEAKING


MIN_CUE_S = 0.065  # shorter cues are merged into a neighbour: 2 frames at 30 fps, 4 at 60; flicker otherwise


def mouth_cues(take: Take) -> list[dict]:
    """[{"start", "end", "value"}]: one cue per run of frames with the same shape, runs shorter than MIN_CUE_S
    taken into a neighbour (as Rhubarb's own output holds each shape long enough to be seen), then X to the end."""
    shapes = rhubarb_shapes(take.motion, take.state == SPEAKING)
    runs = _runs(shapes, max(1, math.ceil(MIN_CUE_S * take.fps - 1e-9)))
    end = round(len(shapes) / take.fps, 2)
    cues = [{"start": round(first / take.fps, 2), "end": round(last / take.fps, 2), "value": shape}
            for shape, first, last in runs]
    if not cues or cues[-1]["value"] != "X":
        cues.append({"start": end, "end": end, "value": "X"})
    return cues


def _runs(shapes: list[str], min_frames: int) -> list[tuple[str, int, int]]:
    """(shape, first frame, end frame) per run of equal shapes; the shortest run under min_frames merged into its
    longer neighbour, again until none is left (neighbours that become equal are joined)."""
    runs = [[shape, k, k + 1] for k, shape in enumerate(shapes)]
    runs = _joined(runs)
    while len(runs) > 1:
        k = min(range(len(runs)), key=lambda i: runs[i][2] - runs[i][1])
        if runs[k][2] - runs[k][1] >= min_frames:
            break
        neighbours = [i for i in (k - 1, k + 1) if 0 <= i < len(runs)]
        into = max(neighbours, key=lambda i: runs[i][2] - runs[i][1])
        runs[k][0] = runs[into][0]
        runs = _joined(runs)
    return [tuple(run) for run in runs]


def _joined(runs: list[list]) -> list[list]:
    out: list[list] = []
    for shape, first, last in runs:
        if out and out[-1][0] == shape:
            out[-1][2] = last
        else:
            out.append([shape, first, last])
    return out


def write_cues(path: str | Path, take: Take, json_format: bool, sound_file: str | None = None) -> Path:
    cues = mouth_cues(take)
    if json_format:
        text = json.dumps({"metadata": {"soundFile": sound_file or "", "duration": round(len(take.motion) / take.fps, 2)},
                           "mouthCues": cues}, indent=2) + "\n"
    else:
        text = "".join(f"{c['start']:.2f}\t{c['value']}\n" for c in cues)
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)
