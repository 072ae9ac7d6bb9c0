"""Where the voice says the lips close: place-of-articulation evidence, row by row, from a speech recogniser's
acoustic model trained on many real speakers.

The motion model's own front end learnt *where* a closure is from synthetic voices; on a real voice it hears that
the voice stops, not where (docs/experiments.md "A front end that knows where the lips close"). pocketsphinx's
US-English acoustic model, in its wheel (BSD-2), learnt its phones from real speech: a phonetically-tied mixture
model, one codebook of 128 Gaussians per phone and stream. This module scores each 10 ms row against the three
context-independent states of each of its 42 phones, streaming: the same features however the audio is chunked.
The lips need only 27 of the phones (lip_model, in float32: its scores move by about 1e-5 nats with how many rows
one call scores). Its MFCCs follow the model's feat.params; the code is ours, checked against pocketsphinx's own
senone scores (tests/test_phonetic.py).

Row j is pocketsphinx's frame j - 1: its 410-sample window starts at sample (j - 1) * HOP, so it is centred 45
samples (3 ms) after features.LogMel's row j. It is known once the audio reaches j * HOP + READY_AFTER samples
(the window's end, then 3 rows more for the deltas).
"""
from __future__ import annotations

import copy
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.frontend.features import HOP, Rolling

FRAME = 410  # 25.625 ms, pocketsphinx's window at 16 kHz
N_FFT, N_CEP = 512, 13
PRE_EMPHASIS = 0.97
DELTA_ROWS = 3  # the second derivative reads 3 rows either side
READY_AFTER = FRAME - HOP + DELTA_ROWS * HOP  # samples after j * HOP before row j's scores are known
LOG_FLOOR = 1e-4  # added to each filter's energy (16-bit units squared) before the log, as pocketsphinx does
# Live cepstral mean: the model's initial guess (feat.params' cmninit), then the mean of the rows that carry voice
# (within SPEECH_RANGE of the loudest c0 so far: a conversation's own track is silent while the partner talks, and
# silence would drag the mean), weighing the guess as CMN_PRIOR rows and forgetting over about CMN_ROWS.
CMN_INIT = (40.0, 3.0, -1.0)
CMN_PRIOR, CMN_ROWS = 100, 500
SPEECH_RANGE = 7.0  # in c0 units (c0 is about 3.6 per 10 dB of level)
LOG_UNIT = 1024 * np.log(1.0001)  # pocketsphinx's quantised log weights: base 1.0001, shifted by 10 bits
VAR_FLOOR = 1e-4
# The model's phones (ARPAbet) by where they close or shape the mouth.
PLACES = {
    "bilabial": ("P", "B", "M"), "labiodental": ("F", "V"), "dental": ("TH", "DH"),
    "alveolar": ("T", "D", "N", "S", "Z", "L"), "postalveolar": ("SH", "ZH", "CH", "JH", "R"),
    "velar": ("K", "G", "NG"), "glides": ("W", "Y", "HH"),
    "rounded": ("UW", "UH", "OW", "AO", "OY"), "open": ("AA", "AE", "AH", "AW", "AY"),
    "spread": ("IY", "IH", "EY", "EH", "ER"), "silence": ("SIL",),
}


def model_dir() -> Path:
    try:
        import pocketsphinx
    except ImportError as e:  # a core dependency: only a broken install lacks it
        raise RuntimeError("lip_place reads pocketsphinx's acoustic model: pip install pocketsphinx") from e
    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"


def read_params(path: Path) -> dict[str, str]:
    words = path.read_text().split()
    return {k.lstrip("-"): v for k, v in zip(words[::2], words[1::2])}


def read_gaussians(path: Path) -> np.ndarray:
    """A sphinx-3 binary Gaussian parameter file -> (codebooks, streams, densities, dims)."""
    raw = path.read_bytes()
    at = raw.index(b"endhdr\n") + 7
    if np.frombuffer(raw[at:at + 4], "<u4")[0] != 0x11223344:
        raise ValueError(f"{path}: not a little-endian sphinx-3 parameter file")
    n_books, n_streams, n_dens = np.frombuffer(raw[at + 4:at + 16], "<i4")
    dims = np.frombuffer(raw[at + 16:at + 16 + 4 * n_streams], "<i4")
    if len(set(dims)) != 1:
        raise ValueError(f"{path}: streams of unequal width {dims}")
    start = at + 20 + 4 * n_streams
    data = np.frombuffer(raw[start:start + 4 * n_books * n_streams * n_dens * dims[0]], "<f4")
    return data.reshape(n_books, n_streams, n_dens, dims[0]).astype(np.float64)


