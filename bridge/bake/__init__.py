"""Baked assets: a motion block written as a file a tool imports as it is (docs/bake.md). One module per format;
this one holds what they share: the take (motion at the asset's frame rate) and which format a file name asks for.

    .glb / .gltf        glTF 2.0 morph-target and node animation (gltf.py): Blender, three.js, Unity, Unreal
    .anim               Unity AnimationClip, text YAML (unity.py)
    .unreal.csv         Unreal Curve Table (unreal.py); a plain .csv stays the motion CSV of `backchannel run`
    .motion3.json       Live2D Cubism motion (live2d.py)
    .tsv / .rhubarb.json  Rhubarb Lip Sync mouth cues (rhubarb.py)
    .jsonl / .csv / .npz  the motion files of `backchannel run` (bridge/outputs/files.py)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backchannel.models.motion import FRAME_RATE, MotionBlock

# format -> the name endings that ask for it, longest first where one ends another (.unreal.csv before .csv)
FORMATS: dict[str, tuple[str, ...]] = {
    "glb": (".glb",), "gltf": (".gltf",), "unity": (".anim",), "unreal": (".unreal.csv",),
    "live2d": (".motion3.json",), "rhubarb-tsv": (".tsv",), "rhubarb-json": (".rhubarb.json",),
    "jsonl": (".jsonl",), "csv": (".csv",), "npz": (".npz",),
}
MOTION_FORMATS = ("jsonl", "csv", "npz")  # the generator's own frames, at its own rate
RIG_FORMATS = ("glb", "gltf", "unity", "unreal")  # blendshape weights under a rig's names (--names)
FRAME_RATES = (30, 60)
SOUND_FORMATS = ("rhubarb-tsv", "rhubarb-json")  # cue times from the start of the sound file the line names


def format_of(path: str | Path, given: str | None = None) -> str:
    """The format `given` names, else the one the file name ends with."""
    if given:
        if given not in FORMATS:
            raise ValueError(f"unknown format {given!r}; choose from {', '.join(FORMATS)}")
        return given
    name = Path(path).name.lower()
    matches = [(len(end), fmt) for fmt, ends in FORMATS.items() for end in ends if name.endswith(end)]
    if not matches:
        endings = ", ".join(end for ends in FORMATS.values() for end in ends)
        raise ValueError(f"{path}: the name does not say which format to write; end it with one of {endings} "
                         "(or give --format)")
    return max(matches)[1]


@dataclass
class Take:
    """The motion an asset holds: rows at `fps`, row k at k / fps seconds."""

    name: str  # the clip's name inside the asset
    motion: np.ndarray  # (T, MOTION_DIM) float32
    state: np.ndarray  # (T,) int8, indices into models.motion.STATES
    fps: int

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.motion), dtype=np.float64) / self.fps

    @property
    def duration(self) -> float:
        """Seconds from the first key to the last."""
        return max(len(self.motion) - 1, 0) / self.fps

    @classmethod
    def from_block(cls, block: MotionBlock, fps: int = FRAME_RATE, name: str = "backchannel") -> "Take":
        """The block's frames, resampled (linearly; the state from the nearest frame) when fps is not the
        generator's rate. The take starts at 0 s whatever the block's first frame."""
        if fps not in FRAME_RATES:
            raise ValueError(f"--fps {fps}: choose {' or '.join(map(str, FRAME_RATES))}")
        n = len(block)
        if fps == FRAME_RATE or n < 2:
            return cls(name, block.motion.copy(), block.state.copy(), fps)
        source = np.arange(n) / FRAME_RATE
        # keys from the first frame to the last, none past it: the same duration at any rate
        times = np.arange((n - 1) * fps // FRAME_RATE + 1) / fps
        motion = np.stack([np.interp(times, source, column) for column in block.motion.T], axis=1)
        nearest = np.clip(np.rint(times * FRAME_RATE).astype(int), 0, n - 1)
        return cls(name, motion.astype(np.float32), block.state[nearest], fps)


def check_asset(path: str | Path, fmt: str, fps: int = FRAME_RATE, names: str | None = None) -> None:
    """Raises ValueError where write_asset would refuse these settings: called before the slow part."""
    from backchannel.calibration.rigs import rig_map

    name = Path(path).name
    if fps not in FRAME_RATES:
        raise ValueError(f"--fps {fps}: choose {' or '.join(map(str, FRAME_RATES))}")
    if fmt in ("glb", "gltf"):
        import pygltflib  # noqa: F401  (the `bake` extra: missing, say so before the slow part)
    if fmt in MOTION_FORMATS:
        if fps != FRAME_RATE:
            raise ValueError(f"{name}: motion files hold the generator's {FRAME_RATE} fps frames; "
                             f"--fps {fps} applies to the assets (.glb, .anim, ...)")
        if not name.lower().endswith(f".{fmt}"):
            raise ValueError(f"{name}: a {fmt} motion file must end with .{fmt}")
    if names is None:
        return
    if fmt not in RIG_FORMATS:
        own = {"live2d": "Live2D's standard parameters", "rhubarb-tsv": "Rhubarb's mouth shapes",
               "rhubarb-json": "Rhubarb's mouth shapes"}.get(fmt, "every channel under its own name")
        raise ValueError(f"--names {names}: {name} ({fmt}) holds {own}, not a rig's blendshapes")
    if names == "live2d":
        raise ValueError("--names live2d: Live2D's parameters go in a .motion3.json")
    rig_map(names)


def write_asset(path: str | Path, block: MotionBlock, fmt: str, *, fps: int = FRAME_RATE, names: str | None = None,
                name: str | None = None, unity_path: str = "Face", audio_name: str | None = None,
                head: str | Path | None = None) -> Path:
    """Write `block` to `path` as `fmt` (format_of). `names` is the rig (calibration/rigs.py) of the blendshape
    formats (default arkit); `unity_path` the SkinnedMeshRenderer's path in a .anim; `audio_name` the sound file
    Rhubarb's JSON metadata names; `head` a user's .glb/.vrm the glTF formats animate instead of the proxy."""
    path = Path(path)
    check_asset(path, fmt, fps, names)
    if fmt in MOTION_FORMATS:
        from backchannel.bridge.outputs.files import write_motion

        return write_motion(path, block)
    take = Take.from_block(block, fps, name or clip_name(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("glb", "gltf"):
        from backchannel.bridge.bake.gltf import write_gltf

        write_gltf(path, take, names or "arkit", binary=fmt == "glb", head=head)
    elif fmt == "unity":
        from backchannel.bridge.bake.unity import write_anim

        write_anim(path, take, names or "arkit", unity_path)
    elif fmt == "unreal":
        from backchannel.bridge.bake.unreal import write_curve_table

        write_curve_table(path, take, names or "arkit")
    elif fmt == "live2d":
        from backchannel.bridge.bake.live2d import write_motion3

        write_motion3(path, take)
    else:
        from backchannel.bridge.bake.rhubarb import write_cues

        write_cues(path, take, json_format=fmt == "rhubarb-json", sound_file=audio_name)
    return path


def clip_name(path: Path) -> str:
    """The file name without its format's ending: line01.motion3.json -> line01."""
    name = path.name
    for ends in FORMATS.values():
        for end in ends:
            if name.lower().endswith(end):
                return name[:-len(end)] or "backchannel"
    return path.stem
