"""Unity AnimationClip (.anim, text YAML as Unity serialises it): one float curve per blendshape, bound to
`blendShape.<name>` of the SkinnedMeshRenderer (classID 137) at `path` under the animated object. Unity's
blendshape weights run 0..100. Keys are linear (each tangent the slope to its neighbour), so the clip plays the
frames as sampled; keys that lie on the line between their neighbours are left out. Written as text: Unity's own YAML dialect (tags, flow maps) is simpler to emit than to coax out
of a generic YAML writer."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from backchannel.bridge.bake import Take
from backchannel.calibration.rigs import rig_map
from backchannel.models.atomic import replacing
from backchannel.models.motion import BLENDSHAPES

SKINNED_MESH_RENDERER = 137  # Unity's class id
LINEAR_BOTH_SIDES = 69  # tangentMode: broken (1) | left linear (2 << 1) | right linear (2 << 5)

HEADER = """%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!74 &7400000
AnimationClip:
  m_ObjectHideFlags: 0
  m_CorrespondingSourceObject: {{fileID: 0}}
  m_PrefabInstance: {{fileID: 0}}
  m_PrefabAsset: {{fileID: 0}}
  m_Name: {name}
  serializedVersion: 6
  m_Legacy: 0
  m_Compressed: 0
  m_UseHighQualityCurve: 1
  m_RotationCurves: []
  m_CompressedRotationCurves: []
  m_EulerCurves: []
  m_PositionCurves: []
  m_ScaleCurves: []
"""
FOOTER = """  m_PPtrCurves: []
  m_SampleRate: {fps}
  m_WrapMode: 0
  m_Bounds:
    m_Center: {{x: 0, y: 0, z: 0}}
    m_Extent: {{x: 0, y: 0, z: 0}}
  m_ClipBindingConstant:
    genericBindings: []
    pptrCurveMapping: []
  m_AnimationClipSettings:
    serializedVersion: 2
    m_AdditiveReferencePoseClip: {{fileID: 0}}
    m_AdditiveReferencePoseTime: 0
    m_StartTime: 0
    m_StopTime: {stop}
    m_OrientationOffsetY: 0
    m_Level: 0
    m_CycleOffset: 0
    m_HasAdditiveReferencePose: 0
    m_LoopTime: 0
    m_LoopBlend: 0
    m_LoopBlendOrientation: 0
    m_LoopBlendPositionY: 0
    m_LoopBlendPositionXZ: 0
    m_KeepOriginalOrientation: 0
    m_KeepOriginalPositionY: 1
    m_KeepOriginalPositionXZ: 0
    m_HeightFromFeet: 0
    m_Mirror: 0
"""
TAIL = """  m_EulerEditorCurves: []
  m_HasGenericRootTransform: 0
  m_HasMotionFloatCurves: 0
  m_Events: []
"""


def _needed(values: np.ndarray) -> np.ndarray:
    """Indices of the keys linear interpolation cannot rebuild from their neighbours: the ends and every change of
    slope. Lossless, and a shape that stays still (most of ARKit's 52 in a line) keeps two keys, not one a frame."""
    if len(values) < 3:
        return np.arange(len(values))
    steps = np.diff(values)
    bends = np.flatnonzero(np.abs(np.diff(steps)) > 1e-6) + 1
    return np.concatenate([[0], bends, [len(values) - 1]])


def _curve(times: np.ndarray, values: np.ndarray, attribute: str, path: str) -> str:
    keep = _needed(values)
    times, values = times[keep], values[keep]
    slopes = np.diff(values) / np.diff(times) if len(values) > 1 else np.zeros(0)
    lines = ["  - curve:", "      serializedVersion: 2", "      m_Curve:"]
    for k, (t, v) in enumerate(zip(times, values)):
        inslope = slopes[k - 1] if k > 0 else 0.0
        outslope = slopes[k] if k < len(slopes) else 0.0
        lines += ["      - serializedVersion: 3", f"        time: {t:.6f}", f"        value: {v:.4f}",
                  f"        inSlope: {inslope:.6g}", f"        outSlope: {outslope:.6g}",
                  f"        tangentMode: {LINEAR_BOTH_SIDES}", "        weightedMode: 0",
                  "        inWeight: 0.33333334", "        outWeight: 0.33333334"]
    lines += ["      m_PreInfinity: 2", "      m_PostInfinity: 2", "      m_RotationOrder: 4",
              f"    attribute: {attribute}", f"    path: {path}", f"    classID: {SKINNED_MESH_RENDERER}",
              "    script: {fileID: 0}"]
    return "\n".join(lines) + "\n"


def yaml_scalar(text: str) -> str:
    """`text` as one YAML scalar: plain where that reads back as the same string, else single-quoted ('' for ')."""
    if re.fullmatch(r"[A-Za-z_][\w.\- ]*[\w.\-]|[A-Za-z_]", text) and text.lower() not in (
            "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"):
        return text
    return "'" + text.replace("'", "''") + "'"


def check_renderer_path(renderer_path: str) -> None:
    """A transform path that stays one plain YAML scalar."""
    if any(c in renderer_path for c in ":\n#{}[]&*!|>'\"%@`,") or renderer_path != renderer_path.strip():
        raise ValueError(f"--unity-path {renderer_path!r}: give a transform path such as Body/Face "
                         "(letters, digits, spaces inside, / _ - .)")


def write_anim(path: str | Path, take: Take, rig: str, renderer_path: str) -> Path:
    check_renderer_path(renderer_path)
    rigmap = rig_map(rig)
    weights = rigmap.apply(take.motion[:, BLENDSHAPES]) * 100.0  # Unity's blendshape weights are percent
    times = take.times
    curves = "".join(_curve(times, np.round(weights[:, k], 4), f"blendShape.{name}", renderer_path)
                     for k, name in enumerate(rigmap.targets))
    text = (HEADER.format(name=yaml_scalar(take.name)) + "  m_FloatCurves:\n" + curves
            + FOOTER.format(fps=take.fps, stop=f"{take.duration:.6g}")
            + "  m_EditorCurves:\n" + curves + TAIL)  # the editor's copy, shown in the Animation window
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)
