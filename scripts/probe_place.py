"""Which front end hears *where* the lips close, on voices it never heard? Linear probes of P/B/M against
T/D/K/G/N (and against vowels), read at each phone's middle with what a streaming model may hear by then, scored
as ROC AUC on recorded speakers left out of the probe's training (docs/experiments.md "A front end that knows
where the lips close").

    python scripts/tuxpaint_speakers.py --out /work/data/speakers      # and scripts/asterisk_speakers.py
    .venv/bin/python scripts/probe_place.py --data /work/data/corpus \\
        --speaker ../shared/data/speech/allison --speaker /work/data/speakers/tuxpaint-es ...

Feature sets, each row 10 ms, streamed per speaker in one pass (so running statistics warm up as in a session):
- `log-mel`: the model's 40-band log-mel, rows from 30 ms before to 60 ms after the middle;
- `log-mel, speaker-normalised`: the same, each band less its running mean over the speaker's speech so far
  and over its running deviation (a causal cepstral mean and variance normalisation);
- `phone scores`: pocketsphinx's US-English acoustic model (trained on real speech, in its wheel): per frame the
  best score of each of its 42 context-independent phones (3 senones each), relative to the frame's best, with
  its live cepstral mean normalisation; rows from 30 ms before to 30 ms after (its deltas read 30 ms further);
- `place scores`: the phone scores pooled (best of the class) into places of articulation.
Probes are trained on the synthetic training voices, on the other recorded speakers (leave one speaker out), or
on both, and report each held-out speaker's AUC and their mean.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import tempfile
from pathlib import Path

import numpy as np

from backchannel.models.audio import SAMPLE_RATE, load_audio
from backchannel.models.corpus import worker
from backchannel.models.corpus.dataset import Corpus
from backchannel.models.corpus.recorded import RecordedSpeaker
from backchannel.models.frontend.features import HOP, log_mel
from backchannel.models.frontend.phonetic import PLACES, phone_names, senone_log_scores
from backchannel.models.phones import is_bilabial_closure, is_tongue_closure, is_vowel

ROWS_PER_S = SAMPLE_RATE // HOP
L2 = 1e-2  # the probes' weight decay
MEL_OFFSETS = range(-3, 7)
PS_OFFSETS = range(-3, 4)
GAP_S = 0.3  # silence between a speaker's prompts in its stream
class PhoneScores:
    """Per-frame scores of pocketsphinx's context-independent phones, from the senone log it writes when asked
    to score every senone. One decoder per speaker: its live cepstral mean carries from prompt to prompt."""

    def __init__(self) -> None:
        import pocketsphinx as ps

        self.dir = tempfile.mkdtemp(prefix="senlog-")
        model = Path(ps.get_model_path())
        self.decoder = ps.Decoder(senlogdir=self.dir, compallsen=True, cmn="live", loglevel="ERROR",
                                  allphone=str(model / "en-us" / "en-us-phone.lm.bin"))
        self.names = phone_names(model / "en-us" / "en-us" / "mdef")

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """(frames, 42) log scores in nats, 0 for the frame's best phone; frame k is centred on sample
        k * 160 + 205 (a 410-sample window)."""
        for f in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, f))
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=False)
        self.decoder.end_utt()
        (log,) = os.listdir(self.dir)
        return senone_log_scores(Path(self.dir, log).read_bytes(), len(self.names)).astype(np.float32)


def place_scores(scores: np.ndarray, names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.stack([scores[:, [index[p] for p in phones]].max(1) for phones in PLACES.values()], 1)


def running_normalised(rows: np.ndarray, speech: np.ndarray, tau_s: float = 3.0) -> np.ndarray:
    """Each column less its running mean over speech rows so far, over its running deviation (causal)."""
    a = 1.0 / (tau_s * ROWS_PER_S)
    first = int(np.argmax(speech))
    mean, var = rows[first].copy(), np.full(rows.shape[1], 4.0, np.float32)  # a guess until speech has been heard
    out = np.empty_like(rows)
    for j, row in enumerate(rows):
        if speech[j]:
            mean += a * (row - mean)
            var += a * ((row - mean) ** 2 - var)
        out[j] = (row - mean) / np.sqrt(var + 1e-3)
    return out


def stream_features(pieces: list[np.ndarray], scorer: PhoneScores | None) -> tuple[dict, list[int]]:
    """Feature rows of the pieces streamed as one track with GAP_S between them; the row each piece starts at."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    starts, audio, at = [], [], 0
    for p in pieces:
        starts.append(at // HOP)
        audio += [p, gap]
        at += len(p) + len(gap)
    audio = np.concatenate(audio)
    mel = log_mel(audio)
    level = mel.max(1)
    speech = level > np.percentile(level, 30)
    feats = {"log-mel": mel, "log-mel, speaker-normalised": running_normalised(mel, speech)}
    if scorer is not None:
        scores = scorer(audio)
        # frame k is centred 45 samples after row k + 1: row j reads frame j - 1
        shifted = np.concatenate([scores[:1], scores[:-1]])[: len(mel)]
        shifted = np.pad(shifted, ((0, len(mel) - len(shifted)), (0, 0)), mode="edge")
        feats["phone scores"] = shifted
        feats["place scores"] = place_scores(shifted, scorer.names)
    return feats, starts


def examples(feats: dict, starts: list[int], phone_lists: list[list]) -> tuple[dict, np.ndarray]:
    """{set: (phones, dims)}, labels: 1 P/B/M, 0 T/D/K/G/N, 2 vowel."""
    xs, labels = {k: [] for k in feats}, []
    n = len(next(iter(feats.values())))
    for start, phones in zip(starts, phone_lists):
        for a, b, name in phones:
            label = 1 if is_bilabial_closure(name) else 0 if is_tongue_closure(name) else 2 if is_vowel(name) else None
            j = start + int(round((a + b) / 2 * ROWS_PER_S))
            if label is None or j - 3 < 0 or j + 7 > n:
                continue
            for k, rows in feats.items():
                offsets = PS_OFFSETS if "scores" in k else MEL_OFFSETS
                xs[k].append(rows[[j + o for o in offsets]].reshape(-1))
            labels.append(label)
    return {k: np.array(v, np.float32) for k, v in xs.items()}, np.array(labels)


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    ranks = np.empty(len(score))
    ranks[np.argsort(score)] = np.arange(1, len(score) + 1)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_probe(x: np.ndarray, y: np.ndarray):
    """Class-balanced logistic regression on standardised features -> scoring function."""
    from scipy.optimize import minimize

    mean, std = x.mean(0), x.std(0) + 1e-6
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1), np.float32)]).astype(np.float64)
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())) / len(y)
    sign = np.where(y == 1, 1.0, -1.0)

    def loss(w):  # weighted logistic loss + L2 (not on the bias)
        m = sign * (z @ w)
        p = 1.0 / (1.0 + np.exp(np.clip(m, -30, 30)))
        grad = -(z * (weight * sign * p)[:, None]).sum(0) + L2 * np.r_[w[:-1], 0]
        return float((weight * np.logaddexp(0, -m)).sum() + 0.5 * L2 * (w[:-1] ** 2).sum()), grad

    w = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x
    return lambda q: ((q - mean) / std) @ w[:-1]


