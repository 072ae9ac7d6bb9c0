"""The motion model behind the Generator interface: streaming, batched across sessions, deterministic per seed (to
float rounding, which the batch a stream shares can move in the last digits).

Per stream: both tracks' features (features.TrackFeatures) -> the audio encoder (causal, stateful) -> rows
waiting to be read. Per tick, every stream that has the rows its next chunk needs joins one batched FrameStep
call; that repeats until no stream has a whole chunk's audio. An engine runs the networks: torch here, or
onnxruntime (export.OnnxEngine) where that is faster.
"""
from __future__ import annotations

import copy
import importlib.util
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy.signal import butter, lfilter, lfilter_zi

from .audio import SAMPLE_RATE
from .audio_encoder import OTHER, SELF
from .features import (HOP, N_MELS, WIN, RelativeLevel, Rolling, TrackFeatures, level_db, mel_frame_for, process_many,
                       silence_rows)
from .generator import Generator, MotionStream, Style
from .measures import mouth_openness
from .motion import BS, FRAME_RATE, HEAD_POSE, HEAD_ROTATION, MOTION_DIM, SPEAKING, MotionBlock, frame_count
from .motion_model import FrameStep, ModelConfig, MotionModel, Sampling

WEIGHTS = Path(__file__).parent / "weights" / "motion.pt"
# The sampler's starting noise, chosen on the corpus's validation split (docs/model.md): its frame-to-frame
# correlation, and its scale. Independent full-scale noise every frame shook the head (10x the labels' jitter);
# 0.95 correlation drifted (the model's feedback on its own latents compounded slow noise); less noise also syncs
# the lips better, at some cost in head diversity and nods. Re-chosen for runs/v8, which leans on its own history
# less: 0.5 nods after more phrase ends at the same contrast with random moments (validation 50% -> 64%); and for
# runs/v17, which leans on it less again (smooth history noise): 0.3 against 0.4 / 0.5, nods after phrase ends 57% /
# 67% / 72% of 142, at random 16% / 21% / 30% of 600, head jitter 0.065 / 0.082 / 0.099 (30 validation clips).
# With the head stage per axis (40 validation clips, docs/model.md "Slower noise"): half the noise, twice as slow
# (correlation 0.9 per frame, a 0.3 s time constant) keeps the seeds as far apart (1.00 -> 1.08 deg) with the
# difference in slow posture rather than tremble: head jitter 0.038 -> 0.024, nods at random 26% -> 19% for 79% ->
# 74% after phrase ends (contrast 3.0x -> 3.9x). 0.95 drifted again at temperature 0.15-0.2 (1-2% of frames
# beyond 10 degrees).
NOISE_CORRELATION = 0.9
TEMPERATURE = 0.15
# The speech articulators come from a sample drawn without the model's own history (Sampling.mouth_history): with
# it, the shipped weights' lips kept the previous frames' shape and missed what the encoder heard (validation:
# lip-envelope r 0.55 -> 0.78, nods after phrase ends 29% -> 43% at the same jitter; docs/model.md).
MOUTH_HISTORY = 0.0
# The head pose shown: the sampled one through a causal low-pass filter, then scaled per axis (docs/model.md
# "Showing the head"). Sampling at TEMPERATURE 0.3 pulls the head towards its likeliest, calmest motion (on
# validation its pitch moved a third less than the labels', its yaw half as much, its nods shallower) and leaves
# frame-to-frame noise. More noise for the head brought motion back at random too (40 validation clips,
# temperature 0.5: nods after phrase ends 66%, at random 25%); scaling what the audio drives brings it back where
# the conversation puts it. A 2nd-order Butterworth per axis takes the noise: 3 Hz on pitch, the nodding axis
# (nods are 0.1-1.2 s wide; 75 ms of delay), 1.5 Hz on yaw and roll, which carry slow turns and tilts, no nods
# (150 ms); translation follows pitch. Each axis's gain is the labels' detrended spread over the filtered samples'
# (validation: pitch 0.81 / 0.53, yaw 0.84 / 0.24, roll 0.42 / 0.23 deg), so the head moves as much as the labels'
# on every axis. Only what is shown changes: the history keeps the samples.
HEAD_CUTOFF_HZ = (3.0, 1.5, 1.5, 3.0, 3.0, 3.0)  # per HEAD_POSE column: pitch, yaw, roll, translation x, y, z
HEAD_GAINS = np.array([1.5, 3.5, 1.8, 1.5, 1.5, 1.5])
HEAD_FILTERS = [butter(2, f / (FRAME_RATE / 2)) for f in HEAD_CUTOFF_HZ]  # (b, a) per column
# Last, each rotation bends smoothly (tanh, slope 1 at the knee) from HEAD_KNEE_DEG towards HEAD_LIMIT_DEG: the gains
# carry a sampled posture a little off centre further than people turn in conversation (the labels' 99.9th
# percentile is 7-12 degrees). Validation (40 clips): frames beyond 10 degrees 0.57% -> 0.00% (labels 0.4%), nods,
# jitter and the seeds' difference unchanged (docs/model.md "Keeping the head in range").
HEAD_KNEE_DEG, HEAD_LIMIT_DEG = 7.0, 11.0
# The mouth shown while the avatar speaks opens with its voice's loudness (features.RelativeLevel, 0..1, scales the
# opening the model draws, as the baseline's does), never shutting lips it left apart (they stay at least
# min(drawn, MOUTH_APART) open) and never opening lips it shut. Speakers open wider as they speak louder
# (docs/model.md "Following loudness"); the corpus's labels vary a vowel's jaw by only +-20% with it
# (corpus.visemes.LOUDNESS_JAW), and the model learned that much. Validation (40 clips): lip-envelope r 0.764 ->
# 0.895 (baseline 0.837), P/B/M and vowels closed unchanged.
LOUDNESS_CHANNELS = [BS[name] for name in (  # scaling them by g in [0, 1] scales mouth_openness by g
    "JawOpen", "MouthClose", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight")]
MOUTH_APART = 0.08  # above measures.LIPS_SHUT_OPENNESS: lips visibly apart
PREROLL_ROWS = 40  # silence the encoder hears before a stream starts, as training windows at a clip's start do


def load_model(path: str | Path | None = None) -> MotionModel:
    path = Path(path or WEIGHTS)
    if not path.is_file():
        raise FileNotFoundError(f"model weights not found: {path} (train them with `backchannel train motion`)")
    return MotionModel.from_weights(path).eval()


class TorchEngine:
    """Runs the encoder and the frame step with torch (CPU or CUDA); numpy in, numpy out."""

    def __init__(self, model: MotionModel, sampling: Sampling, device: str = "cpu"):
        if device == "cpu":
            # per-tick graphs are tiny: a second intra-op thread only spin-waits, and on two busy cores that made
            # each call about five times slower (measured); batch size, not threads, is what scales
            torch.set_num_threads(1)
        self.device = device
        self.model = model.to(device).eval()
        self.frame_step = FrameStep(self.model, sampling).eval()

    def encoder_state(self):
        return tuple(s.cpu().numpy() for s in self.model.encoder.initial_state(1))

    @torch.no_grad()
    def encode(self, rows: np.ndarray, track: int, state):
        """rows (B, T, F) of one track, the batched state (join_states) -> outputs (B, T, H), the new state."""
        dev = self.device
        out, state = self.model.encoder(torch.as_tensor(rows, device=dev), track,
                                        tuple(torch.as_tensor(s, device=dev) for s in state))
        return out.cpu().numpy(), tuple(s.cpu().numpy() for s in state)

    @torch.no_grad()
    def step(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        outputs = self.frame_step(*(torch.as_tensor(a, device=self.device) for a in arrays))
        return tuple(o.cpu().numpy() for o in outputs)


class ModelStream(MotionStream):
    def __init__(self, gen: "ModelGenerator", seed: int, style: Style):
        cfg = gen.cfg
        self.gen, self.cfg, self.style = gen, cfg, style
        self.rng = np.random.default_rng(seed)
        self.noise: np.ndarray | None = None  # the last frame's starting noise (next_noise)
        self.features = (TrackFeatures(), TrackFeatures())
        self.enc_state = [gen.engine.encoder_state(), gen.engine.encoder_state()]
        self.rows = [np.zeros((0, cfg.enc_hidden), np.float32) for _ in range(2)]  # encoder outputs not yet read
        self.row0 = -PREROLL_ROWS  # absolute row index of rows[...][0]
        self.fed = 0
        self.k = 0  # next frame to generate
        self.prev = np.repeat(gen.rest[None], cfg.prev_frames, 0)  # (P, L) latents already shown
        self.head_filter: list[np.ndarray] | None = None  # the head filters' states, per pose column (smooth_head)
        # the self track's level (dB) per feature row, preroll first (follow_loudness)
        self.level_rows = Rolling(dtype=np.float64, start=-PREROLL_ROWS)
        self.level = RelativeLevel()  # the self track's level against its running peak
        self.style_vec = gen.style_vector(style)
        self.encode(silence_rows(PREROLL_ROWS), silence_rows(PREROLL_ROWS))
        # encoder outputs of the guide window's frames before the next chunk: the preroll's silence at first
        self.audio_past = [np.repeat(r[-1:], cfg.guide_window - cfg.chunk, 0) for r in self.rows]

    def next_noise(self) -> np.ndarray:
        """The sampler's starting noise for the next chunk, (C, L): each frame's is standard normal, as in
        training, but consecutive frames' are correlated (AR(1), NOISE_CORRELATION per frame). The sampler is
        deterministic given its noise, so correlated noise gives coherent motion from frame to frame, while the
        seed still picks which motion: diversity without jitter."""
        rho = self.gen.noise_correlation
        out = np.empty((self.cfg.chunk, self.cfg.latent_dim), np.float32)
        for i in range(self.cfg.chunk):
            fresh = self.rng.standard_normal(self.cfg.latent_dim, np.float32)
            self.noise = fresh if self.noise is None else rho * self.noise + np.sqrt(1 - rho * rho) * fresh
            out[i] = self.noise
        return out * self.gen.temperature

    def encode(self, rows_self: np.ndarray, rows_other: np.ndarray) -> None:
        self.gen.encode_many([(self, rows_self, rows_other)])

    def chunk_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Both tracks' encoder outputs for the guide window ending with the next chunk, (W, A) each."""
        idx = self.cfg.row_for_frame(np.arange(self.k, self.k + self.cfg.chunk)) - self.row0
        return tuple(np.concatenate([past, rows[idx]]) for past, rows in zip(self.audio_past, self.rows))

    def ready(self, limit: int | None) -> bool:
        if limit is not None and self.k >= limit:
            return False
        last = self.k + self.cfg.chunk - 1
        return int(self.cfg.row_for_frame(last)) < self.row0 + len(self.rows[SELF])

    def advance(self, z: np.ndarray, window: tuple[np.ndarray, np.ndarray]) -> None:
        """After a chunk: its latents join the history, its guide window (chunk_inputs) moves on."""
        c = self.cfg.chunk
        self.prev = np.concatenate([self.prev, z])[c:]
        self.audio_past = [w[c:] for w in window]
        self.k += c
        keep = min(int(self.cfg.row_for_frame(self.k)) - self.row0, len(self.rows[SELF]))
        if keep > 0:  # rows before the next frame's are never read again
            self.rows = [r[keep:] for r in self.rows]
            self.row0 += keep

    def show_head(self, motion: np.ndarray) -> None:
        """The head pose of new frames as shown, in place: unless smooth_head is off, filtered (HEAD_FILTERS, their
        states carried across calls) and scaled per axis (HEAD_GAINS); scaled by head_gain; held within the pose
        bound (POSE_BOUND_STD) again; unless smooth_head is off, its rotation softly limited (HEAD_LIMIT_DEG)."""
        pose = motion[:, HEAD_POSE].astype(np.float64)
        if not len(pose):
            return
        if self.gen.smooth_head:
            states = self.head_filter or [  # starts as if the head had held its first pose
                lfilter_zi(b, a) * pose[0, j] for j, (b, a) in enumerate(HEAD_FILTERS)]
            filtered = [lfilter(b, a, pose[:, j], zi=zi) for j, ((b, a), zi) in enumerate(zip(HEAD_FILTERS, states))]
            pose = np.stack([y for y, _ in filtered], 1) * HEAD_GAINS
            self.head_filter = [zi for _, zi in filtered]  # a new list: snapshot() keeps the old one
        motion[:, HEAD_POSE] = np.clip(self.gen.head_gain * pose, *self.gen.pose_bounds)
        if self.gen.smooth_head:  # last: a head held at the bound (10.5 deg of pitch) still bends below the limit
            motion[:, HEAD_ROTATION] = soft_limit(motion[:, HEAD_ROTATION], np.radians(HEAD_KNEE_DEG),
                                                  np.radians(HEAD_LIMIT_DEG))

    def show_mouth(self, motion: np.ndarray, state: np.ndarray, first: int) -> None:
        """In place, on the frames where the model speaks: the mouth's opening scaled by the voice's loudness
        (LOUDNESS_CHANNELS); lips the model left apart stay at least min(drawn, MOUTH_APART) apart."""
        if not self.gen.follow_loudness or not len(motion):
            return
        rows = mel_frame_for(np.arange(first, first + len(motion)))
        opening = mouth_openness(motion)
        for i in np.flatnonzero(state == SPEAKING):
            keep_apart = min(1.0, MOUTH_APART / max(float(opening[i]), 1e-6))
            motion[i, LOUDNESS_CHANNELS] *= max(self.level.update(float(self.level_rows[rows[i]])), keep_apart)
        self.level_rows.drop_before(int(rows[-1]) + 1)

    def feed(self, self_audio: np.ndarray, other_audio: np.ndarray) -> MotionBlock:
        return self.gen.feed_many([(self, self_audio, other_audio)])[0]

    def snapshot(self):
        """Everything a feed changes (its pieces are replaced, never edited in place), to undo a failed batch."""
        attrs = dict(self.__dict__, rows=list(self.rows), enc_state=list(self.enc_state),
                     level_rows=copy.copy(self.level_rows), level=copy.copy(self.level))
        parts = [(f.mel.__dict__.copy(), f.vad.__dict__.copy(), f.vad_rows.__dict__.copy()) for f in self.features]
        return attrs, parts, self.rng.bit_generator.state

    def restore(self, snapshot) -> None:
        attrs, parts, rng_state = snapshot
        self.__dict__.update(attrs)
        for f, (mel, vad, vad_rows) in zip(self.features, parts):
            f.mel.__dict__.update(mel)
            f.vad.__dict__.update(vad)
            f.vad_rows.__dict__.update(vad_rows)
        self.rng.bit_generator.state = rng_state

    def flush(self) -> MotionBlock:
        owed = frame_count(self.fed / SAMPLE_RATE)
        self.encode(self.features[SELF].flush(), self.features[OTHER].flush())
        pad = silence_rows(self.gen.flush_rows)  # silence past the end completes the last frames' look-ahead
        self.encode(pad, pad)
        return self.gen.generate_ready([self], limit=owed)[0]


class ModelGenerator(Generator):
    name = "model"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", steps: int | None = None,
                 backend: str = "auto", model: MotionModel | None = None,
                 noise_correlation: float = NOISE_CORRELATION, partner_guidance: float = 1.0,
                 temperature: float = TEMPERATURE, mouth_history: float = MOUTH_HISTORY, smooth_head: bool = True,
                 head_gain: float = 1.0, self_guidance: float = 1.0, follow_loudness: bool = True):
        self.device = device
        self.model = model.eval() if model is not None else load_model(weights)
        self.cfg: ModelConfig = self.model.cfg
        steps = self.cfg.steps if steps is None else steps
        if isinstance(steps, bool) or steps != int(steps) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, not {steps}")
        self.sampling = Sampling(int(steps), float(partner_guidance), float(mouth_history), float(self_guidance))
        self.noise_correlation = float(noise_correlation)
        self.temperature = float(temperature)  # scales the starting noise: below 1, closer to the likeliest motion
        self.smooth_head = bool(smooth_head)  # the head stage (show_head); off: the head as sampled
        self.head_gain = float(head_gain)  # scales the head pose shown, as the style's expressiveness does after it
        self.follow_loudness = bool(follow_loudness)  # the mouth opens with the voice's loudness (show_mouth)
        self.pose_bounds = tuple(x.cpu().numpy() for x in self.model.pose_bounds())
        for option, value in (("head_gain", self.head_gain), ("temperature", self.temperature),
                              ("partner_guidance", self.sampling.partner_guidance),
                              ("self_guidance", self.sampling.self_guidance)):
            if not value >= 0 or not np.isfinite(value):
                raise ValueError(f"{option} must be a finite number >= 0, not {value}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), not {noise_correlation}")
        if not 0.0 <= self.sampling.mouth_history <= 1.0:
            raise ValueError(f"mouth_history must be in [0, 1], not {mouth_history}")
        self.lookahead_s = self.cfg.lookahead_s
        if self.follow_loudness and self.cfg.lookahead_samples < (WIN + HOP) // 2:
            raise ValueError("follow_loudness reads the level centred on each frame: weights with at least "
                             f"{(WIN + HOP) // 2} samples of look-ahead, not {self.cfg.lookahead_samples}")
        self.flush_rows = int(self.cfg.row_for_frame(self.cfg.chunk)) + 2
        if backend == "auto":  # onnxruntime runs these small graphs about 3x faster than torch on a CPU
            backend = "onnx" if device == "cpu" and importlib.util.find_spec("onnxruntime") else "torch"
        if backend == "torch":
            self.engine = TorchEngine(self.model, self.sampling, device)
        elif backend == "onnx":
            from .export import OnnxEngine

            if device != "cpu":
                raise ValueError(f"the onnx backend runs on the CPU (onnxruntime); use backend torch for {device}")
            self.engine = OnnxEngine.from_model(self.model, self.sampling)
        else:
            raise ValueError(f"unknown backend {backend!r} (auto, torch or onnx)")
        self.backend = backend
        with torch.no_grad():
            self.rest = self.model.rest_latent().cpu().numpy()

    def describe(self) -> dict:
        return {**super().describe(), **asdict(self.sampling), "latent_dim": self.cfg.latent_dim,
                "chunk_frames": self.cfg.chunk, "backend": self.backend, "noise_correlation": self.noise_correlation,
                "temperature": self.temperature, "smooth_head": self.smooth_head,
                "head_gain": self.head_gain, "follow_loudness": self.follow_loudness}

    @torch.no_grad()
    def style_vector(self, style: Style) -> np.ndarray:
        """From reference motion (Style.extra["reference_motion"]: (N, 62) frames), else "no reference"."""
        ref = style.extra.get("reference_motion")
        if ref is None:
            return self.model.style_encoder.null.detach().cpu().numpy().copy()
        ref = torch.as_tensor(np.asarray(ref, np.float32).reshape(1, -1, MOTION_DIM), device=self.device)
        return self.model.style_vector(ref, 1)[0].cpu().numpy()

    def open_stream(self, seed: int = 0, style: Style | None = None) -> MotionStream:
        return ModelStream(self, seed, style or Style())

    def feed_many(self, items) -> list[MotionBlock]:
        """All or nothing: if anything fails, every stream is put back as it was and the error is raised, so the
        worker can retry the sessions one by one and close only the one that fails."""
        if len({id(stream) for stream, _, _ in items}) < len(items):
            raise ValueError("a stream may appear once per feed_many call: its audio would be read twice")
        snapshots = [stream.snapshot() for stream, _, _ in items]
        try:
            for stream, a, b in items:
                if len(a) != len(b):
                    raise ValueError(f"tracks must be fed aligned: {len(a)} vs {len(b)} samples")
                stream.fed += len(a)
            tracks = [f for stream, _, _ in items for f in stream.features]  # each stream's SELF, then OTHER
            rows = process_many(tracks, [x for _, a, b in items for x in (a, b)])
            self.encode_many([(stream, *rows[2 * i:2 * i + 2]) for i, (stream, _, _) in enumerate(items)])
            return self.generate_ready([stream for stream, _, _ in items], limit=None)
        except Exception:
            for (stream, _, _), snapshot in zip(items, snapshots):
                stream.restore(snapshot)
            raise

    def encode_many(self, items: list[tuple[ModelStream, np.ndarray, np.ndarray]]) -> None:
        """New feature rows (stream, self rows, other rows) through the encoder: one call per track for all the
        streams with as many new rows (live sessions fed alike all have), not one per stream and track: at 8
        sessions, about a tenth less worker time (docs/benchmarks.md; the VAD is batched the same way)."""
        if self.follow_loudness:  # the self track's level, for the mouth shown (show_mouth)
            for stream, rows_self, _ in items:
                stream.level_rows.extend(level_db(rows_self[:, :N_MELS]))
        for track in (SELF, OTHER):
            groups: dict[int, list[tuple[ModelStream, np.ndarray]]] = {}
            for stream, *rows in items:
                if len(rows[track]):
                    groups.setdefault(len(rows[track]), []).append((stream, rows[track]))
            for group in groups.values():
                state = join_states([stream.enc_state[track] for stream, _ in group])
                out, state = self.engine.encode(np.stack([rows for _, rows in group]), track, state)
                for i, ((stream, _), new) in enumerate(zip(group, split_states(state, len(group)))):
                    stream.enc_state[track] = new
                    stream.rows[track] = np.concatenate([stream.rows[track], out[i]])

    def generate_ready(self, streams: list[ModelStream], limit: int | None) -> list[MotionBlock]:
        """Every frame the streams have audio for, one chunk at a time, batched across streams."""
        cfg = self.cfg
        firsts = [s.k for s in streams]
        out: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in streams]
        while active := [i for i, s in enumerate(streams) if s.ready(limit)]:
            batch = [streams[i] for i in active]
            windows = [s.chunk_inputs() for s in batch]
            a_self, a_other = (np.stack(x) for x in zip(*windows))
            noise = np.stack([s.next_noise() for s in batch])
            z, motion, logits = self.engine.step(a_self, a_other, np.stack([s.style_vec for s in batch]),
                                                 np.stack([s.prev for s in batch]), noise)
            for n, (i, s) in enumerate(zip(active, batch)):
                s.advance(z[n], windows[n])
                out[i].append((z[n], motion[n], logits[n].argmax(-1)))
        blocks = []
        for first, s, chunks in zip(firsts, streams, out):
            if not chunks:
                blocks.append(MotionBlock.empty(first))
                continue
            z, motion, state = (np.concatenate(x) for x in zip(*chunks))
            n = len(z) if limit is None else max(0, min(len(z), limit - first))  # the last chunk may overrun
            motion = motion[:n].copy()
            s.show_head(motion)
            s.show_mouth(motion, state[:n], first)
            apply_style(motion, s.style)
            blocks.append(MotionBlock(first, motion, state[:n].astype(np.int8), z[:n]))
        return blocks


def join_states(states: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Streams' encoder states (AudioEncoder.initial_state: convolution histories, batch first, then the GRU's,
    batch second) as one batch."""
    *histories, gru = zip(*states)
    return (*(np.concatenate(h) for h in histories), np.concatenate(gru, axis=1))


def split_states(state: tuple[np.ndarray, ...], n: int) -> list[tuple[np.ndarray, ...]]:
    *histories, gru = state
    return [(*(h[i:i + 1] for h in histories), gru[:, i:i + 1]) for i in range(n)]


def soft_limit(x: np.ndarray, knee: float, limit: float) -> np.ndarray:
    """x where |x| <= knee; beyond it bent smoothly (slope 1 at the knee) towards +-limit, never reaching it."""
    over = np.abs(x) - knee
    return np.where(over <= 0, x, np.sign(x) * (knee + (limit - knee) * np.tanh(over / (limit - knee))))


def apply_style(motion: np.ndarray, style: Style) -> None:
    """The knobs the model honours after generation: expressiveness scales head motion, smile shifts the mouth.
    (Its blinks come from the network; `blink_rate` is a baseline knob.)"""
    motion[:, HEAD_POSE] *= style.expressiveness
    if style.smile:
        for side in ("Left", "Right"):
            motion[:, BS["MouthSmile" + side]] = np.clip(motion[:, BS["MouthSmile" + side]] + 0.3 * style.smile, 0, 1)
            motion[:, BS["MouthFrown" + side]] = np.clip(motion[:, BS["MouthFrown" + side]] - 0.3 * style.smile, 0, 1)
