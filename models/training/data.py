"""Training windows for the motion model, cut from clips whose audio features are computed once and cached.

A clip is padded at its front with silence rows and neutral motion, so a window may start at the very beginning
and still have the history (previous latents, guider window, encoder warm-up) a stream has at its start.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backchannel.models.atomic import replacing
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.frontend.features import HOP, LOG_FLOOR, N_MELS, mel_edges_hz, silence_rows, track_features
from backchannel.models.infp.config import ModelConfig
from backchannel.models.infp.network import ARTICULATORS
from backchannel.models.measures import answer_frames, phone_frames
from backchannel.models.motion import MOTION_DIM
from backchannel.models.phones import PARAMS, articulations

PAD_FRAMES = 30  # neutral motion before t = 0 (>= prev_frames + guide_window)
PAD_ROWS = 150  # silence rows before t = 0 (covers PAD_FRAMES and the encoder warm-up)
WARMUP_ROWS = 30  # rows the encoder hears before a window's first history frame
FEATURES_VERSION = 2  # bump when features.py changes, so caches rebuild


@dataclass
class TrainingClip:
    name: str
    rows_self: np.ndarray  # (PAD_ROWS + R, FEATURE_DIM) float16
    rows_other: np.ndarray
    motion: np.ndarray  # (PAD_FRAMES + T, 62) float32
    state: np.ndarray  # (PAD_FRAMES + T,) int64
    reply: np.ndarray  # (PAD_FRAMES + T,) float32: 1 within NOD_WINDOW_S after a partner's phrase ends
    closing: np.ndarray  # (PAD_FRAMES + T,) float32: 1 on the frames of the avatar's own P/B/M phones
    art_self: np.ndarray | None = None  # (PAD_ROWS + R, ARTICULATORS) float16: mouth targets of the phones
    art_other: np.ndarray | None = None  # heard at each row (articulatory_targets), None without phone timings

    @property
    def frames(self) -> int:
        return len(self.motion) - PAD_FRAMES


def features_for(name: str, self_audio: np.ndarray, other_audio: np.ndarray, cache_dir: Path | None):
    """Both tracks' feature rows, from the cache when it has them."""
    path = cache_dir / f"{name}.v{FEATURES_VERSION}.npz" if cache_dir else None
    if path is not None and path.is_file():
        z = np.load(path)
        return z["rows_self"], z["rows_other"]
    rows_self = track_features(self_audio).astype(np.float16)
    rows_other = track_features(other_audio).astype(np.float16)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp, open(tmp, "wb") as f:  # feature workers in parallel: one whole file wins
            np.savez(f, rows_self=rows_self, rows_other=rows_other)
    return rows_self, rows_other


def articulatory_targets(phones, rows: int, delay_s: float) -> np.ndarray:
    """(rows, ARTICULATORS) what the mouth of the speaker of `phones` ((start, end, ipa) spans) is doing `delay_s`
    before each feature row's centre: zeros in silence. Row j of the audio encoder is read for the motion frame
    `delay_s` earlier (the look-ahead), so this is the articulation that row should know about."""
    out = np.zeros((rows, ARTICULATORS), np.float32)
    times = np.arange(rows) * HOP / SAMPLE_RATE - delay_s
    for start, end, name in phones:
        a = start
        for share, art in articulations(name):
            b = a + share * (end - start)
            sel = (times >= a) & (times < b)
            for key, value in art.targets.items():
                out[sel, PARAMS.index(key)] = value
            a = b
    return out


