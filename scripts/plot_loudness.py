"""Writes docs/model-loudness.png: one validation clip's mouth opening from the baseline and from the model, as
drawn and as shown (docs/model.md "Following loudness").

    .venv/bin/python scripts/plot_loudness.py --data /path/to/corpus [--clip 3] [--out docs/model-loudness.png]
"""
import argparse
from itertools import islice

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from backchannel.models.corpus.dataset import Corpus  # noqa: E402
from backchannel.models.corpus.phones import is_bilabial_closure  # noqa: E402
from backchannel.models.evaluate import eval_clip, speech_envelope  # noqa: E402
from backchannel.models.generator import generate, make_generator  # noqa: E402
from backchannel.models.measures import LIPS_SHUT_OPENNESS, mouth_openness  # noqa: E402
from backchannel.models.motion import FRAME_RATE  # noqa: E402

LINES = (("baseline", "baseline", dict(color="tab:green", lw=1)),
         ("model[follow_loudness=false]", "model as drawn", dict(color="tab:blue", lw=1, ls="--")),
         ("model", "model shown (follows loudness)", dict(color="tab:red", lw=1.5)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--clip", type=int, default=3, help="index of the clip in the split")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", default="docs/model-loudness.png")
    args = ap.parse_args()
    clip = eval_clip(next(islice(Corpus(args.data).clips(args.split), args.clip, None)))
    start = max(clip.self_speech, key=lambda s: s[1] - s[0])[0] - 0.3  # the avatar's longest turn
    frames = np.arange(int(start * FRAME_RATE), int((start + args.seconds) * FRAME_RATE))
    times = frames / FRAME_RATE
    fig, ax = plt.subplots(figsize=(11, 3.6))
    runs = [(generate(make_generator(spec), clip.self_audio, clip.other_audio, seed=0), label, style)
            for spec, label, style in LINES]
    env = speech_envelope(clip.self_audio, len(runs[0][0]))[frames]
    ax.plot(times, env / env.max(), color="0.75", lw=3, label="voice envelope (RMS, scaled)")
    for run, label, style in runs:
        ax.plot(times, mouth_openness(run.motion)[frames], label=label, **style)
    for s, e, name in clip.self_phones:
        if is_bilabial_closure(name) and times[0] <= s <= times[-1]:
            ax.axvspan(s, e, color="tab:purple", alpha=0.15)
    ax.axhline(LIPS_SHUT_OPENNESS, color="k", lw=0.5, ls=":")
    ax.set_xlabel("seconds (shaded: P/B/M phones; dotted: the 'lips shut' line)")
    ax.set_ylabel("mouth openness")
    ax.set_title(f"One {args.split} clip ({clip.name}): the model's closures kept, its opening sized by loudness")
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out} ({clip.name}, {times[0]:.1f}-{times[-1]:.1f} s)")


if __name__ == "__main__":
    main()
