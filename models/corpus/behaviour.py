"""Everything but the lips: the role timeline, and head, gaze, blinks, brows and smiles driven by who speaks.

Speaking: head motion follows the own voice's prosody (pitch contour lifts the head and brows, loud syllable
onsets bring small beat nods, energy scales the sway), gaze turns away more, especially at turn starts.
Listening: nods at the partner's phrase ends (with the identity's propensity) and with the own backchannels,
brow raises and smiles at some phrase ends and at the partner's laughs, gaze held on the partner, a slight
lean and tilt. Always: blinks (more at gaze shifts and turn starts), slow postural sway, breathing.
Per-identity `Style` draws the amplitudes and habits per clip.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d
from scipy.signal import find_peaks, lfilter

from backchannel.models.corpus.dsp import frame_f0, loudness
from backchannel.models.measures import spans_mask
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
)

SPEAKING_BRIDGE_S = 0.3  # pauses shorter than this inside own speech stay "speaking"
LISTENING_BRIDGE_S = 0.6  # pauses shorter than this inside the partner's speech stay "listening"
LISTEN_WINDOW_S = 1.0  # a partner phrase end is "listened to" when self takes no turn within this long


@dataclass
class Style:
    """One identity's manner, drawn per clip."""

    head_amp: float  # speaking head motion scale
    sway: float  # postural sway (rad)
    posture: tuple  # resting pitch, yaw, roll (rad)
    nod_propensity: float  # chance of a nod at a partner phrase end
    nod_depth: float  # rad
    blink_rate: float  # per minute
    smile_base: float
    smile_reactivity: float
    brow_reactivity: float
    gaze_aversion: float  # share of speaking time looking away
    gaze_spread: float  # how far away looks go (rad)
    articulation: float  # lip scale (hypo < 1 < hyper)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Style":
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        return cls(u(0.5, 1.6), u(0.008, 0.03), (u(-0.06, 0.06), u(-0.05, 0.05), u(-0.04, 0.04)), u(0.6, 0.95),
                   u(0.05, 0.12), u(8, 26), u(0.0, 0.25), u(0.2, 0.8), u(0.2, 1.0), u(0.2, 0.7), u(0.08, 0.3),
                   u(0.85, 1.15))

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v]) for k, v in
                asdict(self).items()}


def _bridge(mask: np.ndarray, gap_s: float) -> np.ndarray:
    """Fill False runs shorter than gap_s that lie between True frames."""
    out = mask.copy()
    idx = np.flatnonzero(mask)
    if len(idx) < 2:
        return out
    gaps = np.flatnonzero(np.diff(idx) > 1)
    for g in gaps:
        a, b = idx[g], idx[g + 1]
        if (b - a - 1) / FRAME_RATE < gap_s:
            out[a:b] = True
    return out


def role_timeline(self_speech, other_speech, frames: int) -> np.ndarray:
    """(frames,) int8 state: speaking while self's voice is active (short pauses bridged), listening while only
    the partner's is, idle otherwise. `*_speech` are (start, end) spans of actual speech."""
    speaking = _bridge(spans_mask(self_speech, frames), SPEAKING_BRIDGE_S)
    listening = _bridge(spans_mask(other_speech, frames), LISTENING_BRIDGE_S) & ~speaking
    state = np.full(frames, IDLE, np.int8)
    state[listening] = LISTENING
    state[speaking] = SPEAKING
    return state


def _drift(rng, frames: int, tau: float, sigma: float) -> np.ndarray:
    """Smooth random wandering: white noise through two one-pole low-passes of time constant tau (s), scaled to
    standard deviation sigma. (One pole alone -- an Ornstein-Uhlenbeck process -- is rough frame to frame; heads
    move smoothly.)"""
    a = np.exp(-1.0 / (tau * FRAME_RATE))
    warm = int(6 * tau * FRAME_RATE)
    x = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], rng.normal(0, 1, frames + warm)))[warm:]
    return (x / (x.std() + 1e-12) * sigma).astype(np.float32)


