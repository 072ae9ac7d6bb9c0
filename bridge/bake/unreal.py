"""Unreal Engine Curve Table (.unreal.csv): the CSV the editor's stock importer turns into a Curve Table asset
(drag it into the Content Browser, pick "CurveTable" and "Linear" interpolation). The first row holds the key times
in seconds after a "---" corner cell; each further row is one curve, named by the rig (ARKit's PascalCase by
default, the curve names of Live Link Face and the MetaHuman face's ARKit mapping), its values 0..1. Head and eye
rotations follow under Live Link Face's names, units and signs (HeadYaw ... RightEyeRoll: radians / pi, so -1..1
spans -180..180 degrees, roll to the subject's right; bridge/outputs/livelink.py), so a Blueprint that reads the
live Live Link Face curves reads these the same way (docs/bake-unreal.md)."""
from __future__ import annotations

import csv
from pathlib import Path


from backchannel.bridge.bake import Take
from backchannel.bridge.outputs.livelink import ROTATION_NAMES, rotation_curves
from backchannel.calibration.rigs import rig_map
from backchannel.models.atomic import replacing
from backchannel.models.motion import BLENDSHAPES


def write_curve_table(path: str | Path, take: Take, rig: str) -> Path:
    rigmap = rig_map(rig)
    weights = rigmap.apply(take.motion[:, BLENDSHAPES])
    angles = rotation_curves(take.motion)
    with replacing(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["---"] + [f"{t:.4f}" for t in take.times])  # distinct: Unreal refuses duplicate key times
        for k, name in enumerate(rigmap.targets):
            w.writerow([name] + [f"{v:.4f}" for v in weights[:, k]])
        for k, name in enumerate(ROTATION_NAMES):
            w.writerow([name] + [f"{v:.5f}" for v in angles[:, k]])
    return Path(path)