def speaker_examples(folder: str, prompts: int, seed: int, ps: bool) -> tuple[dict, np.ndarray]:
    speaker = RecordedSpeaker.open(folder)
    chosen = speaker.aligned()
    random.Random(seed).shuffle(chosen := list(chosen))
    chosen = chosen[:prompts]
    pieces = [load_audio(p.wav) for p in chosen]
    feats, starts = stream_features(pieces, PhoneScores() if ps else None)
    return examples(feats, starts, [speaker.alignment(p)[0] for p in chosen])


def synthetic_examples(data: str, clips: int, ps: bool) -> tuple[dict, np.ndarray]:
    corpus = Corpus(data)
    xs, ys = [], []
    by_voice: dict[str, list] = {}
    for clip in corpus.clips("train"):
        by_voice.setdefault(clip.meta["voices"]["self"]["speaker"], []).append(clip)
        if sum(map(len, by_voice.values())) >= clips:
            break
    for voice_clips in by_voice.values():  # one stream per voice, as a session would hear it
        feats, starts = stream_features([c.self_audio.astype(np.float32) for c in voice_clips],
                                        PhoneScores() if ps else None)
        x, y = examples(feats, starts, [c.meta.get("self_phones", []) for c in voice_clips])
        xs.append(x)
        ys.append(y)
    return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}, np.concatenate(ys)


