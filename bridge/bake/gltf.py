"""glTF 2.0 (.glb / .gltf): a face-proxy mesh whose morph targets carry the rig's names (mesh.extras.targetNames,
which Blender's importer and three.js read as shape-key and morph names), and one animation: the weights on the
face node, the head pose on its parent node and the gaze on two eye nodes, all sampled at the take's frames with
LINEAR interpolation. Built with pygltflib. With a user's model (`--head`, a .glb or .vrm) the same animation goes
onto that model instead: its morph targets by name, its head and eye bones (apply_to_head).

Axes are glTF's: +Y up, the face looks along +Z, +X is the avatar's left. Our +pitch looks down (a + turn about
X), +yaw turns to the avatar's left (+ about Y), +roll tilts the head's top to its left (- about Z)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from backchannel.bridge.bake import Take
from backchannel.calibration.rigs import rig_map
from backchannel.models.atomic import replacing
from backchannel.models.motion import BLENDSHAPES, GAZE, HEAD_ROTATION, HEAD_TRANSLATION

HEAD_RADIUS = 0.09  # metres: the proxy is a head-sized half sphere
EYES = {"LeftEye": (0.032, 0.018), "RightEye": (-0.032, 0.018)}  # (x, y) on the face
EYE_RADIUS = 0.012

# Where on the proxy each shape acts and which way it moves it: a name's stem -> ((x, y) of the region's centre,
# (dx, dy, dz) at full weight). A "Left"/"Right" suffix mirrors x to that side. Enough to see a shape play; a real
# head (the user's model) gets the same animation by target name.
_REGIONS = {
    "EyeBlink": ((0.032, 0.018), (0, -0.012, 0.002)), "EyeSquint": ((0.032, 0.008), (0, 0.006, 0)),
    "EyeWide": ((0.032, 0.026), (0, 0.008, 0)), "EyeLookDown": ((0.032, 0.018), (0, -0.004, 0)),
    "EyeLookUp": ((0.032, 0.018), (0, 0.004, 0)), "EyeLookIn": ((0.032, 0.018), (-0.004, 0, 0)),
    "EyeLookOut": ((0.032, 0.018), (0.004, 0, 0)),
    "BrowDown": ((0.035, 0.045), (0, -0.008, 0)), "BrowOuterUp": ((0.045, 0.045), (0, 0.01, 0)),
    "BrowInnerUp": ((0.0, 0.045), (0, 0.01, 0)),
    "CheekPuff": ((0.0, -0.03), (0, 0, 0.012)), "CheekSquint": ((0.045, -0.005), (0, 0.006, 0)),
    "NoseSneer": ((0.012, 0.0), (0, 0.005, 0.002)),
    "JawOpen": ((0.0, -0.064), (0, -0.02, -0.004)), "JawForward": ((0.0, -0.07), (0, 0, 0.01)),
    "JawLeft": ((0.0, -0.07), (0.01, 0, 0)), "JawRight": ((0.0, -0.07), (-0.01, 0, 0)),
    "MouthClose": ((0.0, -0.05), (0, 0.008, 0)), "MouthFunnel": ((0.0, -0.045), (0, 0, 0.01)),
    "MouthPucker": ((0.0, -0.045), (0, 0, 0.012)), "MouthLeft": ((0.0, -0.045), (0.01, 0, 0)),
    "MouthRight": ((0.0, -0.045), (-0.01, 0, 0)), "MouthSmile": ((0.022, -0.045), (0.004, 0.008, 0)),
    "MouthFrown": ((0.022, -0.045), (0, -0.008, 0)), "MouthDimple": ((0.025, -0.045), (0.004, 0, -0.003)),
    "MouthStretch": ((0.022, -0.045), (0.008, -0.002, 0)), "MouthRollLower": ((0.0, -0.052), (0, 0.003, -0.006)),
    "MouthRollUpper": ((0.0, -0.038), (0, -0.003, -0.006)), "MouthShrugLower": ((0.0, -0.055), (0, 0.006, 0)),
    "MouthShrugUpper": ((0.0, -0.035), (0, 0.005, 0)), "MouthPress": ((0.012, -0.045), (0, 0, -0.004)),
    "MouthLowerDown": ((0.012, -0.052), (0, -0.008, 0)), "MouthUpperUp": ((0.012, -0.038), (0, 0.008, 0)),
    "TongueOut": ((0.0, -0.05), (0, -0.002, 0.015)),
}
_SPREAD = 0.014  # metres: how far around its centre a shape moves the surface
SKIN, LIPS = (0.86, 0.68, 0.58), (0.55, 0.18, 0.2)


def _sphere(radius: float, rows: int, columns: int, front_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangle indices of a UV sphere, or of its front half (facing +Z)."""
    lat = np.linspace(-np.pi / 2, np.pi / 2, rows + 1)
    lon = np.linspace(-np.pi / 2, np.pi / 2, columns + 1) if front_only else np.linspace(-np.pi, np.pi, columns + 1)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    vertices = np.stack([radius * np.cos(la) * np.sin(lo), radius * np.sin(la), radius * np.cos(la) * np.cos(lo)], -1)
    i, j = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    a = (i * (columns + 1) + j).ravel()
    b, c, d = a + 1, a + columns + 1, a + columns + 2
    triangles = np.stack([np.stack([a, b, d], 1), np.stack([a, d, c], 1)], 1).reshape(-1, 3)
    return vertices.reshape(-1, 3).astype(np.float32), triangles.astype(np.uint16)


