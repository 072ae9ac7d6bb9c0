"""Streaming log-mel front end: 100 frames per second of 16 kHz audio, frame j centred on sample j * HOP.

The same class serves live streams and whole files, and gives the same numbers however the audio is chunked.
"""
from __future__ import annotations

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.frontend.vad import STATE_DIM as VAD_STATE_DIM
from backchannel.models.frontend.vad import WINDOW as VAD_WINDOW
from backchannel.models.frontend.vad import VadStream
from backchannel.models.frontend.vad import process_many as vad_many
from backchannel.models.motion import FRAME_RATE

HOP = 160  # 10 ms
WIN = 400  # 25 ms analysis window
N_FFT = 512
N_MELS = 40
F_MIN, F_MAX = 60.0, 7600.0
LOG_FLOOR = 1e-8  # keeps digital silence finite (log power about -18)


def mel_edges_hz(n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_mels + 2,) frequencies equally spaced on the HTK mel scale: band k rises from edge k, peaks at edge
    k + 1 (its centre) and falls to edge k + 2."""
    to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    return to_hz(np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2))


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft // 2 + 1), each with unit area."""
    edges = mel_edges_hz(n_mels, f_min, f_max)
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return (fb / np.maximum(fb.sum(1, keepdims=True), 1e-12)).astype(np.float32)


_WINDOW = np.hanning(WIN + 2)[1:-1].astype(np.float32)
_FILTERS = mel_filterbank()


class Rolling:
    """Rows addressed by absolute index (0 = the stream's first); rows nothing will read again are dropped, so a
    stream's memory stays flat however long it runs."""

    def __init__(self, width: int | None = None, dtype=np.float32, start: int = 0):
        self.data = np.zeros((0,) if width is None else (0, width), dtype)
        self.start = start  # absolute index of data[0]

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    def extend(self, rows: np.ndarray) -> None:
        self.data = np.concatenate([self.data, np.asarray(rows, self.data.dtype)])

    def __getitem__(self, i):
        return self.data[np.asarray(i) - self.start]

    def drop_before(self, i: int) -> None:
        cut = min(max(0, i - self.start), len(self.data))
        self.data = self.data[cut:]
        self.start += cut


def mel_frame_for(motion_frame: int | np.ndarray) -> int | np.ndarray:
    """Index of the log-mel frame centred nearest to a motion frame's time."""
    return np.floor(np.asarray(motion_frame) * (SAMPLE_RATE / FRAME_RATE / HOP) + 0.5).astype(np.int64)


