"""The core install (`pip install .`, no extras) serves the shipped model with pip alone: a fresh venv without
torch, OpenCV or matplotlib runs `backchannel serve --generator model` on onnxruntime, and a session streamed
through it comes back as the model's frames, those this full install computes offline (its lips placed by
pocketsphinx's acoustic model, which the core brings)."""
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from backchannel.bridge.client import ControlClient, MotionReceiver, frames_to_block, spawn_worker
from backchannel.models.audio import SAMPLE_RATE, load_audio
from backchannel.models.generator import generate, make_generator
from backchannel.models.motion import frame_count

from .helpers import collect, stream

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "models" / "assets" / "sample"


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    """A venv with the project's core install alone (from this checkout, as a user's `pip install .`)."""
    where = tmp_path_factory.mktemp("core") / "venv"
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return where


def test_the_core_install_has_no_torch_opencv_or_plotting(core):
    for module in ("torch", "cv2", "matplotlib", "onnx"):
        found = subprocess.run([str(core / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} came with the core install"


def test_the_core_install_serves_the_model_s_frames(core):
    a, b = (load_audio(SAMPLE / name, SAMPLE_RATE)[:8 * SAMPLE_RATE] for name in ("self.wav", "other.wav"))
    expected = generate(make_generator("model"), a, b, seed=3)
    with spawn_worker("--generator", "model", command=[str(core / "bin" / "backchannel")], timeout_s=120) as worker:
        receiver = MotionReceiver(worker["motion_out"], ["npc"])
        try:
            with ControlClient(worker["control"]) as control:
                assert control.request("describe")["generator"]["backend"] == "onnx"
                receiver.wait_ready()
                token = control.request("open", session="npc", seed=3)["token"]
            stream(worker, "npc", {"self": a, "other": b}, token=token)
            got = collect(receiver, ["npc"], timeout_s=60)["npc"]
        finally:
            receiver.close()
    block = frames_to_block(got["motion"])
    assert len(block) == frame_count(len(a) / SAMPLE_RATE) == len(expected)
    np.testing.assert_allclose(block.motion, expected.motion, atol=1e-3)  # batching moves the last digits only
    assert (block.state == expected.state).mean() > 0.99


def test_a_command_that_needs_an_extra_says_which(core, tmp_path):
    result = subprocess.run([str(core / "bin" / "backchannel"), "run", "--self", str(SAMPLE / "self.wav"), "--other",
                             str(SAMPLE / "other.wav"), "--out", str(tmp_path / "x.jsonl"), "--generator",
                             "model[sampler_steps=3]"], capture_output=True, text=True)  # no graphs ship for 3 steps
    assert result.returncode == 2
    assert "needs torch" in result.stderr and "backchannel[train]" in result.stderr
    result = subprocess.run([str(core / "bin" / "backchannel"), "train", "codec", "--data", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "pip install 'backchannel[train]'" in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())  # refused before any work
    result = subprocess.run([str(core / "bin" / "backchannel"), "scale", "--replicas", "1"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "pip install 'backchannel[scale]'" in result.stderr, result.stderr
