"""`serve --mic --partner-device`: real capture through PortAudio and ALSA, on a machine with no sound card.

ALSA's `file` PCM plugin over its `null` device reads capture data from `infile`; pointed at a FIFO that this test
writes in real time, it becomes an input device that delivers our audio at its natural pace (the null device alone
captures silence as fast as the CPU allows, which no real microphone does). ALSA_CONFIG_PATH adds the two devices
to the system configuration for the worker process only.
"""
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backchannel.bridge.client import ControlClient, MotionReceiver, spawn_worker
from backchannel.models.audio import encode_pcm
from backchannel.models.motion import BS

from .helpers import WORKER_COMMAND

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
ASOUNDRC = """
pcm.{name} {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{fifo}"
    format "raw"
}}
"""


class FifoSource(threading.Thread):
    """Writes s16le audio into a FIFO in real time, reopening whenever a reader (PortAudio probing devices) leaves."""

    def __init__(self, path: Path, audio: np.ndarray, rate: int = 16000, chunk: int = 320):
        super().__init__(daemon=True)
        os.mkfifo(path)
        self.path, self.pcm, self.step = path, encode_pcm(audio), chunk * 2
        self.period = chunk / rate
        self.stop = threading.Event()

    def run(self) -> None:
        pos = 0
        while not self.stop.is_set():
            fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the device
            try:
                next_write = time.monotonic()
                while not self.stop.is_set():
                    os.write(fd, self.pcm[pos % len(self.pcm):][:self.step].ljust(self.step, b"\0"))
                    pos += self.step
                    next_write += self.period
                    time.sleep(max(0.0, next_write - time.monotonic()))
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)

    def finish(self) -> None:
        self.stop.set()
        try:  # release a writer blocked in open()
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        self.join(5)


@pytest.mark.skipif(not SYSTEM_ALSA_CONF.exists(), reason="ALSA's configuration (libasound2-data) is not installed")
def test_mic_and_partner_device_are_captured_into_a_local_session(tmp_path):
    rate = 16000
    t = np.arange(rate * 4) / rate
    voice = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    sources = {"bcmic": FifoSource(tmp_path / "mic.fifo", voice),
               "bcpartner": FifoSource(tmp_path / "partner.fifo", np.zeros_like(voice))}
    (tmp_path / "asoundrc").write_text("".join(ASOUNDRC.format(name=n, fifo=s.path) for n, s in sources.items()))
    for source in sources.values():
        source.start()
    env = {"ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONF}:{tmp_path / 'asoundrc'}"}
    try:
        with spawn_worker("--mic", "bcmic", "--partner-device", "bcpartner", "--device-rate", str(rate),
                          "--local-session", "desk", "--stats-interval-s", "0.2", command=WORKER_COMMAND,
                          env=env) as ep:
            r = MotionReceiver(ep["motion_out"], ["desk"])
            r.wait_ready()
            frames, deadline = [], time.time() + 15
            while len(frames) < 45 and time.time() < deadline:
                msg = r.receive(deadline - time.time())
                if msg and msg.kind == "motion":
                    frames.append(msg.body)
            stats = ControlClient(ep["control"]).call("stats", session="desk")
            r.close()
    finally:
        for source in sources.values():
            source.finish()
    assert len(frames) == 45, "no frames from the captured devices"
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 45))
    assert all(f["t"] == pytest.approx(f["seq"] / 30) for f in frames)
    assert stats["tracks"]["self"]["rate"] == stats["tracks"]["other"]["rate"] == rate
    assert stats["tracks"]["other"]["received_s"] > 1.0  # the partner device streams too (silence here)
    # the mic carries a voice and the partner device silence: the avatar talks
    talking = [f for f in frames if f["state"] == "speaking"]
    assert len(talking) > 40 and min(f["blendshapes"][BS["JawOpen"]] for f in talking) > 0.2


def test_a_device_that_fails_to_start_stops_serve_cleanly(monkeypatch, capsys):
    """The second device refuses to start: serve says so in one line, and stops the first device and the worker
    (before: a PortAudio traceback, the first device left capturing, the worker never shut down)."""
    from backchannel.bridge import devices
    from backchannel.bridge.cli import main

    closed = []

    class Capture:
        def __init__(self, device, track, *rest):
            self.device = device

        def start(self):
            if self.device == "broken":
                raise RuntimeError("cannot start capturing 'broken': Device unavailable")

        def close(self):
            closed.append(self.device)

    monkeypatch.setattr(devices, "DeviceCapture", Capture)
    monkeypatch.setattr("signal.signal", lambda *args: None)  # serve's handlers would outlive the test here
    anywhere = [f"--{socket}=tcp://127.0.0.1:*" for socket in ("audio-in", "motion-out", "control")]
    assert main(["serve", *anywhere, "--generator", "baseline", "--mic", "fine", "--partner-device", "broken"]) == 2
    assert "cannot start capturing 'broken'" in capsys.readouterr().err
    assert closed == ["fine", "broken"]
