"""Lay out Asterisk's recorded telephone prompts in other languages as recorded-speaker folders for
`backchannel data make --speech-dir` and `scripts/probe_place.py`.

Debian's `asterisk-core-sounds-{fr,it,ru}-wav` (CC-BY-SA-3.0, like the shared English prompts) each hold one
professional speaker's prompts, 8 kHz, with their texts in `/usr/share/doc/asterisk-core-sounds-XX/`: June
(Canadian French), Carlo (Italian) and a Russian speaker. The Spanish set is left out: its reader is Allison, the
English test voice. Each language becomes one folder: `language.txt` (the espeak-ng voice that aligns it),
`transcripts.txt` and links to the recordings. Nothing is copied.

    apt-get install asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav
    python scripts/asterisk_speakers.py --out /work/data/speakers
"""
from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

SOUNDS = Path("/usr/share/asterisk/sounds")
DOCS = Path("/usr/share/doc")
VOICES = {"fr": "fr_CA_f_June", "it": "it_IT_m_Carlo", "ru": "ru_RU_f_IvrvoiceRU"}  # language -> sound folder


def prompts(language: str) -> list[tuple[str, str, Path]]:
    """[(name, text, recording)] for the language's top-level prompts that have a recording."""
    texts = DOCS / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
    folder = SOUNDS / VOICES[language]
    found = []
    for line in gzip.open(texts, "rt", encoding="utf-8", errors="replace"):
        if line.startswith(";") or ":" not in line:
            continue
        name, text = (s.strip() for s in line.split(":", 1))
        wav = folder / f"{name}.wav"
        if "/" not in name and text and wav.is_file():
            found.append((name, text, wav))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder to create the speaker folders in")
    args = ap.parse_args()
    made = 0
    for language in VOICES:
        if not (SOUNDS / VOICES[language]).is_dir():
            print(f"asterisk-{language}: not installed (apt-get install asterisk-core-sounds-{language}-wav)")
            continue
        found = prompts(language)
        out = Path(args.out, f"asterisk-{language}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "language.txt").write_text(language + "\n")
        (out / "transcripts.txt").write_text("".join(f"{name}: {text}\n" for name, text, _ in found), "utf-8")
        for name, _, wav in found:
            link = out / wav.name
            if not link.exists():
                link.symlink_to(wav)
        print(f"asterisk-{language}: {len(found)} recordings")
        made += 1
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
