"""Building a corpus: determinism across worker counts, resuming, splits that hold out speakers, the loader,
the `data` commands, and the bundled demo sample."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from backchannel.models.corpus.build import BuildConfig, build, plan
from backchannel.models.corpus.dataset import Corpus, WindowDataset, loader
from backchannel.models.corpus.stats import corpus_stats
from backchannel.models.corpus.storage import find_clips, read_clip, write_clip_folder
from backchannel.models.corpus.voices import Voice
from backchannel.models.cpus import cpu_quota, usable_cpus
from backchannel.models.motion import MOTION_DIM, SPEAKING

from .corpus_fixtures import ALLISON, SAMPLE

CLIP_S = 8.0
HOURS = 5 * CLIP_S / 3600  # five short clips


def config(out, align_cache, workers):
    return BuildConfig(out, HOURS, seed=11, workers=workers, speech_dirs=[str(ALLISON)], clip_seconds=CLIP_S,
                       cache_dir=align_cache)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, align_cache):
    out = tmp_path_factory.mktemp("corpus")
    result = build(config(out, align_cache, workers=2), progress=False)
    assert result["made"] == result["clips"] == 5 and not result["failed"]
    return out


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.npz"))}


def test_same_seed_same_files_whatever_the_workers(corpus, tmp_path, align_cache):
    again = tmp_path / "again"
    build(config(again, align_cache, workers=1), progress=False)
    a, b = files(corpus), files(again)
    assert list(a) == list(b) and len(a) == 5
    for name in a:
        za, zb = np.load(corpus / name), np.load(again / name)
        for key in za.files:
            assert np.array_equal(za[key], zb[key]), f"{name}:{key} differs"


def test_resume_makes_only_what_is_missing(corpus, tmp_path, align_cache, monkeypatch):
    out = tmp_path / "resume"
    build(config(out, align_cache, workers=2), progress=False)
    before = files(out)
    victim = sorted(out.rglob("*.npz"))[2]
    victim.unlink()
    stale = victim.with_name(f".{victim.name}.tmp999")  # what an interrupted write leaves behind
    stale.write_bytes(b"half a clip")
    theirs = [out / ".cache.tmp", out / "notes" / ".draft.tmp.md", victim.with_name(".c000002.tmp1.npz.bak")]
    for path in theirs:  # hidden temporary-looking files the builder did not make: not its to delete
        path.parent.mkdir(exist_ok=True)
        path.write_text("mine")
    result = build(config(out, align_cache, workers=2), progress=False)
    assert (result["made"], result["skipped"]) == (1, 4)
    assert not stale.exists() and files(out) == before
    assert all(path.read_text() == "mine" for path in theirs)
    with pytest.raises(ValueError, match="other settings"):
        build(BuildConfig(out, HOURS, seed=12, speech_dirs=[str(ALLISON)], clip_seconds=CLIP_S,
                          cache_dir=align_cache), progress=False)
    # voices installed since (MBROLA, say) would re-deal the speakers: refused, the clips untouched
    build_module = sys.modules[BuildConfig.__module__]
    real_catalog = build_module.catalog
    monkeypatch.setattr(build_module, "catalog",
                        lambda dirs: real_catalog(dirs) + [Voice("mbrola", "zz9", "female", language="de")])
    with pytest.raises(ValueError, match="other voices than this machine has .new here: mbrola:zz9; missing here: -"):
        build(config(out, align_cache, workers=2), progress=False)
    assert files(out) == before


def test_make_refuses_a_folder_that_is_not_a_corpus(tmp_path, capsys):
    """Clips never go among somebody else's files, and nothing of theirs is cleaned up."""
    from backchannel.bridge.cli import main

    mine = tmp_path / "mine"
    theirs = {mine / ".cache.tmp": "a", mine / "sub" / ".draft.tmp.md": "b", mine / "notes.txt": "c"}
    for path, text in theirs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    a_file = tmp_path / "a-file"
    a_file.write_text("d")
    for out in (mine, a_file):
        assert main(["data", "make", "--out", str(out), "--hours", "0.01"]) == 2
        err = capsys.readouterr().err
        assert f"--out {out} is not an empty folder and holds no corpus (corpus.json)" in err
        assert err.count("\n") == 1
    assert sorted(p for p in mine.rglob("*") if p.is_file()) == sorted(theirs)
    assert all(path.read_text() == text for path, text in theirs.items()) and a_file.read_text() == "d"


