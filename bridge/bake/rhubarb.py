"""Rhubarb Lip Sync's mouth cues (its README, "Output formats"): TSV lines `start<TAB>shape`, or JSON
`{"metadata": {"soundFile", "duration"}, "mouthCues": [{"start", "end", "value"}]}`, times in seconds with two
decimals, shapes A-H and X (calibration/rigs.py RHUBARB_SHAPES). A cue lasts until the next one starts; the last is
X, the mouth at rest, from the end of the line on, as Rhubarb ends its own. So the Spine, After Effects, Blender and
Godot integrations written for Rhubarb read ours."""
from __future__ import annotations

import json
from pathlib import Path

from backchannel.bridge.bake import Take
from backchannel.calibration.rigs import rhubarb_shapes
from backchannel.models.atomic import replacing
from backchannel.models.motion import SPEAKING


def mouth_cues(take: Take) -> list[dict]:
    """[{"start", "end", "value"}]: one cue per run of frames with the same shape, then X to the end."""
    shapes = rhubarb_shapes(take.motion, take.state == SPEAKING)
    end = round(len(shapes) / take.fps, 2)
    cues: list[dict] = []
    for k, shape in enumerate(shapes):
        if not cues or cues[-1]["value"] != shape:
            start = round(k / take.fps, 2)
            if cues:
                cues[-1]["end"] = start
            cues.append({"start": start, "end": end, "value": shape})
    if not cues or cues[-1]["value"] != "X":
        if cues:
            cues[-1]["end"] = end
        cues.append({"start": end, "end": end, "value": "X"})
    return cues


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
