"""One clip, start to finish: voices -> conversation timeline -> two audio tracks -> labels -> augmentation.

`make_clip(spec)` is the unit of work of a corpus build: everything it draws comes from the spec's own seed, so
a clip is the same whichever worker makes it and in whatever order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus import behaviour, dialogue, visemes
from backchannel.models.corpus.augment import augment
from backchannel.models.corpus.dialogue import Segment
from backchannel.models.corpus.dsp import loudness
from backchannel.models.corpus.voices import Speaker, Voice, draw_settings
from backchannel.models.measures import spans_mask
from backchannel.models.motion import BLENDSHAPES, FRAME_RATE, frame_count

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClipSpec:
    name: str  # file stem, e.g. "c000123"
    split: str
    seed: tuple[int, ...]  # entropy for this clip's generator
    seconds: float
    self_voice: Voice
    other_voice: Voice
    language: str
    augment: float = 1.0  # augmentation strength (0 = clean)
    cache_dir: str | None = None  # recorded-speech alignment cache
    scenario: str | None = None  # force a dialogue.SCENARIOS entry (default: drawn)


@dataclass
class Clip:
    self_audio: np.ndarray  # (n,) float32 16 kHz, as the model hears it (augmented)
    other_audio: np.ndarray
    motion: np.ndarray  # (T, 62) float32
    state: np.ndarray  # (T,) int8
    meta: dict

    @property
    def partner_phrase_ends(self) -> list[float]:
        """Times (s) the partner ends a phrase the avatar heard out: where listeners answer (nod)."""
        return [e["t"] for e in self.meta.get("other_phrase_ends", []) if e.get("listened", True)]


def _spans(segments: list[Segment], what: str) -> list[tuple[float, float, str]]:
    out = []
    for s in segments:
        for a, b, name in getattr(s.utterance, what):
            out.append((round(s.start + a, 4), round(s.start + b, 4), name))
    return sorted(out)


def _render(segments: list[Segment], n: int) -> np.ndarray:
    track = np.zeros(n, np.float32)
    for s in segments:
        i = int(round(s.start * SAMPLE_RATE))
        a = s.utterance.audio[: max(0, n - i)]
        track[i:i + len(a)] += a
    return track


def listened_phrase_ends(other_turns: list[Segment], self_turns: list[Segment]) -> list[dict]:
    """The partner's phrase ends, each marked whether self listens through it (takes no turn within
    LISTEN_WINDOW_S); backchannels and laughs do not count as taking the turn."""
    ends = []
    for s in other_turns:
        for t in dialogue.phrase_ends([(s.start + a, s.start + b, w) for a, b, w in s.utterance.words]):
            busy = any(a < t + behaviour.LISTEN_WINDOW_S and t < b for a, b in (x.speech for x in self_turns))
            ends.append({"t": round(t, 4), "listened": not busy})
    return sorted(ends, key=lambda e: e["t"])


def make_clip(spec: ClipSpec) -> Clip:
    rng = np.random.default_rng(list(spec.seed))
    speakers = {
        "self": Speaker(spec.self_voice, draw_settings(rng, spec.language), rng, spec.cache_dir),
        "other": Speaker(spec.other_voice, draw_settings(rng, spec.language), rng, spec.cache_dir),
    }
    habits = dialogue.Habits.draw(rng, spec.scenario)
    style = behaviour.Style.draw(rng)
    segments = dialogue.plan(rng, spec.seconds, speakers, habits)
    mine = [s for s in segments if s.track == "self"]
    theirs = [s for s in segments if s.track == "other"]

    n = int(round(spec.seconds * SAMPLE_RATE))
    frames = frame_count(spec.seconds)
    self_clean, other_clean = _render(mine, n), _render(theirs, n)

    self_phones = _spans(mine, "phones")
    phrase_ends = listened_phrase_ends([s for s in theirs if s.kind == "turn"], [s for s in mine if s.kind == "turn"])
    motion, events = behaviour.behave(rng, style, frames, mine, theirs, self_clean,
                                      [e["t"] for e in phrase_ends if e["listened"]])
    params = visemes.lip_params(self_phones, frames, style.articulation, loudness(self_clean, frames))
    lips = visemes.lips_to_blendshapes(params)
    motion[:, BLENDSHAPES] = np.clip(motion[:, BLENDSHAPES] + lips, 0, 1)
    state = behaviour.role_timeline([s.speech for s in mine], [s.speech for s in theirs], frames)

    self_audio, self_aug = augment(rng, self_clean, other_clean, spec.augment)
    other_audio, other_aug = augment(rng, other_clean, self_clean, spec.augment)
    meta = {
        "format": FORMAT_VERSION,
        "name": spec.name,
        "split": spec.split,
        "source": "synthetic",
        "seed": list(spec.seed),
        "seconds": spec.seconds,
        "sample_rate": SAMPLE_RATE,
        "frame_rate": FRAME_RATE,
        "frames": frames,
        "language": spec.language,
        "voices": {t: speakers[t].describe() for t in ("self", "other")},
        "style": style.to_dict(),
        "habits": habits.to_dict(),
        "segments": [_segment_dict(s) for s in segments],
        "self_phones": self_phones,
        "self_words": _spans(mine, "words"),
        "other_phones": _spans(theirs, "phones"),
        "other_words": _spans(theirs, "words"),
        "other_phrase_ends": phrase_ends,
        "events": events,
        "augment": {"self": self_aug, "other": other_aug},
    }
    return Clip(self_audio, other_audio, motion.astype(np.float32), state, meta)


def _segment_dict(s: Segment) -> dict:
    a, b = s.speech
    d = {"track": s.track, "kind": s.kind, "start": round(a, 4), "end": round(b, 4), "text": s.utterance.text}
    d.update({k: v for k, v in s.flags.items() if v})
    d.update({k: s.utterance.info[k] for k in ("prompt", "lengthened", "trails_off_db") if k in s.utterance.info})
    return d


def speech_mask(meta: dict, track: str, frames: int, margin: float = 0.0) -> np.ndarray:
    """(frames,) bool: frames where `track` ("self"/"other") is speaking, from the clip's segments."""
    return spans_mask([(s["start"], s["end"]) for s in meta["segments"] if s["track"] == track], frames, margin)
