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


def push_socket(endpoint: str, context=None):
    """A PUSH socket to `endpoint` (an in-process worker's inproc endpoint needs its `context`)."""
    import zmq

    sock = (context or zmq.Context.instance()).socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    return sock


def stream(worker, session, tracks, rate=SAMPLE_RATE, fmt="s16le", chunk_ms=20.0, mangle=None, end=True, token=None):
    """The tracks sent to a worker (its endpoints) as a game sends them, as fast as they go, then `end`; `mangle`
    may reorder or drop the chunks first. Returns the chunks sent."""
    from backchannel.bridge import protocol
    from backchannel.bridge.client import audio_chunks, send_chunks

    chunks = audio_chunks(session, tracks, rate, chunk_ms, fmt, token)
    if mangle:
        chunks = mangle(chunks)
    push = push_socket(worker["audio_in"])
    try:
        send_chunks(push, chunks, realtime=False)
        if end:
            push.send(protocol.end_message(session, token))
    finally:
        push.close()
    return chunks


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


# ---- the motion model's causality (test_model.py on a small network, test_model_weights.py on the shipped one) ----

def frames_due(samples: int, lookahead_samples: int, chunk: int = 1) -> int:
    """Frames a motion-model stream owes once fed `samples` of audio, worked out from its declared look-ahead alone:
    frame k (audio time k / FRAME_RATE) reads the newest feature row that ends by its own time plus
    `lookahead_samples` (features.TrackFeatures: row j holds audio up to sample j * HOP + WIN / 2, nothing later),
    is due the moment that row is complete, and frames come in whole chunks."""
    from backchannel.models.frontend.features import HOP, WIN

    k = np.arange((samples + WIN + HOP) * FRAME_RATE // SAMPLE_RATE + 2)  # every frame that could be due
    newest_row = (k * SAMPLE_RATE + FRAME_RATE * (lookahead_samples - WIN // 2)) // (FRAME_RATE * HOP)
    due = int(np.sum(newest_row * HOP + WIN // 2 <= samples))
    return due - due % chunk


def check_causal_at_cuts(gen, self_audio: np.ndarray, other_audio: np.ndarray, cuts, seed: int = 0,
                         atol: float = 1e-5, future_s: float = 0.5):
    """Feeds one stream of `gen` (a ModelGenerator) the real audio in pieces ending at `cuts` (ascending sample
    indices) and asserts, at every cut: it has emitted exactly frames_due(cut) frames (none held back for a hidden
    look-ahead, none early); and fed from the previous cut to this one and then `future_s` of loud noise
    in one call instead (its state put back afterwards: snapshot / restore), it emits the same new frames (nothing
    after the cut moves a frame emitted by it, however the encoder's calls fall). Returns the stream, the real
    blocks and the noise-fed ones (one per cut after the first), for checks that later frames do hear the future."""
    from backchannel.models.frontend.features import HOP

    lookahead, chunk = round(gen.lookahead_s * SAMPLE_RATE), gen.cfg.chunk
    # steps shorter than a feature row's hop, across at least the most rows between two chunks' newest rows (640
    # samples for one frame a chunk): some chunk falls due inside, checked within one row of the audio it may read
    steps, span = np.diff(cuts), -(-chunk * SAMPLE_RATE // (FRAME_RATE * HOP)) * HOP
    assert len(cuts) > 2 and (steps > 0).all() and (steps < HOP).all() and cuts[-1] - cuts[0] >= span, \
        f"cuts {list(cuts)}: need steps under {HOP} samples over at least {span}"
    rng = np.random.default_rng(seed + 1)
    stream = gen.open_stream(seed=seed)
    real, noisy = [stream.feed(self_audio[:cuts[0]], other_audio[:cuts[0]])], []

    def assert_due(block, samples, how):
        got, want = block.first + len(block), frames_due(samples, lookahead, chunk)
        assert got == want, f"{how} {samples} samples: {got} frames out, the declared look-ahead makes {want} due"

    assert_due(real[0], cuts[0], "fed")
    for before, cut in zip(cuts, cuts[1:]):
        noise = rng.normal(0, 0.3, int(future_s * SAMPLE_RATE)).astype(np.float32)
        saved = stream.snapshot()
        branch = stream.feed(np.concatenate([self_audio[before:cut], noise]),
                             np.concatenate([other_audio[before:cut], noise]))
        stream.restore(saved)
        block = stream.feed(self_audio[before:cut], other_audio[before:cut])
        assert block.first == branch.first == real[-1].first + len(real[-1])
        assert_due(block, cut, "fed in pieces")
        assert_due(branch, cut + len(noise), "fed in pieces, the last one with noise after the cut,")
        np.testing.assert_allclose(branch.motion[:len(block)], block.motion, atol=atol, err_msg=f"cut at {cut}")
        real.append(block)
        noisy.append(branch)
    assert sum(len(b) for b in real[1:]) >= 1, "no frame fell due between the cuts: nothing was compared"
    return stream, real, noisy
