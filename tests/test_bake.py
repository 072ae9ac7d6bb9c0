"""`backchannel bake` and `plot`: each asset read back by an independent reader (a YAML parser for Unity's clip,
plain JSON and CSV for the others) and checked against the motion file the same bake writes; batches that resume;
bad input refused in one line before anything slow."""
import csv
from pathlib import Path
import json
import re

import numpy as np
import pytest
import yaml

from backchannel.bridge.bake.script import read_lines, tracks_for
from backchannel.bridge.cli import main
from backchannel.calibration.rigs import LIVE2D_PARAMETERS, rig_map
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import ARKIT_NAMES, BS

from .bake_fixtures import read_jsonl, write_exchange

ASSETS = (".anim", ".unreal.csv", ".motion3.json", ".tsv", ".rhubarb.json", ".jsonl", ".csv", ".npz")


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bake")
    line, partner = write_exchange(folder)
    out = folder / "out"
    assert main(["bake", "--self", str(line), "--other", str(partner), "--generator", "baseline", "--seed", "3",
                 *sum((["--out", str(out / f"line{e}")] for e in ASSETS), []), "--png"]) == 0
    return {"folder": folder, "out": out, "line": line, "partner": partner, "motion": read_jsonl(out / "line.jsonl")}


def unity_clip(path):
    """Unity's YAML as a YAML parser takes it: its %TAG line and the !u! tags of the document marker dropped."""
    text = "\n".join(l for l in path.read_text().splitlines() if not l.startswith("%"))
    return yaml.safe_load(re.sub(r"^--- !u!\d+ &\d+", "---", text, flags=re.M))["AnimationClip"]


def test_unity_clip_holds_one_linear_curve_per_blendshape_on_the_renderer_path(baked):
    clip = unity_clip(baked["out"] / "line.anim")
    weights = baked["motion"]["weights"]
    n = len(weights)
    assert clip["m_Name"] == "line" and clip["m_SampleRate"] == 30
    assert clip["m_AnimationClipSettings"]["m_StopTime"] == pytest.approx((n - 1) / 30, abs=1e-5)
    curves = clip["m_FloatCurves"]
    assert [c["attribute"] for c in curves] == [f"blendShape.{name}" for name in ARKIT_NAMES]
    assert {(c["path"], c["classID"]) for c in curves} == {("Face", 137)}
    assert clip["m_EditorCurves"] == curves
    for name in ARKIT_NAMES:
        keys = curves[BS[name]]["curve"]["m_Curve"]
        times, values = np.array([k["time"] for k in keys]), np.array([k["value"] for k in keys])
        assert times[0] == 0 and times[-1] == pytest.approx((n - 1) / 30, abs=1e-5) and (np.diff(times) > 0).all()
        # played as Unity plays linear keys: every frame's weight, in percent (keys on a straight line are left out)
        assert np.interp(np.arange(n) / 30, times, values) == pytest.approx(100 * weights[:, BS[name]], abs=2e-3)
        slopes = np.diff(values) / np.diff(times)
        assert [k["outSlope"] for k in keys[:-1]] == pytest.approx(slopes, rel=1e-4, abs=1e-3)
        assert [k["inSlope"] for k in keys[1:]] == pytest.approx(slopes, rel=1e-4, abs=1e-3)
    jaw = curves[BS["JawOpen"]]["curve"]["m_Curve"]
    assert max(k["value"] for k in jaw) > 20 and len(jaw) > 20  # the answer opens the jaw, keyed as it moves
    assert len(curves[BS["TongueOut"]]["curve"]["m_Curve"]) == 2  # a shape that stays still: its two ends