@pytest.mark.parametrize("args, message", [
    (["make", "--hours", "nan"], "--hours must be a number > 0, got nan"),
    (["make", "--hours", "inf"], "--hours must be a number > 0, got inf"),
    (["make", "--hours", "0"], "--hours must be a number > 0, got 0.0"),
    (["make", "--hours", "-1"], "--hours must be a number > 0, got -1.0"),
    (["make", "--hours", "1", "--clip-seconds", "nan"], "--clip-seconds must be a number >= 5, got nan"),
    (["make", "--hours", "1", "--clip-seconds", "inf"], "--clip-seconds must be a number >= 5, got inf"),
    (["make", "--hours", "1", "--clip-seconds", "4"], "--clip-seconds must be a number >= 5, got 4.0"),
    (["make", "--hours", "1", "--augment", "5"], "--augment must be between 0 and 1, got 5.0"),
    (["make", "--hours", "1", "--augment", "-0.1"], "--augment must be between 0 and 1, got -0.1"),
    (["make", "--hours", "1", "--augment", "nan"], "--augment must be between 0 and 1, got nan"),
    (["make", "--hours", "1", "--workers", "-1"],
     "--workers must be at least 1 (or 0: every CPU this process may use), got -1"),
    (["make", "--hours", "1", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["show", str(SAMPLE), "--start", "nan"], "--start must be a number >= 0 and --end one after it, got nan..None"),
    (["show", str(SAMPLE), "--start", "-5"], "--start must be a number >= 0 and --end one after it, got -5.0..None"),
    (["show", str(SAMPLE), "--end", "nan"], "--start must be a number >= 0 and --end one after it, got 0.0..nan"),
    (["show", str(SAMPLE), "--start", "3", "--end", "2"],
     "--start must be a number >= 0 and --end one after it, got 3.0..2.0"),
    (["sample", "--speech-dir", str(ALLISON), "--seconds", "nan"], "--seconds must be a number >= 5, got nan"),
    (["sample", "--speech-dir", str(ALLISON), "--seconds", "inf"], "--seconds must be a number >= 5, got inf"),
    (["sample", "--speech-dir", str(ALLISON), "--seed", "-1"], "--seed must be >= 0, got -1"),
])
def test_data_commands_refuse_bad_numbers_in_one_line(args, message, tmp_path, capsys):
    from backchannel.bridge.cli import main

    out = tmp_path / "out"
    where = ["--out", str(out)] if args[0] in ("make", "sample") else ["--png", str(tmp_path / "clip.png")]
    assert main(["data", *args, *where]) == 2
    assert capsys.readouterr().err == f"backchannel data: error: {message}\n"
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_worker_counts_follow_affinity_and_cgroup_quota(tmp_path):
    pinned = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from backchannel.models.cpus import usable_cpus; print(usable_cpus())")
    r = subprocess.run([sys.executable, "-c", pinned], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "1", r.stderr  # taskset -c 0: one process, however many CPUs the machine has
    mine = usable_cpus(tmp_path)  # no quota files: the affinity
    assert mine == len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # cgroup v2, 1.5 CPUs' worth
    assert cpu_quota(tmp_path) == 1.5 and usable_cpus(tmp_path) == min(mine, 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None and usable_cpus(tmp_path) == mine
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert cpu_quota(tmp_path) == 0.5 and usable_cpus(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path) is None and usable_cpus(tmp_path) == mine


def test_splits_hold_out_whole_speakers(align_cache):
    cfg = BuildConfig("unused", hours=2.0, seed=11, speech_dirs=[str(ALLISON)], cache_dir=align_cache)
    specs, splits = plan(cfg)
    assert len(specs) == 240
    by_split = {}
    for s in specs:
        by_split.setdefault(s.split, set()).update({s.self_voice.speaker, s.other_voice.speaker})
        assert s.self_voice.speaker != s.other_voice.speaker
    assert set(by_split) == {"train", "val", "test", "test-real"}
    held_out = by_split["val"] | by_split["test"] | by_split["test-real"]
    assert not by_split["train"] & held_out
    assert not by_split["val"] & by_split["test"]
    assert all(s.self_voice.engine == "recorded" for s in specs if s.split == "test-real")
    assert all(splits[s.other_voice.speaker] == "test" for s in specs if s.split == "test-real")
    assert {s.self_voice.engine for s in specs if s.split == "train"} >= {"espeak", "flite"}
    assert len({s.language for s in specs}) > 20


def test_clips_and_loader_windows(corpus):
    c = Corpus(corpus)
    assert c.info["clips"] == 5 and set(c.splits()) <= {"train", "val", "test", "test-real"}
    clip = next(c.clips())
    assert clip.motion.shape == (240, MOTION_DIM) and len(clip.self_audio) == 8 * 16000
    split = c.splits()[0]
    ds = WindowDataset(corpus, split, seconds=3.0, random=False, stride_s=2.5)
    item = ds[len(ds) - 1]
    assert item["self_audio"].shape == item["other_audio"].shape == (48000,)
    assert item["motion"].shape == (90, MOTION_DIM) and item["state"].shape == (90,)
    assert item["valid"].all() and item["self_speech"].dtype.is_floating_point is False
    speaking = item["state"] == SPEAKING
    assert bool((item["self_speech"] <= speaking).all())  # own speech frames are speaking frames
    batch = next(iter(loader(corpus, split, batch_size=3, seconds=2.0, windows_per_clip=3)))
    assert batch["motion"].shape == (3, 60, MOTION_DIM) and batch["self_audio"].shape == (3, 32000)
    assert batch["lips_shut"].shape == (3, 60)


def test_only_the_split_layout_holds_clips(corpus, tmp_path):
    """What else lives in a corpus folder is never a clip: the training features cache (old and new place),
    crashed writes' temporaries, stray files; clip folders in a shard folder are clips."""
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    rows = np.zeros((4, 41), np.float16)
    for junk in ("features-cache/train-c000000.v1.npz", "features-cache/train-c000001.v1.tmp.npz",
                 ".cache/features/train-c000000.v1.npz", "val/0000/c000009.v1.tmp.npz", "val/0000/.c000009.tmp7.npz",
                 "extra/0000/c000010.tmp.npz", "notes.npz"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        np.savez(root / junk, rows_self=rows, rows_other=rows)
    assert find_clips(root) == [root / p.relative_to(corpus) for p in find_clips(corpus)]
    assert len(find_clips(root)) == 5 and Corpus(root).splits() == Corpus(corpus).splits()
    assert corpus_stats(root, progress=False)["clips"] == 5
    write_clip_folder(root / "mine" / "studio" / "talk01", read_clip(find_clips(corpus)[0]))
    assert find_clips(root, "mine") == [root / "mine" / "studio" / "talk01"] and "mine" in Corpus(root).splits()
    broken = root / "mine" / "studio" / "c000011.npz"  # a clip's place holding something else: a clear error
    np.savez(broken, rows_self=rows)
    with pytest.raises(ValueError, match="c000011.npz is not a clip file"):
        read_clip(broken)
    broken.write_bytes(b"half a clip")
    with pytest.raises(ValueError, match="c000011.npz is not a clip file"):
        read_clip(broken)


def run_cli(*args, command="data"):
    cmd = [sys.executable, "-m", "backchannel.bridge.cli", command, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})


def test_stats_and_show_commands(corpus, tmp_path):
    stats_json = tmp_path / "stats.json"
    r = run_cli("stats", str(corpus), "--json", str(stats_json))
    assert r.returncode == 0, r.stderr
    assert "P/B/M phones with lips shut inside" in r.stdout and "speakers heard in train and in a held-out" in r.stdout
    stats = json.loads(stats_json.read_text())
    assert stats["clips"] == 5 and stats["bilabial_closure_pct"] >= 98.0
    assert stats["speakers_in_train_and_held_out"] == []
    png = tmp_path / "clip.png"
    r = run_cli("show", str(find_clips(corpus)[0]), "--png", str(png), "--start", "1", "--end", "6")
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    r = run_cli("show", str(tmp_path / "missing.npz"), "--png", str(png))
    assert r.returncode == 2 and "clip not found" in r.stderr
    r = run_cli("make", "--out", str(tmp_path / "c"), "--hours", "0.01", "--speech-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "speech folder not found" in r.stderr


def test_eval_command_scores_generators_on_a_corpus(corpus, tmp_path):
    split = Corpus(corpus).splits()[0]
    r = run_cli("--data", str(corpus), "--split", split, "--generator", "labels,baseline", "--out", str(tmp_path),
                "--by-voice", command="eval")
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "eval.json").read_text())[split]
    labels, baseline = results["labels"], results["baseline"]
    assert labels["pbm_closure"] == 1.0 and labels["role_f1"] == pytest.approx(1.0)  # the corpus's own motion
    closed, total = labels["counts"]["pbm_closure"]
    assert closed == total > 0 and baseline["counts"]["pbm_closure"][1] == total  # same phones, both judged
    assert f"| P/B/M closed | >= 85.0% | 100.0% ({total}/{total}) |" in (tmp_path / "eval.md").read_text()
    assert (tmp_path / f"eval-{split}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    voices = {c.meta["voices"]["self"]["id"] for c in Corpus(corpus).clips(split)}  # --by-voice: a row per voice
    assert set(labels["by_voice"]) == voices
    assert sum(v["clips"] for v in labels["by_voice"].values()) == len(Corpus(corpus).paths(split))
    assert f"### {split}, by voice" in (tmp_path / "eval.md").read_text()
    assert (tmp_path / f"eval-{split}-voices.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    n = len(Corpus(corpus).paths(split))  # no terminal here, so no bars: a line per generator tells the progress
    assert f"scored labels on {n} clips in" in r.stderr and f"scored baseline on {n} clips in" in r.stderr
    r = run_cli("--data", str(corpus), "--split", "nowhere", "--out", str(tmp_path), command="eval")
    assert r.returncode == 2 and "nowhere" in r.stderr


def test_bundled_sample_is_real_self_speech_with_labels():
    clip = read_clip(SAMPLE)
    for track in ("self", "other"):
        info = sf.info(str(SAMPLE / f"{track}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 20.0 <= info.duration <= 30.0
    meta = clip.meta
    assert meta["voices"]["self"]["engine"] == "recorded" and meta["voices"]["self"]["voice"] == "allison"
    assert meta["voices"]["other"]["engine"] == "espeak"
    kinds = {(s["track"], s["kind"]) for s in meta["segments"]}
    assert {("self", "turn"), ("other", "turn"), ("self", "backchannel")} <= kinds
    prompts = {s["prompt"] for s in meta["segments"] if "prompt" in s}
    shipped = {line.split(":")[0] for line in (ALLISON / "transcripts.txt").read_text().splitlines()}
    assert prompts and prompts <= shipped
    attribution = (SAMPLE / "ATTRIBUTION.md").read_text()
    assert "Allison Smith" in attribution and "CC-BY-SA-3.0" in attribution
