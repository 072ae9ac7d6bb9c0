"""The rule-based baseline generator: the lowest quality tier and the yardstick every model figure is compared with.

Speaking: voice activity on the self track gates the mouth; the self track's level (normalised to the speaker's own
running peak, so recording level does not matter) opens the jaw, its spectral balance picks rounded or spread lips,
and loudness rises bring emphasis (a small head dip, brow lift, wider eyes). The partner track never reaches the
mouth. Listening: the partner track's phrase ends bring nods (sometimes with a brow raise), long partner turns bring
small backchannel nods, and a smile grows while listening. Always: blinks, gaze saccades (averted more while
speaking), idle head sway. The rest of the face follows the same cues (models/expression.py, shared with the model,
and `_expression`): the smile brings cheeks, squints, dimples and a little sneer; sustained loud speech lowers the
brows; attentive listening lifts the inner brows; the lips meet and press inside speech and at its phrase ends,
the cheeks fill a little on held stops, hissy sounds tuck the lower lip and bring the jaw forward, and the jaw and
mouth drift sideways a little, each face with its own asymmetry. Everything is decided frame by frame in order from
a seeded generator, so the output does not depend on how the audio was chunked. Blinks and looks: models/eyes.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.eyes import Blinks, Gaze, eye_shapes
from backchannel.models.expression import Expression
from backchannel.models.frontend.features import N_MELS, WIN, LogMel, RelativeLevel, Rolling, mel_frame_for, power_db
from backchannel.models.frontend.vad import WINDOW, WINDOW_S, VadStream
from backchannel.models.generator import Generator, MotionStream, Style
from backchannel.models.motion import (
    BS,
    FRAME_RATE,
    GAZE,
    HEAD_ROTATION,
    HEAD_TRANSLATION,
    IDLE,
    LISTENING,
    MOTION_DIM,
    SPEAKING,
    MotionBlock,
    frame_count,
    neutral,
)

SAMPLES_PER_FRAME = SAMPLE_RATE / FRAME_RATE


def vad_window_for(frame: int) -> int:
    """The 32 ms VAD window holding a motion frame's time."""
    return int(frame * SAMPLES_PER_FRAME) // WINDOW


class Activity:
    """Hysteresis + hangover on one track's speech probability; reports segments as they end."""

    def __init__(self, on: float = 0.5, off: float = 0.35, hangover_s: float = 0.25, min_segment_s: float = 0.1):
        self.on, self.off = on, off
        self.hangover = int(hangover_s * FRAME_RATE)
        self.min_segment = int(min_segment_s * FRAME_RATE)
        self.active = False
        self.length = 0  # frames in the current segment
        self.quiet = 0  # frames below `off` inside the current segment
        self.since_end = 10 ** 6  # frames since the last segment ended

    def update(self, p: float) -> int:
        """Advance one frame; returns the length (frames) of a segment that just ended, else 0."""
        if not self.active:
            self.since_end += 1
            if p >= self.on:
                self.active, self.length, self.quiet = True, 1, 0
            return 0
        self.length += 1
        self.quiet = self.quiet + 1 if p < self.off else 0
        if self.quiet > self.hangover:
            self.active, self.since_end = False, 0
            spoken = self.length - self.quiet
            return spoken if spoken >= self.min_segment else 0
        return 0


@dataclass
class Gesture:
    """A scheduled movement: `shape` (frames,) scaled into the channels named by `weights`."""

    start: int
    shape: np.ndarray
    weights: dict[int, float] = field(default_factory=dict)

    def at(self, k: int) -> float:
        i = k - self.start
        return float(self.shape[i]) if 0 <= i < len(self.shape) else 0.0


def bump(seconds: float, cycles: int = 1) -> np.ndarray:
    """A smooth 0 -> 1 -> 0 (or several) over `seconds`."""
    n = max(2, int(seconds * FRAME_RATE))
    return np.sin(np.linspace(0, np.pi * cycles, n)) ** 2


PITCH, YAW, ROLL = HEAD_ROTATION.start, HEAD_ROTATION.start + 1, HEAD_ROTATION.start + 2
# at an own phrase end the lips close and press, the chin lifts a little (a face finishing a sentence)
PHRASE_END = {BS["MouthPressLeft"]: 0.25, BS["MouthPressRight"]: 0.25, BS["MouthShrugLower"]: 0.3,
              BS["MouthRollLower"]: 0.12, BS["MouthRollUpper"]: 0.1, BS["MouthFrownLeft"]: 0.1,
              BS["MouthFrownRight"]: 0.1}


