"""Lay out Tux Paint's spoken stamp descriptions as recorded-speaker folders for `backchannel data make --speech-dir`.

Debian's `tuxpaint-stamps-default` (GPL-2; `apt-get install tuxpaint-stamps-default`) holds short descriptions of
its picture stamps read aloud by people, one or a few readers per language, with their texts: real voices in ten
languages the project otherwise has no recordings of. Each language becomes one folder (its readers kept together,
so they stay in one split): `language.txt` (the espeak-ng voice that aligns it, models/corpus/synth_align.py),
`transcripts.txt` and links to the recordings. Nothing is copied; the folders are small.

    python scripts/tuxpaint_speakers.py --out /work/data/speakers
    backchannel data make ... --speech-dir /work/data/speakers/tuxpaint-es --speech-dir ...
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

STAMPS = Path("/usr/share/tuxpaint/stamps")
DESCRIPTION = re.compile(r"^(?P<stem>.+)_desc_(?P<lang>[a-z]{2,3})\.ogg$")  # English descriptions have no suffix
MIN_RECORDINGS = 50  # fewer is not a voice worth a folder


def transcript(texts: Path, lang: str) -> str | None:
    """The stamp's text in `lang` (its `<lang>.utf8=` line)."""
    for line in texts.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(f"{lang}.utf8="):
            return line.split("=", 1)[1].strip() or None
    return None


def readings(stamps: Path) -> dict[str, list[tuple[str, str, Path]]]:
    """language -> [(prompt name, text, recording)] for every description read aloud that has its text."""
    found: dict[str, list] = {}
    for ogg in sorted(stamps.rglob("*_desc_*.ogg")):
        m = DESCRIPTION.match(ogg.name)
        if not m:
            continue
        texts = ogg.with_name(m["stem"] + ".txt")
        text = transcript(texts, m["lang"]) if texts.is_file() else None
        if text:
            name = "_".join(ogg.relative_to(stamps).parent.parts + (m["stem"],))
            found.setdefault(m["lang"], []).append((name, text, ogg.resolve()))
    return found


def write_speaker(folder: Path, lang: str, prompts: list[tuple[str, str, Path]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "language.txt").write_text(lang + "\n")
    lines = [f"{name}: {text}" for name, text, _ in prompts]
    (folder / "transcripts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, _, ogg in prompts:
        link = folder / f"{name}.ogg"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ogg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stamps", type=Path, default=STAMPS, help=f"Tux Paint's stamps folder (default {STAMPS})")
    ap.add_argument("--out", type=Path, required=True, help="where the speaker folders go (tuxpaint-<lang>)")
    ap.add_argument("--min-recordings", type=int, default=MIN_RECORDINGS)
    args = ap.parse_args(argv)
    if not args.stamps.is_dir():
        print(f"tuxpaint_speakers: {args.stamps} not found: apt-get install tuxpaint-stamps-default "
              "(or pass --stamps)", file=sys.stderr)
        return 1
    found = readings(args.stamps)
    kept = {lang: p for lang, p in sorted(found.items()) if len(p) >= args.min_recordings}
    if not kept:
        print(f"tuxpaint_speakers: no language under {args.stamps} has {args.min_recordings}+ described "
              "recordings", file=sys.stderr)
        return 1
    for lang, prompts in kept.items():
        write_speaker(args.out / f"tuxpaint-{lang}", lang, prompts)
        print(f"tuxpaint-{lang}: {len(prompts)} recordings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
