"""`backchannel bench`: speed measured the way docs/benchmarks.md reports it.

`bench render`: portrait frames per second at several sizes, next to a bare full-frame cv2.remap of the same size
measured in the same run (the floor any warp renderer pays), so results on a noisy shared machine compare as ratios.
"""
from __future__ import annotations

import json
import time


def register(commands) -> None:
    p = commands.add_parser("bench", help="measure speed (see docs/benchmarks.md)")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    r = what.add_parser("render", help="portrait renderer frames per second")
    r.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], metavar="N")
    r.add_argument("--frames", type=int, default=300, help="frames timed per size (default 300)")
    r.add_argument("--portrait", default=None, metavar="IMG", help="default: the bundled portrait")
    r.add_argument("--framing", choices=("image", "face"), default="face",
                   help="face (default) fills the frame with the head: the renderer's most expensive case")
    r.add_argument("--landmarks", metavar="JSON")
    r.add_argument("--renderer", default=None)
    r.add_argument("--quality", type=int, default=85, help="JPEG quality for the render+encode column")
    r.add_argument("--threads", type=int, default=None, help="OpenCV threads (default: OpenCV's choice)")
    r.add_argument("--json", metavar="FILE", help="also write the results here")
    r.set_defaults(func=bench_render)


def exercise_motion(frames: int):
    """A motion track that keeps every blendshape, head and gaze channel moving (the costliest case: no channel
    is ever zero), deterministic so runs compare."""
    import numpy as np

    from backchannel.models.motion import BLENDSHAPES, GAZE, HEAD_ROTATION, HEAD_TRANSLATION, neutral

    t = np.arange(frames)[:, None] / 30.0
    rng = np.random.default_rng(0)
    motion = neutral(frames)
    n = BLENDSHAPES.stop
    motion[:, BLENDSHAPES] = 0.5 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0, n) * t + rng.uniform(0, 6, n))
    motion[:, HEAD_ROTATION] = 0.25 * np.sin(2 * np.pi * np.array([0.3, 0.23, 0.17]) * t)
    motion[:, HEAD_TRANSLATION] = 0.01 * np.sin(2 * np.pi * np.array([0.2, 0.13, 0.11]) * t)
    motion[:, GAZE] = 0.3 * np.sin(2 * np.pi * np.array([0.5, 0.4, 0.5, 0.4]) * t)
    return motion


def bench_render(args) -> int:
    import os

    import cv2
    import numpy as np

    from backchannel.models.render import BUNDLED_PORTRAIT, make_renderer
    from backchannel.models.render.portrait import find_landmarks, frame_portrait, load_image

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    path = args.portrait or BUNDLED_PORTRAIT
    image = load_image(path)
    landmarks = find_landmarks(image, path, args.landmarks)
    motion = exercise_motion(args.frames)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"portrait {path} ({args.framing} framing), {args.frames} frames per size, {cores} cores, "
          f"OpenCV threads {cv2.getNumThreads()}, load average {os.getloadavg()[0]:.2f}")
    print("| size | setup ms | render fps | p50 ms | p95 ms | CPU ms/frame | render+JPEG fps | bare remap fps "
          "| render / remap |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for size in args.sizes:
        start = time.perf_counter()
        renderer = make_renderer(frame_portrait(image, landmarks, size, args.framing), args.renderer)
        setup = time.perf_counter() - start
        renderer.render_frame(motion[0])  # warm caches and thread pools
        times = []
        cpu = time.process_time()
        for row in motion:
            t0 = time.perf_counter()
            renderer.render_frame(row)
            times.append(time.perf_counter() - t0)
        cpu_ms = 1000 * (time.process_time() - cpu) / len(motion)  # all threads; less noisy than wall time
        times = np.array(times)
        start = time.perf_counter()
        for row in motion:
            cv2.imencode(".jpg", renderer.render_frame(row)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, args.quality])
        with_jpeg = len(motion) / (time.perf_counter() - start)
        remap = bare_remap_fps(size, len(motion))
        fps = len(times) / times.sum()
        result = {"size": size, "setup_ms": 1000 * setup, "fps": fps, "p50_ms": 1000 * np.percentile(times, 50),
                  "p95_ms": 1000 * np.percentile(times, 95), "cpu_ms_per_frame": cpu_ms, "fps_with_jpeg": with_jpeg,
                  "bare_remap_fps": remap, "ratio_to_remap": remap / fps}
        results.append(result)
        print(f"| {size} | {result['setup_ms']:.0f} | {fps:.0f} | {result['p50_ms']:.2f} | {result['p95_ms']:.2f} | "
              f"{cpu_ms:.2f} | {with_jpeg:.0f} | {remap:.0f} | {remap / fps:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"portrait": str(path), "framing": args.framing, "frames": args.frames, "cores": cores,
                       "opencv_threads": cv2.getNumThreads(), "results": results}, f, indent=1)
    return 0


def bare_remap_fps(size: int, frames: int) -> float:
    """Frames per second of one full-frame bilinear cv2.remap: the floor under any warp renderer."""
    import cv2
    import numpy as np

    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    where = np.stack([xx + 0.3, yy + 0.7], -1)
    start = time.perf_counter()
    for _ in range(frames):
        cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return frames / (time.perf_counter() - start)
