"""mp4 previews: rendered frames piped into the ffmpeg that imageio-ffmpeg bundles (no system ffmpeg needed),
H.264 video with the conversation's audio as AAC."""
from __future__ import annotations

import itertools
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from backchannel.models.atomic import replacing
from backchannel.models.audio import SAMPLE_RATE, save_audio
from backchannel.models.motion import FRAME_RATE


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def mix_tracks(*tracks: np.ndarray) -> np.ndarray:
    """Sum audio tracks (padded to the longest), scaled down only if the sum would clip."""
    n = max((len(t) for t in tracks), default=0)
    mix = np.zeros(n, np.float32)
    for t in tracks:
        mix[: len(t)] += t
    peak = float(np.abs(mix).max(initial=0))
    return mix * (0.99 / peak) if peak > 0.99 else mix


def write_video(path: str | Path, frames: Iterable[np.ndarray], audio: np.ndarray | None = None,
                audio_rate: int = SAMPLE_RATE, fps: int = FRAME_RATE, crf: int = 20) -> Path:
    """Write RGB uint8 frames (all the same size, even sides) as an mp4, muxing `audio` (mono float32) if given.
    Returns the path; raises RuntimeError with ffmpeg's own message if it fails. ffmpeg writes a temporary beside
    `path`, renamed over it only once the file is complete: an interrupted encode leaves no mp4 that will not play."""
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--video {path}: write an .mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    h, w = first.shape[:2]
    with tempfile.TemporaryDirectory() as tmp, replacing(path) as partial:
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-"]
        if audio is not None:
            wav = Path(tmp) / "audio.wav"
            save_audio(wav, audio, audio_rate)
            cmd += ["-i", str(wav), "-c:a", "aac", "-b:a", "96k"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", "-f", "mp4", str(partial)]  # -f: the temporary's name is no .mp4
        with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            try:
                for frame in itertools.chain([first], frames):
                    if frame.shape[:2] != (h, w):
                        raise ValueError(f"frame of {frame.shape[1]}x{frame.shape[0]} in a {w}x{h} video")
                    proc.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg stopped early; its message follows
            except BaseException:
                proc.kill()
                proc.wait()  # gone before the temporary is removed: its faststart pass reopens the file by name
                raise
            err = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait() != 0:
                raise RuntimeError(f"ffmpeg could not write {path}: {err or 'exit status ' + str(proc.returncode)}")
    return path
