"""A batch of lines to bake: a folder of recordings, or a script (CSV or JSON) of who says which file, laid on one
shared timeline so each line's partner track is what the others say around it (NPCs listen in scripted scenes).

Script rows (CSV with a header, or JSON: a list of objects, or {"lines": [...]}):
    speaker   who says the line (required)
    file      its recording, relative to the script's folder (required)
    partner   optional: whose lines are this line's partner track (default: everyone else's)
    start     optional: seconds on the timeline (default: after the previous line, plus the gap)
    id        optional: the output's name (default: NNN_speaker_filestem)
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backchannel.models.audio import SAMPLE_RATE, load_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Line:
    id: str
    speaker: str
    file: Path
    partner: str | None
    start: float  # seconds on the shared timeline
    audio: np.ndarray  # 16 kHz mono
    alone: bool = False  # a folder's recording: a scene of its own, nobody else's lines around it

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / SAMPLE_RATE


def read_lines(source: str | Path, gap_s: float = 0.25) -> list[Line]:
    """The lines of a folder (each recording a line of its own, no partner, in name order) or of a script."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)}) to bake")
        ids = _folder_ids([p.stem for p in files])
        rows = [{"speaker": p.stem, "file": p.name, "id": i} for p, i in zip(files, ids)]
        return _place(rows, source, gap_s, alone=True)
    if not source.is_file():
        raise ValueError(f"{source}: no such folder or script")
    if source.suffix.lower() == ".csv":
        with source.open(newline="") as f:
            rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    elif source.suffix.lower() == ".json":
        try:
            data = json.loads(source.read_text())
        except ValueError as e:  # json's message gives the line and column, not the file
            raise ValueError(f"{source}: not valid JSON ({e})") from None
        rows = data.get("lines") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{source}: a JSON script is a list of lines (objects), or {{\"lines\": [...]}}")
    else:
        raise ValueError(f"{source}: a script is .csv or .json (or give a folder of recordings)")
    if not rows:
        raise ValueError(f"{source}: the script has no lines")
    return _place(rows, source.parent, gap_s)


def _folder_ids(stems: list[str]) -> list[str]:
    """A plain file name per recording, from its own (`take 1 (final)` -> `take_1_final_`), unique in the folder."""
    ids: list[str] = []
    for stem in stems:
        base = re.sub(r"[^\w.-]+", "_", stem).strip(".") or "line"
        name, n = base, 2
        while name in ids:
            name, n = f"{base}-{n}", n + 1
        ids.append(name)
    return ids


def _place(rows: list[dict], folder: Path, gap_s: float, alone: bool = False) -> list[Line]:
    lines: list[Line] = []
    ids: set[str] = set()
    cursor = 0.0
    for n, row in enumerate(rows, 1):
        speaker, file = str(row.get("speaker") or "").strip(), str(row.get("file") or "").strip()
        if not speaker or not file:
            raise ValueError(f"line {n}: each line needs a speaker and a file, got {row}")
        path = Path(file) if Path(file).is_absolute() else folder / file
        if not path.is_file():
            raise ValueError(f"line {n}: {path} does not exist")
        start_text = row.get("start")
        try:
            start = cursor + (gap_s if lines else 0.0) if start_text in (None, "") else float(start_text)
        except ValueError:
            raise ValueError(f"line {n}: start {start_text!r} is not a number of seconds") from None
        if not np.isfinite(start) or start < 0:
            raise ValueError(f"line {n}: start {start_text!r} must be a time >= 0 s")
        line_id = str(row.get("id") or f"{n:03d}_{speaker}_{path.stem}")
        if not re.fullmatch(r"[\w.-]+", line_id) or line_id in ids:
            raise ValueError(f"line {n}: id {line_id!r} must be unique and a plain file name (letters, digits, _ . -)")
        ids.add(line_id)
        partner = str(row.get("partner") or "").strip() or None
        line = Line(line_id, speaker, path, partner, start, load_audio(path), alone)
        lines.append(line)
        cursor = max(cursor, line.end)
    speakers = {line.speaker for line in lines}
    for n, line in enumerate(lines, 1):
        if line.partner is not None and line.partner not in speakers:  # a typo would give a partner track of silence
            raise ValueError(f"line {n}: partner {line.partner!r} says no line in this script (speakers: "
                             f"{', '.join(sorted(speakers))})")
    return lines


def tracks_for(line: Line, lines: list[Line], context_s: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(self, other, offset_s) for one line: the window from context_s before the line to context_s after it, the
    speaker's own lines in it as the self track, the partner's (or everyone else's) as the other; offset_s is where
    the line's own audio starts in the window. A folder's recording is its own window: nothing around it."""
    context_s = 0.0 if line.alone else context_s
    begin = max(0.0, line.start - context_s)
    end = line.end + context_s
    n = int(round((end - begin) * SAMPLE_RATE))
    own, other = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for each in [line] if line.alone else lines:
        if each.end <= begin or each.start >= end:
            continue
        if each.speaker == line.speaker:
            track = own
        elif line.partner is None or each.speaker == line.partner:
            track = other
        else:
            continue
        i = int(round((each.start - begin) * SAMPLE_RATE))
        a, b = max(i, 0), min(i + len(each.audio), n)
        track[a:b] += each.audio[a - i:b - i]
    return own, other, line.start - begin