def read_mixture_weights(path: Path, n_streams: int) -> np.ndarray:
    """pocketsphinx's `sendump`: titled header strings, then uint8 -log weights per (stream, density, senone)."""
    raw = path.read_bytes()
    at = 0
    while (n := int(np.frombuffer(raw[at:at + 4], "<i4")[0])) != 0:
        at += 4 + n
    n_dens, n_sen = np.frombuffer(raw[at + 4:at + 12], "<i4")
    at += 12
    return np.frombuffer(raw[at:at + n_streams * n_dens * n_sen], "u1").reshape(n_streams, n_dens, n_sen)


def phone_names(mdef: Path) -> list[str]:
    """The context-independent phones of a binary model definition, in senone order (3 senones each, first)."""
    raw = mdef.read_bytes()
    at = raw.index(b"END FILE FORMAT DESCRIPTION\n") + 28
    at += (-at) % 4
    n_ci = int(np.frombuffer(raw[at:at + 4], "<i4")[0])
    return [n.decode() for n in raw[at + 40:].split(b"\0")[:n_ci]]


class AcousticModel:
    """The context-independent part of the model, ready for scoring many rows at once."""

    def __init__(self, folder: Path):
        params = read_params(folder / "feat.params")
        expected = {"feat": "1s_c_d_dd", "model": "ptm", "transform": "dct", "svspec": "0-12/13-25/26-38"}
        if any(params.get(k) != v for k, v in expected.items()):
            raise ValueError(f"{folder}: an acoustic model of another kind than {expected}")
        self.names = phone_names(folder / "mdef")
        n = len(self.names)
        means, var = read_gaussians(folder / "means"), np.maximum(read_gaussians(folder / "variances"), VAR_FLOOR)
        if means.shape[0] != n:
            raise ValueError(f"{folder}: {means.shape[0]} codebooks for {n} phones")
        raw = read_mixture_weights(folder / "sendump", means.shape[1])[:, :, :3 * n].astype(np.float64)  # (S, D, 3n)
        log_w = -raw * LOG_UNIT
        # log N(x) = x^2 . quad + x . lin + const, as matrices over every (phone, density), per stream
        self.quad = [(-0.5 / var[:, s]).reshape(-1, var.shape[-1]).T for s in range(means.shape[1])]
        self.lin = [(means[:, s] / var[:, s]).reshape(-1, var.shape[-1]).T for s in range(means.shape[1])]
        self.const = [(-0.5 * (np.log(2 * np.pi * var[:, s]) + means[:, s] ** 2 / var[:, s]).sum(-1)).reshape(-1)
                      for s in range(means.shape[1])]
        # each state's mixture weights over its phone's codebook, as matrices: (S, phone, D, state)
        self.weights = np.exp(log_w).reshape(means.shape[1], -1, n, 3).transpose(0, 2, 1, 3)
        self.dims, self.densities = means.shape[-1], means.shape[2]
        self.filters = mel_filters(float(params["lowerf"]), float(params["upperf"]), int(params["nfilt"]))
        self.lifter = 1 + int(params["lifter"]) / 2 * np.sin(np.pi * np.arange(N_CEP) / int(params["lifter"]))
        n_filt = int(params["nfilt"])
        k, j = np.arange(N_CEP)[:, None], np.arange(n_filt)[None, :]
        self.dct = np.cos(np.pi * k * (j + 0.5) / n_filt) * np.sqrt(2.0 / n_filt)
        self.dct[0] *= np.sqrt(0.5)
        self.window = np.hamming(FRAME)
        self.index = {name: i for i, name in enumerate(self.names)}

    def restricted(self, names: list[str], dtype=np.float32) -> "AcousticModel":
        """The same model scoring only `names`, in `dtype`: fewer phones cost less, and float32 about half as much."""
        keep = [self.index[n] for n in names]
        cols = (np.array(keep)[:, None] * self.densities + np.arange(self.densities)).reshape(-1)
        part = copy.copy(self)
        part.names, part.index = list(names), {n: i for i, n in enumerate(names)}
        part.quad = [q[:, cols].astype(dtype) for q in self.quad]
        part.lin = [w[:, cols].astype(dtype) for w in self.lin]
        part.const = [c[cols].astype(dtype) for c in self.const]
        part.weights = self.weights[:, keep].astype(dtype)
        return part

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N, 39) features -> (N, phones) log-likelihoods of each phone's likeliest state, every state's mixture
        summed over its codebook (pocketsphinx sums the 4 nearest Gaussians; the rest add little)."""
        n_rows, n = len(features), len(self.names)
        if n_rows == 0:
            return np.zeros((0, n))
        total = np.zeros((n, n_rows, 3))
        for s in range(len(self.quad)):
            x = features[:, s * self.dims:(s + 1) * self.dims].astype(self.quad[s].dtype)
            ll = ((x * x) @ self.quad[s] + x @ self.lin[s] + self.const[s]).reshape(n_rows, n, -1).transpose(1, 0, 2)
            top = ll.max(-1, keepdims=True)  # each codebook's nearest Gaussian, per row
            mixture = np.exp(ll - top) @ self.weights[s]  # > 0: the nearest Gaussian adds its weight, times 1
            total += np.log(np.maximum(mixture, np.finfo(mixture.dtype).tiny)) + top  # (phone, N, state)
        return total.max(-1).T

    def places(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Each place's best phone score per row (the places whose phones this model scores)."""
        return {place: scores[:, [self.index[p] for p in phones]].max(1) for place, phones in PLACES.items()
                if all(p in self.index for p in phones)}


