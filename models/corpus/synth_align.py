"""Phone timings for recorded speech in any language espeak-ng speaks, with no acoustic model for that language.

espeak-ng says the transcript (its phone events time the phones), and dynamic time warping of the two log-mel
spectrograms carries those times onto the recording. pocketsphinx (`recorded.py`) aligns English only; this
aligns whatever espeak-ng can read, less precisely. Measured on Tux Paint's readers (docs/dataset.md "Recorded
speakers in other languages"): a probe telling P/B/M from T/D/K/G/N, trained and scored within one reader's phones
placed so, scores 0.75-0.90 (AUC), as one on the Allison voice's pocketsphinx phones does (0.82).
"""
from __future__ import annotations

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.espeak import Espeak
from backchannel.models.frontend.features import HOP, level_db, log_mel

VERSION = 3  # bump when alignments would come out differently: cached ones are then made again
ROWS_PER_S = SAMPLE_RATE // HOP
STEP_PENALTY = 0.1  # per row stretched or squeezed: prefer the diagonal where distances tie
PAUSE_DB = 30.0  # a row this far below the spectrogram's loud rows (95th percentile) is a pause
PAUSE_COST = 0.5  # per pause row passed over unmatched: above a good match (~0.3), below a bad one (~1)
PAUSE_MISMATCH = 0.5  # added to the distance of a pause row from a speech row
MIN_PAUSE_S = 0.1  # a pause passed over this long splits a phone that spans it
# a warp costlier than this is taken for a transcript that was not read. It catches gross mismatches only: on Tux
# Paint's readers it keeps 79% of right transcripts and 46% of another phrase's (short phrases read alike)
MAX_COST = 0.6


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

    pause_a, pause_b = pauses(a), pauses(b)
    apart = 1.0 - unit(a) @ unit(b).T
    # a pause matched to speech costs extra: otherwise a recording's long silence (its spectrum flat, like a stop's
    # closure once each band is standardised) can take the last phones, with the speech they were said in skipped
    dist = apart + PAUSE_MISMATCH * (pause_a[:, None] != pause_b[None, :])
    skip_a = np.where(pause_a, PAUSE_COST, np.inf)
    skip_b = np.where(pause_b, PAUSE_COST, np.inf)
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
    return path, float(apart[path[:, 0], path[:, 1]].mean()) if len(path) else 1.0


def align_by_synthesis(audio: np.ndarray, text: str, voice: str) -> tuple[list, list, float]:
    """(phones, words, cost): IPA phone spans and word spans (start, end, name) in seconds on 16 kHz `audio` of
    someone reading `text`, placed by warping espeak-ng's `voice` saying it onto the recording. `cost` is the warp's
    mean distance: a transcript that does not match what was said costs more (see MAX_COST). espeak-ng's reading
    depends on what its process said before, so the corpus aligns each prompt in a fresh process (worker.align)."""
    said = Espeak.get().synth(text, voice).trimmed(0.1)
    if not said.phones:
        raise ValueError(f"espeak-ng ({voice}) found no phones in {text[:40]!r}")
    synth_rows, real_rows = log_mel(said.audio), log_mel(audio)
    if len(real_rows) < 2:
        raise ValueError(f"the recording of {text[:40]!r} is empty")
    path, cost = warp_path(synth_rows, real_rows)
    # where the recording first and last meets each synthetic row: a span starts where the row at its start is last
    # met and ends where the row at its end (the next span's first) is first met, so a stretch of the recording
    # matched to one row alone stays out. Rows passed over as pauses are met nowhere: their times come from the rows
    # on either side, and _outside_pauses keeps the recording's passed-over pauses out of every span
    first = np.full(len(synth_rows), np.inf)
    last = np.full(len(synth_rows), -np.inf)
    np.minimum.at(first, path[:, 0], path[:, 1])
    np.maximum.at(last, path[:, 0], path[:, 1])
    met = np.flatnonzero(np.isfinite(first))
    reader_pauses = pauses_passed_over(path, len(real_rows))

    def place(spans):
        at = lambda t, cols: float(np.interp(t * ROWS_PER_S, met, cols[met]) / ROWS_PER_S)  # noqa: E731
        spans = (_outside_pauses((at(s, last), at(e, first), name), reader_pauses) for s, e, name in spans)
        spans = [(round(s, 4), round(e, 4), name) for s, e, name in spans]
        return [(s, e, name) for s, e, name in spans if e > s]
    return place(said.phones), place(said.words), cost


def pauses_passed_over(path: np.ndarray, n_rows: int) -> list[tuple[float, float]]:
    """(start, end) seconds of every run of at least MIN_PAUSE_S of the recording's `n_rows` that `path` never meets:
    the reader's pauses that espeak-ng did not make."""
    passed_over = np.ones(n_rows, bool)
    passed_over[path[:, 1]] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], passed_over.astype(np.int8), [0]])))
    return [(a / ROWS_PER_S, b / ROWS_PER_S) for a, b in zip(edges[::2], edges[1::2])
            if b - a >= MIN_PAUSE_S * ROWS_PER_S]


def _outside_pauses(span: tuple, pauses: list[tuple[float, float]]) -> tuple:
    """The span's longest stretch outside `pauses`: no phone spans, or reaches into, a pause the reader made (a short
    phone next to one can otherwise keep a row met on its far side)."""
    start, end, name = span
    pieces, at = [], start
    for a, b in pauses:
        if a < end and b > at:  # overlaps what is left of the span
            pieces.append((at, max(at, a)))
            at = min(end, b)
    pieces.append((at, end))
    s, e = max(pieces, key=lambda p: p[1] - p[0])
    return s, e, name
