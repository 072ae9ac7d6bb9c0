"""Portrait rendering: animate a single image from motion rows (see docs/render.md).

    portrait = open_portrait("face.png", size=512)
    renderer = make_renderer(portrait)          # the weight-free warp renderer by default
    for frame in renderer.render(motion):       # (T, 62) motion rows -> (512, 512, 3) uint8 RGB frames
        ...
"""
from backchannel.models import ASSETS
from backchannel.models.render.base import DEFAULT_RENDERER, RENDERERS, Renderer, make_renderer
from backchannel.models.render.landmarks import (
           KEYPOINTS,
           Landmarks,
           detect_landmarks,
           landmark_path_for,
           read_landmarks,
           write_landmarks,
)
from backchannel.models.render.portrait import Portrait, frame_portrait, load_image, open_portrait

BUNDLED_PORTRAIT = ASSETS / "portrait" / "astronaut.png"

__all__ = ["BUNDLED_PORTRAIT", "DEFAULT_RENDERER", "KEYPOINTS", "RENDERERS", "Landmarks", "Portrait", "Renderer",
           "detect_landmarks", "frame_portrait", "landmark_path_for", "load_image", "make_renderer", "open_portrait",
           "read_landmarks", "write_landmarks"]