def test_unity_clip_under_vrm_names_at_60_fps(baked, tmp_path):
    anim = tmp_path / "vrm.anim"
    assert main(["bake", "--self", str(baked["line"]), "--other", str(baked["partner"]), "--generator", "baseline",
                 "--seed", "3", "--names", "vrm1", "--fps", "60", "--unity-path", "Body/Face Mesh",
                 "--out", str(anim)]) == 0
    clip = unity_clip(anim)
    curves = {c["attribute"].removeprefix("blendShape."): c for c in clip["m_FloatCurves"]}
    assert list(curves) == list(rig_map("vrm1").targets) and clip["m_SampleRate"] == 60
    assert {c["path"] for c in curves.values()} == {"Body/Face Mesh"}
    expected = rig_map("vrm1").apply(baked["motion"]["weights"]) * 100
    n = len(expected)
    for name in ("aa", "blink", "happy"):
        keys = curves[name]["curve"]["m_Curve"]
        times, values = np.array([k["time"] for k in keys]), np.array([k["value"] for k in keys])
        assert times[-1] == pytest.approx((n - 1) / 30, abs=1e-5)  # the last frame's time, nothing after it
        assert np.isin(np.round(times * 60, 3), np.arange(2 * n - 1)).all()  # keys on the 60 fps grid
        # the 30 fps frames, each on every other 60 fps key
        played = np.interp(np.arange(n) / 30, times, values)
        assert played == pytest.approx(expected[:, rig_map("vrm1").targets.index(name)], abs=2e-3)


