"""The turn-taking timeline of one clip: who says what, when.

Turns of one or more sentences with short pauses inside; transitions with the gaps and overlaps people make
(mostly ~200 ms, sometimes overlapping, sometimes long silences); interruptions that cut the current speaker
off at a word boundary; backchannels ("mm-hmm", "yeah") and laughs from the listener at the speaker's phrase
ends; and scenarios where one side holds the floor (one-sided stretches).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backchannel.models.corpus.utterance import Utterance

TRACKS = ("self", "other")
SCENARIOS = {"dialogue": 0.45, "self_monologue": 0.15, "other_monologue": 0.25, "sparse": 0.15}
PHRASE_GAP_S = 0.3  # a pause at least this long inside a speaker's words ends a phrase


@dataclass
class Segment:
    track: str  # "self" | "other"
    kind: str  # "turn" | "backchannel" | "laugh"
    start: float  # clip time (s) of the utterance's first sample
    utterance: Utterance
    flags: dict = field(default_factory=dict)  # interrupted / interrupts

    @property
    def end(self) -> float:
        return self.start + self.utterance.duration

    @property
    def speech(self) -> tuple[float, float]:
        """Clip times of the first phone's start and the last phone's end."""
        a, b = self.utterance.speech_span
        return self.start + a, self.start + b


@dataclass
class Habits:
    """How this pair converses (drawn per clip)."""

    scenario: str
    backchannel_rate: float  # chance the listener responds at a phrase end
    laugh_rate: float  # share of responses that are laughs
    interrupt_rate: float  # chance a turn change is an interruption
    silence_rate: float  # chance a turn change is a long silence
    self_speaks: bool = True  # False: self only listens (and backchannels) the whole clip

    @classmethod
    def draw(cls, rng: np.random.Generator, scenario: str | None = None) -> "Habits":
        names = list(SCENARIOS)
        drawn = names[int(rng.choice(len(names), p=list(SCENARIOS.values())))]
        scenario = scenario or drawn
        return cls(scenario, float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.03, 0.2)),
                   float(rng.uniform(0.05, 0.25)), 0.45 if scenario == "sparse" else float(rng.uniform(0.02, 0.1)),
                   self_speaks=not (scenario == "other_monologue" and rng.random() < 0.4))

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def phrase_ends(words: list[tuple[float, float, str]], gap: float = PHRASE_GAP_S) -> list[float]:
    """Ends of phrases: the last word before a pause of at least `gap` seconds (and the last word)."""
    ends = []
    for (_, e, _), (s_next, _, _) in zip(words, words[1:] + [(float("inf"), 0, "")]):
        if s_next - e >= gap:
            ends.append(e)
    return ends


class _Timeline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.segments: list[Segment] = []

    def busy(self, track: str, a: float, b: float) -> bool:
        return any(s.track == track and s.start < b + 0.1 and a < s.end + 0.1 for s in self.segments)

    def add(self, seg: Segment) -> Segment:
        if seg.kind == "turn":  # a turn supersedes the same speaker's responses planned for that time
            self.segments[:] = [s for s in self.segments if s.track != seg.track or s.kind == "turn"
                                or not (s.start < seg.end + 0.1 and seg.start < s.end + 0.1)]
        self.segments.append(seg)
        return seg


def plan(rng: np.random.Generator, seconds: float, speakers: dict, habits: Habits) -> list[Segment]:
    """Lay out one clip's conversation. `speakers` maps "self"/"other" to voices.Speaker."""
    tl = _Timeline(seconds)
    floor_holder = {"self_monologue": "self", "other_monologue": "other"}.get(habits.scenario)
    if not habits.self_speaks:
        floor_holder = "other"
    speaker = floor_holder or TRACKS[int(rng.integers(2))]
    t = float(rng.uniform(0.0, 1.5))
    while t < seconds - 0.5:
        listener = "other" if speaker == "self" else "self"
        holding = speaker == floor_holder
        n_sentences = int(rng.integers(3, 7)) if holding else int(rng.integers(1, 4))
        last = None
        for _ in range(n_sentences):
            if t >= seconds - 0.5:
                break
            last = tl.add(Segment(speaker, "turn", t, speakers[speaker].sentence()))
            _respond(rng, tl, speakers, listener, last, habits)
            t = last.end + float(rng.uniform(0.15, 0.7))  # pause inside the turn
        if last is None:
            break
        # the turn ends: who speaks next, and when
        nxt = listener
        if floor_holder and speaker != floor_holder:
            nxt = floor_holder
        elif floor_holder and rng.random() < 0.6:
            nxt = speaker  # the floor holder goes on after a pause; the listener keeps responding
        if nxt == "self" and not habits.self_speaks:
            nxt = "other"
        t = _next_start(rng, tl, last, nxt, habits)
        speaker = nxt
    _fit(tl)
    return sorted(tl.segments, key=lambda s: (s.start, s.track))


def _respond(rng, tl: _Timeline, speakers, listener: str, seg: Segment, habits: Habits) -> None:
    """The listener's backchannels and laughs at the phrase ends of `seg`."""
    for end in phrase_ends([(seg.start + a, seg.start + b, w) for a, b, w in seg.utterance.words]):
        if rng.random() >= habits.backchannel_rate:
            continue
        is_laugh = rng.random() < habits.laugh_rate
        u = speakers[listener].laugh() if is_laugh else speakers[listener].backchannel()
        start = end + float(rng.uniform(-0.1, 0.5))
        if start < tl.seconds - 0.3 and not tl.busy(listener, start, start + u.duration):
            tl.add(Segment(listener, "laugh" if is_laugh else "backchannel", start, u))


def _next_start(rng, tl: _Timeline, last: Segment, nxt: str, habits: Habits) -> float:
    """When the next turn starts after `last` (a turn of the current speaker); may interrupt it."""
    if nxt != last.track and rng.random() < habits.interrupt_rate and len(last.utterance.words) > 3:
        at = last.start + float(rng.uniform(0.35, 0.75)) * last.utterance.duration
        keep = at - last.start + float(rng.uniform(0.2, 0.7))  # both talk a moment, then the speaker yields
        cut = last.utterance.cut(keep)
        if cut.words and cut.duration < last.utterance.duration - 0.2:
            last.utterance = cut
            last.flags["interrupted"] = True
            tl.segments[:] = [s for s in tl.segments  # responses planned for the part never said are dropped
                              if not (s.track == nxt and s.kind != "turn" and s.start > at - 0.3)]
            return at
    if rng.random() < habits.silence_rate:
        return last.end + float(rng.uniform(2.0, 6.0))
    if nxt == last.track:
        return last.end + float(rng.uniform(0.4, 1.5))
    return last.end + float(np.clip(rng.normal(0.2, 0.3), -0.5, 1.2))  # gap (or overlap when negative)


def _fit(tl: _Timeline) -> None:
    """Cut what runs past the clip's end at a word boundary; drop what starts too late to say anything."""
    kept = []
    for s in tl.segments:
        if s.start < 0:
            continue
        if s.end > tl.seconds:
            u = s.utterance.cut(tl.seconds - s.start)
            if not u.phones:
                continue
            s.utterance = u
        kept.append(s)
    tl.segments[:] = kept
    for s in tl.segments:  # mark who was interrupted by whom
        if s.kind == "turn" and s.flags.get("interrupted"):
            for o in tl.segments:
                if o.track != s.track and o.kind == "turn" and s.start < o.start < s.end:
                    o.flags["interrupts"] = True
