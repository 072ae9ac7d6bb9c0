"""Face landmarks for the portrait renderer: the named keypoints it needs, from mediapipe's face mesh or a file.

Side names are the subject's own: `right_eye_outer` is the outer corner of the subject's right eye, which sits on the
image's left in a frontal portrait. Coordinates are pixels (x right, y down) in the image the landmarks belong to.

The landmark file (JSON, next to the image as `<stem>.landmarks.json`) is the fallback for faces mediapipe cannot
find (drawings, non-human or side faces) and the way to correct a detection:

    {
      "format": "backchannel.landmarks/1",
      "image_size": [width, height],
      "points": {"right_eye_outer": [x, y], ..., "left_cheek": [x, y]},   # every name in KEYPOINTS
      "iris_radius": {"right": r, "left": r}                               # optional, pixels
    }

`backchannel landmarks IMG` writes one from a detection, with an overlay to check it; docs/render.md explains
where each point goes.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "backchannel.landmarks/1"

# name -> mediapipe face-mesh vertex indices (their mean is the point); 468+ are the refined iris centres
KEYPOINTS: dict[str, tuple[int, ...]] = {
    "right_eye_outer": (33,), "right_eye_inner": (133,), "right_eye_top": (159,), "right_eye_bottom": (145,),
    "right_iris": (468,),
    "left_eye_outer": (263,), "left_eye_inner": (362,), "left_eye_top": (386,), "left_eye_bottom": (374,),
    "left_iris": (473,),
    "right_brow_inner": (107, 55), "right_brow_middle": (105, 52), "right_brow_outer": (70, 46),
    "left_brow_inner": (336, 285), "left_brow_middle": (334, 282), "left_brow_outer": (300, 276),
    "nose_tip": (1,),
    "mouth_right": (61,), "mouth_left": (291,),
    "upper_lip_top": (0,), "upper_lip_bottom": (13,), "lower_lip_top": (14,), "lower_lip_bottom": (17,),
    "chin": (152,), "forehead": (10,), "right_cheek": (234,), "left_cheek": (454,),
}
IRIS_EDGES = {"right": (469, 471), "left": (474, 476)}  # horizontal edge points of each refined iris
DEFAULT_IRIS_RATIO = 0.22  # iris radius / eye width, when the file gives none (human average)
MIN_EYE_DISTANCE_PX = 8  # below this there is nothing left to animate


class NoDetector(RuntimeError):
    """mediapipe is not installed, so landmarks must come from a file."""


@dataclass
class Landmarks:
    points: dict[str, np.ndarray]  # name -> (2,) float pixels
    iris_radius: dict[str, float]  # "right"/"left" -> pixels
    source: str = "file"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.points[name]

    def transformed(self, scale: float, offset: np.ndarray) -> "Landmarks":
        """The landmarks after the image was cropped at `offset` and then scaled by `scale`."""
        offset = np.asarray(offset, np.float64)
        return Landmarks({k: (v - offset) * scale for k, v in self.points.items()},
                         {k: r * scale for k, r in self.iris_radius.items()}, self.source)

    def eye_distance(self) -> float:
        return float(np.linalg.norm(eye_centre(self, "left") - eye_centre(self, "right")))

    def to_json(self, image_size: tuple[int, int]) -> dict:
        return {"format": FORMAT, "source": self.source, "image_size": list(image_size),
                "points": {k: [round(float(v[0]), 2), round(float(v[1]), 2)] for k, v in self.points.items()},
                "iris_radius": {k: round(float(r), 2) for k, r in self.iris_radius.items()}}


def eye_centre(lm: Landmarks, side: str) -> np.ndarray:
    return (lm[f"{side}_eye_outer"] + lm[f"{side}_eye_inner"]) / 2


def landmark_path_for(image_path: str | Path) -> Path:
    """Where the fallback landmark file of an image lives: `face.png` -> `face.landmarks.json`."""
    image_path = Path(image_path)
    return image_path.with_name(image_path.stem + ".landmarks.json")


def read_landmarks(path: str | Path, image_size: tuple[int, int]) -> Landmarks:
    """A landmark file, rescaled when it was written for a resized copy of the same image."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        points = {name: np.asarray(d["points"][name], np.float64).reshape(2) for name in KEYPOINTS}
        size = d.get("image_size", image_size)
    except FileNotFoundError:
        raise FileNotFoundError(f"landmark file not found: {path}") from None
    except KeyError as e:
        raise ValueError(f"landmark file {path}: missing {e.args[0]!r} (see docs/render.md for the format)") from None
    except (ValueError, TypeError) as e:
        raise ValueError(f"landmark file {path}: {e} (see docs/render.md for the format)") from None
    if d.get("format", FORMAT) != FORMAT:
        raise ValueError(f"landmark file {path}: format {d.get('format')!r}, expected {FORMAT!r}")
    sx, sy = image_size[0] / float(size[0]), image_size[1] / float(size[1])
    if abs(sx / sy - 1) > 0.01:
        raise ValueError(f"landmark file {path} was made for a {size[0]}x{size[1]} image, not "
                         f"{image_size[0]}x{image_size[1]}")
    points = {k: (v + 0.5) * sx - 0.5 for k, v in points.items()}  # pixel centres, as image resizers map them
    iris = {side: float(r) * sx for side, r in d.get("iris_radius", {}).items() if side in ("right", "left")}
    lm = Landmarks(points, {}, source=f"file {path.name}")
    lm.iris_radius = {side: iris.get(side, DEFAULT_IRIS_RATIO * eye_width(lm, side)) for side in ("right", "left")}
    check_landmarks(lm, image_size, f"landmark file {path}")
    return lm


