"""The work a corpus build hands to its processes.

espeak-ng keeps global state that nudges later syntheses by a few milliseconds and survives re-initialising, so
every clip is made in a pristine process: a fork of a server that imported this module and never synthesised.
Importing it loads what all clips share (the CMU dictionary), so each fork starts warm.
"""
from __future__ import annotations

import time

from backchannel.models.corpus.clip import ClipSpec, make_clip
from backchannel.models.corpus.festival import cmudict
from backchannel.models.corpus.recorded import RecordedSpeaker
from backchannel.models.corpus.storage import write_clip

cmudict()


def make(job: tuple[ClipSpec, str]) -> tuple[str, str | None, float]:
    """Make and write one clip; returns (name, error or None, seconds)."""
    spec, path = job
    t0 = time.perf_counter()
    try:
        write_clip(path, make_clip(spec))
        return spec.name, None, time.perf_counter() - t0
    except Exception as e:  # one bad clip must not end the build: report it, the next run retries it
        return spec.name, f"{type(e).__name__}: {e}", time.perf_counter() - t0


def align(job: tuple[str, str | None, int]) -> bool:
    """Align (and cache) one recorded prompt; True when it could be aligned."""
    folder, cache_dir, index = job
    speaker = RecordedSpeaker.open(folder, cache_dir)
    return speaker.alignment(speaker.prompts[index]) is not None