def make_clip(name: str, self_audio: np.ndarray, other_audio: np.ndarray, motion: np.ndarray, state: np.ndarray,
              cache_dir: Path | None = None, phones: tuple | None = None, delay_s: float = 0.0,
              partner_phrase_ends: list[float] = ()) -> TrainingClip:
    """`phones`: (self phones, other phones) when the clip has phone timings, for the encoder's articulatory
    targets (`delay_s`: the model's look-ahead, ModelConfig.target_delay_s) and the avatar's P/B/M frames, for
    LossConfig.closure_weight. `partner_phrase_ends` (seconds): the moments a listener answers, for
    LossConfig.reply_weight."""
    n = max(len(self_audio), len(other_audio))
    self_audio = np.pad(self_audio, (0, n - len(self_audio)))
    other_audio = np.pad(other_audio, (0, n - len(other_audio)))
    rows_self, rows_other = features_for(name, self_audio, other_audio, cache_dir)
    pad = silence_rows(PAD_ROWS).astype(np.float16)
    art = [None, None]
    if phones is not None:
        art = [np.concatenate([np.zeros((PAD_ROWS, ARTICULATORS), np.float16),
                               articulatory_targets(p, len(rows_self), delay_s).astype(np.float16)]) for p in phones]
    reply, closing = np.zeros((2, PAD_FRAMES + len(motion)), np.float32)
    reply[PAD_FRAMES:] = answer_frames(partner_phrase_ends, len(motion))
    if phones is not None:
        closing[PAD_FRAMES:] = phone_frames(phones[0], len(motion))
    return TrainingClip(
        name,
        np.concatenate([pad, rows_self]), np.concatenate([pad, rows_other]),
        np.concatenate([np.zeros((PAD_FRAMES, MOTION_DIM), np.float32), np.asarray(motion, np.float32)]),
        np.concatenate([np.zeros(PAD_FRAMES, np.int64), np.asarray(state, np.int64)]),
        reply, closing, *art,
    )


_BAND_HZ = mel_edges_hz()[1:-1]  # each log-mel band's centre frequency
_FLOOR = np.float32(np.log(LOG_FLOOR))
VOCAL_TRACT_WARP = 0.12  # about the spread of adult vocal tract lengths


