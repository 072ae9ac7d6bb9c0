"""Phone timings for recorded speech in any language espeak-ng speaks, with no acoustic model for that language.

espeak-ng says the transcript (its phone events time the phones), and dynamic time warping of the two log-mel
spectrograms carries those times onto the recording. pocketsphinx (`recorded.py`) aligns English only; this
aligns whatever espeak-ng can read, less precisely. Measured on Tux Paint's readers (docs/dataset.md "Recorded
speakers in other languages"): a probe telling P/B/M from T/D/K/G/N, trained and scored within one reader's phones
placed so, scores 0.74-0.88 (AUC), as one on the Allison voice's pocketsphinx phones does (0.82).
"""
from __future__ import annotations

import numpy as np

from ..features import LogMel, level_db
from .espeak import Espeak

ROWS_PER_S = 100  # LogMel's hop is 10 ms
STEP_PENALTY = 0.1  # per row stretched or squeezed: prefer the diagonal where distances tie
PAUSE_DB = 30.0  # a row this far below the spectrogram's loud rows (95th percentile) is a pause
PAUSE_COST = 0.5  # per pause row passed over unmatched: above a good match (~0.3), below a bad one (~1)
MIN_PAUSE_S = 0.1  # a pause passed over this long splits a phone that spans it
# a warp costlier than this is taken for a transcript that was not read. It catches gross mismatches only: on Tux
# Paint's readers it keeps 83% of right transcripts and 54% of another phrase's (short phrases read alike)
MAX_COST = 0.6


def log_mel(audio: np.ndarray) -> np.ndarray:
    mel = LogMel()
    return np.concatenate([mel.process(np.asarray(audio, np.float32)), mel.flush()])


def pauses(rows: np.ndarray) -> np.ndarray:
    """(n,) bool: log-mel rows quiet enough to be a pause (or a stop's closure) rather than speech."""
    db = level_db(rows)
    return db < np.percentile(db, 95) - PAUSE_DB


def warp_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-cost monotonic path through log-mel rows of `a` (n, d) and `b` (m, d): (k, 2) index pairs and the
    mean distance of the pairs matched (cosine distance: 0 alike, ~1 unrelated). Each band is standardised per
    spectrogram first, so a voice's own level and microphone matter less than how its spectrum changes.

    Pauses are a state of their own: a pause row of either side may be passed over at PAUSE_COST without being
    matched (its pair then repeats the other side's row and is left out of the path). Without this, a pause one
    reader makes and the other does not must be matched to speech, and the warp smears the phones beside it over
    the pause (a nasal's murmur matches silence's flat spectrum well enough)."""
    def unit(x):
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)

    dist = 1.0 - unit(a) @ unit(b).T
    skip_a = np.where(pauses(a), PAUSE_COST, np.inf)
    skip_b = np.where(pauses(b), PAUSE_COST, np.inf)
    n, m = dist.shape
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    cost[1:, 0] = np.cumsum(skip_a)  # the path may start (and end) on either side's pauses
    cost[0, 1:] = np.cumsum(skip_b)
    step = np.zeros((n + 1, m + 1), np.int8)  # 0 diagonal, 1 stretch a, 2 stretch b, 3 skip a's row, 4 skip b's
    step[1:, 0], step[0, 1:] = 3, 4
    for i in range(1, n + 1):
        # moves from the row above are vectorised; moves along the row chain, so they run in a loop
        above = np.stack([cost[i - 1, :-1] + dist[i - 1], cost[i - 1, 1:] + STEP_PENALTY + dist[i - 1],
                          cost[i - 1, 1:] + skip_a[i - 1]])
        best = above.argmin(0)
        from_above = above[best, np.arange(m)]
        kind = np.array([0, 1, 3], np.int8)[best]
        row, kinds = cost[i], step[i]
        for j in range(1, m + 1):
            stretch = row[j - 1] + STEP_PENALTY + dist[i - 1, j - 1]
            skip = row[j - 1] + skip_b[j - 1]
            row[j], kinds[j] = min((from_above[j - 1], kind[j - 1]), (stretch, 2), (skip, 4))
    i, j, path = n, m, []
    while i > 0 or j > 0:
        k = step[i, j]
        if k <= 2:
            path.append((i - 1, j - 1))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k in (1, 3) else (i, j - 1)
    path = np.array(path[::-1]).reshape(-1, 2)
    return path, float(dist[path[:, 0], path[:, 1]].mean()) if len(path) else 1.0


def align_by_synthesis(audio: np.ndarray, text: str, voice: str) -> tuple[list, list, float]:
    """(phones, words, cost): IPA phone spans and word spans (start, end, name) in seconds on 16 kHz `audio` of
    someone reading `text`, placed by warping espeak-ng's `voice` saying it onto the recording. `cost` is the warp's
    mean distance: a transcript that does not match what was said costs more (see MAX_COST)."""
    said = Espeak.get().synth(text, voice).trimmed(0.1)
    if not said.phones:
        raise ValueError(f"espeak-ng ({voice}) found no phones in {text[:40]!r}")
    synth_rows, real_rows = log_mel(said.audio), log_mel(audio)
    path, cost = warp_path(synth_rows, real_rows)
    # where the recording first and last meets each synthetic row: a phone starts where its first row is last met
    # and ends where its last row is first met, so a pause the reader inserted (a row met over it) stays out.
    # Rows passed over as pauses are met nowhere: their times come from the rows on either side
    first = np.full(len(synth_rows), np.inf)
    last = np.full(len(synth_rows), -np.inf)
    np.minimum.at(first, path[:, 0], path[:, 1])
    np.maximum.at(last, path[:, 0], path[:, 1])
    met = np.flatnonzero(np.isfinite(first))
    passed_over = np.ones(len(real_rows), bool)  # the reader's pauses that espeak-ng did not make
    passed_over[path[:, 1]] = False

    def place(spans):
        at = lambda t, cols: float(np.interp(t * ROWS_PER_S, met, cols[met]) / ROWS_PER_S)  # noqa: E731
        spans = (_outside_pauses((at(s, last), at(e, first), name), passed_over) for s, e, name in spans)
        return [(round(s, 4), round(e, 4), name) for s, e, name in spans if e > s]
    return place(said.phones), place(said.words), cost


def _outside_pauses(phone: tuple, passed_over: np.ndarray) -> tuple:
    """The phone's longest stretch between pauses of at least MIN_PAUSE_S passed over inside it: no phone spans a
    pause the reader made (a short phone next to one can otherwise keep a row met on its far side)."""
    start, end, name = phone
    lo, hi = int(round(start * ROWS_PER_S)), int(round(end * ROWS_PER_S))
    gap = np.concatenate([[False], passed_over[lo:hi], [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(gap))  # pairs: a pause's first row, the row after it (relative to lo)
    cuts = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= MIN_PAUSE_S * ROWS_PER_S]
    if not cuts:
        return phone
    bounds = [start] + [t for a, b in cuts for t in ((lo + a) / ROWS_PER_S, (lo + b) / ROWS_PER_S)] + [end]
    pieces = list(zip(bounds[::2], bounds[1::2]))
    s, e = max(pieces, key=lambda p: p[1] - p[0])
    return s, e, name
