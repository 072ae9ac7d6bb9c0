"""Build a corpus: plan every clip from the seed, then make the missing ones on all usable CPUs.

Planning is cheap and happens in the parent (clip i's split, voices and language come from (seed, i) alone);
making a clip happens in worker processes and depends only on its spec. So a seed gives the same files for any
--workers, and re-running skips finished clips (a clip file only exists once it is whole, see storage).
"""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backchannel.models.corpus import text, worker
from backchannel.models.corpus.clip import FORMAT_VERSION, ClipSpec
from backchannel.models.corpus.storage import CORPUS_FILE, SHARD_SIZE, clip_path, read_corpus_info, write_corpus_info
from backchannel.models.corpus.voices import REAL_TEST_SPLIT, RecordedSpeaker, Voice, assign_splits, catalog
from backchannel.models.cpus import usable_cpus

log = logging.getLogger(__name__)

# Share of clips per split, and of each engine and language group when drawing voices.
SPLIT_SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}
SPLIT_SHARES_WITH_REAL = {"train": 0.7, "val": 0.1, "test": 0.1, REAL_TEST_SPLIT: 0.1}
ENGINE_SHARES = {"espeak": 0.75, "mbrola": 0.4, "flite": 0.12, "festival": 0.05, "recorded": 0.08}
LANGUAGE_GROUPS = {"english": (0.25, text.ENGLISH), "latin": (0.45, text.LATIN_LANGUAGES),
                   "phonemes": (0.3, text.PHONEME_LANGUAGES)}
# storage.write_clip's temporary for clip c000123 (atomic.replacing): .c000123.npz.tmp<pid>
_CLIP_TEMPORARY = re.compile(r"\.c\d{6,}\.npz\.tmp\d+")


@dataclass
class BuildConfig:
    out: Path
    hours: float
    seed: int = 0
    workers: int = 0  # 0: every CPU this process may use
    speech_dirs: list[str] = field(default_factory=list)
    clip_seconds: float = 30.0
    real_split: str = REAL_TEST_SPLIT  # where recorded speakers go: test-real (held out) or train
    augment: float = 1.0
    cache_dir: str | None = None

    def settings(self) -> dict:
        """What fixes the clips' content (a corpus folder keeps one of these)."""
        return {"format": FORMAT_VERSION, "seed": self.seed, "clip_seconds": self.clip_seconds,
                "speech_dirs": [str(Path(d).resolve()) for d in self.speech_dirs], "real_split": self.real_split,
                "augment": self.augment}


def _pick_voice(rng, pool: list[Voice], exclude_speaker: str | None = None) -> Voice:
    """A voice from `pool`, engine first (so the many espeak variants do not drown the few others), of another
    speaker than `exclude_speaker` when the pool has one."""
    pool = [v for v in pool if v.speaker != exclude_speaker] or pool
    engines = sorted({v.engine for v in pool})
    weights = np.array([ENGINE_SHARES[e] for e in engines])
    engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    members = [v for v in pool if v.engine == engine]
    return members[int(rng.integers(len(members)))]


def _pick_language(rng, self_voice: Voice, other_voice: Voice) -> str:
    if self_voice.engine == "recorded":  # the partner answers in the recorded speaker's language where it can
        speaks_it = other_voice.through_espeak and other_voice.language in ("", self_voice.language)
        return self_voice.language if self_voice.language and speaks_it else "en-us"
    if not (self_voice.through_espeak and other_voice.through_espeak):
        return "en-us"  # festival and flite speak (US) English
    for v in (self_voice, other_voice):
        if v.language:  # an MBROLA voice's database holds one language's diphones; the partner speaks it too
            return v.language
    names = list(LANGUAGE_GROUPS)
    shares = np.array([LANGUAGE_GROUPS[n][0] for n in names])
    group = LANGUAGE_GROUPS[names[int(rng.choice(len(names), p=shares / shares.sum()))]][1]
    return group[int(rng.integers(len(group)))]


def plan(config: BuildConfig) -> tuple[list[ClipSpec], dict]:
    """Every clip's spec, and speaker -> split."""
    voices = catalog(config.speech_dirs)
    splits = assign_splits(voices, config.seed, config.real_split)
    pools = {s: [v for v in voices if splits[v.speaker] == s] for s in set(splits.values())}
    has_real_split = config.real_split == REAL_TEST_SPLIT and REAL_TEST_SPLIT in pools
    shares = SPLIT_SHARES_WITH_REAL if has_real_split else SPLIT_SHARES
    names = [s for s in shares if pools.get(s)]
    partner_pool = pools.get("test") or pools.get("val") or pools["train"]  # for recorded selves
    p = np.array([shares[s] for s in names])
    n_clips = max(1, math.ceil(config.hours * 3600 / config.clip_seconds))
    specs = []
    for i in range(n_clips):
        rng = np.random.default_rng([config.seed, i, 0])  # planning stream; the clip itself uses [seed, i, 1]
        split = names[int(rng.choice(len(names), p=p / p.sum()))]
        if split == REAL_TEST_SPLIT:  # a recorded speaker talks with a held-out synthetic voice
            self_voice = _pick_voice(rng, pools[REAL_TEST_SPLIT])
            other_voice = _pick_voice(rng, partner_pool, self_voice.speaker)
        else:
            self_voice = _pick_voice(rng, pools[split])
            other_voice = _pick_voice(rng, pools[split], self_voice.speaker)
        specs.append(ClipSpec(f"c{i:06d}", split, (config.seed, i, 1), config.clip_seconds, self_voice,
                              other_voice, _pick_language(rng, self_voice, other_voice), config.augment,
                              config.cache_dir))
    return specs, splits