def _colours(face: np.ndarray) -> np.ndarray:
    """Skin, with the lips drawn in so the mouth reads when it moves."""
    lips = (face[:, 0] / 0.024) ** 2 + ((face[:, 1] + 0.047) / 0.009) ** 2 < 1
    return np.where(lips[:, None], LIPS, SKIN).astype(np.float32)


def _normals(sphere: np.ndarray) -> np.ndarray:
    """A sphere's outward normals: its centred vertices, unit length."""
    return (sphere / np.linalg.norm(sphere, axis=1, keepdims=True)).astype(np.float32)


def proxy_displacements(names: tuple[str, ...], vertices: np.ndarray) -> np.ndarray:
    """(K, N, 3) morph-target displacements of the proxy face for ARKit or other rig target names. A name with no
    region of its own (a VRM preset) moves the mouth, so every target is a real, visible morph."""
    out = np.zeros((len(names), *vertices.shape), np.float32)
    for k, name in enumerate(names):
        stem, side = name, 0
        for suffix, sign in (("Left", 1), ("Right", -1), ("_L", 1), ("_R", -1)):
            if name.endswith(suffix) and name[:-len(suffix)] in _REGIONS:
                stem, side = name[:-len(suffix)], sign
        (cx, cy), move = _REGIONS.get(stem, ((0.0, -0.045), (0, -0.006 - 0.0005 * (k % 8), 0.004)))
        move = np.array(move, np.float32)
        if side:
            cx, move[0] = cx * side, move[0] * side
        d2 = (vertices[:, 0] - cx) ** 2 + (vertices[:, 1] - cy) ** 2
        out[k] = np.exp(-d2 / (2 * _SPREAD ** 2))[:, None] * move
    return out


def head_quaternions(rotation: np.ndarray) -> np.ndarray:
    """(T, 3) pitch, yaw, roll -> (T, 4) glTF quaternions (x, y, z, w): yaw, then pitch, then roll."""
    from scipy.spatial.transform import Rotation

    r = np.asarray(rotation, np.float64)
    return Rotation.from_euler("YXZ", np.stack([r[:, 1], r[:, 0], -r[:, 2]], 1)).as_quat().astype(np.float32)