def test_unreal_curve_table_rows_are_named_curves_over_the_key_times(baked):
    with (baked["out"] / "line.unreal.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    weights = baked["motion"]["weights"]
    times = [float(t) for t in rows[0][1:]]  # Unreal reads the first row as the key times, the first cell skipped
    assert rows[0][0] == "---" and times == pytest.approx(np.arange(len(weights)) / 30, abs=1e-4)
    assert len(set(times)) == len(times)  # its importer refuses a time used twice
    table = {row[0]: np.array([float(v) for v in row[1:]]) for row in rows[1:]}
    assert list(table)[:52] == list(ARKIT_NAMES)
    for k, name in enumerate(ARKIT_NAMES):
        assert table[name] == pytest.approx(weights[:, k], abs=1e-4)
    # head and eyes as Live Link Face sends them (its names, radians / pi, roll negated): the live path's conversion
    from backchannel.bridge.outputs.livelink import ROTATION_NAMES, curve_values
    from backchannel.bridge.outputs.files import read_motion

    motion = read_motion(baked["out"] / "line.jsonl").motion
    live = np.array([curve_values(row)[52:] for row in motion])
    assert list(table)[52:] == list(ROTATION_NAMES)
    for k, name in enumerate(ROTATION_NAMES):
        assert table[name] == pytest.approx(live[:, k], abs=1e-5)
    head = baked["motion"]["head"]  # pitch, yaw, roll in radians, read as plain JSON
    assert table["HeadPitch"] == pytest.approx(head[:, 0] / np.pi, abs=1e-5)
    assert table["HeadRoll"] == pytest.approx(-head[:, 2] / np.pi, abs=1e-5)
    assert np.ptp(table["HeadYaw"]) > 0  # the head moves


def segment_counts(segments: list[float]) -> tuple[int, int]:
    """(segments, points) of one motion3 curve, walked as Cubism's loader walks it: a first point (time, value),
    then per segment its type and 1 point (linear, stepped, inverse stepped) or 3 (bezier)."""
    i, n_segments, n_points = 2, 0, 1
    while i < len(segments):
        kind = int(segments[i])
        points = 3 if kind == 1 else 1
        i += 1 + 2 * points
        n_segments += 1
        n_points += points
    assert i == len(segments)
    return n_segments, n_points


def test_live2d_motion3_structure_counts_and_parameters(baked):
    data = json.loads((baked["out"] / "line.motion3.json").read_text())
    motion = baked["motion"]
    n = len(motion["weights"])
    assert data["Version"] == 3
    meta, curves = data["Meta"], data["Curves"]
    assert meta["Fps"] == 30 and meta["Duration"] == pytest.approx((n - 1) / 30, abs=1e-3) and meta["Loop"] is False
    assert meta["CurveCount"] == len(curves)
    counts = [segment_counts(c["Segments"]) for c in curves]
    assert meta["TotalSegmentCount"] == sum(s for s, _ in counts)
    assert meta["TotalPointCount"] == sum(p for _, p in counts)
    assert all(c["Target"] == "Parameter" for c in curves)
    values = {c["Id"]: np.array(c["Segments"][1::3]) for c in curves}  # linear: t, v, then (0, t, v) per key
    times = np.array(curves[0]["Segments"][0::3])
    assert times == pytest.approx(np.arange(n) / 30, abs=1e-3)
    for key in ("ParamMouthOpenY", "ParamMouthForm", "ParamEyeLOpen", "ParamEyeROpen", "ParamAngleX", "ParamAngleY",
                "ParamAngleZ", "ParamEyeBallX", "ParamEyeBallY", "ParamBrowLY", "ParamBrowRY"):
        low, _, high = LIVE2D_PARAMETERS[key]
        assert len(values[key]) == n and low <= values[key].min() and values[key].max() <= high
    w = motion["weights"]
    assert values["ParamEyeLOpen"] == pytest.approx(1 - w[:, BS["EyeBlinkLeft"]], abs=2e-4)
    # + turns to the screen's right, the character's left: our +yaw, in degrees
    assert values["ParamAngleX"] == pytest.approx(np.clip(np.degrees(motion["head"][:, 1]), -30, 30), abs=2e-3)
    assert values["ParamAngleY"] == pytest.approx(np.clip(-np.degrees(motion["head"][:, 0]), -30, 30), abs=2e-3)
    jaw = w[:, BS["JawOpen"]]
    assert values["ParamMouthOpenY"][jaw > 0.3].min() > 0.3 and values["ParamMouthOpenY"].max() > 0.4


def frame_shapes(cues: list[tuple[float, str]], n: int, fps: int = 30) -> list[str]:
    """The shape shown at each frame time (to Rhubarb's centiseconds) by cues that each last until the next starts."""
    starts = np.array([t for t, _ in cues])
    return [cues[int(np.searchsorted(starts, round(k / fps, 2) + 1e-6, side="right")) - 1][1] for k in range(n)]


def test_rhubarb_cues_in_the_documented_tsv_and_json_forms(baked):
    tsv = (baked["out"] / "line.tsv").read_text().splitlines()
    assert all(re.fullmatch(r"\d+\.\d\d\t[A-HX]", line) for line in tsv)
    cues = [(float(t), shape) for t, shape in (line.split("\t") for line in tsv)]
    assert [t for t, _ in cues] == sorted(t for t, _ in cues) and cues[-1][1] == "X"
    doc = json.loads((baked["out"] / "line.rhubarb.json").read_text())
    assert set(doc) == {"metadata", "mouthCues"} and doc["metadata"]["soundFile"] == "line.wav"
    json_cues = doc["mouthCues"]
    assert all(set(c) == {"start", "end", "value"} for c in json_cues)
    assert [(c["start"], c["value"]) for c in json_cues] == cues  # the same cues in both forms
    assert all(a["end"] == b["start"] for a, b in zip(json_cues, json_cues[1:]))  # back to back
    assert doc["metadata"]["duration"] == pytest.approx(len(baked["motion"]["weights"]) / 30, abs=0.01)
    # what the shapes mean (Rhubarb's README) against the motion: D wide open, A and X closed, X outside speech
    motion = baked["motion"]
    shapes = frame_shapes(cues, len(motion["weights"]))
    w = motion["weights"]
    openness = np.clip(w[:, BS["JawOpen"]] - w[:, BS["MouthClose"]], 0, 1) + 0.25 * (
        w[:, BS["MouthLowerDownLeft"]] + w[:, BS["MouthLowerDownRight"]] + w[:, BS["MouthUpperUpLeft"]]
        + w[:, BS["MouthUpperUpRight"]])
    # each frame's own shape, before short cues are merged into their neighbours
    wrong = 0
    for k, shape in enumerate(shapes):
        wrong += (shape == "D" and openness[k] < 0.45) or (shape in "AX" and openness[k] >= 0.05) or (
            motion["state"][k] != "speaking" and openness[k] < 0.05 and shape != "X")
    assert wrong <= 0.1 * len(shapes)  # the frames of the merged cues at most
    assert {"D", "X"} <= set(shapes) and len(set(shapes)) >= 4  # the answer's vowels and the silence before it
    assert all(round(c["end"] - c["start"], 2) >= 0.06 for c in json_cues[:-1])  # none flickers past unseen


def test_motion_files_of_the_same_bake_hold_the_same_frames(baked):
    from backchannel.bridge.outputs.files import read_motion

    jsonl = read_motion(baked["out"] / "line.jsonl")
    for ending in (".csv", ".npz"):
        assert read_motion(baked["out"] / f"line{ending}").motion == pytest.approx(jsonl.motion, abs=1e-4)


def test_same_seed_same_assets_and_a_plot(baked, tmp_path):
    again = tmp_path / "again.anim"
    assert main(["bake", "--self", str(baked["line"]), "--other", str(baked["partner"]), "--generator", "baseline",
                 "--seed", "3", "--out", str(again), "--out", str(tmp_path / "again.motion3.json")]) == 0
    assert again.read_text().replace("m_Name: again", "m_Name: line") == (baked["out"] / "line.anim").read_text()
    assert (tmp_path / "again.motion3.json").read_bytes() == (baked["out"] / "line.motion3.json").read_bytes()
    from PIL import Image

    with Image.open(baked["out"] / "line.png") as png:  # --png: beside the first output
        assert png.size[0] > 400 and len(np.unique(np.asarray(png.convert("L")))) > 20


def test_plot_draws_any_motion_file(baked, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "plot.png"
    assert main(["plot", str(baked["out"] / "line.csv"), "--png", str(png), "--self", str(baked["line"])]) == 0
    assert "90 frames" in capsys.readouterr().out
    with Image.open(png) as image:
        assert image.size[1] > 300
    # no --png: beside the motion file, but never over a file that is there already
    motion = tmp_path / "m.csv"
    motion.write_bytes((baked["out"] / "line.csv").read_bytes())
    assert main(["plot", str(motion)]) == 0
    assert f"wrote {tmp_path / 'm.png'}" in capsys.readouterr().out
    before = (tmp_path / "m.png").read_bytes()
    assert main(["plot", str(motion)]) == 2
    assert "m.png exists" in capsys.readouterr().err and (tmp_path / "m.png").read_bytes() == before


def test_a_silent_line_is_refused_in_good_grammar(tmp_path, capsys):
    import soundfile as sf

    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    assert main(["bake", "--self", str(tmp_path / "empty.wav"), "--out", str(tmp_path / "x.anim"),
                 "--generator", "baseline"]) == 2
    assert "empty.wav holds no audio" in capsys.readouterr().err


def test_script_lines_share_a_timeline_and_hear_each_other(baked, tmp_path):
    script = tmp_path / "scene.csv"
    script.write_text(f"speaker,file,partner\nguard,{baked['line']},\nhero,{baked['partner']},\n"
                      f"guard,{baked['line']},hero\n")
    lines = read_lines(script, gap_s=0.5)
    assert [l.start for l in lines] == pytest.approx([0.0, 3.5, 7.0])
    own, other, offset = tracks_for(lines[1], lines, context_s=1.0)
    assert offset == pytest.approx(1.0) and len(own) == pytest.approx(5 * SAMPLE_RATE, abs=2)
    # the hero's window holds the end of the guard's first line and the start of its second, as the partner
    half = SAMPLE_RATE // 2
    head, tail = other[:SAMPLE_RATE], other[-SAMPLE_RATE:]  # the window is 2.5 .. 7.5 s
    assert head[:half] == pytest.approx(lines[0].audio[-half:]) and not head[half:].any()
    assert not tail[:half].any() and tail[half:] == pytest.approx(lines[2].audio[:half])
    assert own[SAMPLE_RATE:SAMPLE_RATE + len(lines[1].audio)] == pytest.approx(lines[1].audio)


def test_batch_bakes_a_script_and_resumes(baked, tmp_path, capsys):
    script = tmp_path / "scene.json"
    script.write_text(json.dumps({"lines": [
        {"speaker": "guard", "file": str(baked["line"]), "id": "g1"},
        {"speaker": "hero", "file": str(baked["partner"]), "id": "h1"},
        {"speaker": "guard", "file": str(baked["line"]), "id": "g2", "start": 7.5}]}))
    out = tmp_path / "assets"
    args = ["bake", "--batch", str(script), "--out-dir", str(out), "--to", ".anim", "--to", ".motion3.json",
            "--generator", "baseline", "--context", "0.5"]
    assert main(args) == 0
    assert "baked 3 of 3" in capsys.readouterr().out
    index = json.loads((out / "bake.json").read_text())
    assert [l["id"] for l in index["lines"]] == ["g1", "h1", "g2"]
    assert [l["line_offset_s"] for l in index["lines"]] == pytest.approx([0.0, 0.5, 0.5])
    assert index["lines"][1]["outputs"] == ["h1.anim", "h1.motion3.json"]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bake.json", "g1.anim", "g1.motion3.json", "g2.anim", "g2.motion3.json", "h1.anim",
                     "h1.motion3.json"]  # no temporaries left
    before = {p.name: p.read_bytes() for p in out.glob("*.anim")}
    (out / "h1.motion3.json").unlink()  # a run cut short before this file
    assert main(args) == 0
    assert "baked 1 of 3" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.glob("*.anim")} == before  # deterministic: the redone line too
    assert (out / "h1.motion3.json").is_file()