def check(config: BuildConfig) -> None:
    """Refuse numbers that cannot make a corpus, before anything is written. The comparisons are written so that
    NaN (which fails every comparison) is refused too."""
    if not 0 < config.hours < math.inf:
        raise ValueError(f"--hours must be a number > 0, got {config.hours}")
    if not 5 <= config.clip_seconds < math.inf:
        raise ValueError(f"--clip-seconds must be a number >= 5, got {config.clip_seconds}")
    if not 0 <= config.augment <= 1:
        raise ValueError(f"--augment must be between 0 and 1, got {config.augment}")
    if config.workers < 0:
        raise ValueError(f"--workers must be at least 1 (or 0: every CPU this process may use), got {config.workers}")
    if config.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {config.seed}")


def build(config: BuildConfig, progress: bool = True) -> dict:
    """Make every missing clip of the planned corpus; returns a summary (made, skipped, failed, seconds)."""
    from tqdm import tqdm

    check(config)
    out = Path(config.out)
    info = read_corpus_info(out)
    if not info and out.exists() and (not out.is_dir() or any(not p.name.startswith(".") for p in out.iterdir())):
        # never put clips among (nor clean up in) somebody else's files; hidden ones (.DS_Store, an interrupted
        # first run's corpus.json temporary) do not count
        raise ValueError(f"--out {out} is not an empty folder and holds no corpus ({CORPUS_FILE}): choose an empty "
                         "or new folder, or an existing corpus to resume or extend")
    if info and info.get("settings") != config.settings():
        raise ValueError(f"{out} holds a corpus built with other settings ({out / CORPUS_FILE}); use the same "
                         "--seed/--clip-seconds/--speech-dir/--real-split/--augment or another --out")
    for d in config.speech_dirs:
        RecordedSpeaker.open(d, config.cache_dir)  # fail early on a bad folder
    specs, splits = plan(config)
    speakers = dict(sorted(splits.items()))  # what corpus.json records
    planned = info.get("speakers") if info else None
    if planned is not None and planned != speakers:
        def some(names: set) -> str:
            names = sorted(names)
            return (", ".join(names[:4]) or "-") + (" ..." if len(names) > 4 else "")

        raise ValueError(f"{out} was planned with other voices than this machine has (new here: "
                         f"{some(set(speakers) - set(planned))}; missing here: {some(set(planned) - set(speakers))}); "
                         "adding clips would mix two plans: install the same voices (e.g. scripts/install-mbrola.sh) "
                         "or use another --out")
    workers = config.workers or usable_cpus()
    t0 = time.perf_counter()
    # one fresh process per clip, forked from a warm server that never synthesised (see worker.py): clips do not
    # depend on which clips a process made before, so not on the number of workers
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([worker.__name__])
    with ctx.Pool(workers, maxtasksperchild=1) as pool:
        for d in config.speech_dirs:  # align recorded speech once, in parallel, before any clip needs it
            speaker = RecordedSpeaker.open(d, config.cache_dir)
            jobs = [(d, config.cache_dir, i) for i in range(len(speaker.prompts))]
            ok = sum(tqdm(pool.imap_unordered(worker.align, jobs), total=len(jobs), desc=f"align {speaker.name}",
                          disable=not progress, file=sys.stderr))
            log.info("%s: %d of %d prompts aligned", speaker.name, ok, len(jobs))
        counts: dict[str, int] = {}
        for s in specs:
            counts[s.split] = counts.get(s.split, 0) + 1
        write_corpus_info(out, {
            "settings": config.settings(), "hours": config.hours, "clips": len(specs), "split_clips": counts,
            "speakers": speakers, "shard_size": SHARD_SIZE,
        })
        jobs = [(s, str(clip_path(out, s.split, i, s.name))) for i, s in enumerate(specs)]
        # half-written clips of an interrupted run, looked for only in the shard folders this plan writes to
        for shard in {Path(path).parent for _, path in jobs}:
            for stale in shard.glob(".*.npz.tmp*"):
                if _CLIP_TEMPORARY.fullmatch(stale.name):
                    stale.unlink()
        todo = [j for j in jobs if not Path(j[1]).is_file()]
        failed = []
        bar = tqdm(total=len(todo), desc="clips", unit="clip", disable=not progress, file=sys.stderr)
        for name, error, _ in pool.imap_unordered(worker.make, todo):
            if error:
                failed.append((name, error))
                log.warning("clip %s failed: %s", name, error)
            bar.update(1)
        bar.close()
    return {"clips": len(specs), "made": len(todo) - len(failed), "skipped": len(jobs) - len(todo),
            "failed": failed, "seconds": time.perf_counter() - t0, "workers": workers}
