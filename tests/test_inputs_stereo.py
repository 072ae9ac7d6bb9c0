"""Stereo and wider inputs: FILE:left|right|mix|N and --channel pick what drives a face, and a stereo file that
looks like a call recording (a voice a side) is not mixed without a warning."""
import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from backchannel.bridge.cli import build_parser, main
from backchannel.bridge.cli.run import audio_sources
from backchannel.bridge.outputs.files import read_motion
from backchannel.models.audio import SAMPLE_RATE, load_audio, split_channel

SECONDS = 4


def burst(start_s: float, end_s: float, hz: float) -> np.ndarray:
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * hz * t) * ((t >= start_s) & (t < end_s))).astype(np.float32)


@pytest.fixture
def call(tmp_path):
    """A call recording: one person on the left at 0-1 s, the other on the right at 2-3 s (float samples, kept
    exactly by the file)."""
    x = np.stack([burst(0, 1, 220), burst(2, 3, 330)], axis=1)
    path = tmp_path / "call.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    return path, x


def test_a_channel_suffix_picks_that_channel_exactly_and_mix_is_the_mean(call):
    path, x = call
    np.testing.assert_array_equal(load_audio(path, channel="left"), x[:, 0])
    np.testing.assert_array_equal(load_audio(path, channel="right"), x[:, 1])
    np.testing.assert_array_equal(load_audio(path, channel="0"), x[:, 0])
    np.testing.assert_array_equal(load_audio(path, channel="1"), x[:, 1])
    np.testing.assert_array_equal(load_audio(path), x.mean(1))  # mix stays the default
    np.testing.assert_array_equal(load_audio(path, channel="mix"), x.mean(1))


def test_numbers_pick_any_channel_of_a_wider_file_and_a_mono_file_is_both_sides(tmp_path):
    x = np.stack([burst(i, i + 0.5, 200 + 100 * i) for i in range(4)], axis=1)
    sf.write(tmp_path / "four.wav", x, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "four.wav", channel="3"), x[:, 3])
    np.testing.assert_array_equal(load_audio(tmp_path / "four.wav", channel="right"), x[:, 1])
    sf.write(tmp_path / "mono.wav", x[:, 2], SAMPLE_RATE, subtype="FLOAT")
    for channel in ("left", "right", "mix", "0"):
        np.testing.assert_array_equal(load_audio(tmp_path / "mono.wav", channel=channel), x[:, 2])


def test_mixing_two_voices_warns_once_and_names_the_choices(call, tmp_path, caplog):
    path, x = call
    with caplog.at_level(logging.WARNING, logger="backchannel.models.audio"):
        load_audio(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "different voices" in warnings[0], warnings
    assert f"{path}:left" in warnings[0] and f"{path}:right" in warnings[0] and "\n" not in warnings[0]

    caplog.clear()
    same = tmp_path / "same.wav"
    sf.write(same, np.stack([x[:, 0], x[:, 0]], axis=1), SAMPLE_RATE, subtype="FLOAT")
    quiet = tmp_path / "quiet.wav"  # a voice a side, but both sides picked: nothing to warn about
    with caplog.at_level(logging.WARNING, logger="backchannel.models.audio"):
        load_audio(same)
        load_audio(path, channel="left")
        load_audio(path, channel="right")
        sf.write(quiet, np.zeros((SAMPLE_RATE, 2), np.float32), SAMPLE_RATE)
        load_audio(quiet)
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_a_call_recording_drives_each_face_from_its_own_side(call, tmp_path):
    path, x = call
    for i, name in enumerate(("left", "right")):
        sf.write(tmp_path / f"{name}.wav", x[:, i], SAMPLE_RATE, subtype="FLOAT")
    assert main(["run", "--self", f"{path}:left", "--other", f"{path}:right", "--out", str(tmp_path / "a.npz"),
                 "--generator", "baseline"]) == 0
    assert main(["run", "--self", str(tmp_path / "left.wav"), "--other", str(tmp_path / "right.wav"),
                 "--out", str(tmp_path / "b.npz"), "--generator", "baseline"]) == 0
    a, b = read_motion(tmp_path / "a.npz"), read_motion(tmp_path / "b.npz")
    np.testing.assert_array_equal(a.motion, b.motion)
    np.testing.assert_array_equal(a.state, b.state)


def test_run_logs_one_warning_line_for_a_mixed_call_recording(call, tmp_path):
    path, x = call
    sf.write(tmp_path / "mono.wav", x[:, 1], SAMPLE_RATE)
    out = subprocess.run([sys.executable, "-m", "backchannel.bridge.cli", "run", "--self", str(path),
                          "--other", str(tmp_path / "mono.wav"), "--out", str(tmp_path / "m.jsonl"),
                          "--generator", "baseline"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"{path}:left" in warnings[0], out.stderr


def test_channel_flag_is_the_default_and_a_suffix_wins(call):
    path, _ = call
    args = build_parser().parse_args(["send", "--session", "s", "--self", f"{path}:left", "--other", str(path),
                                      "--channel", "right"])
    assert audio_sources(args) == {"self": (str(path), "left"), "other": (str(path), "right")}
    args = build_parser().parse_args(["run", "--self", str(path), "--other", f"{path}:1", "--out", "m.jsonl"])
    assert audio_sources(args) == {"self": (str(path), "mix"), "other": (str(path), "1")}


@pytest.mark.parametrize("command", ["run", "send"])
def test_a_channel_that_is_none_is_one_clear_line(call, tmp_path, capsys, command):
    path, _ = call
    rest = ["--out", str(tmp_path / "m.jsonl")] + (["--session", "s"] if command == "send" else [])
    for self_audio, extra, words in (
            (f"{path}:centre", [], [f"{path}:centre", "'centre'", "left, right, mix", "0, 1"]),
            (f"{path}:5", [], [f"{path}:5", "2 channels", "left, right, mix", "0..1"]),
            (str(path), ["--channel", "both"], ["--channel", "'both'", "left, right, mix"])):
        code = main([command, "--self", self_audio, "--other", str(path), *extra, *rest])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert all(word in err for word in words), err
    assert not (tmp_path / "m.jsonl").exists()


def test_windows_paths_and_colons_in_names_stay_paths(tmp_path):
    assert split_channel(r"C:\calls\rec.wav") == (r"C:\calls\rec.wav", None)
    assert split_channel(r"C:\calls\rec.wav:right") == (r"C:\calls\rec.wav", "right")
    assert split_channel("C:/calls/rec.wav:0") == ("C:/calls/rec.wav", "0")
    assert split_channel("rec.wav") == ("rec.wav", None)
    assert split_channel("rec.wav:mix") == ("rec.wav", "mix")
    named = tmp_path / "odd:left"  # a file whose own name ends like a suffix is that file
    named.write_bytes(b"")
    assert split_channel(str(named)) == (str(named), None)
    with pytest.raises(ValueError, match="unknown channel 'Left'"):
        split_channel("rec.wav:Left")
