"""`make demo`'s command, as a real subprocess: every file it promises, and latency figures."""
import json
import subprocess
import sys

import cv2

from backchannel.models.motion import ARKIT_NAMES


def test_demo_writes_motion_picture_video_and_prints_latency(tmp_path):
    out = subprocess.run([sys.executable, "-m", "backchannel.bridge.cli", "demo", "--out", str(tmp_path),
                          "--latency-seconds", "3", "--generator", "baseline[]"],  # a spec, as users may give
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    frames = [json.loads(line) for line in (tmp_path / "motion.jsonl").open()]
    assert len(frames) == 750 and set(frames[0]["blendshapes"]) == set(ARKIT_NAMES)  # 25 s at 30 fps
    assert {f["state"] for f in frames} >= {"speaking", "listening"}
    assert (tmp_path / "motion.csv").stat().st_size > 0 and (tmp_path / "motion.png").stat().st_size > 10000
    video = cv2.VideoCapture(str(tmp_path / "preview.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 750
    for name in ("motion.jsonl", "motion.csv", "motion.png", "preview.mp4"):
        assert name in out.stdout
    assert "p95" in out.stdout and "including look-ahead" in out.stdout
    assert "serve --generator 'baseline[]'`" in out.stdout  # the live worker runs the spec given, options and all