class BaselineStream(MotionStream):
    def __init__(self, seed: int, style: Style):
        self.rng = np.random.default_rng(seed)
        self.style = style
        self.mel = LogMel()
        self.mel_rows = Rolling(N_MELS)  # self-track log-mel
        self.vad = (VadStream(), VadStream())  # self, other
        self.probs = (Rolling(), Rolling())  # speech probability per 32 ms window: self, other
        self.fed = 0  # samples fed per track
        self.next = 0  # next frame to emit
        self.speech = (Activity(hangover_s=0.15), Activity(hangover_s=0.25))
        self.level = RelativeLevel()  # the avatar's own speech level against its running peak
        self.mouth = np.zeros(3, np.float32)  # smoothed open, round, spread
        self.mean_centroid = 0.0
        self.speech_frames = 0
        self.sway_gain = 1.0
        self.smile = 0.0
        self.gestures: list[Gesture] = []
        self.blinks = Blinks(self.rng, self.style.blink_rate)
        self.gaze = Gaze(self.rng)
        self.turn_nod_at = 0
        self.missed_phrase_end = False
        sway_rng = np.random.default_rng(seed + 7919)
        self.sway = (sway_rng.uniform(0.05, 0.25, (3, 2)), sway_rng.uniform(0, 2 * np.pi, (3, 2)))
        # the rest of the face draws from its own generator, so the blinks, saccades and nods above keep theirs
        self.face_rng = np.random.default_rng(seed + 15485863)
        self.expression = Expression(self.face_rng)  # brows, eyes, cheeks: emphasis, effort, attention, smile lines
        self.drift = (self.face_rng.uniform(0.08, 0.3, 2), self.face_rng.uniform(0, 2 * np.pi, 2))  # jaw, mouth
        self.fricative = 0.0  # hiss (a high spectral centroid at a low level): f, v, s, sh
        self.closed = 0  # frames the lips have been together inside own speech
        self.puff = 0.0
        self.partner_was_active = False

    # ---- stream plumbing -------------------------------------------------------------------------------------
    def feed(self, self_audio: np.ndarray, other_audio: np.ndarray) -> MotionBlock:
        if len(self_audio) != len(other_audio):
            raise ValueError(f"tracks must be fed aligned: {len(self_audio)} vs {len(other_audio)} samples")
        self.fed += len(self_audio)
        self._analyse(self_audio, other_audio)
        return self._emit(limit=None)

    def flush(self) -> MotionBlock:
        owed = frame_count(self.fed / SAMPLE_RATE)
        pad = np.zeros(WINDOW + WIN, np.float32)  # enough silence to complete the last frame's windows
        self._analyse(pad, pad)
        return self._emit(limit=owed)

    def _analyse(self, a: np.ndarray, b: np.ndarray) -> None:
        self.mel_rows.extend(self.mel.process(a))
        for probs, vad, x in zip(self.probs, self.vad, (a, b)):
            probs.extend(vad.process(x)[:, 0])

    def _emit(self, limit: int | None) -> MotionBlock:
        first, rows, states = self.next, [], []
        while limit is None or self.next < limit:
            k = self.next
            w, j = vad_window_for(k), int(mel_frame_for(k))
            if w >= self.probs[0].end or w >= self.probs[1].end or j >= self.mel_rows.end:
                break
            row, state = self._frame(k, self.mel_rows[j], float(self.probs[0][w]), float(self.probs[1][w]))
            rows.append(row)
            states.append(state)
            self.next += 1
        self.mel_rows.drop_before(int(mel_frame_for(self.next)))
        for probs in self.probs:
            probs.drop_before(vad_window_for(self.next))
        return MotionBlock(first, np.array(rows, np.float32).reshape(-1, MOTION_DIM), states)

    # ---- behaviour ---------------------------------------------------------------------------------------------
    def _frame(self, k: int, mel: np.ndarray, p_self: float, p_other: float) -> tuple[np.ndarray, int]:
        row = neutral(1)[0]
        ex = self.style.expressiveness
        own_ended = self.speech[0].update(p_self)
        other_ended = self.speech[1].update(p_other)
        speaking, partner = self.speech[0].active, self.speech[1].active
        listening = not speaking and (partner or self.speech[1].since_end < 1.5 * FRAME_RATE)
        state = SPEAKING if speaking else LISTENING if listening else IDLE

        # mouth: level relative to the speaker's own peak, shape from spectral balance
        power = np.exp(mel.astype(np.float64))
        db = float(power_db(power))  # the powers' exp is taken once, here
        if speaking:
            open_t = self.level.update(db) ** 1.3
            # lip shape from the spectral centroid relative to this speaker's running mean, so voice pitch and
            # channel bandwidth (telephone, 8 kHz) shift the reference rather than the shape
            centroid = float((power * np.arange(N_MELS)).sum() / (power.sum() + 1e-12)) / N_MELS
            self.speech_frames += 1
            self.mean_centroid += max(0.02, 1.0 / self.speech_frames) * (centroid - self.mean_centroid)
            round_t = float(np.clip((self.mean_centroid - centroid) / 0.08, 0.0, 1.0))
            spread_t = float(np.clip((centroid - self.mean_centroid) / 0.08, 0.0, 1.0))
            hiss_t = float(np.clip((centroid - self.mean_centroid - 0.05) / 0.1, 0.0, 1.0)) * (1.0 - open_t)
        else:
            open_t = round_t = spread_t = hiss_t = 0.0
        target = np.array([open_t, round_t, spread_t], np.float32)
        rate = np.where(target > self.mouth, 0.75, 0.6)  # open fast, close a little slower
        self.mouth += rate * (target - self.mouth)
        o, r, s = (float(v) for v in self.mouth)
        row[BS["JawOpen"]] = 0.6 * o
        row[BS["MouthLowerDownLeft"]] = row[BS["MouthLowerDownRight"]] = 0.35 * o * (1 - r)
        row[BS["MouthUpperUpLeft"]] = row[BS["MouthUpperUpRight"]] = 0.2 * o * s
        row[BS["MouthStretchLeft"]] = row[BS["MouthStretchRight"]] = 0.3 * o * s
        row[BS["MouthFunnel"]] = 0.45 * r * np.sqrt(o)
        row[BS["MouthPucker"]] = 0.35 * r * (1 - o)
        if speaking and o < 0.1:  # a closure inside speech: press the lips
            row[BS["MouthPressLeft"]] = row[BS["MouthPressRight"]] = 0.3 * (1 - o / 0.1)

        # emphasis: a quick rise of the speaker's level over its slow average dips the head (the brows: Expression)
        row[PITCH] += 0.07 * ex * self.expression.emphasise(db, speaking)
        self.expression.brows(row, speaking, listening, partner, open_t, ex)
        self._expression(row, k, speaking, partner, own_ended, hiss_t)

        # listening: nods at the partner's phrase ends, small nods through long partner turns, a growing smile
        if other_ended >= 0.5 * FRAME_RATE and not speaking:
            # most phrase ends get a nod, and never two in a row without one
            if self.missed_phrase_end or self.rng.random() < 0.85:
                self._nod(k + int(self.rng.integers(0, 5)), ex, brows=self.rng.random() < 0.35)
                self.missed_phrase_end = False
            else:
                self.missed_phrase_end = True
        if partner and not speaking and self.speech[1].length > 3 * FRAME_RATE and k >= self.turn_nod_at:
            if self.speech[1].length % int(2.5 * FRAME_RATE) == 0 and self.rng.random() < 0.6:
                self._nod(k, 0.5 * ex, brows=False)
                self.turn_nod_at = k + 2 * FRAME_RATE
        smile_t = (0.25 if listening else 0.08 if speaking else 0.1) + 0.3 * self.style.smile
        self.smile += 0.03 * (smile_t - self.smile)
        row[BS["MouthSmileLeft"]] += max(0.0, self.smile)
        row[BS["MouthSmileRight"]] += max(0.0, self.smile)
        row[BS["MouthFrownLeft"]] += max(0.0, -self.smile)
        row[BS["MouthFrownRight"]] += max(0.0, -self.smile)
        self.expression.smile_lines(row, max(0.0, self.smile))

        # eyes: blinks and saccades
        row[BS["EyeBlinkLeft"]] = row[BS["EyeBlinkRight"]] = self.blinks.lid(k, self.style.blink_rate)
        if self.gaze.look(k, speaking, listening) and self.rng.random() < 0.25:
            self.blinks.cue(k)
        yaw, pitch = (float(v) for v in self.gaze.now)
        row[GAZE] = (yaw, pitch, yaw, pitch)
        eye_shapes(row, yaw, pitch)

        # head: idle sway always, larger while speaking
        t = k / FRAME_RATE
        freqs, phases = self.sway
        self.sway_gain += 0.05 * ((1.6 if speaking else 1.0) - self.sway_gain)  # no step when the role switches
        amp = np.array([0.025, 0.04, 0.015]) * ex * self.sway_gain
        row[HEAD_ROTATION] += amp * np.sin(2 * np.pi * freqs[:, 0] * t + phases[:, 0]) * \
            (0.6 + 0.4 * np.sin(2 * np.pi * freqs[:, 1] * t + phases[:, 1]))
        row[HEAD_TRANSLATION.start + 1] += 0.004 * ex * np.sin(2 * np.pi * freqs[0, 0] * t)

        for g in self.gestures:
            v = g.at(k)
            for ch, w in g.weights.items():
                row[ch] += w * v
        self.gestures = [g for g in self.gestures if k < g.start + len(g.shape)]
        row[:52] = np.clip(row[:52], 0.0, 1.0)
        return row, state

    def _nod(self, start: int, amplitude: float, brows: bool) -> None:
        cycles = 2 if self.rng.random() < 0.25 else 1
        a = float(self.rng.uniform(0.08, 0.14)) * amplitude
        self.gestures.append(Gesture(start, bump(0.45 * cycles, cycles), {PITCH: a}))
        if brows:
            self.gestures.append(Gesture(start, bump(0.8), {BS["BrowInnerUp"]: 0.35, BS["BrowOuterUpLeft"]: 0.3,
                                                            BS["BrowOuterUpRight"]: 0.3, BS["EyeWideLeft"]: 0.12,
                                                            BS["EyeWideRight"]: 0.12}))

    def _expression(self, row: np.ndarray, k: int, speaking: bool, partner: bool, own_ended: int,
                    hiss_t: float) -> None:
        """The lips' smaller moves and a new turn's wide eyes, from the same cues as the rest (level, spectral
        balance, roles); small weights, so no shape sits high for long. (Brows and smile lines: Expression.)"""
        ex, o, r = self.style.expressiveness, float(self.mouth[0]), float(self.mouth[1])
        t = k / FRAME_RATE
        # a new partner turn widens the eyes for a moment
        if partner and not self.partner_was_active and not speaking and self.face_rng.random() < 0.5:
            self.gestures.append(Gesture(k, bump(0.6), {BS["EyeWideLeft"]: 0.15, BS["EyeWideRight"]: 0.15}))
        self.partner_was_active = partner
        # a closure inside speech keeps the jaw a little open behind the lips (Apple's MouthClose closes them against
        # it: the lips' opening stays as it was), and a held stop fills the cheeks
        behind = 0.08 * float(np.clip(1.0 - o / 0.1, 0.0, 1.0)) if speaking else 0.0
        row[BS["JawOpen"]] += behind
        row[BS["MouthClose"]] = behind
        self.closed = self.closed + 1 if speaking and o < 0.1 else 0
        self.puff += (0.5 if self.closed < 3 else 0.3) * (min(0.15, 0.04 * max(0, self.closed - 2)) - self.puff)
        row[BS["CheekPuff"]] = self.puff
        # hiss: the lower lip tucks (f, v), the upper lip lifts, the jaw comes forward (s, sh)
        self.fricative += 0.5 * (hiss_t - self.fricative)
        row[BS["MouthRollLower"]] += 0.3 * self.fricative
        row[BS["MouthShrugUpper"]] += 0.15 * self.fricative + 0.12 * r
        row[BS["JawForward"]] += 0.1 * self.fricative + 0.06 * r
        # own phrase ends: the lips press shut (most of the time)
        if own_ended and self.face_rng.random() < 0.7:
            self.gestures.append(Gesture(k, bump(0.7), dict(PHRASE_END)))
        # the jaw drifts sideways as it works, the mouth drifts to one side at rest (slow, per face)
        (f_jaw, f_mouth), (p_jaw, p_mouth) = self.drift
        jaw = 0.12 * ex * o * np.sin(2 * np.pi * f_jaw * t + p_jaw)
        mouth = 0.06 * ex * (0.4 if speaking else 1.0) * np.sin(2 * np.pi * f_mouth * t + p_mouth)
        row[BS["JawLeft" if jaw > 0 else "JawRight"]] += abs(jaw)
        row[BS["MouthLeft" if mouth > 0 else "MouthRight"]] += abs(mouth)


class BaselineGenerator(Generator):
    name = "baseline"
    lookahead_s = WINDOW_S  # a frame waits for the 32 ms VAD window that holds it (the mel window needs 12.5 ms)

    def open_stream(self, seed: int = 0, style: Style | None = None) -> MotionStream:
        return BaselineStream(seed, style or Style())