def align_all(folders: list[str], prompts: int, seed: int) -> None:
    """Align (and cache) the prompts each speaker will use, in fresh processes as the corpus build does."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([worker.__name__])
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        for d in folders:
            speaker = RecordedSpeaker.open(d)
            order = list(range(len(speaker.prompts)))
            random.Random(seed).shuffle(order)
            todo = [i for i in order[: int(prompts * 1.3)] if not speaker.cache_path(speaker.prompts[i]).is_file()]
            ok = sum(pool.imap_unordered(worker.align, [(d, None, i) for i in todo]))
            print(f"{speaker.name}: {ok} of {len(todo)} newly aligned", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a corpus: its train split gives the synthetic voices")
    ap.add_argument("--speaker", action="append", required=True, help="a recorded speaker folder (repeatable)")
    ap.add_argument("--prompts", type=int, default=120, help="prompts per recorded speaker")
    ap.add_argument("--train-clips", type=int, default=136)
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ps = not args.no_pocketsphinx
    align_all(args.speaker, args.prompts, args.seed)
    real = {Path(d).name: speaker_examples(d, args.prompts, args.seed, ps) for d in args.speaker}
    synth = synthetic_examples(args.data, args.train_clips, ps)
    for name, (_, y) in [("synthetic", synth)] + list(real.items()):
        print(f"{name}: P/B/M {(y == 1).sum()}, T/D/K/G/N {(y == 0).sum()}, vowels {(y == 2).sum()}")
    sets = list(synth[0])
    for task, negative in (("P/B/M vs T/D/K/G/N", 0), ("P/B/M vs vowels", 2)):
        print(f"\n## {task}: AUC on each held-out recorded speaker")
        print("| features | trained on | " + " | ".join(real) + " | mean |")
        for fs in sets:
            for source in ("synthetic", "other speakers", "both"):
                row = []
                for held in real:
                    parts = ([synth] if source != "other speakers" else []) + (
                        [v for k, v in real.items() if k != held] if source != "synthetic" else [])
                    x = np.concatenate([p[0][fs] for p in parts])
                    y = np.concatenate([p[1] for p in parts])
                    keep = (y == 1) | (y == negative)
                    probe = fit_probe(x[keep], (y[keep] == 1).astype(int))
                    hx, hy = real[held][0][fs], real[held][1]
                    hk = (hy == 1) | (hy == negative)
                    row.append(auc(probe(hx[hk]), hy[hk] == 1))
                print(f"| {fs} | {source} | " + " | ".join(f"{a:.3f}" for a in row) + f" | {np.mean(row):.3f} |",
                      flush=True)
        if "place scores" in sets:  # no probe at all: the bilabial score against the tongue's best, at the middle
            middle, width = list(PS_OFFSETS).index(0), len(PLACES)
            cols = {k: middle * width + i for i, k in enumerate(PLACES)}
            row = []
            for x, y in real.values():
                rivals = ("alveolar", "velar") if negative == 0 else ("open", "spread")
                places = x["place scores"]
                score = places[:, cols["bilabial"]] - np.maximum(*(places[:, cols[r]] for r in rivals))
                keep = (y == 1) | (y == negative)
                row.append(auc(score[keep], y[keep] == 1))
            print("| pocketsphinx's bilabial score over its best rival place | nothing (no probe) | "
                  + " | ".join(f"{a:.3f}" for a in row) + f" | {np.mean(row):.3f} |", flush=True)


if __name__ == "__main__":
    main()
