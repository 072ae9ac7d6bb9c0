"""The motion model behind the Generator interface: streaming, batched across sessions, deterministic per seed (to
float rounding, which the batch a stream shares can move in the last digits).

Per stream: both tracks' features (features.TrackFeatures) -> the audio encoder (causal, stateful) -> rows
waiting to be read. Per tick, every stream that has the rows its next chunk needs joins one batched FrameStep
call; that repeats until no stream has a whole chunk's audio. An engine runs the networks (engines.py): by default
onnxruntime on the graphs shipped in models/weights/motion-onnx/, with no torch; torch for CUDA, other weights or
sampler settings (exported to onnxruntime on first use on a CPU, where it runs the small graphs about 3x faster).
"""
from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.signal import butter, lfilter, lfilter_zi

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.eyes import EYE_LOOK_SHAPES, Blinks, Gaze, eye_shapes
from backchannel.models.expression import EXPRESSION_SHAPES, Expression
from backchannel.models.frontend.phonetic import (
    READY_AFTER, PlaceEvidence, closure_evidence, feed_places, rounding_evidence)
from backchannel.models.frontend.features import (
    HOP,
    N_MELS,
    WIN,
    RelativeLevel,
    Rolling,
    TrackFeatures,
    level_db,
    mel_frame_for,
    process_many,
    silence_rows,
)
from backchannel.models.generator import Generator, MotionStream, Style
from backchannel.models.infp.config import OTHER, SELF, ModelConfig, Sampling
from backchannel.models.infp.engines import OnnxEngine, TorchEngine, exported_samplings
from backchannel.models.infp.weights import GRAPHS, load_weights
from backchannel.models.measures import LIPS_SHUT_OPENNESS, mouth_openness
from backchannel.models.motion import (
    BS,
    FRAME_RATE,
    GAZE,
    HEAD_LIMIT_DEG,
    HEAD_POSE,
    HEAD_ROTATION,
    IDLE,
    LISTENING,
    MOTION_DIM,
    SPEAKING,
    MotionBlock,
    frame_count,
)