def eye_quaternions(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("YX", np.stack([yaw, pitch], 1).astype(np.float64)).as_quat().astype(np.float32)


class _Packer:
    """One binary buffer, a view and an accessor per array (appended to the document's own buffer, if any)."""

    def __init__(self, gltf, blob: bytes = b""):
        self.gltf, self.blob = gltf, bytearray(blob)

    def add(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        import pygltflib as g

        array = np.ascontiguousarray(array)
        component = {np.dtype(np.float32): g.FLOAT, np.dtype(np.uint16): g.UNSIGNED_SHORT}[array.dtype]
        self.blob.extend(b"\0" * (-len(self.blob) % 4))  # views start on 4-byte boundaries
        self.gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=array.nbytes,
                                                  target=target))
        self.blob.extend(array.tobytes())
        rows = array.reshape(len(array), -1) if kind != "SCALAR" else array.reshape(-1, 1)
        extra = {}
        if bounds:  # required on POSITION and on animation inputs
            extra = {"min": rows.min(0).astype(float).tolist(), "max": rows.max(0).astype(float).tolist()}
        self.gltf.accessors.append(g.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component,
                                              count=len(rows) if kind != "SCALAR" else array.size, type=kind, **extra))
        return len(self.gltf.accessors) - 1


def build_gltf(take: Take, rig: str):
    """The pygltflib document for a take, its binary buffer attached."""
    import pygltflib as g

    names = rig_map(rig).targets
    weights = rig_map(rig).apply(take.motion[:, BLENDSHAPES])  # (T, K)
    doc = g.GLTF2(asset=g.Asset(generator="backchannel bake", version="2.0"), scene=0)
    pack = _Packer(doc)
    doc.materials = [
        g.Material(name="Skin", pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.7)),  # x COLOR_0
        g.Material(name="Eye", pbrMetallicRoughness=g.PbrMetallicRoughness(
            baseColorFactor=[0.12, 0.2, 0.35, 1.0], metallicFactor=0.0, roughnessFactor=0.3)),
    ]
    face, face_triangles = _sphere(HEAD_RADIUS, 32, 32, front_only=True)
    targets = proxy_displacements(names, face)
    face_mesh = g.Mesh(name="Face", extras={"targetNames": list(names)}, weights=[0.0] * len(names), primitives=[
        g.Primitive(attributes=g.Attributes(POSITION=pack.add(face, "VEC3", g.ARRAY_BUFFER, bounds=True),
                                            NORMAL=pack.add(_normals(face), "VEC3", g.ARRAY_BUFFER),
                                            COLOR_0=pack.add(_colours(face), "VEC3", g.ARRAY_BUFFER)),
                    indices=pack.add(face_triangles.ravel(), "SCALAR", g.ELEMENT_ARRAY_BUFFER),
                    material=0, targets=[{"POSITION": pack.add(t, "VEC3", g.ARRAY_BUFFER, bounds=True)}
                                         for t in targets])])
    eye, eye_triangles = _sphere(EYE_RADIUS, 8, 12, front_only=False)
    eye_mesh = g.Mesh(name="Eye", primitives=[g.Primitive(
        attributes=g.Attributes(POSITION=pack.add(eye, "VEC3", g.ARRAY_BUFFER, bounds=True),
                                NORMAL=pack.add(_normals(eye), "VEC3", g.ARRAY_BUFFER)),
        indices=pack.add(eye_triangles.ravel(), "SCALAR", g.ELEMENT_ARRAY_BUFFER), material=1)])
    doc.meshes = [face_mesh, eye_mesh]
    eye_depth = float(np.sqrt(HEAD_RADIUS ** 2 - EYES["LeftEye"][0] ** 2 - EYES["LeftEye"][1] ** 2)) - 0.004
    doc.nodes = [g.Node(name="Head", children=[1, 2, 3]), g.Node(name="Face", mesh=0)] + [
        g.Node(name=n, mesh=1, translation=[x, y, eye_depth]) for n, (x, y) in EYES.items()]
    doc.scenes = [g.Scene(name="backchannel", nodes=[0])]

    times = pack.add(take.times.astype(np.float32), "SCALAR", bounds=True)
    gaze = take.motion[:, GAZE]
    outputs = [  # (node, path, output accessor)
        (1, "weights", pack.add(weights.astype(np.float32).ravel(), "SCALAR")),
        (0, "rotation", pack.add(head_quaternions(take.motion[:, HEAD_ROTATION]), "VEC4")),
        (0, "translation", pack.add(take.motion[:, HEAD_TRANSLATION].astype(np.float32), "VEC3")),
        (2, "rotation", pack.add(eye_quaternions(gaze[:, 0], gaze[:, 1]), "VEC4")),
        (3, "rotation", pack.add(eye_quaternions(gaze[:, 2], gaze[:, 3]), "VEC4")),
    ]
    doc.animations = [g.Animation(
        name=take.name,
        samplers=[g.AnimationSampler(input=times, output=out, interpolation="LINEAR") for _, _, out in outputs],
        channels=[g.AnimationChannel(sampler=i, target=g.AnimationChannelTarget(node=node, path=path))
                  for i, (node, path, _) in enumerate(outputs)])]
    doc.buffers = [g.Buffer(byteLength=len(pack.blob))]
    doc.set_binary_blob(bytes(pack.blob))
    return doc


