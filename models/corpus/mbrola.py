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

from ..audio import load_audio
from . import espeak
from .festival import WordMatchError
from .text import ENGLISH, LATIN_LANGUAGES
from .utterance import Utterance

DATABASES = Path("/usr/share/mbrola")
# Databases that cannot say a third or more of the corpus's texts in their language (mostly diphones espeak-ng
# asks for and the database lacks), measured on 24 texts each (18 sentences, 6 backchannels, random rates and
# pitches); the kept ones say 17-24 of 24, and a text a voice cannot say is replaced by another.
EXCLUDED = frozenset({"af1", "br1", "br2", "br3", "br4", "cz1", "de8", "es1", "es2", "es3", "es4", "it1", "it2",
                      "it3", "it4", "mx1", "mx2", "nl3", "pl1", "pt1", "ro1", "tr1", "tr2"})


@lru_cache(maxsize=1)
def mbrola_voices() -> list[tuple[str, str, str]]:
    """(database, language, gender) of every installed MBROLA database espeak-ng has a voice for, e.g.
    ("us1", "en-us", "female"); empty without mbrola or espeak-ng."""
    root = espeak.data_dir()
    if root is None or shutil.which("mbrola") is None or shutil.which("espeak-ng") is None:
        return []
    found = []
    for db in sorted(DATABASES.glob("*/*")):
        voice_file = root / "voices" / "mb" / f"mb-{db.name}"
        if db.parent.name != db.name or db.name in EXCLUDED or not voice_file.is_file():
            continue
        fields: dict[str, str] = {}  # the first of each key: a voice file lists its main language first
        for line in voice_file.read_text(errors="replace").splitlines():
            if len(line.split()) >= 2:
                fields.setdefault(line.split()[0], line.split()[1])
        if "language" in fields:
            found.append((db.name, text_language(fields["language"]), fields.get("gender", "unknown")))
    return found


def text_language(code: str) -> str:
    """The corpus's text language for an espeak-ng language code: "es-mx" writes as "es", "pt-br" as itself."""
    if code.startswith("en"):
        return code if code in ENGLISH else "en"
    return code if code in LATIN_LANGUAGES else code.split("-")[0]


def mbrola_synth(text: str, database: str, rate: int = 175, pitch: int = 50) -> Utterance:
    """Speak `text` with MBROLA database `database` through espeak-ng's voice mb-<database> (rate in words per
    minute, pitch 0-99 as espeak-ng's). WordMatchError when the phones cannot be timed (espeak-ng's IPA and phone
    file disagree) or mbrola lacks a diphone for them."""
    proc = subprocess.run(["espeak-ng", "-q", "--pho", "--ipa", "--sep=_", "-v", f"mb-{database}",
                           "-s", str(int(rate)), "-p", str(int(pitch))],
                          input=text.encode(), capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed for mb-{database}: {proc.stderr.decode(errors='replace')[-300:]}")
    pho, phones, words = parse_phone_file(proc.stdout.decode("utf-8", "replace"), text)
    with tempfile.TemporaryDirectory(prefix="bc-mbrola-") as tmp:
        pho_path, wav_path = os.path.join(tmp, "in.pho"), os.path.join(tmp, "out.wav")
        Path(pho_path).write_text(pho)
        run = subprocess.run(["mbrola", str(DATABASES / database / database), pho_path, wav_path],
                             capture_output=True, text=True, timeout=60)
        if run.returncode != 0 or not os.path.exists(wav_path) or "unknown" in run.stderr:
            # a diphone the database lacks: mbrola stops, or says silence in its place
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
_SECOND_ROW = {"ɹ": "r", "r": "r", "ə": "@", "ɐ": "6@", "ʊ": "U", "ɪ": "Ij", "i": "ij", "u": "uw"}


def _split_ok(ipa: str, row: str) -> bool:
    last = ipa.rstrip("ː")[-1:]
    return len(ipa.rstrip("ː")) >= 2 and row[:1] in _SECOND_ROW.get(last, "")


def _align(clause: list[tuple[int, str]], rows: list[tuple[float, float, str]], text: str) -> list:
    """(start, end) per IPA phone of a clause: one row each, two where `_split_ok`, none (None) for a sound the
    database's language lacks (`_DROPPABLE`: French mbrola says "aha" as "a a"), with the fewest exceptions."""
    n, m = len(clause), len(rows)
    # best[i][j]: (exceptions, rows the i-th phone takes) laying the first i phones on the first j rows
    best = [[(INF, 0)] * (m + 1) for _ in range(n + 1)]
    best[0][0] = (0, 0)
    for i in range(1, n + 1):
        ipa = clause[i - 1][1]
        for j in range(m + 1):
            options = [(best[i - 1][j - 1][0], 1)] if j >= 1 else []
            if j >= 2 and _split_ok(ipa, rows[j - 1][2]):
                options.append((best[i - 1][j - 2][0] + 1, 2))
            if ipa in _DROPPABLE:
                options.append((best[i - 1][j][0] + 1, 0))
            best[i][j] = min(options, default=(INF, 0))
    if best[n][m][0] == INF:
        raise WordMatchError(f"cannot lay {n} IPA phones onto {m} mbrola phones in {text[:40]!r}")
    spans, j = [], m
    for i in range(n, 0, -1):
        take = best[i][j][1]
        spans.append((rows[j - take][0], rows[j - 1][1]) if take else None)
        j -= take
    return spans[::-1]


INF = float("inf")
_DROPPABLE = frozenset({"h", "ʔ"})


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _text_words(text: str) -> list[str]:
    words = (w.strip("[]'\",.;:!?¿¡") for w in text.replace("[[", " ").replace("]]", " ").split())
    return [w for w in words if w]
