"""Local audio devices as a session's tracks: `serve --mic DEVICE --partner-device DEVICE`.

Each device is captured by sounddevice (PortAudio) and sent, as ordinary protocol-v1 audio messages, to the
worker's in-process audio endpoint, so device audio takes exactly the path network audio takes (validation, jitter
buffer, resampling). `t` counts the device's own samples, so each track keeps its device clock; the two devices
start within milliseconds of each other and their clocks drift apart by the usual tens of ppm (about 0.1 s an
hour), which is below what a face can show.
"""
from __future__ import annotations

import logging

import zmq

from backchannel.bridge.protocol import audio_message

log = logging.getLogger("backchannel.devices")


def find_device(device: str) -> int | str:
    """A device index ("3") or a name fragment ("USB", "pulse") as sounddevice resolves it."""
    return int(device) if device.isdigit() else device


class DeviceCapture:
    def __init__(self, device: str, track: str, session: str, endpoint: str, context: zmq.Context,
                 rate: int | None = None, chunk_ms: float = 20.0):
        try:
            import sounddevice as sd
        except OSError as e:  # the PortAudio library itself is missing
            raise RuntimeError(f"cannot capture audio: {e} (install libportaudio2)") from None
        try:
            info = sd.query_devices(find_device(device), "input")
        except (ValueError, sd.PortAudioError) as e:
            raise RuntimeError(f"no input device {device!r} ({e}); `python -m sounddevice` lists them") from None
        self.name, self.track, self.session = info["name"], track, session
        self.rate = int(rate or info["default_samplerate"])
        self.seq = 0
        self.captured = 0  # samples so far: the track's clock
        self.overflows = 0
        self.dropped = 0
        self.closing = False  # set by close: a stream that finishes otherwise lost its device
        self.push = context.socket(zmq.PUSH)  # used only from PortAudio's callback thread once started
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(endpoint)
        try:
            # 16-bit: every device and host API delivers it, and it is the protocol's compact format
            self.stream = sd.InputStream(device=info["index"], channels=1, samplerate=self.rate, dtype="int16",
                                         blocksize=max(1, round(self.rate * chunk_ms / 1000)), callback=self._callback,
                                         finished_callback=self._finished)
        except sd.PortAudioError as e:
            self.push.close()
            raise RuntimeError(f"cannot open {self.name!r} at {self.rate} Hz: {e}") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        msg = audio_message(self.session, self.track, self.seq, self.captured / self.rate, bytes(indata), self.rate)
        self.seq += 1
        self.captured += frames
        try:
            self.push.send(msg, zmq.NOBLOCK)
        except zmq.Again:  # the worker is not keeping up; the jitter buffer conceals the hole
            self.dropped += 1

    def _finished(self) -> None:
        if not self.closing:  # PortAudio gave up on the device (unplugged...): the track goes silent, say so now
            log.error("%s stopped capturing (device lost?); session %s track %s is silent from here", self.name,
                      self.session, self.track)

    def start(self) -> None:
        import sounddevice as sd

        try:
            self.stream.start()
        except sd.PortAudioError as e:
            raise RuntimeError(f"cannot start capturing {self.name!r}: {e}") from None
        log.info("capturing %s as session %s track %s at %d Hz", self.name, self.session, self.track, self.rate)

    def close(self) -> None:
        self.closing = True
        self.stream.stop()
        self.stream.close()
        self.push.close()
        if self.overflows or self.dropped:
            log.warning("%s: %d input overflows, %d chunks dropped", self.name, self.overflows, self.dropped)
