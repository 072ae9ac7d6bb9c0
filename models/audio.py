"""Audio plumbing shared by every stage: decode, load, resample to the internal 16 kHz mono float32."""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # every stage after ingest works on 16 kHz mono float32 in [-1, 1]
PCM_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
MIN_RATE, MAX_RATE = 4000, 192000  # rates outside this are refused as absurd
CHANNEL_INDEX = {"left": 0, "right": 1}  # WAV's order: front left, front right, then the rest
CHANNEL_CHOICES = "left, right, mix or a channel number 0, 1, ..."
ENERGY_FRAME_S = 0.05  # loudness is compared over windows this long: a syllable or so
SAME_VOICE_CORRELATION = 0.5  # below this, a stereo file's channels get loud at different times: two voices

log = logging.getLogger(__name__)


def decode_pcm(pcm: bytes, fmt: str) -> np.ndarray:
    """Raw little-endian PCM bytes -> float32 samples in [-1, 1]. Raises ValueError on anything malformed."""
    dtype = PCM_FORMATS.get(fmt)
    if dtype is None:
        raise ValueError(f"unknown pcm format {fmt!r} (expected one of {sorted(PCM_FORMATS)})")
    if len(pcm) % dtype.itemsize:
        raise ValueError(f"{len(pcm)} bytes is not a whole number of {fmt} samples")
    x = np.frombuffer(pcm, dtype)
    if fmt == "s16le":
        return x.astype(np.float32) / 32768.0
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("f32le samples contain NaN or infinity")
    return np.clip(x, -1.0, 1.0)


def encode_pcm(x: np.ndarray, fmt: str = "s16le") -> bytes:
    """float32 samples -> little-endian PCM bytes (the inverse of decode_pcm)."""
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    if fmt == "s16le":
        return np.round(x * 32767.0).astype("<i2").tobytes()
    if fmt == "f32le":
        return x.astype("<f4").tobytes()
    raise ValueError(f"unknown pcm format {fmt!r}")


def check_rate(rate: int) -> int:
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"sample rate {rate!r} is outside {MIN_RATE}..{MAX_RATE} Hz")
    return int(rate)


PHASES = 1024  # fractional positions the filter is tabulated at (1/1024 sample: far below audibility)
BLOCK = 4096  # outputs computed at a time


@lru_cache(maxsize=16)
def _filter_table(cutoff: float, half: int) -> np.ndarray:
    """(PHASES + 1, 2 * half) Hann-windowed sinc taps for each fractional position, each row summing to 1."""
    frac = np.arange(PHASES + 1)[:, None] / PHASES
    d = frac - np.arange(-half + 1, half + 1)[None, :]  # distance from each tap, in input samples
    h = np.sinc(cutoff * d) * (0.5 + 0.5 * np.cos(np.pi * d / (half + 1)))
    return (h / h.sum(1, keepdims=True)).astype(np.float32)


