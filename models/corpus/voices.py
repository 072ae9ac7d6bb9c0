"""The voices a corpus can use, which split owns each, and a per-clip speaker that renders sentences,
backchannels and laughs in one voice with one set of settings.

A voice is a timbre: an espeak-ng variant (spoken in any of its languages), an MBROLA database (speaking its
own language), a festival/flite voice, or a recorded speaker. Splits own whole *speakers* (`Voice.speaker`):
flite's kal and kal16 and festival's kal_diphone are one recorded person, so they go to the same split.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backchannel.models.corpus import espeak, text
from backchannel.models.corpus.festival import (
    WordMatchError,
    festival_synth,
    festival_voices,
    flite_synth,
    flite_voices,
)
from backchannel.models.corpus.laugh import laugh
from backchannel.models.corpus.mbrola import mbrola_synth, mbrola_voices
from backchannel.models.corpus.recorded import RecordedSpeaker, folder_language
from backchannel.models.corpus.utterance import Utterance

log = logging.getLogger(__name__)

REAL_TEST_SPLIT = "test-real"  # clips whose self voice is a recorded speaker no other split has heard
MAX_SENTENCE_S = 8.0  # longer recorded prompts are cut at a word boundary: one turn, not a lecture
SAY_TRIES = 5  # rounds of fresh texts before giving up on a voice that cannot time any of them
# How often a synthetic voice ends its phrases as people do, drawing out the last vowel (Utterance.lengthened, by
# this factor) and trailing off into the pause (Utterance.trailing_off, by this many dB): the recorded voice's
# phrase-final vowels last 200-400 ms and fade 10-25 dB; some phrases end at full voice.
TRAIL_OFF_RATE = 0.75
LENGTHEN = (1.0, 2.0)
TRAIL_OFF_DB = (8.0, 25.0)

# espeak-ng variants that are not human-sounding (robots, whispers, effects) or are test fixtures
_ESPEAK_EXCLUDED = {"Demonic", "UniRobot", "anikaRobot", "announcer", "croak", "fast", "whisper", "whisperf",
                    "Mr serious", "Tweaky", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6"}
_ESPEAK_EXCLUDED |= {f"robosoft{s}" for s in ("", "2", "3", "4", "5", "6", "7", "8")}
# festival/flite voice -> the person recorded for it
_CMU_SPEAKERS = {"kal_diphone": "kal", "kal": "kal", "kal16": "kal", "awb": "awb", "awb_time": "awb",
                 "rms": "rms", "slt": "slt"}
_CMU_GENDER = {"kal": "male", "awb": "male", "rms": "male", "slt": "female"}


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak | mbrola | festival | flite | recorded
    name: str  # espeak variant ("default" = none), MBROLA database, festival/flite voice, or recorded speaker folder
    gender: str = "unknown"
    path: str = ""  # recorded speakers: their folder
    language: str = ""  # the one language the voice speaks (MBROLA databases, recorded speakers); "" when any

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"

    @property
    def through_espeak(self) -> bool:
        """espeak-ng speaks it (its own variants, and MBROLA's databases through its mb- voices): any language
        espeak-ng knows, and espeak [[...]] phoneme input."""
        return self.engine in ("espeak", "mbrola")

    @property
    def speaker(self) -> str:
        """The person (or synthetic timbre) behind the voice: what splits keep apart."""
        if self.engine in ("festival", "flite"):
            return "cmu:" + _CMU_SPEAKERS.get(self.name, self.name)
        return self.id


def espeak_voices() -> list[Voice]:
    root = espeak.data_dir()
    if root is None or not espeak.available():
        return []
    voices = [Voice("espeak", "default", "male")]
    for f in sorted(Path(root, "voices", "!v").iterdir()):
        if f.name in _ESPEAK_EXCLUDED or " " in f.name:
            continue
        gender = "unknown"
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("gender"):
                gender = line.split()[1] if len(line.split()) > 1 else gender
        voices.append(Voice("espeak", f.name, gender))
    return voices


def catalog(speech_dirs: list[str | Path] = ()) -> list[Voice]:
    """Every voice usable on this machine: espeak-ng variants, MBROLA databases, festival and flite voices,
    recorded speakers."""
    voices = espeak_voices()
    voices += [Voice("mbrola", db, gender, language=language) for db, language, gender in mbrola_voices()]
    voices += [Voice("festival", v, _CMU_GENDER.get(_CMU_SPEAKERS.get(v, ""), "male")) for v in festival_voices()]
    voices += [Voice("flite", v, _CMU_GENDER.get(_CMU_SPEAKERS.get(v, ""), "unknown")) for v in flite_voices()]
    for d in speech_dirs:
        folder = Path(d)
        voices.append(Voice("recorded", folder.name, "unknown", str(folder.resolve()), folder_language(folder) or ""))
    if not voices:
        raise RuntimeError("no voices: install espeak-ng (and optionally festival, flite) or pass --speech-dir")
    return voices


def _rank(seed: int, key: str) -> float:
    """A stable pseudo-random number in [0, 1) per (seed, key): the order speakers are dealt into splits."""
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16 ** 12


def assign_splits(voices: list[Voice], seed: int, real_split: str = REAL_TEST_SPLIT,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, str]:
    """speaker -> split. Synthetic speakers are dealt per engine family (so each split hears every engine that
    has 3+ speakers), at least one per held-out split; recorded speakers all go to `real_split`."""
    splits: dict[str, str] = {}
    families: dict[str, list[str]] = {}
    for v in voices:
        if v.engine == "recorded":
            splits[v.speaker] = real_split
        else:
            family = v.engine if v.through_espeak else "cmu"  # espeak-ng, MBROLA, the CMU voices
            if v.speaker not in families.setdefault(family, []):
                families[family].append(v.speaker)
    for speakers in families.values():
        speakers = sorted(speakers, key=lambda s: _rank(seed, s))
        n = len(speakers)
        n_val = n_test = 0
        if n >= 3:
            n_val = max(1, int(round(fractions[1] * n)))
            n_test = max(1, int(round(fractions[2] * n)))
        for i, s in enumerate(speakers):
            splits[s] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return splits


@dataclass
class Settings:
    """How a voice is rendered in one clip (drawn per clip, so a voice is heard at many rates and pitches)."""

    language: str
    rate: float  # speaking-rate factor (1 = the engine's normal; espeak: x 175 wpm)
    pitch: float  # pitch factor around the voice's own (1 = unchanged)

    @property
    def espeak_rate_pitch(self) -> tuple[int, int]:
        """(words per minute, pitch 0-99): the settings as espeak-ng takes them (for its MBROLA voices too)."""
        return int(175 * self.rate), int(np.clip(50 * self.pitch, 0, 99))

    def to_dict(self) -> dict:
        return {"language": self.language, "rate": round(self.rate, 3), "pitch": round(self.pitch, 3)}


def draw_settings(rng: np.random.Generator, language: str) -> Settings:
    return Settings(language, float(rng.uniform(0.75, 1.35)), float(rng.uniform(0.8, 1.25)))


class Speaker:
    """One voice with its settings for a clip: says sentences (turns), backchannels and laughs."""

    def __init__(self, voice: Voice, settings: Settings, rng: np.random.Generator, cache_dir: str | None = None):
        self.voice, self.settings, self.rng = voice, settings, rng
        self._pool: list[Utterance] = []  # synthesised sentences not said yet
        self._deck: list = []  # recorded prompts not said yet
        self._recorded = RecordedSpeaker.open(voice.path, cache_dir) if voice.engine == "recorded" else None
        # its own stream (spawning draws nothing from rng), so clips keep every other draw they had before it
        self._trail_rng = rng.spawn(1)[0]

    @property
    def f0(self) -> float:
        """Typical pitch (Hz), for the synthetic laugh."""
        base = {"female": 210.0, "male": 120.0}.get(self.voice.gender, 165.0)
        return base * self.settings.pitch

    def describe(self) -> dict:
        return {"id": self.voice.id, "engine": self.voice.engine, "voice": self.voice.name,
                "speaker": self.voice.speaker, "gender": self.voice.gender, **self.settings.to_dict()}

    def _say(self, texts: list[str]) -> list[Utterance]:
        """The texts spoken, in order; a text whose words cannot be matched onto the phones said is left out."""
        v, s = self.voice, self.settings
        if v.engine == "espeak":
            name = s.language if v.name == "default" else f"{s.language}+{v.name}"
            engine = espeak.Espeak.get()
            return [engine.synth(t, name, *s.espeak_rate_pitch) for t in texts]
        if v.engine == "mbrola":
            return self._each(texts, lambda t: mbrola_synth(t, v.name, *s.espeak_rate_pitch))
        if v.engine == "festival":
            return festival_synth(texts, v.name, stretch=1 / s.rate, f0_mean=self.f0 * 0.95)
        if v.engine == "flite":
            return self._each(texts, lambda t: flite_synth(t, v.name, stretch=1 / s.rate, f0_mean=self.f0 * 0.95))
        raise ValueError(f"engine {v.engine!r} cannot say text")

    def _each(self, texts: list[str], say) -> list[Utterance]:
        """say(text) for each text, leaving out those the engine could not time."""
        said = []
        for t in texts:
            try:
                said.append(say(t))
            except WordMatchError as e:
                log.info("%s: skipped a text (%s)", self.voice.id, e)
        return said

    def _say_some(self, draw_text, n: int = 1) -> list[Utterance]:
        """At least one of `n` texts from draw_text() spoken; texts that could not be timed are replaced by
        fresh ones (SAY_TRIES rounds)."""
        for _ in range(SAY_TRIES):
            said = self._say([draw_text() for _ in range(n)])
            if said:
                return said
        raise RuntimeError(f"{self.voice.id} could not say {SAY_TRIES} rounds of texts with word timings")

    def sentence(self) -> Utterance:
        if self._recorded is not None:
            if not self._deck:  # every prompt once before any repeats
                prompts = self._recorded.long_prompts()
                self._deck = [prompts[i] for i in self.rng.permutation(len(prompts))]
            u = self._recorded.utterance(self._deck.pop()).trimmed()
            return u.cut(float(self.rng.uniform(3.0, MAX_SENTENCE_S))) if u.duration > MAX_SENTENCE_S else u
        if not self._pool:  # festival starts slowly: render several sentences per process
            n = 6 if self.voice.engine == "festival" else 1
            self._pool = self._say_some(lambda: text.sentence(self.rng, self.settings.language), n)
        return self._phrase_ends_as_people_do(self._pool.pop(0).trimmed())

    def backchannel(self) -> Utterance:
        if self._recorded is not None:  # a recorded speaker's shortest prompts ("Hello.", "no") stand in
            short = self._recorded.short_prompts()
            return self._recorded.utterance(short[int(self.rng.integers(len(short)))]).trimmed()
        phonemes_ok = self.voice.through_espeak
        return self._phrase_ends_as_people_do(
            self._say_some(lambda: text.backchannel(self.rng, self.settings.language, phonemes_ok))[0].trimmed())

    def _phrase_ends_as_people_do(self, u: Utterance) -> Utterance:
        """A synthesised utterance as a person would say it: mostly drawn out and trailing off into its pauses."""
        if self._trail_rng.random() >= TRAIL_OFF_RATE:
            return u
        factor, depth = (round(float(self._trail_rng.uniform(*r)), 2) for r in (LENGTHEN, TRAIL_OFF_DB))
        return u.lengthened(factor).trailing_off(depth)

    def laugh(self) -> Utterance:
        return laugh(self.rng, self.f0)