def vary_recording(log_mel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same speech from another vocal tract through another microphone, in the log-mel domain (rows, bands):
    every frequency scaled by up to VOCAL_TRACT_WARP either way (vocal tract length moves all formants together),
    a smooth random equaliser, and for some windows a noise floor or a lower bandwidth. The corpus's voices are
    synthetic and few, and its own audio augmentation is fixed per clip; without this the articulatory read-out
    found a third as many lip closures in real speech as in held-out synthetic voices (docs/experiments.md "Hearing real voices")."""
    bands = np.arange(len(_BAND_HZ))
    # the new voice at frequency f sounds like the old one at f / alpha: read each band there
    src = np.interp(_BAND_HZ / rng.uniform(1 - VOCAL_TRACT_WARP, 1 + VOCAL_TRACT_WARP), _BAND_HZ, bands)
    lo = np.floor(src).astype(np.int64)
    hi, w = np.minimum(lo + 1, len(bands) - 1), (src - lo).astype(np.float32)
    out = log_mel[:, lo] * (1 - w) + log_mel[:, hi] * w
    out += np.interp(bands, np.linspace(0, len(bands) - 1, 5), rng.normal(0, 0.5, 5)).astype(np.float32)
    if rng.random() < 0.5:  # stationary noise, from inaudible to filling the weak upper bands
        level = np.log(rng.uniform(0, 3e-4) + 1e-7) + rng.normal(0, 0.3, out.shape)
        out = np.logaddexp(out, level.astype(np.float32))
    if rng.random() < 0.3:  # nothing above a cut-off (telephone and VoIP codecs, cheap microphones)
        out[:, _BAND_HZ > rng.uniform(2500, _BAND_HZ[-1])] = _FLOOR
    return np.maximum(out, _FLOOR)


class WindowSampler:
    """Random training windows: `frames` target frames after `prev_frames` of history, plus a style reference."""

    def __init__(self, clips: list[TrainingClip], cfg: ModelConfig, frames: int = 90, ref_frames: int = 90,
                 gain_db: float = 12.0, vary_recordings: bool = False):
        self.cfg, self.frames, self.ref_frames, self.gain_db = cfg, frames, ref_frames, gain_db
        self.vary_recordings = vary_recordings  # vary_recording, per window and track
        self.clips = [c for c in clips if c.frames >= max(frames, ref_frames)]
        if not self.clips:
            raise ValueError(f"no clip is long enough for {frames}-frame windows and {ref_frames}-frame references")
        lengths = np.array([c.frames for c in self.clips], np.float64)  # windows in proportion to length
        self.weights = lengths / lengths.sum()

    def row(self, f: np.ndarray | int):
        """Padded row index of padded frame f."""
        return self.cfg.row_for_frame(np.asarray(f) - PAD_FRAMES) + PAD_ROWS

    def _reference_start(self, rng: np.random.Generator, clip: TrainingClip, a: int, b: int) -> int:
        """A style reference elsewhere in the clip: outside the window [a, b) when the clip allows, so the style
        vector cannot carry the very frames it should predict."""
        starts = np.arange(PAD_FRAMES, len(clip.motion) - self.ref_frames + 1)
        apart = starts[(starts + self.ref_frames <= a) | (starts >= b)]
        return int(rng.choice(apart if len(apart) else starts))

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, torch.Tensor]:
        P, T = self.cfg.prev_frames, self.frames
        items = []
        for i in rng.choice(len(self.clips), size, p=self.weights):
            clip = self.clips[i]
            at_start = rng.random() < 0.05  # streams start from silence: train that moment on purpose
            f0 = PAD_FRAMES if at_start else int(rng.integers(PAD_FRAMES, len(clip.motion) - T + 1))
            frames = np.arange(f0 - P, f0 + T)
            r0 = max(0, int(self.row(frames[0])) - WARMUP_ROWS)
            r1 = int(self.row(frames[-1])) + 1
            rf = self._reference_start(rng, clip, frames[0], frames[-1] + 1)
            shift = np.float32(rng.uniform(-1, 1) * self.gain_db / 10 * np.log(10))  # level change, log power
            items.append((clip, frames, r0, r1, rf, shift))
        rows = max(r1 - r0 for _, _, r0, r1, _, _ in items)

        def track_rows(x: np.ndarray, r0: int, r1: int, shift: np.float32) -> np.ndarray:
            out = np.asarray(x[r0:r1], np.float32).copy()
            out[:, :N_MELS] = np.maximum(out[:, :N_MELS] + shift, _FLOOR)
            if self.vary_recordings:
                out[:, :N_MELS] = vary_recording(out[:, :N_MELS], rng)
            return np.concatenate([out, silence_rows(rows - len(out))])  # causal: right padding changes nothing

        def art_rows(x: np.ndarray | None, r0: int, r1: int) -> np.ndarray:
            out = np.zeros((rows, ARTICULATORS + 1), np.float32)  # last column: 1 where a target is known
            if x is not None:
                known = x[r0:r1]  # shorter than r1 - r0 where the window runs past the clip's last row
                out[:len(known), :-1] = known
                out[:len(known), -1] = 1.0
            return out

        return {
            "art_self": torch.as_tensor(np.stack([art_rows(c.art_self, r0, r1) for c, _, r0, r1, _, _ in items])),
            "art_other": torch.as_tensor(np.stack([art_rows(c.art_other, r0, r1) for c, _, r0, r1, _, _ in items])),
            "rows_self": torch.as_tensor(np.stack([track_rows(c.rows_self, r0, r1, s) for c, _, r0, r1, _, s in items])),
            "rows_other": torch.as_tensor(np.stack([track_rows(c.rows_other, r0, r1, s) for c, _, r0, r1, _, s in items])),
            "frame_rows": torch.as_tensor(np.stack([self.row(f) - r0 for _, f, r0, _, _, _ in items]), dtype=torch.int64),
            "motion": torch.as_tensor(np.stack([c.motion[f] for c, f, _, _, _, _ in items])),
            "state": torch.as_tensor(np.stack([c.state[f] for c, f, _, _, _, _ in items])),
            "reply": torch.as_tensor(np.stack([c.reply[f] for c, f, _, _, _, _ in items])),
            "closing": torch.as_tensor(np.stack([c.closing[f] for c, f, _, _, _, _ in items])),
            "ref_motion": torch.as_tensor(np.stack([c.motion[rf:rf + self.ref_frames] for c, _, _, _, rf, _ in items])),
        }