# bones a head animation goes to: VRM's humanoid names, else nodes by these (lower-case) names
_BONE_NAMES = {"head": ("head", "j_bip_c_head", "headtop_end"), "leftEye": ("lefteye", "eye_l", "j_adj_l_faceeye"),
               "rightEye": ("righteye", "eye_r", "j_adj_r_faceeye")}


def _bones(doc) -> dict[str, int]:
    """{"head", "leftEye", "rightEye": node} as far as the model says: VRM 0 or 1 humanoid, else node names."""
    ext = doc.extensions or {}
    found = {b.get("bone"): b.get("node") for b in ext.get("VRM", {}).get("humanoid", {}).get("humanBones", [])}
    found.update({k: v.get("node") for k, v in ext.get("VRMC_vrm", {}).get("humanoid", {}).get("humanBones", {}).items()})
    for i, node in enumerate(doc.nodes):
        for bone, names in _BONE_NAMES.items():
            if (node.name or "").lower() in names:
                found.setdefault(bone, i)
    return {k: v for k, v in found.items() if k in _BONE_NAMES and isinstance(v, int) and 0 <= v < len(doc.nodes)}


def _target_names(mesh) -> list[str]:
    """The morph target names exporters write: mesh.extras.targetNames, or the first primitive's."""
    for extras in (mesh.extras, mesh.primitives[0].extras if mesh.primitives else None):
        if isinstance(extras, dict) and isinstance(extras.get("targetNames"), list):
            return [str(n) for n in extras["targetNames"]]
    return []


def _in_parent_space(doc, node: int, world: np.ndarray, faces_minus_z: bool) -> np.ndarray:
    """(T, 4) world-axis turns as the node's local rotation: parent^-1 * turn * parent * rest."""
    from scipy.spatial.transform import Rotation

    parents = {c: i for i, n in enumerate(doc.nodes) for c in (n.children or [])}
    parent, k = Rotation.identity(), parents.get(node)
    while k is not None:
        parent = Rotation.from_quat(doc.nodes[k].rotation or [0, 0, 0, 1]) * parent
        k = parents.get(k)
    turn = Rotation.from_quat(world)
    if faces_minus_z:  # VRM 0 models face -Z: the same turn, seen from behind
        flip = Rotation.from_euler("Y", np.pi)
        turn = flip * turn * flip.inv()
    rest = Rotation.from_quat(doc.nodes[node].rotation or [0, 0, 0, 1])
    return (parent.inv() * turn * parent * rest).as_quat().astype(np.float32)