@lru_cache(maxsize=1)
def acoustic_model() -> AcousticModel:
    return AcousticModel(model_dir())


BLAS_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def blas() -> ThreadpoolController:
    return ThreadpoolController()


LIP_PLACES = ("bilabial", "alveolar", "velar", "rounded", "spread", "open")  # what the lips' evidence weighs


@lru_cache(maxsize=1)
def lip_model() -> AcousticModel:
    """The phones of LIP_PLACES alone, in float32: what the lips' evidence needs, at a third of the full cost."""
    return acoustic_model().restricted([p for place in LIP_PLACES for p in PLACES[place]])


def mel_filters(lowerf: float, upperf: float, n_filt: int) -> np.ndarray:
    """pocketsphinx's filters: triangles equally spaced on the mel scale, edges on FFT bins, each of unit area."""
    mel = lambda f: 2595.0 * np.log10(1 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1)  # noqa: E731
    step = SAMPLE_RATE / N_FFT
    edges = np.round(hz(np.linspace(mel(lowerf), mel(upperf), n_filt + 2)) / step) * step
    bins = np.arange(N_FFT // 2 + 1) * step
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return tri * 2.0 / (hi - lo)


def with_deltas(ceps: np.ndarray) -> np.ndarray:
    """(n - 6, 39) rows of 1s_c_d_dd features from n cepstral rows: each inner row's cepstrum, its first difference
    (2 rows either side) and its second (of first differences 1 row either side, each over 2 rows)."""
    t = np.arange(DELTA_ROWS, len(ceps) - DELTA_ROWS)
    return np.hstack([ceps[t], ceps[t + 2] - ceps[t - 2], (ceps[t + 3] - ceps[t - 1]) - (ceps[t + 1] - ceps[t - 3])])


def senone_log_scores(raw: bytes, n_phones: int) -> np.ndarray:
    """A pocketsphinx senone log (`senlogdir`, every senone scored) -> (frames, n_phones) log-likelihoods of each
    context-independent phone's likeliest state, relative to the frame's best senone (nats)."""
    n_sen = int(raw.split(b"n_sen ")[1].split()[0])
    frames = np.frombuffer(raw[raw.index(b"endhdr\n") + 11:], "<i2").reshape(-1, n_sen + 1)  # header, byte order
    if not (frames[:, 0] == n_sen).all():
        raise ValueError("the senone log does not score every senone (compallsen)")
    senones = frames[:, 1:1 + 3 * n_phones].astype(np.float64).reshape(len(frames), n_phones, 3)
    return -senones.min(2) * LOG_UNIT  # stored as -log(p) in pocketsphinx's quantised units


def closure_evidence(places: dict[str, np.ndarray]) -> np.ndarray:
    """Per row: how much likelier the lips' closures are than the tongue's (log-likelihood, nats)."""
    return places["bilabial"] - np.maximum(places["alveolar"], places["velar"])


def rounding_evidence(places: dict[str, np.ndarray]) -> np.ndarray:
    """Per row: how much likelier a rounded vowel is than a spread or open one (nats)."""
    return places["rounded"] - np.maximum(places["spread"], places["open"])


class PhoneticStream:
    """Streaming phone scores of one track: `process` returns (n, phones) for the rows completed by the audio."""

    def __init__(self) -> None:
        self.model = acoustic_model()
        self.buf = np.zeros(HOP, np.float64)  # row 0 reads a row of silence before the stream: row j is frame j - 1
        self.last = 0.0  # the sample before buf[0], for pre-emphasis
        self.ceps = np.zeros((0, N_CEP))  # normalised cepstra waiting for their deltas (empty only before the first)
        self.mean = np.array(CMN_INIT + (0.0,) * (N_CEP - len(CMN_INIT)))
        self.weight = float(CMN_PRIOR)
        self.loudest = -np.inf

    def cepstra(self, x: np.ndarray) -> np.ndarray:
        """MFCC rows of the whole windows in the audio so far (x in [-1, 1], read on pocketsphinx's 16-bit scale)."""
        self.buf = np.concatenate([self.buf, np.asarray(x, np.float64) * 32768.0])
        n = 0 if len(self.buf) < FRAME else 1 + (len(self.buf) - FRAME) // HOP
        if n == 0:
            return np.zeros((0, N_CEP))
        emphasised = self.buf - PRE_EMPHASIS * np.concatenate([[self.last], self.buf[:-1]])
        idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
        power = np.abs(np.fft.rfft(emphasised[idx] * self.model.window, N_FFT)) ** 2
        self.last = self.buf[n * HOP - 1]
        self.buf = self.buf[n * HOP:]
        return (np.log(power @ self.model.filters.T + LOG_FLOOR) @ self.model.dct.T) * self.model.lifter

    def normalised(self, ceps: np.ndarray) -> np.ndarray:
        """Less the live mean of the voiced rows so far."""
        out = np.empty_like(ceps)
        for i, c in enumerate(ceps):
            self.loudest = max(self.loudest, c[0])
            if c[0] > self.loudest - SPEECH_RANGE:  # (replaced, not edited in place: snapshots share the old)
                self.weight = min(self.weight + 1, CMN_ROWS)
                self.mean = self.mean + (c - self.mean) / self.weight
            out[i] = c - self.mean
        return out

    def features(self, x: np.ndarray) -> np.ndarray:
        """(n, 39) rows: cepstra, their first and second differences (1s_c_d_dd)."""
        fresh = self.normalised(self.cepstra(x))
        if len(fresh) and not len(self.ceps):  # row 0's past is its own copy
            self.ceps = np.repeat(fresh[:1], DELTA_ROWS, 0)
        self.ceps = np.concatenate([self.ceps, fresh])
        n = len(self.ceps) - 2 * DELTA_ROWS
        if n <= 0:
            return np.zeros((0, 3 * N_CEP))
        out = with_deltas(self.ceps)
        self.ceps = self.ceps[n:]
        return out

    def process(self, x: np.ndarray) -> np.ndarray:
        return self.model.scores(self.features(x))


class PlaceEvidence:
    """One track's evidence for each of LIP_PLACES (its best phone's log-likelihood), row by row as the audio
    completes them, kept until dropped."""

    def __init__(self) -> None:
        self.stream = PhoneticStream()
        self.rows = Rolling(width=len(LIP_PLACES), dtype=np.float64)

    def feed(self, x: np.ndarray) -> None:
        feed_places([self], [x])

    def mean_over(self, spans: np.ndarray, measures) -> list[np.ndarray]:
        """Each of `measures` (places -> per-row evidence, as closure_evidence) averaged over each [lo, hi) row span
        of (n, 2) `spans`, clipped to the rows known (nan where none is)."""
        spans = np.clip(np.asarray(spans, np.int64).reshape(-1, 2), self.rows.start, self.rows.end) - self.rows.start
        places = dict(zip(LIP_PLACES, self.rows.data.T))
        summed = np.cumsum(np.stack([np.concatenate([[0.0], measure(places)]) for measure in measures]), 1)
        count = spans[:, 1] - spans[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return list(np.where(count > 0, (summed[:, spans[:, 1]] - summed[:, spans[:, 0]]) / count, np.nan))

    def drop_before(self, j: int) -> None:
        self.rows.drop_before(j)

    def copy(self) -> "PlaceEvidence":
        """An independent copy (every piece of state is replaced, never edited in place, so shallow copies do)."""
        twin = copy.copy(self)
        twin.stream, twin.rows = copy.copy(self.stream), copy.copy(self.rows)
        return twin


def feed_places(tracks: list[PlaceEvidence], audio: list[np.ndarray]) -> None:
    """Each track's new audio, the rows it completes scored in one call for all of them: a live tick brings each
    session three or four rows, and one call's overhead outweighs their arithmetic."""
    features = [track.stream.features(x) for track, x in zip(tracks, audio)]
    if not features:
        return
    model = lip_model()
    # its products are small: BLAS's other threads would only spin. The limit is the process's: one caller at a time
    with BLAS_LOCK, blas().limit(limits=1, user_api="blas"):
        places = model.places(model.scores(np.concatenate(features)))
    rows = np.stack([places[p] for p in LIP_PLACES], 1)
    for track, part in zip(tracks, np.split(rows, np.cumsum([len(f) for f in features])[:-1])):
        track.rows.extend(part)
