"""The governor in the worker: when ticks overrun, the sessions on the model step down a tier, each from its next
frame not yet published, and none of their frames is dropped or sent twice."""
import time

import numpy as np

from backchannel.bridge import protocol
from backchannel.bridge.outputs import Sink
from backchannel.bridge.worker import Worker, WorkerConfig

from .helpers import EnergyGenerator

ANY_PORT = dict(audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*", control="tcp://127.0.0.1:*")
COST_S = {"model[sampler_steps=4]": 0.05, "model[sampler_steps=2]": 0.012, "model[sampler_steps=1]": 0.004,
          "baseline": 0.0}  # per tick: the full tier overruns a 33 ms frame budget, the next fits


class Costly(EnergyGenerator):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def feed_many(self, items):
        time.sleep(COST_S[self.spec])
        return super().feed_many(items)


class Frames(Sink):
    name = "frames"

    def __init__(self):
        self.seqs = {}

    def send(self, session, block):
        self.seqs.setdefault(session, []).extend(range(block.first, block.first + len(block)))

    def stats(self):
        return {}


def test_overrunning_ticks_step_the_sessions_down_a_tier_without_dropping_a_frame():
    frames = Frames()
    w = Worker(WorkerConfig(**ANY_PORT, generator="model"),
               generator_factory=lambda name=None: Costly(name if name in COST_S else "model[sampler_steps=4]"),
               sinks=[frames])
    try:
        assert w.governor.tier.name == "full" and w.default_generator.spec == "model[sampler_steps=4]"
        start = time.time()
        for i in range(150):  # 3 s of two sessions, 20 ms chunks, in simulated real time
            now = start + i * 0.02
            for name in ("a", "b"):
                for track in ("self", "other"):
                    w.ingest([protocol.audio_message(name, track, i, i * 0.02, np.full(320, 0.1), 16000)], now)
            w.tick(now)
        stats = w.stats()["governor"]
        assert stats["tier"] == "fast" and stats["changes"][0]["from"] == "full"  # stepped down, and held there
        assert all(s.generator.spec == "model[sampler_steps=2]" for s in w.sessions.values())
        assert w.control({"type": "stats", "session": "a"}, time.time())["tier"] == "fast"  # as <session>/stats
        for name in ("a", "b"):
            seqs = frames.seqs[name]
            assert seqs == list(range(len(seqs))) and len(seqs) > 60  # consecutive: none dropped or repeated
            assert w.sessions[name].errors == {}
    finally:
        w.shutdown()


class Overloaded(Costly):
    def feed_many(self, items):
        time.sleep(COST_S["model[sampler_steps=4]"])  # every tier overruns the frame budget
        return EnergyGenerator.feed_many(self, items)


class TierProbe(Frames):
    def __init__(self):
        super().__init__()
        self.tiers = []

    def set_tier(self, tier):
        self.tiers.append(tier.name)


def test_a_pinned_tier_holds_under_overrunning_ticks_and_its_outputs_follow_it_from_the_start():
    probe, added = TierProbe(), TierProbe()
    w = Worker(WorkerConfig(**ANY_PORT, generator="model", tier="faster"),
               generator_factory=lambda name=None: Overloaded(name if name in COST_S else "model[sampler_steps=4]"),
               sinks=[probe])
    try:
        w.add_sink(added)  # as serve adds the rendered frames' sink
        assert probe.tiers == ["faster"] and added.tiers == ["faster"]  # its frame size and JPEG quality at once
        assert w.default_generator.spec == "model[sampler_steps=1]"
        assert w.governor.telemetry is None  # device cpu: no GPU to read (not GPU 0 whatever it is doing)
        start = time.time()
        for i in range(40):  # every tick overruns: an unpinned governor steps down within a few
            now = start + i * 0.02
            for track in ("self", "other"):
                w.ingest([protocol.audio_message("a", track, i, i * 0.02, np.full(320, 0.1), 16000)], now)
            w.tick(now)
        stats = w.stats()["governor"]
        assert stats["pinned"] and stats["tier"] == "faster" and stats["changes"] == []
        assert w.sessions["a"].generator.spec == "model[sampler_steps=1]" and len(probe.seqs["a"]) > 10
        assert probe.tiers == ["faster"]
        assert w.session_stats(w.sessions["a"])["tier"] == "faster"
    finally:
        w.shutdown()


def test_rendered_frames_take_the_tier_s_jpeg_quality():
    from backchannel.bridge.governor import load_tiers
    from backchannel.bridge.outputs.frames import FrameEncoder, FrameSink

    class Pub:
        def send_multipart(self, parts):
            pass

    sink = FrameSink(Pub(), FrameEncoder(renderer=None, fmt="jpeg", quality=85))
    try:
        tiers, _ = load_tiers()
        sink.set_tier(tiers[-1])
        assert sink.encoder.quality == tiers[-1].frame_quality < 85
    finally:
        sink.close()


def test_a_file_sent_faster_than_real_time_is_no_reason_to_step_down():
    """A burst of audio makes long ticks and a long backlog, but the worker answers it faster than real time: the
    tier holds (before this rule, a file sent as fast as possible pushed the model to its lowest tier)."""
    w = Worker(WorkerConfig(**ANY_PORT, generator="model"),
               generator_factory=lambda name=None: Costly(name if name in COST_S else "model[sampler_steps=4]"))
    try:
        start = time.time()
        for i in range(100):  # 10 s of audio in 1 s of wall time, 0.1 s chunks, a tick after each
            now = start + i * 0.01
            for track in ("self", "other"):
                w.ingest([protocol.audio_message("file", track, i, i * 0.1, np.full(1600, 0.1), 16000)], now)
            w.tick(now)
        assert w.governor.tier.name == "full" and w.stats()["governor"]["changes"] == []
    finally:
        w.shutdown()


def test_the_engine_settings_reach_every_tier_of_the_model_and_nothing_else():
    """serve --device/--precision: each tier's model generator is loaded with them; the baseline tier is not."""
    w = Worker(WorkerConfig(**ANY_PORT, generator="model", precision="bf16", tier="faster"))
    try:
        described = {tier: w.tier_generators[tier].describe() for tier in ("full", "fast", "faster")}
        assert {(d["precision"], d["backend"], d["sampler_steps"]) for d in described.values()} == {
            ("bf16", "torch", 4), ("bf16", "torch", 2), ("bf16", "torch", 1)}
        assert "precision" not in w.tier_generators["baseline"].describe()
        assert w.describe()["generator"]["precision"] == "bf16"  # sessions start on the pinned tier's
    finally:
        w.close()


def test_a_worker_asked_for_cuda_where_there_is_none_stops_at_start_saying_so():
    import pytest
    import torch

    from backchannel.bridge.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: scripts/gpu-check.sh serves on it")
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        Worker(WorkerConfig(**ANY_PORT, generator="model", device="cuda"))
    assert main(["serve", "--generator", "model", "--device", "cuda", "--audio-in", "tcp://127.0.0.1:*",
                 "--motion-out", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*"]) == 2


def test_rendered_frames_take_the_tier_s_size_at_most_the_operator_s():
    """A tier that renders smaller makes the next pieces at its frame_size, from the same portrait; a tier larger
    than the size the worker started with keeps that size; one the renderer cannot make leaves the size as it was;
    the frame bodies say the size they have."""
    import threading

    import cv2
    import msgpack

    from backchannel.bridge.cli.portrait import open_renderer
    from backchannel.bridge.governor import Tier
    from backchannel.bridge.outputs.frames import FrameEncoder, FrameSink
    from backchannel.models.motion import MOTION_DIM, MotionBlock
    from backchannel.models.render import BUNDLED_PORTRAIT

    class Pub:
        def __init__(self):
            self.bodies, self.lock = [], threading.Lock()

        def send_multipart(self, parts):
            with self.lock:
                self.bodies.append(msgpack.unpackb(parts[1]))

    portrait = {"portrait": str(BUNDLED_PORTRAIT), "framing": "face"}
    pub, made = Pub(), []

    def resize(size):
        made.append(size)
        return open_renderer({**portrait, "size": size})

    sink = FrameSink(pub, FrameEncoder(open_renderer({**portrait, "size": 128}), "jpeg", 80), resize=resize)
    block = MotionBlock(0, np.zeros((3, MOTION_DIM), np.float32), np.zeros(3, np.int8))
    try:
        for first, tier in ((0, None), (3, Tier("small", "baseline", 96, 60)), (6, Tier("big", "baseline", 512, 90)),
                            (9, Tier("small again", "baseline", 97, 60)), (12, Tier("tiny", "baseline", 32, 60))):
            if tier is not None:
                sink.set_tier(tier)
            sink.send("s", MotionBlock(first, block.motion, block.state))
            deadline = time.time() + 10
            while len(pub.bodies) < first + 3 and time.time() < deadline:
                sink.publish_ready()
                time.sleep(0.01)
    finally:
        sink.close()
    sizes = [(b["seq"], b["width"], b["height"]) for b in pub.bodies]
    assert sizes == [(s, w, w) for s, w in zip(range(15), [128] * 3 + [96] * 3 + [128] * 3 + [96] * 6)]
    assert made == [96, 32]  # 96 made once and used again; 32 px is below what the renderer makes
    for body in pub.bodies:
        image = cv2.imdecode(np.frombuffer(body["data"], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (body["height"], body["width"], 3)