def _ramp(mask: np.ndarray, seconds: float) -> np.ndarray:
    """A mask with soft edges (a moving average `seconds` wide)."""
    return uniform_filter1d(mask.astype(np.float32), max(1, int(seconds * FRAME_RATE)), mode="nearest")


def _envelope(frames: int, t0: float, attack: float, hold: float, release: float) -> np.ndarray:
    """0 -> 1 over `attack` s from t0, held, then back to 0 over `release` s (smoothstep edges)."""
    t = np.arange(frames) / FRAME_RATE - t0
    up = np.clip(t / max(attack, 1e-3), 0, 1)
    down = np.clip(1 - (t - attack - hold) / max(release, 1e-3), 0, 1)
    x = np.minimum(up, down)
    return (x * x * (3 - 2 * x)).astype(np.float32)


def nod_curve(frames: int, t0: float, depth: float, period: float, cycles: int) -> np.ndarray:
    """Head pitch of a nod starting at t0: `cycles` down-and-up movements, each weaker (+pitch is down)."""
    t = np.arange(frames) / FRAME_RATE - t0
    out = np.zeros(frames, np.float32)
    for k in range(cycles):
        tk = t - k * period
        inside = (tk >= 0) & (tk < period)
        out[inside] += depth * 0.6 ** k * (1 - np.cos(2 * np.pi * tk[inside] / period)) / 2
    return out


