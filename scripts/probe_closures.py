"""Which input features tell a lip closure from a vowel on a voice unlike the training voices? A linear probe per
feature set, trained on the avatar tracks of synthetic training clips, scored on held-out synthetic voices (val) and
on the recorded voice (test-real) as the area under the ROC curve of P/B/M phones against vowels (docs/model.md
"Hearing real voices through the VAD").

    .venv/bin/python scripts/probe_closures.py --data /path/to/corpus [--train-clips 150]

Each phone is read at its middle, with what the model may hear by then (64 ms of look-ahead): log-mel rows from
30 ms before to 60 ms after, the VAD's LSTM output at the middle and 30 / 60 ms after.
"""
import argparse
from itertools import islice

import numpy as np
import torch

from backchannel.models.corpus.dataset import Corpus
from backchannel.models.corpus.phones import is_bilabial_closure, is_vowel
from backchannel.models.features import HOP, N_MELS, VAD_STATE, track_features
from backchannel.models.audio import SAMPLE_RATE

ROWS_PER_S = SAMPLE_RATE // HOP
SETS = {  # feature set -> (rows relative to the phone's middle row, columns)
    "log-mel": (range(-3, 7), slice(0, N_MELS)),
    "VAD output": ((0, 3, 6), slice(VAD_STATE, None)),
}


def examples(corpus: Corpus, split: str, clips: int):
    """{feature set: (phones, dims)}, labels (1: P/B/M, 0: vowel) for the avatar track's phones."""
    xs, labels = {name: [] for name in SETS}, []
    for clip in islice(corpus.clips(split), clips):
        rows = track_features(clip.self_audio.astype(np.float32))
        for start, end, name in clip.meta.get("self_phones", []):
            if not (is_bilabial_closure(name) or is_vowel(name)):
                continue
            j = int(round((start + end) / 2 * ROWS_PER_S))
            if j - 3 < 0 or j + 7 > len(rows):
                continue
            for set_name, (offsets, cols) in SETS.items():
                xs[set_name].append(rows[[j + o for o in offsets], cols].reshape(-1))
            labels.append(int(is_bilabial_closure(name)))
    return {k: np.array(v, np.float32) for k, v in xs.items()}, np.array(labels)


def auc(score: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random P/B/M phone scores above a random vowel."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score)] = np.arange(1, len(score) + 1)
    pos = labels == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def fit_probe(x: np.ndarray, labels: np.ndarray, steps: int = 500):
    """Logistic regression (classes balanced, light weight decay) on standardised features -> scoring function."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(lin.parameters(), 1e-2, weight_decay=1e-3)
    xt, yt = torch.as_tensor((x - mean) / std), torch.as_tensor(labels, dtype=torch.float32)
    balance = torch.as_tensor((1 - labels.mean()) / labels.mean())
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(lin(xt)[:, 0], yt, pos_weight=balance).backward()
        opt.step()
    return lambda z: lin(torch.as_tensor((z - mean) / std))[:, 0].detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-clips", type=int, default=150)
    ap.add_argument("--val-clips", type=int, default=40)
    ap.add_argument("--real-clips", type=int, default=30)
    args = ap.parse_args()
    corpus = Corpus(args.data)
    train, val, real = (examples(corpus, split, n) for split, n in (
        ("train", args.train_clips), ("val", args.val_clips), ("test-real", args.real_clips)))
    print(f"P/B/M / vowels: train {train[1].sum()} / {(train[1] == 0).sum()}, val {val[1].sum()} / "
          f"{(val[1] == 0).sum()}, test-real {real[1].sum()} / {(real[1] == 0).sum()}")
    print("| features | dims | val AUC | test-real AUC |\n| --- | --- | --- | --- |")
    for name in [*SETS, "both"]:
        pick = (lambda d: np.concatenate([d[0][k] for k in SETS], 1)) if name == "both" else (lambda d: d[0][name])
        score = fit_probe(pick(train), train[1])
        print(f"| {name} | {pick(train).shape[1]} | {auc(score(pick(val)), val[1]):.3f} | "
              f"{auc(score(pick(real)), real[1]):.3f} |")


if __name__ == "__main__":
    main()
