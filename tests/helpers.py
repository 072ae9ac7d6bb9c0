"""Test doubles and helpers shared by the bridge tests.

EnergyGenerator is a small deterministic generator (jaw from the self track's loudness, a nod from the other
track's, the state from which one is louder): a legitimate stand-in for the real generators, so the bridge is tested
on its own terms, fast, and with frames that can be predicted exactly.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.generator import Generator, MotionStream, Style, make_generator
from backchannel.models.motion import BS, FRAME_RATE, HEAD_ROTATION, IDLE, LISTENING, MOTION_DIM, SPEAKING, MotionBlock

TESTS = Path(__file__).parent
LOUD = 0.01  # RMS above which a track counts as talking


def frame_edge(k: int) -> int:
    return k * SAMPLE_RATE // FRAME_RATE


class EnergyStream(MotionStream):
    def __init__(self, seed: int, style: Style, fail: bool = False):
        self.gain = 8.0 * style.expressiveness
        self.brow = (seed % 10) / 10  # lets tests see which seed a stream was opened with
        self.fail = fail
        self.buf = (np.zeros(0, np.float32), np.zeros(0, np.float32))
        self.buf_start = 0  # absolute sample index of buf[0]
        self.next = 0  # next frame to emit

    def _frames(self, upto: int) -> MotionBlock:
        first = self.next
        motion, states, latents = [], [], []
        while frame_edge(self.next + 1) <= upto:
            lo, hi = frame_edge(self.next) - self.buf_start, frame_edge(self.next + 1) - self.buf_start
            rms_self, rms_other = (float(np.sqrt(np.mean(x[lo:hi] ** 2))) for x in self.buf)
            row = np.zeros(MOTION_DIM, np.float32)
            row[BS["JawOpen"]] = min(1.0, rms_self * self.gain)
            row[BS["BrowInnerUp"]] = self.brow
            row[HEAD_ROTATION.start] = min(0.3, rms_other * 2.0)  # pitch: nod while the partner talks
            motion.append(row)
            states.append(SPEAKING if rms_self >= max(rms_other, LOUD) else LISTENING if rms_other >= LOUD else IDLE)
            latents.append([rms_self, rms_other])
            self.next += 1
        keep = frame_edge(self.next) - self.buf_start
        self.buf = tuple(x[keep:] for x in self.buf)
        self.buf_start += keep
        return MotionBlock(first, np.array(motion, np.float32).reshape(-1, MOTION_DIM), states,
                           np.array(latents, np.float32).reshape(-1, 2))

    def feed(self, self_audio, other_audio):
        if self.fail and np.any(self_audio):
            raise RuntimeError("this generator fails on purpose")
        assert len(self_audio) == len(other_audio)
        self.buf = tuple(np.concatenate([b, x]) for b, x in zip(self.buf, (self_audio, other_audio)))
        return self._frames(self.buf_start + len(self.buf[0]))

    def flush(self):
        end = self.buf_start + len(self.buf[0])
        k = self.next
        while frame_edge(k) < end:
            k += 1
        pad = frame_edge(k) - end
        self.buf = tuple(np.pad(x, (0, pad)) for x in self.buf)
        return self._frames(frame_edge(k))


class EnergyGenerator(Generator):
    name = "energy"
    lookahead_s = 1 / FRAME_RATE  # frame k needs its own 1/30 s of audio

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.batches: list[int] = []

    def open_stream(self, seed=0, style=None):
        style = style or Style()
        if style.expressiveness > 2:  # a value in Style's range this generator refuses, as real ones may
            raise ValueError(f"expressiveness {style.expressiveness} must be <= 2")
        return EnergyStream(seed, style, self.fail)

    def feed_many(self, items):
        self.batches.append(len(items))
        return super().feed_many(items)


def energy_factory(name: str | None = None, **options) -> Generator:
    """`energy` (the default here), `broken` (fails on any sound) and `unloadable` (cannot load), else the real
    registry."""
    if name in (None, "energy"):
        return EnergyGenerator()
    if name == "unloadable":
        raise FileNotFoundError("model weights not found: /nowhere/motion.pt")
    if name == "broken":
        gen = EnergyGenerator(fail=True)
        gen.name = "broken"
        return gen
    return make_generator(name, **options)


WORKER_COMMAND = [sys.executable, str(TESTS / "worker_entry.py")]


def push_socket(endpoint: str):
    import zmq

    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    return sock


def collect(receiver, sessions, timeout_s: float = 20.0) -> dict:
    """Motion bodies and the closing stats of each session, read until every one of them has closed."""
    got = {s: {"motion": [], "latent": [], "stats": [], "closed": None} for s in sessions}
    deadline = time.time() + timeout_s
    while any(v["closed"] is None for v in got.values()):
        msg = receiver.receive(max(0.0, deadline - time.time()))
        if msg is None:
            raise AssertionError(f"sessions did not close in {timeout_s} s: "
                                 f"{ {s: len(v['motion']) for s, v in got.items()} } frames so far")
        if msg.session not in got:
            continue
        entry = got[msg.session]
        if msg.kind == "stats" and msg.body.get("closed"):
            entry["closed"] = msg.body
        else:
            entry[msg.kind].append(msg.body)
    return got


def next_worker_stats(receiver, timeout_s: float = 10.0) -> dict | None:
    """The next `_worker/stats` body the receiver gets (what came before it is skipped), None if none comes."""
    from backchannel.bridge.protocol import WORKER_TOPIC

    return next((m.body for m in iter(lambda: receiver.receive(timeout_s), None) if m.session == WORKER_TOPIC), None)