class Resampler:
    """Streaming band-limited resampler (Hann-windowed sinc, DC gain exactly 1).

    Output does not depend on how the input is chunked, so offline files and live streams give the same samples.
    `flush()` ends the stream and returns the tail, making the total length ceil(n_in * rate_out / rate_in).
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE, zero_crossings: int = 12):
        self.rate_in, self.rate_out = check_rate(rate_in), int(rate_out)
        self.cutoff = min(1.0, self.rate_out / self.rate_in)  # anti-alias when going down
        self.half = int(np.ceil(zero_crossings / self.cutoff))  # taps each side, in input samples
        self.buf = np.zeros(self.half, np.float32)  # zero history before t = 0
        self.buf_start = -self.half  # absolute input index of buf[0]
        self.n_in = 0
        self.n_out = 0  # outputs emitted so far

    def _emit(self, last_needed_ok: int) -> np.ndarray:
        """Emit every output j whose taps reach at most absolute input index `last_needed_ok`."""
        # output j sits at input position j * rate_in / rate_out; its taps span base-half+1 .. base+half
        last_j = ((last_needed_ok - self.half) * self.rate_out) // self.rate_in
        offsets = np.arange(-self.half + 1, self.half + 1)
        table = _filter_table(self.cutoff, self.half)
        out = []
        for first in range(self.n_out, last_j + 1, BLOCK):  # bounded memory whatever the input's length
            js = np.arange(first, min(first + BLOCK, last_j + 1), dtype=np.int64)
            base = (js * self.rate_in) // self.rate_out
            phase = ((js * self.rate_in - base * self.rate_out) * PHASES + self.rate_out // 2) // self.rate_out
            taps = self.buf[(base - self.buf_start)[:, None] + offsets[None, :]]
            out.append(np.einsum("ij,ij->i", taps, table[phase]))
        if not out:
            return np.zeros(0, np.float32)
        self.n_out = last_j + 1
        keep_from = (self.n_out * self.rate_in) // self.rate_out - self.half + 1
        self.buf = self.buf[keep_from - self.buf_start:]
        self.buf_start = keep_from
        return np.concatenate(out).astype(np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1)
        if self.rate_in == self.rate_out:
            self.n_in += len(x)
            self.n_out += len(x)
            return x.copy()
        self.buf = np.concatenate([self.buf, x])
        self.n_in += len(x)
        return self._emit(self.n_in - 1)

    def flush(self) -> np.ndarray:
        """End of stream: pad with silence and return the outputs still owed."""
        total = -(-self.n_in * self.rate_out // self.rate_in)
        if self.rate_in == self.rate_out or self.n_out >= total:
            return np.zeros(0, np.float32)
        self.buf = np.concatenate([self.buf, np.zeros(self.half + 1, np.float32)])
        y = self._emit(self.n_in + self.half)
        return y[: total - (self.n_out - len(y))]


def resample(x: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    r = Resampler(rate_in, rate_out)
    return np.concatenate([r.process(x), r.flush()])


def check_channel(channel: str, where: str) -> str:
    """'left', 'right', 'mix' (the mean of all channels) or a channel number, as text; else ValueError naming
    `where` (the file or flag it came with) and the choices."""
    if channel in CHANNEL_INDEX or channel == "mix" or re.fullmatch(r"[0-9]+", channel):
        return channel
    raise ValueError(f"{where}: unknown channel {channel!r}; choose {CHANNEL_CHOICES}")


def split_channel(spec: str) -> tuple[str, str | None]:
    """A command line's FILE[:CHANNEL] -> (FILE, CHANNEL or None). Only a last part that is a bare word or number
    counts as a channel, so C:\\talk.wav and C:/talk.wav stay paths; a file whose own name ends so (it exists)
    stays whole too. A word that is no channel is refused, not read as part of the name: a typo in `:lfet` would
    otherwise surface as a missing file."""
    head, colon, tail = spec.rpartition(":")
    if not colon or not head or not re.fullmatch(r"\w+", tail) or Path(spec).is_file():
        return spec, None
    return head, check_channel(tail, spec)


def pick_channel(x: np.ndarray, channel: str, path: Path) -> np.ndarray:
    """One channel of (samples, channels) audio, or their mean for 'mix'; a number must be one of the file's."""
    n = x.shape[1]
    if channel == "mix":
        return x.mean(1)
    if n == 1 and channel in CHANNEL_INDEX:  # a mono file plays on both sides
        return x[:, 0]
    index = CHANNEL_INDEX[channel] if channel in CHANNEL_INDEX else int(channel)
    if index >= n:
        raise ValueError(f"{path}:{channel}: the file has {n} channel{'s' * (n > 1)}; choose "
                         f"left, right, mix or a channel number 0..{n - 1}")
    return x[:, index]


def energy_correlation(x: np.ndarray, rate: int) -> float | None:
    """How closely two channels' short-time loudness moves together: near 1 for one voice (a mono recording
    copied, two microphones in one room), low or below 0 for a call recorded with each person on a side, who
    take turns. 0 when one channel stays silent while the other speaks; None when neither changes (silence, or
    under two windows of audio), where there is nothing to compare."""
    hop = max(1, int(ENERGY_FRAME_S * rate))
    frames = x[: len(x) // hop * hop].reshape(-1, hop, x.shape[1])
    energy = np.sqrt(np.einsum("ijk,ijk->ik", frames, frames) / hop)  # RMS per window, without a squared copy
    flat = energy.std(0) < 1e-4 if len(energy) > 1 else np.ones(x.shape[1], bool)  # steadier than any voice
    if flat.all():
        return None
    return 0.0 if flat.any() else float(np.corrcoef(energy.T)[0, 1])


def load_audio(path: str | Path, rate: int = SAMPLE_RATE, channel: str = "mix") -> np.ndarray:
    """Any file soundfile reads (wav, flac, ogg...), any rate and channel count -> mono float32 at `rate`.
    `channel` picks what becomes the mono track (check_channel's choices). Mixing a stereo file whose channels
    look like two voices logs a warning: a call recording, each person on a side, would drive one face from both."""
    import soundfile as sf

    path = Path(path)
    check_channel(channel, str(path))
    if path.is_dir():
        raise ValueError(f"audio {path} is a folder; give an audio file")
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own error types; name the file for the user
        raise ValueError(f"cannot read audio {path}: {e}") from None
    if channel == "mix" and x.shape[1] == 2:
        correlation = energy_correlation(x, sr)
        if correlation is not None and correlation < SAME_VOICE_CORRELATION:
            log.warning("%s: its two channels look like different voices (their loudness correlates %.2f), and "
                        "mixed they drive one face from both; to take one, give %s:left or %s:right",
                        path, correlation, path, path)
    return resample(pick_channel(x, channel, path), sr, rate)


def save_audio(path: str | Path, x: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(x, np.float32), -1, 1), rate, subtype="PCM_16")
