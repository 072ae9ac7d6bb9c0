"""The portrait a renderer animates: an RGB image, its landmarks, framed to a square of the output size."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backchannel.models.render.landmarks import (
    MIN_EYE_DISTANCE_PX,
    Landmarks,
    NoDetector,
    check_landmarks,
    detect_landmarks,
    landmark_path_for,
    read_landmarks,
)

log = logging.getLogger(__name__)

MIN_SIDE = 64  # pixels; smaller images hold no animatable face
MAX_PIXELS = 50_000_000  # refuse to decode anything bigger (a 7071 x 7071 image); downscale first
MIN_SIZE, MAX_SIZE = 64, 4096  # output frame side
FRAMINGS = ("image", "face")
FACE_CROP_EYE_DISTANCES = 4.5  # "face" framing: the square's side in eye distances


@dataclass
class Portrait:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: Landmarks

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def load_image(path: str | Path) -> np.ndarray:
    """Any image Pillow reads (PNG, JPEG, WebP, BMP, TIFF...) -> RGB uint8, turned as its EXIF orientation says;
    transparency is laid on white."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"portrait not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"portrait {path} is {w}x{h}: too large (at most {MAX_PIXELS // 10**6} megapixels); "
                                 f"downscale it")
            if min(w, h) < MIN_SIDE:
                raise ValueError(f"portrait {path} is {w}x{h}: too small (at least {MIN_SIDE} px a side)")
            im.load()
            im = ImageOps.exif_transpose(im)  # upright, as viewers show it (phone photos are stored sideways)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, rgba)
            elif im.mode in ("I;16", "I;16B", "I", "F"):  # 16-bit and float greyscale
                a = np.asarray(im, np.float64)
                im = Image.fromarray(np.uint8(255 * (a - a.min()) / max(np.ptp(a), 1e-9)))
            return np.ascontiguousarray(np.asarray(im.convert("RGB"), np.uint8))
    except Image.DecompressionBombError:
        raise ValueError(f"portrait {path} is too large (at most {MAX_PIXELS // 10**6} megapixels); "
                         f"downscale it") from None
    except UnidentifiedImageError:
        raise ValueError(f"cannot read portrait {path}: not an image format Pillow knows "
                         f"(use PNG, JPEG, WebP, BMP or TIFF)") from None
    except OSError as e:
        raise ValueError(f"cannot read portrait {path}: {e}") from None


def find_landmarks(image: np.ndarray, image_path: str | Path | None = None,
                   landmark_file: str | Path | None = None) -> Landmarks:
    """Landmarks for a portrait: an explicit landmark file, else `<stem>.landmarks.json` beside the image
    (a correction or a hand-made set wins over detection), else mediapipe's face mesh."""
    size = (image.shape[1], image.shape[0])
    if landmark_file is not None:
        return read_landmarks(landmark_file, size)
    beside = landmark_path_for(image_path) if image_path is not None else None
    if beside is not None and beside.is_file():
        return read_landmarks(beside, size)
    where = f"portrait {image_path}" if image_path is not None else "the portrait"
    fallback = beside or "a landmark file passed as --landmarks"
    try:
        lm = detect_landmarks(image)
    except NoDetector as e:
        raise RuntimeError(f"{where}: no landmark file at {fallback} and {e}") from None
    if lm is None:
        raise ValueError(f"{where}: no face found by mediapipe's face mesh; write a landmark file at {fallback} "
                         f"(format in docs/render.md; `backchannel landmarks` starts one)")
    try:
        check_landmarks(lm, size, f"{where}: detected landmarks")
    except ValueError as e:
        raise ValueError(f"{e}; write corrected ones to {fallback} (`backchannel landmarks` starts one)") from None
    log.info("%s: landmarks from %s", where, lm.source)
    return lm


def frame_portrait(image: np.ndarray, landmarks: Landmarks, size: int, framing: str = "image") -> Portrait:
    """Crop a square and resize it to size x size.

    "image" keeps as much of the picture as a square can, centred on the face where the image is not square;
    "face" crops a head-and-shoulders square of FACE_CROP_EYE_DISTANCES eye distances around the face.
    """
    import cv2

    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}; choose from {', '.join(FRAMINGS)}")
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"output size {size!r} must be a whole number of pixels in {MIN_SIZE}..{MAX_SIZE}")
    h, w = image.shape[:2]
    iod = landmarks.eye_distance()
    centre = (landmarks["forehead"] + landmarks["chin"]) / 2
    side = min(w, h) if framing == "image" else min(w, h, int(round(FACE_CROP_EYE_DISTANCES * iod)))
    x0 = int(np.clip(round(centre[0] - side / 2), 0, w - side))
    y0 = int(np.clip(round(centre[1] - side / 2), 0, h - side))
    crop = image[y0:y0 + side, x0:x0 + side]
    scale = size / side
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    framed = cv2.resize(crop, (size, size), interpolation=interp) if side != size else crop.copy()
    lm = landmarks.transformed(scale, np.array([x0 - 0.5 + 0.5 / scale, y0 - 0.5 + 0.5 / scale]))
    what = f"the {size}x{size} {framing} framing"
    if lm.eye_distance() < MIN_EYE_DISTANCE_PX:
        raise ValueError(f"{what} leaves the eyes {lm.eye_distance():.1f} px apart, too small to animate "
                         f"(needs {MIN_EYE_DISTANCE_PX}); use a larger size or --framing face")
    for name in ("chin", "forehead", "right_cheek", "left_cheek"):
        if not (0 <= lm[name][0] < size and 0 <= lm[name][1] < size):
            raise ValueError(f"{what} cuts off the face ({name} falls outside); try --framing face")
    check_landmarks(lm, (size, size), what)
    return Portrait(np.ascontiguousarray(framed), lm)


def open_portrait(path: str | Path, size: int = 512, framing: str = "image",
                  landmark_file: str | Path | None = None) -> Portrait:
    """Load, find landmarks, frame: everything a renderer needs from a portrait file."""
    image = load_image(path)
    return frame_portrait(image, find_landmarks(image, path, landmark_file), size, framing)