def _load_head(head: str | Path):
    """A binary glTF (.glb, .vrm: a VRM is a GLB) with its one buffer inside."""
    import pygltflib as g

    with open(head, "rb") as f:
        magic = f.read(4)
    if magic != b"glTF":
        raise ValueError(f"--head {head}: not a binary glTF (.glb or .vrm)")
    doc = g.GLTF2.load_binary(str(head))
    if doc.binary_blob() is None or len(doc.buffers) != 1:
        raise ValueError(f"--head {head}: give a binary glTF with its one buffer inside")
    return doc


def check_head(head: str | Path, rig: str) -> list[str]:
    """The head's morph target names that the rig drives; raises ValueError where there are none."""
    doc = _load_head(head)
    targets = rig_map(rig).targets
    names = sorted({n for node in doc.nodes if node.mesh is not None
                    for n in _target_names(doc.meshes[node.mesh]) if n in targets})
    if not names:
        raise ValueError(f"--head {head}: no morph target is named by the {rig} rig "
                         f"(e.g. {', '.join(targets[:3])}); bake with the --names its targets use")
    return names


def apply_to_head(head: str | Path, take: Take, rig: str):
    """The user's glTF/VRM head (binary: .glb or .vrm) with the take added as one more animation: the weights of
    every mesh whose morph targets the rig names (by name; others stay 0), the head and eye bones' rotations."""
    import pygltflib as g

    doc = _load_head(head)
    blob = doc.binary_blob()
    rigmap = rig_map(rig)
    weights = rigmap.apply(take.motion[:, BLENDSHAPES])
    pack = _Packer(doc, blob)
    times = pack.add(take.times.astype(np.float32), "SCALAR", bounds=True)
    outputs, matched = [], set()
    for i, node in enumerate(doc.nodes):
        if node.mesh is None:
            continue
        names = _target_names(doc.meshes[node.mesh])
        columns = [(j, rigmap.targets.index(n)) for j, n in enumerate(names) if n in rigmap.targets]
        if not columns:
            continue
        values = np.zeros((len(take.motion), len(names)), np.float32)
        for j, k in columns:
            values[:, j] = weights[:, k]
        matched.update(names[j] for j, _ in columns)
        outputs.append((i, "weights", pack.add(values.ravel(), "SCALAR")))
    if not outputs:
        check_head(head, rig)  # says why
    bones = _bones(doc)
    faces_minus_z = "VRM" in (doc.extensions or {})
    gaze = take.motion[:, GAZE]
    for bone, world in (("head", head_quaternions(take.motion[:, HEAD_ROTATION])),
                        ("leftEye", eye_quaternions(gaze[:, 0], gaze[:, 1])),
                        ("rightEye", eye_quaternions(gaze[:, 2], gaze[:, 3]))):
        if bone in bones:
            outputs.append((bones[bone], "rotation",
                            pack.add(_in_parent_space(doc, bones[bone], world, faces_minus_z), "VEC4")))
    doc.animations.append(g.Animation(
        name=take.name,
        samplers=[g.AnimationSampler(input=times, output=out, interpolation="LINEAR") for _, _, out in outputs],
        channels=[g.AnimationChannel(sampler=i, target=g.AnimationChannelTarget(node=node, path=path))
                  for i, (node, path, _) in enumerate(outputs)]))
    doc.buffers[0].byteLength = len(pack.blob)
    doc.set_binary_blob(bytes(pack.blob))
    return doc, sorted(matched), sorted(bones)


def write_gltf(path: str | Path, take: Take, rig: str, binary: bool = True, head: str | Path | None = None) -> Path:
    import pygltflib as g

    doc = build_gltf(take, rig) if head is None else apply_to_head(head, take, rig)[0]
    with replacing(path) as tmp:
        if binary:
            doc.save_binary(str(tmp))
        else:  # one self-contained .gltf: the buffer as a data URI
            doc.convert_buffers(g.BufferFormat.DATAURI)
            doc.save_json(str(tmp))
    return Path(path)
