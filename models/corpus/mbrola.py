"""MBROLA voices, driven by espeak-ng: speech concatenated from diphones a person recorded, so the way a voice
moves into and out of a lip closure is a person's (espeak-ng's own voices are formant synthesis, flite's are
vocoded). Debian ships the databases in non-free (`mbrola-us1`, ...): their licence allows synthesising speech
with the mbrola program and forbids selling the databases or building them into a product sold; we only train on
speech they render and ship neither.

One espeak-ng pass turns a text into MBROLA's phone file (each phone's name and duration in ms, with pitch
targets) and, for each clause, the same phones in IPA with words apart (`--ipa --sep=_`); the mbrola program
renders the phone file. Phone times are the phone file's durations, which mbrola renders exactly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from backchannel.models.audio import load_audio
from backchannel.models.corpus import espeak
from backchannel.models.corpus.festival import WordMatchError
from backchannel.models.corpus.text import ENGLISH, LATIN_LANGUAGES
from backchannel.models.corpus.utterance import Utterance
from backchannel.models.phones import clean_ipa, is_vowel

DATABASES = Path("/usr/share/mbrola")
# The databases the corpus uses: each says at least 17 of 24 of the corpus's texts in its language (18 sentences and
# 6 backchannels at random rates and pitches; a text a voice cannot say is replaced by another). Of the others
# measured, af1 br1-4 cz1 de8 es1-4 it1-4 mx1-2 nl3 pl1 pt1 ro1 tr1-2 said 2-15 (mostly diphones espeak-ng asks for
# and the database lacks); those not measured are not used. scripts/install-mbrola.sh installs this list.
USABLE = ("us1", "us2", "us3", "en1", "de1", "de2", "de3", "de5", "fr1", "fr2", "fr3", "fr4", "fr5", "fr6", "fr7",
          "nl2", "sw1", "sw2", "cr1", "cz2", "hu1", "id1")


@lru_cache(maxsize=1)
def mbrola_voices() -> list[tuple[str, str, str]]:
    """(database, language, gender) of every installed MBROLA database espeak-ng has a voice for, e.g.
    ("us1", "en-us", "female"); empty without mbrola or espeak-ng."""
    root = espeak.data_dir()
    if root is None or shutil.which("mbrola") is None or shutil.which("espeak-ng") is None:
        return []
    found = []
    for name in USABLE:
        voice_file = root / "voices" / "mb" / f"mb-{name}"
        if not (DATABASES / name / name).is_file() or not voice_file.is_file():
            continue
        fields: dict[str, str] = {}  # the first of each key: a voice file lists its main language first
        for line in voice_file.read_text(errors="replace").splitlines():
            key, *values = line.split() or [""]
            if values:
                fields.setdefault(key, values[0])
        if "language" in fields:
            found.append((name, text_language(fields["language"]), fields.get("gender", "unknown")))
    return sorted(found)


def text_language(code: str) -> str:
    """The corpus's text language for an espeak-ng language code: "es-mx" writes as "es", "pt-br" as itself."""
    if code.startswith("en"):
        return code if code in ENGLISH else "en"
    return code if code in LATIN_LANGUAGES else code.split("-")[0]