def behave(rng: np.random.Generator, style: Style, frames: int, self_segments, other_segments,
           self_audio: np.ndarray, listened_ends: list[float]) -> tuple[np.ndarray, dict]:
    """Motion for everything but the lips, and the events placed (for metadata). Segments are
    dialogue.Segment; `self_audio` is self's clean 16 kHz track; `listened_ends` the partner phrase ends self
    listens through."""
    m = np.zeros((frames, MOTION_DIM), np.float32)
    self_speech = [s.speech for s in self_segments]
    speaking = _bridge(spans_mask(self_speech, frames), SPEAKING_BRIDGE_S)
    speak_w = _ramp(speaking, 0.4)
    listen_w = _ramp(_bridge(spans_mask([s.speech for s in other_segments], frames), LISTENING_BRIDGE_S)
                     & ~speaking, 0.6)
    pitch = np.full(frames, style.posture[0], np.float32) + _drift(rng, frames, 1.2, style.sway)
    yaw = np.full(frames, style.posture[1], np.float32) + _drift(rng, frames, 1.5, style.sway * 1.3)
    roll = np.full(frames, style.posture[2], np.float32) + _drift(rng, frames, 1.3, style.sway * 0.8)
    brows = np.zeros(frames, np.float32)
    smile = np.full(frames, style.smile_base, np.float32)
    events: dict[str, list] = {"nods": [], "blinks": [], "gaze_shifts": []}

    # speaking: prosody-driven head and brows
    f0 = frame_f0(self_audio, frames)
    voiced = f0 > 0
    f0_z = np.zeros(frames, np.float32)
    if voiced.sum() > 10:
        log_f0 = np.log(f0[voiced])
        z = (log_f0 - log_f0.mean()) / (log_f0.std() + 1e-3)
        k = np.arange(frames)
        f0_z = gaussian_filter1d(np.interp(k, k[voiced], z), 4.0)  # the contour across unvoiced gaps, smooth
    loud = loudness(self_audio, frames, 40.0)
    amp = style.head_amp
    pitch += speak_w * amp * (-0.03 * f0_z)  # a rising voice lifts the head
    yaw += speak_w * amp * _drift(rng, frames, 0.35, 0.035) * (0.4 + uniform_filter1d(loud, 9))
    roll += speak_w * amp * _drift(rng, frames, 0.45, 0.02)
    brows += speak_w * style.brow_reactivity * 0.35 * np.clip(f0_z - 0.6, 0, 2) / 2
    onsets, _ = find_peaks(np.diff(uniform_filter1d(loud, 3), prepend=0), height=0.08, distance=8)
    for k in onsets:
        if speaking[k] and rng.random() < 0.35:  # beat: a small nod on an emphatic syllable
            pitch += amp * nod_curve(frames, k / FRAME_RATE, float(rng.uniform(0.015, 0.035)),
                                     float(rng.uniform(0.25, 0.4)), 1)

    # listening: nods, brows and smiles at the partner's phrase ends
    for t in listened_ends:
        if rng.random() < style.nod_propensity:
            t0 = t + float(rng.uniform(0.05, 0.45))
            cycles = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            pitch += nod_curve(frames, t0, style.nod_depth * float(rng.uniform(0.8, 1.2)),
                               float(rng.uniform(0.35, 0.6)), cycles)
            events["nods"].append(round(t0, 3))
        if rng.random() < 0.3 * style.brow_reactivity:
            brows += float(rng.uniform(0.2, 0.5)) * _envelope(frames, t + float(rng.uniform(0, 0.3)), 0.15,
                                                              float(rng.uniform(0.2, 0.6)), 0.4)
        if rng.random() < 0.2 * style.smile_reactivity:
            smile += float(rng.uniform(0.15, 0.35)) * _envelope(frames, t, 0.3, float(rng.uniform(0.5, 1.5)), 0.8)
    for s in self_segments:
        a, b = s.speech
        if s.kind == "backchannel" and rng.random() < 0.8:  # "yeah" with a nod
            t0 = a + float(rng.uniform(-0.1, 0.15))
            pitch += nod_curve(frames, t0, style.nod_depth * float(rng.uniform(0.6, 1.0)),
                               float(rng.uniform(0.3, 0.5)), 1)
            events["nods"].append(round(t0, 3))
        elif s.kind == "laugh":
            smile += float(rng.uniform(0.5, 0.8)) * _envelope(frames, a - 0.1, 0.15, b - a, 1.0)
            pitch += _envelope(frames, a, 0.2, b - a, 0.5) * float(rng.uniform(-0.08, 0.04))  # head back or down
    for s in other_segments:
        if s.kind == "laugh" and rng.random() < 0.3 + 0.6 * style.smile_reactivity:
            a, b = s.speech
            smile += float(rng.uniform(0.25, 0.6)) * _envelope(frames, a + 0.15, 0.3, b - a, 1.0)
    roll += listen_w * float(rng.uniform(-0.06, 0.06))  # the listener's tilt

    gaze, shifts = _gaze(rng, style, frames, speaking, self_segments)
    events["gaze_shifts"] = [round(k / FRAME_RATE, 3) for k in shifts]
    yaw += 0.25 * uniform_filter1d(gaze[:, 0], 10)  # the head follows big gaze shifts a little
    blink, blinks = _blinks(rng, style, frames, shifts, self_speech)
    events["blinks"] = [round(k / FRAME_RATE, 3) for k in blinks]

    m[:, HEAD_ROTATION] = np.stack([pitch, yaw, roll], 1)
    breath = 0.002 * np.sin(2 * np.pi * float(rng.uniform(0.2, 0.3)) * np.arange(frames) / FRAME_RATE)
    m[:, HEAD_TRANSLATION] = np.stack([0.03 * roll, breath - 0.04 * (pitch - style.posture[0]),
                                       0.012 * listen_w * style.nod_propensity], 1)
    m[:, GAZE] = np.concatenate([gaze, gaze], 1)
    _face(m, gaze, blink, brows, smile)
    return m, events