def write_landmarks(path: str | Path, lm: Landmarks, image_size: tuple[int, int]) -> Path:
    """Write a landmark file, one point per line so it is easy to correct by hand."""
    path = Path(path)
    d = lm.to_json(image_size)
    points = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in d.pop("points").items())
    head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items())
    path.write_text("{\n" + head + ',\n  "points": {\n' + points + "\n  }\n}\n")
    return path


def eye_width(lm: Landmarks, side: str) -> float:
    return float(np.linalg.norm(lm[f"{side}_eye_outer"] - lm[f"{side}_eye_inner"]))


def check_landmarks(lm: Landmarks, image_size: tuple[int, int], what: str) -> None:
    """Refuse landmark sets the renderer would turn into garbage, saying what is wrong."""
    w, h = image_size
    for name, p in lm.points.items():
        if not np.isfinite(p).all() or not (-0.5 * w <= p[0] <= 1.5 * w and -0.5 * h <= p[1] <= 1.5 * h):
            raise ValueError(f"{what}: point {name} {p.tolist()} lies far outside the {w}x{h} image")
    iod = lm.eye_distance()
    if iod < MIN_EYE_DISTANCE_PX:
        raise ValueError(f"{what}: the eyes are {iod:.1f} px apart; the face is too small to animate "
                         f"(needs {MIN_EYE_DISTANCE_PX} px)")
    across = eye_centre(lm, "left") - eye_centre(lm, "right")
    down = np.array([-across[1], across[0]])  # the face's downward axis, if right and left are the subject's
    if np.dot(lm["chin"] - eye_centre(lm, "right"), down) <= 0:
        raise ValueError(f"{what}: the chin is not below the eyes; are left and right swapped? "
                         f"(right_* is the subject's right, on the image's left in a frontal portrait)")
    for first, second in (("right_eye_outer", "right_eye_inner"), ("right_eye_inner", "left_eye_inner"),
                          ("left_eye_inner", "left_eye_outer"), ("mouth_right", "mouth_left"),
                          ("right_cheek", "left_cheek")):
        if np.dot(lm[second] - lm[first], across) < 0.05 * iod ** 2:
            raise ValueError(f"{what}: {second} must lie to the subject's left of {first}")
    for upper, lower in (("upper_lip_top", "upper_lip_bottom"), ("upper_lip_bottom", "lower_lip_top"),
                         ("lower_lip_top", "lower_lip_bottom"), ("lower_lip_bottom", "chin"),
                         ("right_brow_middle", "right_eye_top"), ("left_brow_middle", "left_eye_top"),
                         ("right_eye_top", "right_eye_bottom"), ("left_eye_top", "left_eye_bottom")):
        if np.dot(lm[lower] - lm[upper], down) < -0.02 * iod:
            raise ValueError(f"{what}: {lower} must not be above {upper}")


