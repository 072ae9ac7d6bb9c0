"""What a corpus holds and how good its labels are, by the measures in models/measures.py:

- P/B/M closure: share of self bilabial phones with the lips shut on some frame inside them (bar: >= 98%);
- mouth closed outside self speech: share of frames farther than MARGIN_S from own speech with lips shut;
- nods after partner phrase ends: share of the phrase ends self listens through with a nod within 1 s
  (bar: >= 60%), next to the same share at random listening moments (what chance alone gives);
- lip-envelope r: correlation of mouth openness with the self track's loudness, over all frames and over own
  speech only (where close vowels are loud but nearly closed, and m/n loud with the lips shut).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from backchannel.models import measures
from backchannel.models.corpus.clip import speech_mask
from backchannel.models.corpus.storage import find_clips, read_clip, read_corpus_info
from backchannel.models.frontend.features import frame_rms
from backchannel.models.measures import pearson
from backchannel.models.motion import FRAME_RATE, LISTENING, STATES

MARGIN_S = 0.2  # frames this close to own speech may still be opening or closing


def clip_quality(clip, rng: np.random.Generator) -> dict:
    """Counts for one clip (summed over a corpus by corpus_stats)."""
    meta, motion = clip.meta, clip.motion
    frames = len(motion)
    closed, total = measures.phones_shut(motion, meta["self_phones"])
    outside = ~speech_mask(meta, "self", frames, MARGIN_S)
    shut = measures.lips_shut(motion)
    nods = measures.nod_frames(motion)
    ends = clip.partner_phrase_ends
    answered = measures.nods_after(ends, nods)
    # random listening moments, away from the phrase ends (so they measure spontaneous nodding)
    listening = np.flatnonzero(clip.state == LISTENING) / FRAME_RATE
    far = [t for t in listening if all(not (-0.5 < t - e < 1.5) for e in ends)]
    random_t = rng.choice(far, size=min(len(far), max(1, len(ends))), replace=False) if far else []
    q = {
        "seconds": meta["seconds"], "bilabial_closed": closed, "bilabial_total": total,
        "outside_frames": int(outside.sum()), "outside_closed": int((shut & outside).sum()),
        "phrase_ends": len(ends), "phrase_ends_nodded": int(answered.sum()),
        "random_moments": len(random_t), "random_nodded": int(measures.nods_after(random_t, nods).sum()),
        "states": np.bincount(clip.state, minlength=len(STATES)).tolist(),
    }
    if len(clip.self_audio):  # the model evaluation's definition (models/evaluation/metrics.py), all frames and own speech
        opening, env = measures.mouth_openness(motion), frame_rms(clip.self_audio, frames)
        own = speech_mask(meta, "self", frames)
        q["lip_envelope_r"] = pearson(opening, env)
        q["lip_envelope_r_speech"] = pearson(opening[own], env[own]) if own.sum() > 2 else float("nan")
    return q


def corpus_stats(root: str | Path, split: str | None = None, progress: bool = True) -> dict:
    from tqdm import tqdm

    paths = find_clips(root, split)
    if not paths:
        raise FileNotFoundError(f"no clips under {Path(root) / (split or '')}")
    rng = np.random.default_rng(0)
    totals: Counter = Counter()
    per_split: dict[str, Counter] = {}
    split_speakers: dict[str, set] = {}
    engines: Counter = Counter()
    languages: Counter = Counter()
    r_values: dict[str, list] = {"lip_envelope_r": [], "lip_envelope_r_speech": []}
    for path in tqdm(paths, desc="clips", unit="clip", disable=not progress):
        clip = read_clip(path)
        q = clip_quality(clip, rng)
        s = clip.meta.get("split", "?")
        per_split.setdefault(s, Counter()).update({"clips": 1, "seconds": q["seconds"]})
        for track in ("self", "other"):
            v = clip.meta["voices"][track]
            split_speakers.setdefault(s, set()).add(v.get("speaker", v.get("id", "?")))
            engines[v.get("engine", "?")] += 1
        languages[clip.meta.get("language", "?")] += 1
        for key, values in r_values.items():
            r = q.pop(key, float("nan"))
            if np.isfinite(r):
                values.append(r)
        states = q.pop("states")
        totals.update(q)
        totals.update({f"state_{n}": c for n, c in zip(STATES, states)})
    # leakage: a speaker heard in training and in any held-out split (held-out splits may share: test-real's
    # partners come from the test voices)
    held_out = set().union(*(v for k, v in split_speakers.items() if k != "train")) if split_speakers else set()
    shared = sorted(split_speakers.get("train", set()) & held_out)
    pct = lambda a, b: 100.0 * totals[a] / totals[b] if totals[b] else float("nan")  # noqa: E731
    frames = sum(totals[f"state_{n}"] for n in STATES)
    return {
        "root": str(root), "info": read_corpus_info(root), "clips": len(paths), "hours": totals["seconds"] / 3600,
        "splits": {s: {"clips": c["clips"], "hours": round(c["seconds"] / 3600, 3),
                       "speakers": len(split_speakers.get(s, ()))} for s, c in sorted(per_split.items())},
        "speakers_in_train_and_held_out": shared,
        "engines": dict(engines), "languages": len(languages), "top_languages": languages.most_common(8),
        "bilabial_closure_pct": pct("bilabial_closed", "bilabial_total"), "bilabial_phones": totals["bilabial_total"],
        "mouth_closed_outside_speech_pct": pct("outside_closed", "outside_frames"),
        "nod_after_phrase_end_pct": pct("phrase_ends_nodded", "phrase_ends"),
        "phrase_ends": totals["phrase_ends"],
        "nod_at_random_listening_pct": pct("random_nodded", "random_moments"),
        **{f"{k}_median": float(np.median(v)) if v else float("nan") for k, v in r_values.items()},
        "state_pct": {n: 100.0 * totals[f"state_{n}"] / max(frames, 1) for n in STATES},
    }


def format_stats(s: dict) -> str:
    bar = lambda ok: "ok" if ok else "BELOW BAR"  # noqa: E731
    lines = [
        f"# corpus {s['root']}",
        f"{s['clips']} clips, {s['hours']:.2f} h; {len(s['engines'])} engines {s['engines']}; "
        f"{s['languages']} languages (top: {', '.join(f'{k} {v}' for k, v in s['top_languages'])})",
        "",
        "| split | clips | hours | speakers |", "|---|---|---|---|",
    ]
    for name, d in s["splits"].items():
        lines.append(f"| {name} | {d['clips']} | {d['hours']:.2f} | {d['speakers']} |")
    shared = s["speakers_in_train_and_held_out"]
    lines += [
        "",
        f"speakers heard in train and in a held-out split: {', '.join(shared) if shared else 'none'}",
        "",
        "| label quality | value | bar |", "|---|---|---|",
        f"| P/B/M phones with lips shut inside ({s['bilabial_phones']}) | {s['bilabial_closure_pct']:.2f}% | "
        f">= 98%: {bar(s['bilabial_closure_pct'] >= 98)} |",
        f"| mouth closed outside self speech (> {MARGIN_S} s away) | {s['mouth_closed_outside_speech_pct']:.2f}% | |",
        f"| nod within 1 s after listened partner phrase ends ({s['phrase_ends']}) | "
        f"{s['nod_after_phrase_end_pct']:.1f}% | >= 60%: {bar(s['nod_after_phrase_end_pct'] >= 60)} |",
        f"| nod within 1 s after random listening moments | {s['nod_at_random_listening_pct']:.1f}% | |",
        f"| lip-envelope r, all frames (median over clips) | {s['lip_envelope_r_median']:.3f} | |",
        f"| lip-envelope r, own speech only (median over clips) | {s['lip_envelope_r_speech_median']:.3f} | |",
        "",
        "roles: " + ", ".join(f"{k} {v:.1f}%" for k, v in s["state_pct"].items()),
    ]
    return "\n".join(lines)
