"""Real recorded speech: a folder of one speaker's recordings (`name.wav`, or `.ogg`/`.flac`) plus `transcripts.txt`
(`name: text` lines), aligned into phones and words. English is force-aligned with pocketsphinx (its bundled US-
English acoustic model and CMU dictionary). A folder holding `language.txt` (an espeak-ng voice name: `es`, `ru`,
`fr`...) is read in that language and aligned by warping espeak-ng's reading onto each recording (synth_align.py):
less precise, but any language espeak-ng speaks.

Alignment is the slow part (~0.1x real time), so each prompt is aligned once and cached as JSON under the
cache folder, keyed by the audio's and transcript's content, so it is shared by every corpus built later.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backchannel.models.atomic import replacing
from backchannel.models.audio import SAMPLE_RATE, load_audio
from backchannel.models.corpus import espeak, synth_align
from backchannel.models.corpus.festival import cmudict, words_of
from backchannel.models.corpus.utterance import Utterance
from backchannel.models.phones import arpabet_to_ipa

log = logging.getLogger(__name__)
ALIGNER_VERSION = 3  # bump when alignment code (or how prompts are loaded) changes, to invalidate caches
AUDIO_EXTENSIONS = (".wav", ".ogg", ".flac")
PAD_S = 0.3  # silence padded on both sides so the aligner can place the speech's start and end


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "backchannel", "alignments")


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    wav: Path


class RecordedSpeaker:
    """One speaker's recordings. `name` is the folder name (the speaker's identity for splits)."""

    _opened: dict = {}

    @classmethod
    def open(cls, folder: str | Path, cache_dir: str | Path | None = None) -> "RecordedSpeaker":
        """The speaker for `folder`, parsed once per process (workers make many clips with it)."""
        key = (str(Path(folder).resolve()), str(cache_dir))
        if key not in cls._opened:
            cls._opened[key] = cls(folder, cache_dir)
        return cls._opened[key]

    def __init__(self, folder: str | Path, cache_dir: str | Path | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"speech folder not found: {self.folder}")
        transcripts = self.folder / "transcripts.txt"
        if not transcripts.is_file():
            raise FileNotFoundError(f"{self.folder} has no transcripts.txt (lines of `name: text`)")
        self.name = self.folder.name
        self.language = folder_language(self.folder)  # None: English
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.prompts, skipped = [], 0
        lexicon = None if self.language else cmudict()
        for line in transcripts.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(";") or ":" not in line:
                continue
            name, text = (s.strip() for s in line.split(":", 1))
            wav = next((w for w in (self.folder / f"{name}{ext}" for ext in AUDIO_EXTENSIONS) if w.is_file()), None)
            if wav is None:
                continue
            # digits, symbols and out-of-dictionary words cannot be aligned without a g2p model, and bracketed
            # transcripts describe tones, not speech: leave them out
            words = self.words(text)
            if (re.search(r"[0-9*#@&%$/<>\[\]]|\.\.\.", text) or not words
                    or (lexicon is not None and any(w not in lexicon for w in words))):
                skipped += 1
                continue
            self.prompts.append(Prompt(name, text, wav))
        if not self.prompts:
            raise ValueError(f"{self.folder}: no usable prompts (a recording + a transcript without digits or "
                             "symbols" + (")" if self.language else ", of words in the CMU dictionary)"))
        if skipped:
            log.info("%s: %d prompts with alignable transcripts, %d skipped (digits or symbols%s)", self.name,
                     len(self.prompts), skipped, "" if self.language else ", or words missing from the dictionary")
        self._aligned: list[Prompt] | None = None

    def words(self, text: str) -> list[str]:
        return text.split() if self.language else words_of(text)

    def aligned(self) -> list[Prompt]:
        """The prompts that could be aligned (aligning any not yet in the cache)."""
        if self._aligned is None:
            self._aligned = [p for p in self.prompts if self.alignment(p) is not None]
            if not self._aligned:
                raise ValueError(f"{self.folder}: no prompt could be aligned to its transcript")
        return self._aligned

    def short_prompts(self) -> list[Prompt]:
        """One- and two-word prompts: what a recorded speaker can offer as a short listener response."""
        return [p for p in self.aligned() if len(self.words(p.text)) <= 2] or self.aligned()

    def long_prompts(self) -> list[Prompt]:
        """Prompts of three words or more: turn material."""
        return [p for p in self.aligned() if len(self.words(p.text)) > 2] or self.aligned()

    def utterance(self, prompt: Prompt) -> Utterance:
        timing = self.alignment(prompt)
        if timing is None:
            raise ValueError(f"{prompt.wav}: could not be aligned to {prompt.text!r}")
        return Utterance(load_audio(prompt.wav), timing[0], timing[1], prompt.text, {"prompt": prompt.name})

    def cache_path(self, prompt: Prompt) -> Path:
        read_in = f"synthesis {self.language} {synth_align.VERSION}".encode() if self.language else b""
        # English keys are as before synthesis alignment came
        key = hashlib.sha1(prompt.wav.read_bytes() + prompt.text.encode() + bytes([ALIGNER_VERSION]) + read_in)
        return self.cache_dir / self.name / f"{prompt.name}-{key.hexdigest()[:16]}.json"

    def alignment(self, prompt: Prompt) -> tuple[list, list] | None:
        """(phones, words) for a prompt, or None when it cannot be aligned; from the cache, else aligned now and
        cached (failures too, so they are tried once)."""
        path = self.cache_path(prompt)
        if not path.is_file():
            try:
                audio = load_audio(prompt.wav)
                if self.language:  # the warp's cost is kept, so MAX_COST applies to cached warps too
                    phones, words, cost = synth_align.align_by_synthesis(audio, prompt.text, self.language)
                    data = {"text": prompt.text, "phones": phones, "words": words, "cost": cost}
                else:
                    phones, words = align(audio, prompt.text)
                    data = {"text": prompt.text, "phones": phones, "words": words}
            except (RuntimeError, ValueError) as e:
                log.info("%s: cannot align %s (%s)", self.name, prompt.name, e)
                data = {"text": prompt.text, "failed": str(e)}
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:  # parallel workers may align the same prompt; either copy is whole
                tmp.write_text(json.dumps(data))
        data = json.loads(path.read_text())
        if "failed" in data or data.get("cost", 0.0) > synth_align.MAX_COST:  # not the transcript, read aloud
            return None
        return [tuple(p) for p in data["phones"]], [tuple(w) for w in data["words"]]


def folder_language(folder: Path) -> str | None:
    """The espeak-ng language `folder/language.txt` names, or None (English) without one."""
    path = folder / "language.txt"
    if not path.is_file():
        return None
    language = path.read_text(encoding="utf-8").strip()
    if not language:
        raise ValueError(f"{path} is empty: write the espeak-ng language the speaker reads in (es, ru, ...)")
    if language.lower() not in espeak.languages():
        raise ValueError(f"{path} names {language!r}, a language espeak-ng does not speak here "
                         "(`espeak-ng --voices` lists them)")
    return language


def align(audio: np.ndarray, text: str) -> tuple[list, list]:
    """Force-align 16 kHz `audio` to `text` (dictionary words): phone spans in IPA and word spans, in seconds.
    A fresh decoder each time: a reused one carries state between utterances, so results would depend on the
    order prompts were aligned in (and so on the number of workers)."""
    from pocketsphinx import Decoder

    pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
    pad += np.random.default_rng(0).normal(0, 1e-4, len(pad)).astype(np.float32)  # not digital silence
    x = np.concatenate([pad, np.asarray(audio, np.float32), pad])
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    d = Decoder(lm=None, loglevel="FATAL")
    d.set_align_text(" ".join(words_of(text)))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    d.set_alignment()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    alignment = d.get_alignment()
    if alignment is None:
        raise RuntimeError(f"pocketsphinx could not align {text[:40]!r}")
    frame = 1.0 / d.config["frate"]
    end_max = len(audio) / SAMPLE_RATE
    to_s = lambda f: round(min(max(f * frame - PAD_S, 0.0), end_max), 4)  # noqa: E731
    phones, words = [], []
    for word in alignment:
        name = re.sub(r"\(\d+\)$", "", word.name)
        spans = [(to_s(p.start), to_s(p.start + p.duration), arpabet_to_ipa(p.name)) for p in word]
        spans = [s for s in spans if s[2] is not None and s[1] > s[0]]
        if not spans:
            continue
        phones += spans
        words.append((spans[0][0], spans[-1][1], name))
    return phones, words