# The sampler's starting noise: correlated from frame to frame (AR(1), a 0.3 s time constant) and scaled down, so
# the head moves slowly rather than trembling while the seed still picks which motion (docs/model.md "Inference";
# the values were chosen on validation clips, docs/experiments.md "Sampling noise").
NOISE_CORRELATION = 0.9
TEMPERATURE = 0.15
# The head pose shown: the sampled one through a causal 2nd-order Butterworth per axis (3 Hz on pitch, the nodding
# axis; 1.5 Hz on yaw and roll, which carry slow turns and tilts), then scaled per axis so it moves as much as the
# labels' on every axis (docs/model.md "Inference"). Only what is shown changes: the history keeps the samples.
HEAD_CUTOFF_HZ = (3.0, 1.5, 1.5, 3.0, 3.0, 3.0)  # per HEAD_POSE column: pitch, yaw, roll, translation x, y, z
HEAD_GAINS = np.array([1.5, 3.5, 1.8, 1.5, 1.5, 1.5])
HEAD_FILTERS = [butter(2, f / (FRAME_RATE / 2)) for f in HEAD_CUTOFF_HZ]  # (b, a) per column
# Last, each rotation bends smoothly (tanh, slope 1 at the knee) from HEAD_KNEE_DEG towards HEAD_LIMIT_DEG: people
# rarely turn further in conversation (the labels' 99.9th percentile is 7-12 degrees).
HEAD_KNEE_DEG = 7.0  # towards models.motion.HEAD_LIMIT_DEG
# The mouth shown while the avatar speaks opens with its voice's loudness (features.RelativeLevel, 0..1, scales the
# opening the model draws, as the baseline's does), never shutting lips it left apart (they stay at least
# min(drawn, MOUTH_APART) open) and never opening lips it shut: speakers open wider as they speak louder, and the
# corpus's labels vary a vowel's jaw by only +-20% with it (docs/model.md "Inference").
LOUDNESS_CHANNELS = [BS[name] for name in (  # scaling them by g in [0, 1] scales mouth_openness by g
    "JawOpen", "MouthClose", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight")]
MOUTH_APART = 0.08  # above measures.LIPS_SHUT_OPENNESS: lips visibly apart
# Blinks (models.eyes), which the network, sampled near its likeliest motion, never draws: each face blinks at its
# own rate (BLINK_SCALE, log-uniform, drawn from the session's seed), faster while speaking than while listening,
# and a turn it held TURN_S or more that ends may bring a blink on. People blink about 17 times a minute at rest and
# 26 in conversation (Bentivoglio et al. 1997, Mov Disord 12(6)); listeners' blinks gather at the speaker's pauses
# (Nakano & Kitazawa 2010, Exp Brain Res 205). Gaps less irregular than a Poisson process's (BLINK_REGULARITY): a
# 30 s clip's count then says more of the face's rate. Set so that eval counts 10-25 a minute (the labels 19-23).
BLINK_RATES = {IDLE: 0.6, SPEAKING: 0.85, LISTENING: 0.6}  # Blinks' rate per role: 11 and 15 a minute before cues
BLINK_SCALE = (0.8, 1.25)
BLINK_REGULARITY = 3.0
TURN_BLINK, TURN_S = 0.3, 0.5
LIDS = [BS["EyeBlinkLeft"], BS["EyeBlinkRight"]]
# Lips placed and rounded by the voice (lip_place): the network learnt where a closure is from synthetic voices, and
# on real ones it shuts the lips on the tongue's stops and nasals too, and rounds them little. pocketsphinx's acoustic
# model, trained on real speech (frontend.phonetic), tells row by row (10 ms) how likely each place's sounds are.
# Averaged over the rows from 30 ms before a frame to its own (PLACE_ROWS: the last is known by the time the frame
# is, however the audio is chunked), on the frames where the model speaks:
# - lips it shut part to MOUTH_APART where p, b, m are less likely than the tongue's closures (alveolar t, d, n, s,
#   z, l; velar k, g, ng) by more than PART_BELOW (nats);
# - pucker + funnel rise towards ROUNDED_MAX as a rounded vowel (u, o) grows likelier than a spread or open one,
#   reaching it at ROUNDED_FULL nats; they narrow towards SPREAD_MAX as a spread or open vowel grows likelier,
#   reaching it at SPREAD_FULL nats. Ramps, not steps: the shapes do not jump between neighbouring frames.
# Chosen on thirteen recorded readers of eleven other languages, scored on English (docs/experiments.md "A front end
# that knows where the lips close").
PLACE_ROWS = (-3, 0)
PART_BELOW = -2.0
ROUNDED_MAX, ROUNDED_FULL = 0.6, 2.0
SPREAD_MAX, SPREAD_FULL = 0.1, 2.0
ROUNDING = [BS["MouthPucker"], BS["MouthFunnel"]]
LIP_SEAL = [BS[name] for name in ("MouthPressLeft", "MouthPressRight", "MouthRollLower", "MouthRollUpper")]
PREROLL_ROWS = 40  # silence the encoder hears before a stream starts, as training windows at a clip's start do


class ModelStream(MotionStream):
    def __init__(self, gen: "ModelGenerator", seed: int, style: Style):
        cfg = gen.cfg
        self.gen, self.cfg, self.style = gen, cfg, style
        self.rng = np.random.default_rng(seed)
        self.noise: np.ndarray | None = None  # the last frame's starting noise (next_noise)
        self.features = (TrackFeatures(), TrackFeatures())
        self.enc_state = [gen.facts.encoder_state, gen.facts.encoder_state]
        self.rows = [np.zeros((0, cfg.enc_hidden), np.float32) for _ in range(2)]  # encoder outputs not yet read
        self.row0 = -PREROLL_ROWS  # absolute row index of rows[...][0]
        self.fed = 0
        self.k = 0  # next frame to generate
        self.prev = np.repeat(gen.rest[None], cfg.prev_frames, 0)  # (P, L) latents already shown
        self.head_filter: list[np.ndarray] | None = None  # the head filters' states, per pose column (smooth_head)
        # the self track's level (dB) per feature row, preroll first (follow_loudness, expression)
        self.level_rows = Rolling(dtype=np.float64, start=-PREROLL_ROWS)
        self.level = RelativeLevel()  # the self track's level against its running peak
        self.places = PlaceEvidence() if gen.lip_place else None  # the self track's (place_lips)
        self.style_vec = gen.style_vector(style)
        # blinks draw from a generator of their own, so the sampler's noise is the seed's whether they show or not
        blink_rng = np.random.default_rng([seed, 1])
        self.blink_rate = float(np.exp(blink_rng.uniform(*np.log(BLINK_SCALE)))) * style.blink_rate
        self.blinks = Blinks(blink_rng, self.blink_rate * BLINK_RATES[IDLE], BLINK_REGULARITY)
        self.role, self.role_frames = IDLE, 0  # the last frame's role, and for how many frames it has held
        self.expression = Expression(np.random.default_rng([seed, 2]))  # brows, cheeks... around the lips (show_face)
        self.gaze = Gaze(np.random.default_rng([seed, 3]))  # the baseline's looks (show_gaze)
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
        show_heads(self.gen, [self], [motion])

    def voice(self, state: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
        """The self track's level (dB) centred on each new frame, and on the frames where the model speaks that
        level against the voice's running peak (RelativeLevel, 0..1; 0 elsewhere)."""
        if not (self.gen.follow_loudness or self.gen.expression) or not len(state):
            return np.zeros(0), np.zeros(0)
        rows = mel_frame_for(np.arange(first, first + len(state)))
        db = np.array([self.level_rows[j] for j in rows], np.float64)
        loud = np.zeros(len(state))
        for i in np.flatnonzero(state == SPEAKING):
            loud[i] = self.level.update(float(db[i]))
        self.level_rows.drop_before(int(rows[-1]) + 1)
        return db, loud

    def place_lips(self, motion: np.ndarray, state: np.ndarray, first: int) -> None:
        """In place, on the frames where the model speaks: lips parted and rounded where the voice says (PART_BELOW,
        ROUNDED_FULL, SPREAD_FULL); the seal shapes (press, roll) go with a closure that parts."""
        if self.places is None or not len(motion):
            return
        rows = mel_frame_for(np.arange(first, first + len(motion)))
        speaking = np.flatnonzero(state == SPEAKING)
        spans = np.stack([rows[speaking] + PLACE_ROWS[0], rows[speaking] + PLACE_ROWS[1] + 1], 1)
        closure, rounding = self.places.mean_over(spans, (closure_evidence, rounding_evidence))
        self.places.drop_before(int(rows[-1]) + PLACE_ROWS[0] + 1)
        shut = mouth_openness(motion[speaking]) < LIPS_SHUT_OPENNESS
        for i in speaking[shut & (closure < PART_BELOW)]:
            jaw = max(float(motion[i, BS["JawOpen"]]), MOUTH_APART)
            motion[i, BS["JawOpen"]] = jaw
            motion[i, BS["MouthClose"]] = min(float(motion[i, BS["MouthClose"]]), jaw - MOUTH_APART)
            motion[i, LIP_SEAL] = 0.0
        for i, evidence in zip(speaking, rounding):
            drawn = motion[i, ROUNDING]
            total = float(drawn.sum())
            if evidence > 0:  # pucker (u) and funnel (o) shared as the network drew them
                share = drawn / total if total > 0.02 else np.full(2, 0.5)
                motion[i, ROUNDING] = np.maximum(drawn, share * ROUNDED_MAX * min(evidence / ROUNDED_FULL, 1.0))
            elif evidence < 0 and total > SPREAD_MAX:
                narrowed = total - min(-evidence / SPREAD_FULL, 1.0) * (total - SPREAD_MAX)
                motion[i, ROUNDING] = drawn * (narrowed / total)

    def show_mouth(self, motion: np.ndarray, state: np.ndarray, loud: np.ndarray) -> None:
        """In place, on the frames where the model speaks: the mouth's opening scaled by the voice's loudness
        (`loud`, LOUDNESS_CHANNELS); lips the model left apart stay at least min(drawn, MOUTH_APART) apart."""
        if not self.gen.follow_loudness or not len(motion):
            return
        opening = mouth_openness(motion)
        for i in np.flatnonzero(state == SPEAKING):
            keep_apart = min(1.0, MOUTH_APART / max(float(opening[i]), 1e-6))
            motion[i, LOUDNESS_CHANNELS] *= max(float(loud[i]), keep_apart)

    def show_gaze(self, motion: np.ndarray, state: np.ndarray, first: int) -> None:
        """In place: the baseline's looks (eyes.Gaze: saccades, wide more often while speaking) added to the gaze the
        network drew, which barely moves; the eye-look shapes of the gaze shown (eyes.eye_shapes), each the larger of
        it and the network's."""
        if not self.gen.gaze:
            return
        for i, role in enumerate(state.tolist()):
            self.gaze.look(first + i, role == SPEAKING, role == LISTENING)
            yaw, pitch = (float(v) for v in self.gaze.now)
            motion[i, GAZE] += (yaw, pitch, yaw, pitch)  # left eye's yaw, pitch, then the right's
            row = np.zeros(MOTION_DIM, np.float32)
            left_yaw, left_pitch, right_yaw, right_pitch = (float(v) for v in motion[i, GAZE])
            eye_shapes(row, (left_yaw + right_yaw) / 2, (left_pitch + right_pitch) / 2)
            motion[i, EYE_LOOK_SHAPES] = np.maximum(motion[i, EYE_LOOK_SHAPES], row[EYE_LOOK_SHAPES])

    def show_face(self, motion: np.ndarray, state: np.ndarray, db: np.ndarray, loud: np.ndarray) -> None:
        """In place: the baseline's expression around the lips (models.expression: emphasis, effort, attention,
        the smile's lines) from the model's role, its own voice's level and the smile it shows; each of those shapes
        the larger of it and what the network drew. The lips' shapes are left as the network drew them."""
        if not self.gen.expression:
            return
        ex = self.style.expressiveness
        smiles = motion[:, [BS["MouthSmileLeft"], BS["MouthSmileRight"]]].mean(1)
        for i, role in enumerate(state.tolist()):
            row = np.zeros(MOTION_DIM, np.float32)
            speaking, listening = role == SPEAKING, role == LISTENING
            self.expression.emphasise(float(db[i]), speaking)
            # the role is all the model reports of the partner: listening is while or just after the partner talks
            self.expression.brows(row, speaking, listening, listening, float(loud[i]) ** 1.3, ex)
            self.expression.smile_lines(row, float(smiles[i]))
            motion[i, EXPRESSION_SHAPES] = np.maximum(motion[i, EXPRESSION_SHAPES],
                                                      np.clip(row[EXPRESSION_SHAPES], 0.0, 1.0))

    def show_blinks(self, motion: np.ndarray, state: np.ndarray, first: int) -> None:
        """In place: the lids the network drew, or a blink's (Blinks) where it closes them further; at this face's
        rate for each frame's role, the end of a turn (held TURN_S or more) bringing one on with chance TURN_BLINK."""
        if not self.gen.blinks:
            return
        for i, role in enumerate(state.tolist()):
            k = first + i
            lid = self.blinks.lid(k, self.blink_rate * BLINK_RATES[role])
            if role != self.role:
                if self.role != IDLE and self.role_frames >= TURN_S * FRAME_RATE and \
                        self.blinks.rng.random() < TURN_BLINK:
                    self.blinks.cue(k)
                self.role, self.role_frames = role, 0
            self.role_frames += 1
            motion[i, LIDS] = np.maximum(motion[i, LIDS], lid)

    def feed(self, self_audio: np.ndarray, other_audio: np.ndarray) -> MotionBlock:
        return self.gen.feed_many([(self, self_audio, other_audio)])[0]

    def snapshot(self):
        """Everything a feed changes (its pieces are replaced, never edited in place), to undo a failed batch."""
        attrs = dict(self.__dict__, rows=list(self.rows), enc_state=list(self.enc_state),
                     level_rows=copy.copy(self.level_rows), level=copy.copy(self.level),
                     places=self.places and self.places.copy(),
                     blinks=copy.deepcopy(self.blinks), expression=copy.deepcopy(self.expression),
                     gaze=copy.deepcopy(self.gaze))
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
        if self.places is not None:  # silence past the end completes the last frames' rows
            self.places.feed(np.zeros(READY_AFTER + 2 * HOP, np.float32))
        pad = silence_rows(self.gen.flush_rows)  # silence past the end completes the last frames' look-ahead
        self.encode(pad, pad)
        return self.gen.generate_ready([self], limit=owed)[0]


class ModelGenerator(Generator):
    name = "model"

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", sampler_steps: int | None = None,
                 backend: str = "auto", model=None, noise_correlation: float = NOISE_CORRELATION,
                 partner_guidance: float = 1.0, temperature: float = TEMPERATURE, mouth_history: float | None = None,
                 smooth_head: bool = True, head_gain: float = 1.0, follow_loudness: bool = True, blinks: bool = True,
                 gaze: bool = True, expression: bool = True, lip_place: bool = True, precision: str = "fp32",
                 compile: str = "off"):
        """`weights`: a `motion.pt` (torch), a folder of exported graphs (`backchannel export onnx`), or None for the
        shipped model; `model`: a MotionModel in memory (tests, training). `device` (cpu, cuda, cuda:N),
        `precision` (fp32, bf16, fp16) and `compile` (torch.compile's mode, CUDA only): engines.TorchEngine's."""
        self.device, self.precision, self.compile = device, precision, compile
        default = Sampling()
        self.sampling = Sampling(default.sampler_steps if sampler_steps is None else sampler_steps,
                                 float(partner_guidance), default.mouth_history if mouth_history is None
                                 else float(mouth_history))
        self.engine, self.backend = open_engine(weights, model, self.sampling, device, backend, precision, compile)
        self.facts = self.engine.facts
        self.cfg: ModelConfig = self.facts.config
        self.noise_correlation = float(noise_correlation)
        self.temperature = float(temperature)  # scales the starting noise: below 1, closer to the likeliest motion
        self.smooth_head = bool(smooth_head)  # the head stage (show_head); off: the head as sampled
        self.head_gain = float(head_gain)  # scales the head pose shown, as the style's expressiveness does after it
        self.follow_loudness = bool(follow_loudness)  # the mouth opens with the voice's loudness (show_mouth)
        self.blinks = bool(blinks)  # blinks over the network's lids (show_blinks)
        self.gaze = bool(gaze)  # the baseline's looks over the network's gaze (show_gaze)
        self.expression = bool(expression)  # the baseline's brows, cheeks... around the lips (show_face)
        self.lip_place = bool(lip_place)  # lips part and round where the voice says (place_lips)
        self.pose_bounds = (self.facts.pose_low, self.facts.pose_high)
        for option, value in (("head_gain", self.head_gain), ("temperature", self.temperature)):
            if not value >= 0 or not np.isfinite(value):
                raise ValueError(f"{option} must be a finite number >= 0, not {value}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), not {noise_correlation}")
        self.lookahead_s = self.cfg.lookahead_s
        if (self.follow_loudness or self.expression) and self.cfg.lookahead_samples < (WIN + HOP) // 2:
            raise ValueError("follow_loudness and expression read the level centred on each frame: weights with at "
                             f"least {(WIN + HOP) // 2} samples of look-ahead, not {self.cfg.lookahead_samples}")
        if self.lip_place and self.cfg.lookahead_samples < READY_AFTER + 3 * HOP // 2:
            raise ValueError("lip_place reads the phone scores up to each frame's own row: weights with at least "
                             f"{READY_AFTER + 3 * HOP // 2} samples of look-ahead, not {self.cfg.lookahead_samples}")
        self.flush_rows = int(self.cfg.row_for_frame(self.cfg.chunk)) + 2
        self.rest = self.facts.rest_latent

    def describe(self) -> dict:
        return {**super().describe(), **asdict(self.sampling), "latent_dim": self.cfg.latent_dim,
                "chunk_frames": self.cfg.chunk, "backend": self.backend, "device": self.device,
                "precision": self.precision, "noise_correlation": self.noise_correlation,
                "temperature": self.temperature, "smooth_head": self.smooth_head,
                "head_gain": self.head_gain, "follow_loudness": self.follow_loudness, "blinks": self.blinks,
                "gaze": self.gaze, "expression": self.expression, "lip_place": self.lip_place}

    def style_vector(self, style: Style) -> np.ndarray:
        """From reference motion (Style.extra["reference_motion"]: (N, 62) frames), else "no reference"."""
        ref = style.extra.get("reference_motion")
        if ref is None:
            return self.facts.style_null.copy()
        return self.engine.style_vector(np.asarray(ref, np.float32).reshape(-1, MOTION_DIM))

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
            if self.lip_place:
                feed_places([stream.places for stream, _, _ in items], [a for _, a, _ in items])
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
        if self.follow_loudness or self.expression:  # the self track's level, for show_mouth and show_face
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
        made = {}  # stream index -> (latents, motion, states) of its new frames
        for i, (first, chunks) in enumerate(zip(firsts, out)):
            if chunks:
                z, motion, state = (np.concatenate(x) for x in zip(*chunks))
                n = len(z) if limit is None else max(0, min(len(z), limit - first))  # the last chunk may overrun
                made[i] = (z[:n], motion[:n].copy(), state[:n])
        by_length: dict[int, list[int]] = {}  # the head stage runs once for the streams with as many new frames
        for i, (_, motion, _) in made.items():
            by_length.setdefault(len(motion), []).append(i)
        for group in by_length.values():
            show_heads(self, [streams[i] for i in group], [made[i][1] for i in group])
        blocks = []
        for i, (first, s) in enumerate(zip(firsts, streams)):
            if i not in made:
                blocks.append(MotionBlock.empty(first))
                continue
            z, motion, state = made[i]
            db, loud = s.voice(state, first)
            s.place_lips(motion, state, first)
            s.show_mouth(motion, state, loud)
            s.show_blinks(motion, state, first)
            s.show_gaze(motion, state, first)
            apply_style(motion, s.style)
            s.show_face(motion, state, db, loud)
            blocks.append(MotionBlock(first, motion, state.astype(np.int8), z))
        return blocks


def open_engine(weights, model, sampling: Sampling, device: str, backend: str, precision: str = "fp32",
                compile: str = "off"):
    """The engine for these weights and settings, and its backend's name. The shipped graphs need no torch; anything
    else loads the torch model (onnxruntime on the CPU then runs an export of it, cached). Another precision than
    fp32, or a compiled frame step, is torch's."""
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"unknown backend {backend!r} (auto, torch or onnx)")
    if backend == "onnx" and device != "cpu":
        raise ValueError(f"the onnx backend runs on the CPU (onnxruntime); use backend torch for {device}")
    if precision != "fp32" or compile != "off":
        if backend == "onnx":
            raise ValueError(f"precision {precision} and compile {compile} are the torch backend's; the onnx graphs "
                             "run fp32")
        backend = "torch"
    folder = Path(weights) if weights is not None and Path(weights).is_dir() else GRAPHS if weights is None else None
    if model is None and folder is not None and backend != "torch" and device == "cpu":
        exported = exported_samplings(folder)
        if sampling in exported:
            return OnnxEngine(folder, sampling), "onnx"
        if weights is not None:
            raise ValueError(f"{folder} was exported for {', '.join(map(str, exported)) or 'nothing'}, not "
                             f"{sampling}: export again with those settings, or give the torch weights (motion.pt)")
    elif weights is not None and folder is not None:
        raise ValueError(f"{folder} holds exported graphs, which run on the onnx backend on the CPU")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeError(f"{sampling} with backend {backend} on {device} needs torch, which is not installed: "
                           "the shipped graphs serve the default settings alone (pip install 'backchannel[train]' "
                           "for the rest)") from None
    model = model.eval() if model is not None else load_weights(weights)
    if backend == "torch" or device != "cpu":
        return TorchEngine(model, sampling, device, precision, compile), "torch"
    from backchannel.models.infp.export import cached_graphs

    return OnnxEngine(cached_graphs(model, sampling)), "onnx"


def join_states(states: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Streams' encoder states (AudioEncoder.initial_state: convolution histories, batch first, then the GRU's,
    batch second) as one batch."""
    *histories, gru = zip(*states)
    return (*(np.concatenate(h) for h in histories), np.concatenate(gru, axis=1))


def split_states(state: tuple[np.ndarray, ...], n: int) -> list[tuple[np.ndarray, ...]]:
    *histories, gru = state
    return [(*(h[i:i + 1] for h in histories), gru[:, i:i + 1]) for i in range(n)]


def show_heads(gen: ModelGenerator, streams: list[ModelStream], motions: list[np.ndarray]) -> None:
    """ModelStream.show_head for several streams of `gen` whose new frames are as many, in place: one filter
    call per pose axis for all of them, not one per stream (each row filtered with its own stream's state, as
    alone)."""
    if not streams or not len(motions[0]):
        return
    pose = np.stack([m[:, HEAD_POSE] for m in motions]).astype(np.float64)  # (streams, frames, axes)
    if gen.smooth_head:
        filtered, states = np.empty_like(pose), []
        for j, (b, a) in enumerate(HEAD_FILTERS):
            zi = np.stack([s.head_filter[j] if s.head_filter is not None else  # as if it had held its first pose
                           lfilter_zi(b, a) * pose[g, 0, j] for g, s in enumerate(streams)])
            filtered[:, :, j], zf = lfilter(b, a, pose[:, :, j], axis=1, zi=zi)
            states.append(zf)
        pose = filtered * HEAD_GAINS
        for g, s in enumerate(streams):
            s.head_filter = [zf[g] for zf in states]  # a new list: snapshot() keeps the old one
    for motion, shown in zip(motions, np.clip(gen.head_gain * pose, *gen.pose_bounds)):
        motion[:, HEAD_POSE] = shown
    if gen.smooth_head:  # last: a head held at the bound (10.5 deg of pitch) still bends below the limit
        limited = soft_limit(np.stack([m[:, HEAD_ROTATION] for m in motions]), np.radians(HEAD_KNEE_DEG),
                             np.radians(HEAD_LIMIT_DEG))
        for motion, rotation in zip(motions, limited):
            motion[:, HEAD_ROTATION] = rotation


def soft_limit(x: np.ndarray, knee: float, limit: float) -> np.ndarray:
    """x where |x| <= knee; beyond it bent smoothly (slope 1 at the knee) towards +-limit, never reaching it."""
    over = np.abs(x) - knee
    return np.where(over <= 0, x, np.sign(x) * (knee + (limit - knee) * np.tanh(over / (limit - knee))))


def apply_style(motion: np.ndarray, style: Style) -> None:
    """The knobs the model honours after generation: expressiveness scales head motion, smile shifts the mouth.
    (`blink_rate` scales the blinks' rate: ModelStream.show_blinks.)"""
    motion[:, HEAD_POSE] *= style.expressiveness
    if style.smile:
        for side in ("Left", "Right"):
            motion[:, BS["MouthSmile" + side]] = np.clip(motion[:, BS["MouthSmile" + side]] + 0.3 * style.smile, 0, 1)
            motion[:, BS["MouthFrown" + side]] = np.clip(motion[:, BS["MouthFrown" + side]] - 0.3 * style.smile, 0, 1)