def mbrola_synth(text: str, database: str, rate: int = 175, pitch: int = 50) -> Utterance:
    """Speak `text` with MBROLA database `database` through espeak-ng's voice mb-<database> (rate in words per
    minute, pitch 0-99 as espeak-ng's). WordMatchError when the phones cannot be timed (espeak-ng's IPA and phone
    file disagree) or mbrola lacks a diphone for them."""
    try:
        proc = subprocess.run(["espeak-ng", "-q", "--pho", "--ipa", "--sep=_", "-v", f"mb-{database}",
                               "-s", str(int(rate)), "-p", str(int(pitch))],
                              input=text.encode(), capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise WordMatchError(f"espeak-ng took over a minute over {text[:40]!r}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed for mb-{database}: {proc.stderr.decode(errors='replace')[-300:]}")
    pho, phones, words = parse_phone_file(proc.stdout.decode("utf-8", "replace"), text)
    with tempfile.TemporaryDirectory(prefix="bc-mbrola-") as tmp:
        pho_path, wav_path = os.path.join(tmp, "in.pho"), os.path.join(tmp, "out.wav")
        Path(pho_path).write_text(pho)
        try:
            run = subprocess.run(["mbrola", str(DATABASES / database / database), pho_path, wav_path],
                                 capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise WordMatchError(f"mbrola took over a minute over {text[:40]!r}") from None
        if run.returncode != 0 or "unknown" in run.stderr.lower():
            # a diphone the database lacks: mbrola stops ("Fatal error: Unknown recovery"; with -e it would say
            # silence in its place, "unknown, replaced with _-_", which we refuse too)
            raise WordMatchError(f"mbrola {database} cannot say {text[:40]!r}: {run.stderr.strip()[:200]}")
        audio = load_audio(wav_path)
    return Utterance(audio, phones, words, text)


def parse_phone_file(out: str, text: str) -> tuple[str, list, list]:
    """espeak-ng's `--pho --ipa --sep=_` output -> (the phone file alone, timed IPA phones, timed words).

    Each clause's IPA line ("b_ˈɑː_b b_ˈɔː_t", words apart, phones joined by "_") precedes its phone-file rows
    ("b 65", "A 64 0 232 ..."; "_" is a pause). The clause's IPA phones take its non-pause rows in order (`_align`):
    one each, two for a phone MBROLA says as two ("ɪɹ" as "I r"), none for an "h" its language lacks."""
    pho_rows: list[str] = []
    phones, words = [], []  # words: [start, end, ipa]
    clause: list[tuple[int, str]] = []  # (word index, ipa) of the clause's phones
    rows: list[tuple[float, float, str]] = []  # (start, end, name) of the clause's non-pause rows
    t = 0.0

    def close_clause():
        for (w, ipa), span in zip(clause, _align(clause, rows, text)):
            if span is None:  # a sound the database's language lacks, left unsaid
                continue
            a, b = span
            phones.append((round(a, 4), round(b, 4), ipa))
            words[w][0] = round(a, 4) if words[w][0] is None else words[w][0]
            words[w][1] = round(b, 4)
        clause.clear()
        rows.clear()

    for line in out.splitlines():
        fields = line.split()
        if not fields or line.startswith(";"):
            continue
        if len(fields) >= 2 and _is_number(fields[1]):  # a phone-file row
            pho_rows.append(line)
            dur = float(fields[1]) / 1000.0
            if fields[0] != "_":
                rows.append((t, t + dur, fields[0]))
            t += dur
            continue
        close_clause()
        for word in fields:  # an IPA line: a clause's words
            # "(en)": espeak-ng switching language for a word it takes for a foreign one, not a sound
            ipa = [p for p in (q.replace("ˈ", "").replace("ˌ", "") for q in word.split("_")) if p and p[0] != "("]
            if ipa:
                words.append([None, None, "".join(ipa)])
                clause.extend((len(words) - 1, p) for p in ipa)
    close_clause()
    names = _text_words(text)
    if len(names) != len(words):  # IPA words are the text's words unless espeak-ng split or joined some
        names = [ipa for _, _, ipa in words]
    timed = [(a, b, n) for (a, b, _), n in zip(words, names) if a is not None]
    return "\n".join(pho_rows) + "\n", phones, timed


# an IPA phone's last sound -> how MBROLA's SAMPA names begin when it says that sound as a row of its own
_SECOND_ROW = {"ə": "@", "ɐ": "6@", "ʊ": "U", "ɪ": "Ij", "i": "ij", "u": "uw"}
_SAMPA_VOWELS = frozenset("aeiouyAEIOUVQY@{}&236789")
_DROPPABLE = frozenset({"h", "ʔ"})  # sounds a database's language may lack (French mbrola says "aha" as "a a")
_MAX_ROWS = 3  # an IPA phone takes at most this many rows ("ʊɹ" said as "U r" plus a linking "r")
INF = float("inf")


def _extra_row_ok(ipa: str, row: str) -> bool:
    """Row `row` may continue IPA phone `ipa`: its last sound said apart ("ɪɹ" as "I r", "iə" as "I @"); an "r"
    row may follow any r-final phone (English's linking r repeats it: "four hours", "f O r r aU")."""
    last = ipa.rstrip("ː")[-1:]
    if last == "ɹ":
        return row == "r"
    return len(ipa.rstrip("ː")) >= 2 and row[:1] in _SECOND_ROW.get(last, "")


def _same_kind(ipa: str, row: str) -> bool:
    """Vowel against vowel, consonant against consonant, by the IPA phone's first or last sound ("əl" may be said
    as "l", syllabic "r=" is a vowel): what catches an alignment that slipped by a row."""
    row_vowel = row[:1] in _SAMPA_VOWELS or "=" in row
    return any(is_vowel(clean_ipa(ch)) == row_vowel for ch in (ipa[:1], ipa.rstrip("ː")[-1:]) if clean_ipa(ch))


def _align(clause: list[tuple[int, str]], rows: list[tuple[float, float, str]], text: str) -> list:
    """(start, end) per IPA phone of a clause, None for a sound left unsaid. Each phone takes one row of its own
    kind, or more where `_extra_row_ok`, or none where `_DROPPABLE`; the fewest such exceptions win. A text whose
    best alignment still pairs a vowel with a consonant is refused rather than timed wrong."""
    n, m = len(clause), len(rows)
    # best[i][j]: (cost, rows the i-th phone takes) laying the first i phones on the first j rows; a vowel paired
    # with a consonant costs more than any number of exceptions, so it is only chosen when nothing else fits
    best = [[(INF, 0)] * (m + 1) for _ in range(n + 1)]
    best[0][0] = (0, 0)
    for i in range(1, n + 1):
        ipa = clause[i - 1][1]
        for j in range(m + 1):
            options = [(best[i - 1][j][0] + 1, 0)] if ipa in _DROPPABLE else []
            for take in range(1, min(_MAX_ROWS, j) + 1):
                extra = [row for _, _, row in rows[j - take + 1: j]]
                if all(_extra_row_ok(ipa, row) for row in extra):
                    mismatch = 0 if _same_kind(ipa, rows[j - take][2]) else 1000
                    options.append((best[i - 1][j - take][0] + take - 1 + mismatch, take))
            best[i][j] = min(options, default=(INF, 0))
    if best[n][m][0] >= 1000:
        raise WordMatchError(f"cannot lay {n} IPA phones onto {m} mbrola phones in {text[:40]!r}")
    spans, j = [], m
    for i in range(n, 0, -1):
        take = best[i][j][1]
        spans.append((rows[j - take][0], rows[j - 1][1]) if take else None)
        j -= take
    return spans[::-1]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _text_words(text: str) -> list[str]:
    words = (w.strip("[]'\",.;:!?¿¡") for w in text.replace("[[", " ").replace("]]", " ").split())
    return [w for w in words if w]
