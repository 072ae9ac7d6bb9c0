"""Writes docs/model-phrase-ends.png: the recorded voice's last vowels before a pause, its level falling through
them, and the lips of two sets of weights (docs/model.md "Voices that trail off").

    .venv/bin/python scripts/plot_phrase_ends.py --data /path/to/corpus --before runs/v25/motion.pt \
        [--after models/weights/motion.pt] [--examples 4] [--out docs/model-phrase-ends.png]
"""
import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from backchannel.models.corpus.dataset import Corpus  # noqa: E402
from backchannel.models.corpus.phones import is_vowel  # noqa: E402
from backchannel.models.corpus.utterance import PAUSE_S  # noqa: E402
from backchannel.models.evaluate import eval_clip  # noqa: E402
from backchannel.models.features import frame_rms  # noqa: E402
from backchannel.models.generator import generate, make_generator  # noqa: E402
from backchannel.models.measures import LIPS_SHUT_OPENNESS, mouth_openness  # noqa: E402
from backchannel.models.motion import FRAME_RATE  # noqa: E402

CONTEXT_S = (0.4, 0.35)  # shown before the vowel's start and after its end


def vowels_before_pauses(phones, min_s: float = 0.2):
    """(start, end) of vowels followed by a pause (or nothing), at least min_s long: where people trail off."""
    return [(a, b) for i, (a, b, name) in enumerate(phones) if is_vowel(name) and b - a >= min_s
            and (i + 1 == len(phones) or phones[i + 1][0] - b >= PAUSE_S)]


def level_db(audio: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """RMS level (dB) in the 67 ms around each frame, against the clip's loud speech (95th percentile)."""
    db = 20 * np.log10(frame_rms(audio, frames.max() + 1, window_s=2 / FRAME_RATE) + 1e-6)
    return db[frames] - np.percentile(db[db > -90], 95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test-real")
    ap.add_argument("--before", required=True, help="weights to compare (e.g. the ones shipped before)")
    ap.add_argument("--after", default="models/weights/motion.pt")
    ap.add_argument("--examples", type=int, default=4)
    ap.add_argument("--out", default="docs/model-phrase-ends.png")
    args = ap.parse_args()
    gens = [(make_generator(f"model[weights={w}]"), label, style) for w, label, style in (
        (args.before, f"lips, {args.before}", dict(color="tab:blue", ls="--")),
        (args.after, f"lips, {args.after}", dict(color="tab:red")))]
    examples = []  # (clip, vowel, motions)
    for clip in map(eval_clip, Corpus(args.data).clips(args.split)):
        vowels = vowels_before_pauses(clip.self_phones)
        if vowels:
            motions = [generate(g, clip.self_audio, clip.other_audio, seed=0).motion for g, _, _ in gens]
            examples += [(clip, v, motions) for v in vowels[: args.examples - len(examples)]]
        if len(examples) >= args.examples:
            break
    fig, axes = plt.subplots(2, len(examples), figsize=(3.4 * len(examples), 4.6), sharey="row", squeeze=False)
    for col, (clip, (a, b), motions) in enumerate(examples):
        frames = np.arange(int((a - CONTEXT_S[0]) * FRAME_RATE), int((b + CONTEXT_S[1]) * FRAME_RATE))
        frames = frames[(frames >= 0) & (frames < min(len(m) for m in motions))]
        t = frames / FRAME_RATE - a
        top, bottom = axes[0, col], axes[1, col]
        top.plot(t, level_db(clip.self_audio, frames), color="k", lw=1.2)
        for (_, label, style), motion in zip(gens, motions):
            bottom.plot(t, mouth_openness(motion[frames]), lw=1.3, label=label, **style)
        bottom.axhline(LIPS_SHUT_OPENNESS, color="grey", lw=0.8, ls=":", label="lips shut below")
        for ax in (top, bottom):
            ax.axvspan(0, b - a, color="gold", alpha=0.25, lw=0)
        top.set_title(f"{clip.name} at {a:.1f} s", fontsize=9)
        bottom.set_xlabel("s from the vowel's start")
    axes[0, 0].set_ylabel("voice level (dB)")
    axes[1, 0].set_ylabel("mouth openness")
    axes[1, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle("The recorded voice's last vowel before a pause (shaded, as aligned) and the lips", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(examples)} vowels)")


if __name__ == "__main__":
    main()