def detect_landmarks(rgb: np.ndarray) -> Landmarks | None:
    """mediapipe's face mesh (refined irises) on an RGB uint8 image; None when it finds no face.

    Drives the face-mesh graph that ships in the mediapipe 0.10.14 wheel directly rather than through
    `mp.solutions`, whose Python wrapper needs protobuf < 5 while onnx needs >= 6; the graph itself does not care.
    Raises NoDetector when mediapipe is not installed.
    """
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its protobuf bridge prints a harmless warning on import
            import mediapipe
            from mediapipe.framework.formats import landmark_pb2
            from mediapipe.python._framework_bindings import (
                _packet_creator,
                _packet_getter,
                calculator_graph,
                image_frame,
                resource_util,
            )
    except ImportError:
        raise NoDetector("face detection needs mediapipe: pip install --no-deps mediapipe==0.10.14 && "
                           "pip install attrs (or write a landmark file; see docs/render.md)") from None
    root = Path(mediapipe.__file__).parent
    resource_util.set_resource_dir(str(root.parent))
    rgb = np.ascontiguousarray(rgb, np.uint8)
    with _quiet_native_logs():
        graph = calculator_graph.CalculatorGraph(
            binary_graph_path=str(root / "modules/face_landmark/face_landmark_front_cpu.binarypb"))
        found = []
        graph.observe_output_stream("multi_face_landmarks", lambda _, packet: found.append(packet), True)
        graph.start_run({"num_faces": _packet_creator.create_int(1),
                         "with_attention": _packet_creator.create_bool(True),
                         "use_prev_landmarks": _packet_creator.create_bool(False)})
        try:
            frame = image_frame.ImageFrame(image_format=image_frame.ImageFormat.SRGB, data=rgb)
            graph.add_packet_to_input_stream(
                stream="image", packet=_packet_creator._create_image_frame_from_image_frame(frame).at(1))
            graph.wait_until_idle()
            faces = [] if not found or found[0].is_empty() else _packet_getter._get_serialized_proto_list(found[0])
        finally:
            graph.close()
    if not faces:
        return None
    mesh = landmark_pb2.NormalizedLandmarkList()
    mesh.ParseFromString(faces[0])
    h, w = rgb.shape[:2]
    xy = np.array([[p.x * w, p.y * h] for p in mesh.landmark], np.float64)
    points = {name: xy[list(idx)].mean(0) for name, idx in KEYPOINTS.items()}
    iris = {side: float(np.linalg.norm(xy[a] - xy[b]) / 2) for side, (a, b) in IRIS_EDGES.items()}
    return Landmarks(points, iris, source=f"mediapipe {mediapipe.__version__} face mesh")


@contextlib.contextmanager
def _quiet_native_logs():
    """Mute the TFLite/absl start-up chatter the C++ graph writes straight to file descriptor 2."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def draw_landmarks(rgb: np.ndarray, lm: Landmarks) -> np.ndarray:
    """A copy of the image with every keypoint marked and named, to check a landmark file by eye."""
    import cv2

    out = np.ascontiguousarray(rgb, np.uint8).copy()
    scale = max(lm.eye_distance() / 120, 0.25)
    for name, (x, y) in lm.points.items():
        p = (int(round(x)), int(round(y)))
        cv2.circle(out, p, max(1, int(3 * scale)), (0, 255, 0), -1, cv2.LINE_AA)
        cv2.putText(out, name, (p[0] + 4, p[1] - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, (255, 255, 0), 1,
                    cv2.LINE_AA)
    for side in ("right", "left"):
        c = lm[f"{side}_iris"]
        cv2.circle(out, (int(round(c[0])), int(round(c[1]))), max(1, int(round(lm.iris_radius[side]))),
                   (255, 0, 255), 1, cv2.LINE_AA)
    return out
