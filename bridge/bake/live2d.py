"""Live2D Cubism motion (.motion3.json, Version 3): one curve per standard parameter (calibration/rigs.py
LIVE2D_PARAMETERS) with linear segments through the take's frames. Cubism's loader sizes its arrays from the Meta
counts, so they must match the curves exactly: per curve, segments = keys - 1 and points = keys (the first point,
then one per linear segment). A one-frame take holds its pose
for one frame: a curve with no segment is not one Cubism plays."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backchannel.bridge.bake import Take
from backchannel.calibration.rigs import live2d_parameters
from backchannel.models.atomic import replacing

LINEAR = 0  # segment type ids: 0 linear, 1 bezier, 2 stepped, 3 inverse stepped


def motion3(take: Take) -> dict:
    times = take.times
    if not len(times):
        raise ValueError("no frames to write as a Live2D motion")
    parameters = live2d_parameters(take.motion)
    if len(times) == 1:  # a curve needs a segment: a one-frame take holds its pose for one frame
        times = np.array([0.0, 1.0 / take.fps])
        parameters = {name: np.repeat(values, 2) for name, values in parameters.items()}
    curves = []
    for parameter, values in parameters.items():
        segments = [round(float(times[0]), 4), round(float(values[0]), 4)]
        for t, v in zip(times[1:], values[1:]):
            segments += [LINEAR, round(float(t), 4), round(float(v), 4)]
        curves.append({"Target": "Parameter", "Id": parameter, "Segments": segments})
    keys = len(times)
    return {
        "Version": 3,
        "Meta": {"Duration": round(float(times[-1]), 4), "Fps": float(take.fps), "Loop": False,
                 "AreBeziersRestricted": True, "CurveCount": len(curves),
                 "TotalSegmentCount": len(curves) * max(keys - 1, 0), "TotalPointCount": len(curves) * keys,
                 "UserDataCount": 0, "TotalUserDataSize": 0},
        "Curves": curves,
    }


def write_motion3(path: str | Path, take: Take) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(motion3(take), separators=(",", ":")))
    return Path(path)