def _gaze(rng, style: Style, frames: int, speaking: np.ndarray, self_segments) -> tuple[np.ndarray, list[int]]:
    """(frames, 2) gaze yaw/pitch: fixations joined by 2-frame saccades; at the partner (0, 0) mostly while
    listening, away more while speaking and right after own turns start."""
    turn_starts = {int(s.speech[0] * FRAME_RATE) for s in self_segments if s.kind == "turn"}
    gaze = np.zeros((frames, 2), np.float32)
    shifts, k, cur = [], 0, np.zeros(2, np.float32)
    while k < frames:
        talking = bool(speaking[k])
        starting = any(0 <= k - t < 10 for t in turn_starts)
        p_away = 0.75 if starting else style.gaze_aversion if talking else 0.2
        if rng.random() < p_away:
            side = rng.choice([-1.0, 1.0])
            target = np.array([side * rng.uniform(0.3, 1.0) * style.gaze_spread,
                               rng.uniform(-0.4, 0.8) * style.gaze_spread], np.float32)
            dur = rng.uniform(0.3, 1.2)
        else:
            target = rng.normal(0, 0.015, 2).astype(np.float32)
            dur = rng.uniform(0.6, 2.0) if talking else rng.uniform(1.0, 3.5)
        n = max(3, int(dur * FRAME_RATE))
        if np.abs(target - cur).max() > 0.05:
            shifts.append(k)
        seg = np.repeat(target[None], n, 0)
        seg[0] = cur + 0.6 * (target - cur)  # saccade: most of the way in one frame
        gaze[k:k + n] = seg[: frames - k]
        cur, k = target, k + n
    gaze += rng.normal(0, 0.003, gaze.shape).astype(np.float32)  # fixational jitter
    return gaze, shifts


_BLINK_SHAPE = np.array([0.35, 0.85, 1.0, 0.8, 0.5, 0.25, 0.08], np.float32)  # fast close, slower open


def _blinks(rng, style: Style, frames: int, gaze_shifts: list[int], self_speech) -> tuple[np.ndarray, list[int]]:
    rate = style.blink_rate / 60.0 / FRAME_RATE
    p = np.full(frames, rate, np.float32)
    for k in gaze_shifts:
        p[k:k + 2] += 0.15
    for a, _ in self_speech:
        k = int(a * FRAME_RATE)
        p[max(0, k - 3):k + 2] += 0.08
    curve, times, last = np.zeros(frames, np.float32), [], -100
    for k in np.flatnonzero(rng.random(frames) < p):
        if k - last < 0.3 * FRAME_RATE:
            continue
        shape = _BLINK_SHAPE[: frames - k]
        curve[k:k + len(shape)] = np.maximum(curve[k:k + len(shape)], shape)
        times.append(int(k))
        last = k
    return curve, times


def _face(m: np.ndarray, gaze: np.ndarray, blink: np.ndarray, brows: np.ndarray, smile: np.ndarray) -> None:
    """Eyes, brows, cheeks and smile blendshapes (the lips are added separately)."""
    yaw, pitch = gaze[:, 0], gaze[:, 1]
    look = lambda x: np.clip(x / 0.5, 0, 1)  # noqa: E731  (about 30 degrees is full scale)
    bs = m[:, :52]
    bs[:, BS["EyeLookOutLeft"]] = bs[:, BS["EyeLookInRight"]] = look(yaw)  # +yaw: towards the avatar's left
    bs[:, BS["EyeLookInLeft"]] = bs[:, BS["EyeLookOutRight"]] = look(-yaw)
    bs[:, BS["EyeLookDownLeft"]] = bs[:, BS["EyeLookDownRight"]] = look(pitch * 1.2)
    bs[:, BS["EyeLookUpLeft"]] = bs[:, BS["EyeLookUpRight"]] = look(-pitch * 1.2)
    lid = np.clip(blink + 0.25 * look(pitch * 1.2), 0, 1)  # lids follow a downward look
    bs[:, BS["EyeBlinkLeft"]] = lid
    bs[:, BS["EyeBlinkRight"]] = np.clip(lid * 0.97, 0, 1)
    smile = np.clip(smile, 0, 1)
    for side in ("Left", "Right"):
        bs[:, BS[f"MouthSmile{side}"]] = smile
        bs[:, BS[f"CheekSquint{side}"]] = 0.6 * np.clip(smile - 0.3, 0, 1)
        bs[:, BS[f"EyeSquint{side}"]] = 0.5 * np.clip(smile - 0.35, 0, 1)
        bs[:, BS[f"BrowOuterUp{side}"]] = np.clip(brows * 0.8, 0, 1)
    bs[:, BS["BrowInnerUp"]] = np.clip(brows, 0, 1)
