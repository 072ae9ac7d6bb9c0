"""Quality, measured: the metrics of DESIGN.md section 6 for any generator, side by side, on held-out clips.

Every metric reads generated motion against what the clip says happened (phones, who spoke when, the partner's
phrase ends), using the same definitions the corpus checks its own labels with (models.measures).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .features import frame_rms as speech_envelope
from .generator import parse_spec
from .corpus.phones import is_tongue_closure, is_vowel
from .measures import answer_frames, mouth_openness, nod_frames, nods_after, phones_shut, spans_mask
from .motion import BLENDSHAPES, FRAME_RATE, HEAD_ROTATION, LISTENING, SPEAKING

log = logging.getLogger(__name__)

MAX_SWITCH_S = 1.0  # a switch the generator has not followed within this long counts as this late
HEAD_RANGE_DEG = 10.0  # a head turned or tilted further is out of conversational range (labels' 99.9th pct: 7-12)
DIVERSITY_CLIPS = 6  # clips run with a second seed (the first with own speech): 3 minutes of each seed's motion


@dataclass
class EvalClip:
    """What the metrics need of a clip: both tracks and the facts of the conversation."""

    name: str
    self_audio: np.ndarray  # 16 kHz
    other_audio: np.ndarray
    state: np.ndarray  # (T,) reference role per frame
    self_phones: list  # (start, end, ipa)
    self_speech: list  # (start, end) spans of the avatar's own speech
    other_speech: list  # (start, end) spans of the partner's speech
    other_phrase_ends: list  # seconds
    motion: np.ndarray | None = None  # (T, 62) reference labels, when the clip has them
    meta: dict = field(default_factory=dict)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def f1(pred: np.ndarray, ref: np.ndarray) -> float:
    """nan where the class occurs in neither: nothing to find and nothing missed is no score at all."""
    total = float(pred.sum() + ref.sum())
    return 2 * float((pred & ref).sum()) / total if total else float("nan")


def switch_latencies(pred: np.ndarray, ref: np.ndarray) -> list[float]:
    """Seconds from each reference change into speaking or listening until the prediction agrees."""
    out = []
    changes = np.flatnonzero((ref[1:] != ref[:-1]) & np.isin(ref[1:], (SPEAKING, LISTENING))) + 1
    for k in changes:
        horizon = pred[k:k + int(MAX_SWITCH_S * FRAME_RATE)]
        hit = np.flatnonzero(horizon == ref[k])
        out.append(hit[0] / FRAME_RATE if len(hit) else MAX_SWITCH_S)
    return out


def clip_metrics(clip: EvalClip, motion: np.ndarray, state: np.ndarray, rng: np.random.Generator) -> dict:
    """Raw counts and sums for one clip; `summarise` turns a list of them into the reported figures."""
    n = min(len(motion), len(clip.state))
    motion, state, ref = motion[:n], np.asarray(state[:n]), np.asarray(clip.state[:n])
    opening = mouth_openness(motion)
    own = spans_mask(clip.self_speech, n)
    partner_only = spans_mask(clip.other_speech, n) & ~spans_mask(clip.self_speech, n, margin=0.2)
    env = speech_envelope(clip.self_audio, n)
    closed, bilabials = phones_shut(motion, clip.self_phones)
    nods = nod_frames(motion)
    ends = [t for t in clip.other_phrase_ends if t * FRAME_RATE < n - FRAME_RATE]
    after_end = answer_frames(clip.other_phrase_ends, n)
    calm = np.flatnonzero((ref == LISTENING) & ~after_end)
    calm = calm[calm < n - FRAME_RATE]  # as for phrase ends: a second left to nod in
    moments = rng.choice(calm, min(len(calm), max(len(ends), 20)), replace=False) / FRAME_RATE if len(calm) else []
    accel = np.abs(np.diff(motion, 2, axis=0)) if n > 2 else np.zeros((0, motion.shape[1]))
    return {
        "frames": n,
        # per clip (one recording level and channel) over every frame: opens with the own voice, shut without it
        "lip_r": pearson(opening, env) if own.any() else float("nan"),
        "bilabial": (closed, bilabials),
        "vowel": phones_shut(motion, clip.self_phones, is_vowel),  # lips that shut often close P/B/M by chance
        "tongue": phones_shut(motion, clip.self_phones, is_tongue_closure),  # lips that shut on any closure heard
        "speaking": (state == SPEAKING, ref == SPEAKING),
        "listening": (state == LISTENING, ref == LISTENING),
        "switches": switch_latencies(state, ref),
        "leak": (float(opening[partner_only].sum()), int(partner_only.sum()), float(opening[own].sum()), int(own.sum())),
        "nods_after_ends": (int(nods_after(ends, nods).sum()), len(ends)),
        "nods_at_random": (int(nods_after(moments, nods).sum()), len(moments)),
        "jitter": (float(accel[:, BLENDSHAPES].sum()), float(accel[:, HEAD_ROTATION].sum()), len(accel)),
        "head_out": (int((np.degrees(np.abs(motion[:, HEAD_ROTATION])) > HEAD_RANGE_DEG).any(1).sum()), n),
    }


# rates over countable events, shown with their counts (reported metric: clip_metrics key of (hits, events))
COUNTED = {"pbm_closure": "bilabial", "vowel_closure": "vowel", "tongue_closure": "tongue",
           "nods_after_phrase_ends": "nods_after_ends", "nods_at_random": "nods_at_random"}


def summarise(per_clip: list[dict]) -> dict:
    """Pool clips (frames weigh equally) into the reported figures."""
    cat = lambda key, i: np.concatenate([c[key][i] for c in per_clip])  # noqa: E731
    total = lambda key, i: sum(c[key][i] for c in per_clip)  # noqa: E731
    ratio = lambda key, i, j: total(key, i) / max(1, total(key, j))  # noqa: E731
    switches = [s for c in per_clip for s in c["switches"]]
    leak_partner = ratio("leak", 0, 1)
    leak_own = ratio("leak", 2, 3)
    jitter_frames = max(1, total("jitter", 2))
    return {
        "lip_envelope_r": float(np.nanmean([c["lip_r"] for c in per_clip])),
        "role_f1": float(np.nanmean([f1(cat(role, 0), cat(role, 1)) for role in ("speaking", "listening")])),
        "switch_latency_ms": 1000 * float(np.median(switches)) if switches else float("nan"),
        "partner_leak": leak_partner / leak_own if leak_own > 0 else float("nan"),
        "jitter_blendshapes": total("jitter", 0) / jitter_frames / 52,
        "jitter_head_deg": np.degrees(total("jitter", 1) / jitter_frames / 3),
        "head_out_of_range": ratio("head_out", 0, 1),
        **{key: ratio(raw, 0, 1) for key, raw in COUNTED.items()},
        # what those rates are of: 17 of 32 and 170 of 320 read alike as rates, not as evidence
        "counts": {key: (total(raw, 0), total(raw, 1)) for key, raw in COUNTED.items()},
    }


def seed_diversity(generate_fn, clip: EvalClip, seeds=(0, 1)) -> dict:
    """How much two seeds differ in head motion (deg, mean abs) while lips still follow the speech."""
    runs = [generate_fn(clip, seed) for seed in seeds]
    n = min(len(m) for m, _ in runs)
    head = [m[:n, HEAD_ROTATION] for m, _ in runs]
    env = speech_envelope(clip.self_audio, n)
    lips = [pearson(mouth_openness(m[:n]), env) for m, _ in runs]
    return {"head_diff_deg": float(np.degrees(np.abs(head[0] - head[1]).mean())), "lip_r_per_seed": lips}


# what each metric must reach (issue 4's targets) and which way is better
TARGETS = {
    "lip_envelope_r": (">=", 0.7),
    "pbm_closure": (">=", 0.9),
    "role_f1": (">=", 0.95),
    "switch_latency_ms": ("<=", 200.0),
    "partner_leak": ("<=", 0.15),
    "nods_after_phrase_ends": (">=", 0.6),
}
HIGHER_IS_BETTER = {"lip_envelope_r", "pbm_closure", "role_f1", "nods_after_phrase_ends", "head_diff_deg",
                    "nod_contrast", "lip_r_min_over_seeds"}
LOWER_IS_BETTER = {"vowel_closure", "tongue_closure", "switch_latency_ms", "partner_leak", "jitter_blendshapes",
                   "jitter_head_deg", "head_out_of_range"}
# nods at random moments have no better direction of their own (people nod then too); the contrast judges them


# ---- running an evaluation ---------------------------------------------------------------------------------------
def eval_clip(clip) -> EvalClip:
    """A corpus clip (models.corpus.clip.Clip) as the metrics see it."""
    segs = clip.meta["segments"]
    return EvalClip(
        name=clip.meta.get("name", "?"), self_audio=clip.self_audio, other_audio=clip.other_audio,
        state=np.asarray(clip.state), motion=clip.motion,
        self_phones=[tuple(p) for p in clip.meta.get("self_phones", [])],
        self_speech=[(s["start"], s["end"]) for s in segs if s["track"] == "self"],
        other_speech=[(s["start"], s["end"]) for s in segs if s["track"] == "other"],
        other_phrase_ends=clip.partner_phrase_ends,
        meta=clip.meta)


def self_voice(clip: EvalClip) -> str:
    """Who speaks the avatar's track (the corpus's voice id, e.g. recorded:allison)."""
    return clip.meta.get("voices", {}).get("self", {}).get("id", "?")


def evaluate(clips: list[EvalClip], generators: list[str], seed: int = 0, progress: bool = True,
             by_voice: bool = False) -> dict[str, dict]:
    """Summaries per generator spec; "labels" scores the clips' own reference motion (the corpus's ceiling).
    `by_voice` adds summaries per self voice under "by_voice" (with each voice's clip count)."""
    from tqdm import tqdm

    from .generator import generate, make_generator

    results = {}
    for spec in generators:
        tic = time.perf_counter()
        name, _ = parse_spec(spec)
        if name == "labels":
            run = lambda clip, s: (clip.motion, clip.state)  # noqa: E731
            if any(c.motion is None for c in clips):
                raise ValueError("the clips carry no reference motion to score as 'labels'")
        else:
            gen = make_generator(spec)

            def run(clip, s, gen=gen):
                block = generate(gen, clip.self_audio, clip.other_audio, seed=s)
                return block.motion, block.state
        rng = np.random.default_rng(seed)
        per_clip = [clip_metrics(c, *run(c, seed), rng) for c in tqdm(clips, desc=spec, disable=not progress)]
        summary = summarise(per_clip)
        if by_voice:
            voices = [self_voice(c) for c in clips]
            summary["by_voice"] = {v: {**summarise([m for m, w in zip(per_clip, voices) if w == v]),
                                       "clips": voices.count(v)} for v in sorted(set(voices))}
        diverse = [c for c in clips if c.self_speech][:DIVERSITY_CLIPS]
        if name != "labels" and diverse:
            div = [seed_diversity(run, c, (seed, seed + 1)) for c in diverse]
            summary["head_diff_deg"] = float(np.mean([d["head_diff_deg"] for d in div]))
            summary["lip_r_min_over_seeds"] = float(np.nanmin([r for d in div for r in d["lip_r_per_seed"]]))
        summary["nod_contrast"] = summary["nods_after_phrase_ends"] / max(summary["nods_at_random"], 1e-3)
        results[spec] = summary
        # a line per generator even where no bar shows (stderr not a terminal): a full eval runs for minutes
        log.info("scored %s on %d clips in %.0f s", spec, len(clips), time.perf_counter() - tic)
    return results


COLUMNS = [
    ("lip_envelope_r", "lip-envelope r", "{:.3f}"),
    ("pbm_closure", "P/B/M closed", "{:.1%}"),
    ("vowel_closure", "vowels closed (lower: better)", "{:.1%}"),
    ("tongue_closure", "T/D/K/G/N closed (lower: better)", "{:.1%}"),
    ("role_f1", "role F1", "{:.3f}"),
    ("switch_latency_ms", "switch latency (ms)", "{:.0f}"),
    ("partner_leak", "partner leak", "{:.3f}"),
    ("nods_after_phrase_ends", "nods after phrase ends", "{:.1%}"),
    ("nods_at_random", "nods at random moments", "{:.1%}"),
    ("nod_contrast", "nod contrast (x)", "{:.1f}"),
    ("head_diff_deg", "seed head diff (deg)", "{:.2f}"),
    ("lip_r_min_over_seeds", "lip r, worst seed", "{:.3f}"),
    ("jitter_blendshapes", "jitter, shapes", "{:.4f}"),
    ("jitter_head_deg", "jitter, head (deg)", "{:.3f}"),
    ("head_out_of_range", f"head beyond {HEAD_RANGE_DEG:.0f} deg (frames)", "{:.1%}"),
]


# the lip metrics, which differ from voice to voice (voice_table, plot_voices)
VOICE_COLUMNS = [c for c in COLUMNS if c[0] in ("lip_envelope_r", "pbm_closure", "vowel_closure", "tongue_closure")]


def table_cell(summary: dict, key: str, fmt: str) -> str:
    """A summary's figure as the tables show it: "-" where it has none, a rate over events with its counts."""
    value = summary.get(key, float("nan"))
    cell = fmt.format(value) if np.isfinite(value) else "-"
    counts = summary.get("counts", {})
    return cell + (" ({}/{})".format(*counts[key]) if key in counts else "")


def markdown_table(results: dict[str, dict], title: str = "") -> str:
    lines = [f"### {title}", ""] if title else []
    names = list(results)
    lines.append("| metric | target | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for key, label, fmt in COLUMNS:
        target = TARGETS.get(key)
        cells = [table_cell(results[n], key, fmt) for n in names]
        lines.append(f"| {label} | {target[0] + ' ' + fmt.format(target[1]) if target else ''} | "
                     + " | ".join(cells) + " |")
    # the default generator changes only when another beats the baseline on every metric
    baseline = next((n for n in names if parse_spec(n)[0] == "baseline"), None)  # "baseline", or with options
    if baseline:
        lines.append("")
        lines += [against_baseline(n, results[n], results[baseline]) for n in names
                  if parse_spec(n)[0] not in ("baseline", "labels")]
    return "\n".join(lines) + "\n"


def voice_table(results: dict[str, dict], title: str = "") -> str:
    """The lip metrics per self voice (results from evaluate(..., by_voice=True)): a row per voice and generator."""
    lines = [f"### {title}, by voice", ""] if title else []
    lines.append("| voice | clips | generator | " + " | ".join(label for _, label, _ in VOICE_COLUMNS) + " |")
    lines.append("|---|---|---|" + "---|" * len(VOICE_COLUMNS))
    clips = {voice: row["clips"] for voice, row in next(iter(results.values()))["by_voice"].items()}
    for voice, n_clips in clips.items():
        for n, (name, summary) in enumerate(results.items()):
            cells = [table_cell(summary["by_voice"][voice], key, fmt) for key, _, fmt in VOICE_COLUMNS]
            lines.append(f"| {voice if n == 0 else ''} | {n_clips if n == 0 else ''} | {name} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def against_baseline(name: str, ours: dict, baseline: dict) -> str:
    """A list: the metrics `name` is better and worse on than the baseline (as the table shows them: equal to
    the digits shown is a tie) and the targets it misses."""
    better, worse = [], []
    for key, label, fmt in COLUMNS:
        if key not in HIGHER_IS_BETTER | LOWER_IS_BETTER or not all(np.isfinite(r.get(key, np.nan))
                                                                       for r in (ours, baseline)):
            continue
        a, b = ours[key], baseline[key]
        if fmt.format(a) != fmt.format(b):
            (better if (a > b) == (key in HIGHER_IS_BETTER) else worse).append(label)
    missed = [label for key, label, _ in COLUMNS if key in TARGETS and not meets(ours.get(key, np.nan), *TARGETS[key])]
    listed = lambda items: "; ".join(items) or "none"  # noqa: E731 (labels hold commas)
    return (f"- **{name}** against the baseline\n  - better on {len(better)}: {listed(better)}\n"
            f"  - worse on {len(worse)}: {listed(worse)}\n  - targets missed: {listed(missed)}")


def meets(value: float, op: str, target: float) -> bool:
    return bool(np.isfinite(value)) and (value >= target if op == ">=" else value <= target)


def plot_results(results: dict[str, dict], path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c for c in COLUMNS if any(c[0] in r for r in results.values())]
    cols = 4
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    names = list(results)
    colours = plt.cm.tab10(np.arange(len(names)) % 10)
    for ax, (key, label, _) in zip(axes.flat, keys):
        vals = [results[n].get(key, np.nan) for n in names]
        ax.bar(range(len(names)), vals, color=colours)
        if key in TARGETS:
            ax.axhline(TARGETS[key][1], color="k", ls="--", lw=1)
        ax.set_title(label + (" (higher better)" if key in HIGHER_IS_BETTER else ""), fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title or "evaluation (dashed: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_voices(results: dict[str, dict], path, title: str = "") -> None:
    """The lip metrics per self voice (evaluate(..., by_voice=True)): a panel per metric, a group of bars per voice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    voices = list(next(iter(results.values()))["by_voice"])
    colours = plt.cm.tab10(np.arange(len(names)) % 10)
    size = (max(6.0, 0.375 * len(voices) * len(names)), 2.3 * len(VOICE_COLUMNS))
    fig, axes = plt.subplots(len(VOICE_COLUMNS), 1, figsize=size, squeeze=False)
    width = 0.8 / len(names)
    for ax, (key, label, _) in zip(axes[:, 0], VOICE_COLUMNS):
        for k, (name, colour) in enumerate(zip(names, colours)):
            vals = [results[name]["by_voice"][v].get(key, np.nan) for v in voices]
            ax.bar(np.arange(len(voices)) + (k - (len(names) - 1) / 2) * width, vals, width, color=colour, label=name)
        if key in TARGETS:
            ax.axhline(TARGETS[key][1], color="k", ls="--", lw=1)
        ax.set_title(label + (" (higher better)" if key in HIGHER_IS_BETTER else ""), fontsize=9)
        ax.set_xticks(range(len(voices)), [v.split(":")[-1] for v in voices], fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=len(names), loc="lower right")
    fig.suptitle(f"{title}, by voice" if title else "by voice (dashed: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