def test_batch_over_a_folder_bakes_each_recording_alone(baked, tmp_path, capsys):
    folder = tmp_path / "lines"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.wav").write_bytes(baked["line"].read_bytes())
    assert main(["bake", "--batch", str(folder), "--out-dir", str(tmp_path / "o"), "--to", ".jsonl",
                 "--generator", "baseline"]) == 0
    a, b = (read_jsonl(tmp_path / "o" / f"{n}.jsonl") for n in "ab")
    assert len(a["weights"]) == len(b["weights"]) == 90  # each its own recording, no neighbour's context


@pytest.mark.parametrize("extra, message", [
    (["--out", "x.fbx"], "does not say which format"),
    (["--out", "x.glb", "--names", "live2d"], "Live2D's parameters go in a .motion3.json"),
    (["--out", "x.motion3.json", "--names", "vrm0"], "Live2D's standard parameters"),
    (["--out", "x.glb", "--fps", "45"], "--fps 45"),
    (["--out", "x.jsonl", "--fps", "60"], "30 fps frames"),
    (["--out", "x.anim", "--unity-path", "a: b"], "--unity-path"),
    (["--out", "x.glb", "--names", "mixamo"], "unknown rig"),
    (["--out", "x.glb", "--format", "fbx"], "unknown format"),
    (["--out", "x.glb", "--png", "x.jpg"], "write a .png"),
])
def test_bad_settings_are_refused_in_one_line(baked, tmp_path, capsys, extra, message):
    extra = [str(tmp_path / v) if v.startswith("x.") else v for v in extra]
    assert main(["bake", "--self", str(baked["line"]), "--generator", "baseline", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_a_script_line_without_its_file_is_named(tmp_path, capsys):
    script = tmp_path / "s.csv"
    script.write_text("speaker,file\nguard,missing.wav\n")
    assert main(["bake", "--batch", str(script), "--out-dir", str(tmp_path / "o"), "--generator", "baseline"]) == 2
    assert "line 1:" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_default_model_bakes_too(baked, tmp_path):
    out = tmp_path / "model"
    assert main(["bake", "--self", str(baked["line"]), "--other", str(baked["partner"]),
                 "--out", str(out / "m.jsonl"), "--out", str(out / "m.motion3.json")]) == 0
    motion = read_jsonl(out / "m.jsonl")
    curves = {c["Id"]: c["Segments"][1::3] for c in json.loads((out / "m.motion3.json").read_text())["Curves"]}
    assert curves["ParamEyeROpen"] == pytest.approx(1 - motion["weights"][:, BS["EyeBlinkRight"]], abs=2e-4)
    assert max(curves["ParamMouthOpenY"]) > 0.2  # the model's mouth moves with the answer


def test_video_preview_renders_the_portrait_for_every_frame(baked, tmp_path, capsys):
    import cv2

    out = tmp_path / "line.motion3.json"
    assert main(["bake", "--self", str(baked["line"]), "--other", str(baked["partner"]), "--generator", "baseline",
                 "--out", str(out), "--video", "--size", "128"]) == 0
    video = tmp_path / "line.mp4"  # beside the output, its whole format ending replaced
    capture = cv2.VideoCapture(str(video))
    try:
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 90 and capture.get(cv2.CAP_PROP_FPS) == 30
        assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    finally:
        capture.release()


def test_batch_previews_one_plot_per_line(baked, tmp_path, capsys):
    script = tmp_path / "s.csv"
    script.write_text(f"speaker,file,id\nguard,{baked['line']},g1\nhero,{baked['partner']},h1\n")
    assert main(["bake", "--batch", str(script), "--out-dir", str(tmp_path / "o"), "--to", ".tsv", "--png",
                 "--generator", "baseline"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["bake.json", "g1.png", "g1.tsv", "h1.png", "h1.tsv"]
    assert main(["bake", "--batch", str(script), "--out-dir", str(tmp_path / "o"), "--to", ".tsv",
                 "--png", "one.png"]) == 2
    assert "one of each is written per line" in capsys.readouterr().err


def test_batch_resume_rebakes_lines_whose_settings_or_audio_changed(baked, tmp_path, capsys):
    import os

    partner = tmp_path / "partner.wav"
    partner.write_bytes(baked["partner"].read_bytes())
    script = tmp_path / "s.csv"
    script.write_text(f"speaker,file,id\nguard,{baked['line']},g1\nhero,{partner},h1\n")
    out = tmp_path / "o"
    args = ["bake", "--batch", str(script), "--out-dir", str(out), "--to", ".anim", "--generator", "baseline"]
    assert main(args) == 0 and "baked 2 of 2" in capsys.readouterr().out
    assert main(args) == 0 and "baked 0 of 2" in capsys.readouterr().out  # nothing changed: nothing to do
    assert main(args + ["--fps", "60"]) == 0 and "baked 2 of 2" in capsys.readouterr().out
    index = json.loads((out / "bake.json").read_text())
    assert [l["settings"]["fps"] for l in index["lines"]] == [60, 60]
    assert "m_SampleRate: 60" in (out / "g1.anim").read_text()  # the files are what the index says
    assert main(args + ["--fps", "60", "--seed", "5"]) == 0 and "baked 2 of 2" in capsys.readouterr().out
    # the hero's recording changes: the hero's line, and the guard's, which hears it as its partner, are redone
    os.utime(partner, ns=(0, 0))
    partner.write_bytes(baked["line"].read_bytes())
    assert main(args + ["--fps", "60", "--seed", "5"]) == 0 and "baked 2 of 2" in capsys.readouterr().out


def test_batch_rhubarb_cues_are_timed_from_the_line_s_own_wav(baked, tmp_path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"speaker": "hero", "file": str(baked["partner"]), "id": "h1"},
                                  {"speaker": "guard", "file": str(baked["line"]), "id": "g1", "start": 4.0}]))
    out = tmp_path / "o"
    assert main(["bake", "--batch", str(script), "--out-dir", str(out), "--to", ".rhubarb.json", "--to", ".tsv",
                 "--to", ".jsonl", "--generator", "baseline", "--context", "1"]) == 0
    line = json.loads((out / "bake.json").read_text())["lines"][1]
    assert line["line_offset_s"] == pytest.approx(1.0) and line["seconds"] == pytest.approx(3.0)
    doc = json.loads((out / "g1.rhubarb.json").read_text())
    assert doc["metadata"]["soundFile"] == "line.wav"
    assert doc["metadata"]["duration"] == pytest.approx(3.0, abs=0.02)  # the wav's length, not the 5 s window
    assert doc["mouthCues"][-1]["start"] <= 3.0 + 0.02
    # the cues, read from the wav's start, match the window's motion shifted by the offset
    window = read_jsonl(out / "g1.jsonl")
    assert len(window["weights"]) == 150
    from backchannel.bridge.bake import Take
    from backchannel.bridge.bake.rhubarb import mouth_cues
    from backchannel.bridge.outputs.files import read_motion
    from backchannel.models.motion import MotionBlock

    block = read_motion(out / "g1.jsonl")
    own = MotionBlock(0, block.motion[30:120], block.state[30:120])
    assert doc["mouthCues"] == mouth_cues(Take.from_block(own))


def test_an_unwritable_output_is_refused_before_generating(baked, tmp_path, capsys):
    import os

    (tmp_path / "afile").write_text("")
    outs = [tmp_path / "afile" / "sub" / "x.anim", tmp_path / "afile" / "x.tsv"]  # under a regular file
    if os.geteuid() != 0:  # root writes anywhere (CI): there the regular file is the case
        (tmp_path / "ro").mkdir(mode=0o500)
        outs.append(tmp_path / "ro" / "x.anim")
    for out in outs:
        assert main(["bake", "--self", str(baked["line"]), "--generator", "baseline", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(out) in err and err.count("\n") == 1 and ".tmp" not in err
    assert main(["bake", "--self", str(baked["line"]), "--generator", "baseline", "--out", str(tmp_path / "x.tsv"),
                 "--png", str(tmp_path / "afile" / "x.png")]) == 2  # a preview too
    assert "afile is a file" in capsys.readouterr().err and not (tmp_path / "x.tsv").exists()


def test_script_mistakes_are_named(baked, tmp_path, capsys):
    script = tmp_path / "s.csv"
    script.write_text(f"speaker,file,partner\nguard,{baked['line']},\nhero,{baked['partner']},gaurd\n")
    assert main(["bake", "--batch", str(script), "--out-dir", str(tmp_path / "o"), "--generator", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "line 2: partner 'gaurd'" in err and err.count("\n") == 1
    broken = tmp_path / "s.json"
    broken.write_text('[{"speaker": "guard", "file": "a.wav"},]')
    assert main(["bake", "--batch", str(broken), "--out-dir", str(tmp_path / "o"), "--generator", "baseline"]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "not valid JSON" in err and err.count("\n") == 1


def test_folder_batch_names_outputs_after_recordings_with_spaces(baked, tmp_path, capsys):
    folder = tmp_path / "lines"
    folder.mkdir()
    for name in ("take 1", "take_1", "what? (final)"):
        (folder / f"{name}.wav").write_bytes(baked["line"].read_bytes())
    out = tmp_path / "o"
    assert main(["bake", "--batch", str(folder), "--out-dir", str(out), "--to", ".tsv", "--generator", "baseline"]) == 0
    index = json.loads((out / "bake.json").read_text())
    assert [(Path(l["file"]).name, l["id"]) for l in index["lines"]] == [
        ("take 1.wav", "take_1"), ("take_1.wav", "take_1-2"), ("what? (final).wav", "what_final_")]
    assert sorted(p.name for p in out.glob("*.tsv")) == ["take_1-2.tsv", "take_1.tsv", "what_final_.tsv"]


@pytest.mark.parametrize("name", ["a: b", "x #1", "[c]", "it's", "true", "007", "Line 01"])
def test_unity_clip_names_read_back_as_written(baked, tmp_path, name):
    out = tmp_path / f"{name}.anim"
    assert main(["bake", "--self", str(baked["line"]), "--generator", "baseline", "--out", str(out)]) == 0
    assert unity_clip(out)["m_Name"] == name


def test_60_fps_assets_last_as_long_as_30_fps_ones(baked, tmp_path):
    from backchannel.bridge.bake import Take
    from backchannel.bridge.outputs.files import read_motion

    block = read_motion(baked["out"] / "line.jsonl")
    at30, at60 = Take.from_block(block, 30), Take.from_block(block, 60)
    assert at60.duration == pytest.approx(at30.duration) and len(at60.motion) == 2 * len(block) - 1
    assert at60.motion[::2] == pytest.approx(at30.motion, abs=1e-6)  # the frames themselves on every other key
    for fps in (30, 60):
        out = tmp_path / f"l{fps}.motion3.json"
        assert main(["bake", "--self", str(baked["line"]), "--generator", "baseline", "--fps", str(fps),
                     "--out", str(out)]) == 0
    meta30, meta60 = (json.loads((tmp_path / f"l{fps}.motion3.json").read_text())["Meta"] for fps in (30, 60))
    assert meta60["Duration"] == meta30["Duration"] == pytest.approx((len(block) - 1) / 30, abs=1e-4)


def test_a_one_frame_motion3_holds_its_pose_in_a_segment(baked):
    from backchannel.bridge.bake import Take
    from backchannel.bridge.bake.live2d import motion3
    from backchannel.bridge.outputs.files import read_motion
    from backchannel.models.motion import MotionBlock

    block = read_motion(baked["out"] / "line.jsonl")
    doc = motion3(Take.from_block(MotionBlock(0, block.motion[:1], block.state[:1])))
    counts = [segment_counts(c["Segments"]) for c in doc["Curves"]]
    assert all(n_segments == 1 for n_segments, _ in counts)  # Cubism plays no curve without one
    assert doc["Meta"]["TotalSegmentCount"] == sum(s for s, _ in counts)
    assert doc["Meta"]["TotalPointCount"] == sum(p for _, p in counts)
    assert doc["Meta"]["Duration"] == pytest.approx(1 / 30, abs=1e-4)
    assert all(c["Segments"][1] == c["Segments"][4] for c in doc["Curves"])  # held, not moved


def test_rhubarb_cues_hold_each_shape_long_enough_to_see_at_60_fps(baked, tmp_path):
    from backchannel.bridge.bake import Take
    from backchannel.bridge.bake.rhubarb import mouth_cues
    from backchannel.bridge.outputs.files import read_motion
    from backchannel.calibration.rigs import rhubarb_shapes
    from backchannel.models.motion import SPEAKING

    block = read_motion(baked["out"] / "line.jsonl")
    for fps in (30, 60):
        take = Take.from_block(block, fps)
        raw = rhubarb_shapes(take.motion, take.state == SPEAKING)
        assert sum(a != b for a, b in zip(raw, raw[1:])) > 0
        cues = mouth_cues(take)
        assert all(round(c["end"] - c["start"], 2) >= 0.06 for c in cues[:-1]), cues  # no 0.01 s cue
        assert all(a["end"] == b["start"] and a["value"] != b["value"] for a, b in zip(cues, cues[1:]))
        shown = frame_shapes([(c["start"], c["value"]) for c in cues], len(raw), fps)
        assert np.mean([a == b for a, b in zip(shown, raw)]) > 0.85  # the shapes are the frames', mostly unmoved


def test_rhubarb_g_comes_from_a_lower_lip_under_the_teeth():
    from backchannel.calibration.rigs import rhubarb_shapes
    from backchannel.models.motion import MOTION_DIM

    m = np.zeros((3, MOTION_DIM), np.float32)
    m[:, BS["JawOpen"]] = 0.1  # a little open: not A
    m[1, BS["MouthRollLower"]] = 0.25  # what the model does on a /v/ (docs/bake-rhubarb.md)
    assert rhubarb_shapes(m) == ["B", "G", "B"]