class LogMel:
    """Streaming log-mel spectrogram. `process` returns the frames whose whole window has arrived."""

    def __init__(self) -> None:
        self.buf = np.zeros(WIN // 2, np.float32)  # silence before t = 0 so frame 0 is centred on sample 0
        self.buf_start = -(WIN // 2)  # absolute sample index of buf[0]
        self.n_in = 0
        self.n_out = 0

    def _emit(self, end: int) -> np.ndarray:
        """Frames j with window [j*HOP - WIN/2, j*HOP + WIN/2) inside absolute samples < end."""
        last = (end - WIN // 2) // HOP
        count = max(0, last - self.n_out + 1)
        if count == 0:
            return np.zeros((0, N_MELS), np.float32)
        starts = (self.n_out + np.arange(count)) * HOP - WIN // 2 - self.buf_start
        frames = self.buf[starts[:, None] + np.arange(WIN)[None, :]] * _WINDOW
        power = np.abs(np.fft.rfft(frames, N_FFT)) ** 2
        self.n_out += count
        keep_from = self.n_out * HOP - WIN // 2
        self.buf = self.buf[keep_from - self.buf_start:]
        self.buf_start = keep_from
        return np.log(power.astype(np.float32) @ _FILTERS.T + LOG_FLOOR)

    def process(self, x: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate([self.buf, np.asarray(x, np.float32).reshape(-1)])
        self.n_in += len(x)
        return self._emit(self.n_in)

    def flush(self) -> np.ndarray:
        """End of audio: the frames centred on samples before the end, their windows padded with silence."""
        owed = -(-self.n_in // HOP) - self.n_out  # frames j with j * HOP < n_in not yet returned
        self.buf = np.concatenate([self.buf, np.zeros(WIN // 2, np.float32)])
        return self._emit(self.n_in + WIN // 2)[: max(0, owed)]


DB = 10.0 / np.log(10.0)  # natural-log power -> decibels
LEVEL_RANGE_DB = 24.0  # a voice this far below its own running peak reads as silent
PEAK_DECAY_DB = 0.03  # per motion frame: the peak forgets a shout over tens of seconds


def level_db(mel: np.ndarray) -> np.ndarray:
    """(...,) total power of log-mel frames (..., N_MELS), in dB."""
    return power_db(np.exp(np.asarray(mel, np.float64)))


def power_db(power: np.ndarray) -> np.ndarray:
    """(...,) total of mel band powers (..., N_MELS), in dB: level_db for callers that already hold the powers."""
    return DB * np.log(power.sum(-1) + 1e-12)


class RelativeLevel:
    """A voice's level against its own running peak, 0 (LEVEL_RANGE_DB or more below it) .. 1 (at it): the same
    speech reads the same at any recording level or distance from the microphone. Update it on speech only."""

    def __init__(self) -> None:
        self.peak_db = -40.0

    def update(self, db: float) -> float:
        self.peak_db = max(db, self.peak_db - PEAK_DECAY_DB)
        return min(max((db - (self.peak_db - LEVEL_RANGE_DB)) / LEVEL_RANGE_DB, 0.0), 1.0)


# a feature row: log-mel bands, then what the VAD answers per window: the track's speech probability and its LSTM
# output (vad.STATE_DIM, Silero's own view of the voice, learned from real speech). Weights trained before the LSTM
# output was a feature read the columns before VAD_STATE (ModelConfig.vad_state)
VAD_COLUMNS = 1 + VAD_STATE_DIM
VAD_STATE = N_MELS + 1  # first column of the LSTM output
FEATURE_DIM = N_MELS + VAD_COLUMNS


def silence_rows(n: int) -> np.ndarray:
    """Feature rows of digital silence (what a stream hears before it starts and after it ends): the VAD says no
    speech from its initial (zero) state, as before its first window."""
    rows = np.zeros((n, FEATURE_DIM), np.float32)
    rows[:, :N_MELS] = np.log(LOG_FLOOR)
    return rows


def vad_window_for_mel(j: int | np.ndarray) -> int | np.ndarray:
    """The newest 32 ms VAD window complete when mel frame j's window is: its probability joins that frame."""
    return (np.asarray(j) * HOP + WIN // 2) // VAD_WINDOW - 1


class TrackFeatures:
    """One track's model input at 100 frames/s: log-mel (N_MELS), then what Silero said of the newest 32 ms window
    complete by then (speech probability and LSTM output).

    Row j uses audio up to sample j * HOP + WIN / 2 only, so anything causal built on these rows stays causal.
    """

    def __init__(self) -> None:
        self.mel = LogMel()
        self.vad = VadStream()
        self.vad_rows = Rolling(VAD_COLUMNS)

    def _rows(self, mel: np.ndarray) -> np.ndarray:
        j = self.mel.n_out - len(mel) + np.arange(len(mel))
        w = vad_window_for_mel(j)
        v = np.zeros((len(mel), VAD_COLUMNS), np.float32)  # no window has finished before ~20 ms: silence
        v[w >= 0] = self.vad_rows[w[w >= 0]]
        self.vad_rows.drop_before(int(vad_window_for_mel(self.mel.n_out)))
        return np.concatenate([mel, v], axis=1)

    def process(self, x: np.ndarray) -> np.ndarray:
        return process_many([self], [x])[0]

    def flush(self) -> np.ndarray:
        self.vad_rows.extend(self.vad.process(np.zeros(VAD_WINDOW, np.float32)))
        return self._rows(self.mel.flush())


def process_many(tracks: list[TrackFeatures], chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Several tracks' new audio at once (their VAD windows in shared calls, vad.process_many) -> their new rows."""
    for track, vad_rows in zip(tracks, vad_many([t.vad for t in tracks], chunks)):
        track.vad_rows.extend(vad_rows)
    return [track._rows(track.mel.process(x)) for track, x in zip(tracks, chunks)]


def log_mel(x: np.ndarray) -> np.ndarray:
    """Whole-signal log-mel rows, (ceil(len / HOP), N_MELS)."""
    mel = LogMel()
    return np.concatenate([mel.process(np.asarray(x, np.float32)), mel.flush()])


def track_features(x: np.ndarray) -> np.ndarray:
    """Whole-signal model input, (ceil(len / HOP), FEATURE_DIM)."""
    f = TrackFeatures()
    return np.concatenate([f.process(x), f.flush()])


def frame_rms(x: np.ndarray, frames: int, window_s: float = 0.04) -> np.ndarray:
    """(frames,) RMS of a 16 kHz signal in a `window_s` window centred on each motion frame's instant
    k / FRAME_RATE (silence beyond the signal's ends): the speech envelope at the motion frame rate."""
    half = int(window_s * SAMPLE_RATE / 2)
    centres = np.arange(frames) * SAMPLE_RATE // FRAME_RATE
    energy = np.concatenate([[0.0], np.cumsum(np.asarray(x, np.float64) ** 2)])
    lo, hi = (np.clip(centres + d, 0, len(energy) - 1) for d in (-half, half))
    return np.sqrt((energy[hi] - energy[lo]) / (2 * half))
