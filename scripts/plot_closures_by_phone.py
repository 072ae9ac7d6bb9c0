"""Writes docs/model-closures-by-phone.png: how often the lips meet during each kind of phone, for the labels, the
baseline and the model, on held-out synthetic voices and on the recorded voice (docs/model.md "Lips that shut on
any closure").

    .venv/bin/python scripts/plot_closures_by_phone.py --data /path/to/corpus [--clips 30] \
        [--generator "labels,baseline,model"] [--out docs/model-closures-by-phone.png]
"""
import argparse
from itertools import islice

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from backchannel.models.corpus.dataset import Corpus  # noqa: E402
from backchannel.models.corpus.phones import clean_ipa, is_vowel  # noqa: E402
from backchannel.models.evaluate import eval_clip  # noqa: E402
from backchannel.models.generator import generate, make_generator, parse_spec, split_specs  # noqa: E402
from backchannel.models.measures import phones_shut  # noqa: E402

# the lips' own closures, the tongue's (they sound alike), other consonants where the lips come close, vowels
GROUPS = [("p", "b", "m"), ("t", "d", "n", "k", "ɡ", "ŋ"), ("f", "v", "s", "z", "ð", "l", "ɹ", "w"), ("vowels",)]
SPLITS = (("val", "held-out synthetic voices (validation)"), ("test-real", "the recorded voice (test-real)"))


def phone_key(name: str) -> str:
    return "vowels" if is_vowel(name) else clean_ipa(name).replace("g", "ɡ")


def closure_rates(clips, spec: str) -> dict[str, tuple[int, int]]:
    """phone key -> (phones the lips met during, phones) over the clips, seed 0."""
    gen = None if parse_spec(spec)[0] == "labels" else make_generator(spec)
    counts: dict[str, list[int]] = {}
    for clip in tqdm(clips, desc=spec, leave=False):
        motion = clip.motion if gen is None else generate(gen, clip.self_audio, clip.other_audio, seed=0).motion
        for key in {phone_key(p[2]) for p in clip.self_phones}:
            shut, total = phones_shut(motion, clip.self_phones, lambda name, key=key: phone_key(name) == key)
            c = counts.setdefault(key, [0, 0])
            c[0] += shut
            c[1] += total
    return {k: (s, t) for k, (s, t) in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--clips", type=int, default=30, help="first clips of each split")
    ap.add_argument("--generator", default="labels,baseline,model")
    ap.add_argument("--out", default="docs/model-closures-by-phone.png")
    args = ap.parse_args()
    specs = split_specs(args.generator)
    keys = [k for group in GROUPS for k in group]
    fig, axes = plt.subplots(len(SPLITS), 1, figsize=(12, 3.3 * len(SPLITS)), sharey=True)
    width = 0.8 / len(specs)
    for ax, (split, title) in zip(axes, SPLITS):
        clips = [eval_clip(c) for c in islice(Corpus(args.data).clips(split), args.clips)]
        for i, spec in enumerate(specs):
            rates = closure_rates(clips, spec)
            y = [rates[k][0] / rates[k][1] if rates.get(k, (0, 0))[1] else np.nan for k in keys]
            ax.bar(np.arange(len(keys)) + (i - (len(specs) - 1) / 2) * width, y, width, label=spec)
        edges = np.cumsum([len(g) for g in GROUPS])[:-1] - 0.5
        for x in edges:
            ax.axvline(x, color="0.6", lw=0.8)
        ax.set_xticks(range(len(keys)), keys)
        ax.set_ylabel("phones the lips meet in")
        ax.set_ylim(0, 1)
        ax.set_title(f"{title}, first {len(clips)} clips; groups: the lips' closures | the tongue's | other "
                     "consonants | vowels", fontsize=9)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
