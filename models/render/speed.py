"""How fast a renderer makes frames (`backchannel bench render`; results in docs/benchmarks.md).

Frames per second of `render_frame` at each size on a motion track that keeps every channel moving (the costliest
case), process CPU time per frame (less disturbed by busy neighbours than wall time), frames per second with JPEG
encoding (what `serve --portrait` publishes), and a bare full-frame cv2.remap of the same size measured in the
same run: the floor under any warp renderer, so results on a noisy machine compare as ratios.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from backchannel.models.motion import BLENDSHAPES, FRAME_RATE, GAZE, HEAD_ROTATION, HEAD_TRANSLATION, neutral
from backchannel.models.render.base import make_renderer
from backchannel.models.render.landmarks import Landmarks
from backchannel.models.render.portrait import frame_portrait


def exercise_motion(frames: int) -> np.ndarray:
    """Every blendshape, head and gaze channel moving at once, never zero; deterministic so runs compare."""
    t = np.arange(frames)[:, None] / FRAME_RATE
    rng = np.random.default_rng(0)
    motion = neutral(frames)
    n = BLENDSHAPES.stop
    motion[:, BLENDSHAPES] = 0.5 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0, n) * t + rng.uniform(0, 6, n))
    motion[:, HEAD_ROTATION] = 0.25 * np.sin(2 * np.pi * np.array([0.3, 0.23, 0.17]) * t)
    motion[:, HEAD_TRANSLATION] = 0.01 * np.sin(2 * np.pi * np.array([0.2, 0.13, 0.11]) * t)
    motion[:, GAZE] = 0.3 * np.sin(2 * np.pi * np.array([0.5, 0.4, 0.5, 0.4]) * t)
    return motion


def measure_render(image: np.ndarray, landmarks: Landmarks, sizes: list[int], frames: int = 300,
                   framing: str = "face", renderer: str | None = None, quality: int = 85,
                   progress: Callable[[dict], None] | None = None) -> list[dict]:
    """One result per size (see the module docstring); `progress` gets each as it is measured."""
    import cv2

    motion = exercise_motion(frames)
    results = []
    for size in sizes:
        start = time.perf_counter()
        r = make_renderer(frame_portrait(image, landmarks, size, framing), renderer)
        setup = time.perf_counter() - start
        r.render_frame(motion[0])  # warm caches and thread pools
        times = []
        cpu = time.process_time()
        for row in motion:
            t0 = time.perf_counter()
            r.render_frame(row)
            times.append(time.perf_counter() - t0)
        cpu_ms = 1000 * (time.process_time() - cpu) / frames  # all threads
        start = time.perf_counter()
        for row in motion:
            cv2.imencode(".jpg", r.render_frame(row)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        with_jpeg = frames / (time.perf_counter() - start)
        remap = bare_remap_fps(size, frames)
        times = np.array(times)
        fps = frames / times.sum()
        result = {"size": size, "setup_ms": 1000 * setup, "fps": fps, "p50_ms": 1000 * np.percentile(times, 50),
                  "p95_ms": 1000 * np.percentile(times, 95), "cpu_ms_per_frame": cpu_ms, "fps_with_jpeg": with_jpeg,
                  "bare_remap_fps": remap, "ratio_to_remap": remap / fps}
        results.append(result)
        if progress:
            progress(result)
    return results


def bare_remap_fps(size: int, frames: int) -> float:
    """Frames per second of one full-frame bilinear cv2.remap: the floor under any warp renderer."""
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    where = np.stack([xx + 0.3, yy + 0.7], -1)
    start = time.perf_counter()
    for _ in range(frames):
        cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return frames / (time.perf_counter() - start)
