import numpy as np
import pytest

from backchannel.bridge.outputs.files import read_motion, write_motion
from backchannel.models.audio import Resampler, decode_pcm, encode_pcm, resample
from backchannel.models.motion import ARKIT_NAMES, MOTION_DIM, MotionBlock, frame_count


def test_arkit_order_matches_live_link_face():
    assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52
    assert ARKIT_NAMES[0] == "EyeBlinkLeft" and ARKIT_NAMES[17] == "JawOpen" and ARKIT_NAMES[-1] == "TongueOut"


def test_frame_count_is_video_like():
    assert frame_count(1.0) == 30 and frame_count(1.01) == 31 and frame_count(0) == 0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 16000])
def test_resampler_is_chunking_invariant_and_keeps_a_tone(rate):
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * 0.5)) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    whole = resample(x, rate)
    r = Resampler(rate)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        parts.append(r.process(x[i:i + n]))
        i += n
    parts.append(r.flush())
    chunked = np.concatenate(parts)
    assert len(whole) == len(chunked) == int(np.ceil(len(x) * 16000 / rate))
    np.testing.assert_allclose(whole, chunked, atol=1e-6)
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(whole)) / 16000)
    assert np.abs(whole[200:-200] - ref[200:-200]).max() < 0.01


def test_resampler_removes_content_above_nyquist():
    rate = 48000
    t = np.arange(rate) / rate
    y = resample(np.sin(2 * np.pi * 12000 * t).astype(np.float32), rate)  # 12 kHz cannot exist at 16 kHz
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 0.01


def test_pcm_round_trip_and_errors():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(decode_pcm(encode_pcm(x, "s16le"), "s16le"), x, atol=1e-4)
    np.testing.assert_allclose(decode_pcm(encode_pcm(x, "f32le"), "f32le"), x)
    with pytest.raises(ValueError, match="whole number"):
        decode_pcm(b"\x00\x01\x02", "s16le")
    with pytest.raises(ValueError, match="NaN"):
        decode_pcm(np.array([np.nan], "<f4").tobytes(), "f32le")
    with pytest.raises(ValueError, match="unknown pcm format"):
        decode_pcm(b"", "mp3")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".npz", ".NPZ"])
def test_motion_files_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    block = MotionBlock(0, rng.random((12, MOTION_DIM)).astype(np.float32), rng.integers(0, 3, 12))
    back = read_motion(write_motion(tmp_path / f"m{suffix}", block))
    assert back.first == 0 and len(back) == 12
    np.testing.assert_allclose(back.motion, block.motion, atol=1e-4)
    np.testing.assert_array_equal(back.state, block.state)


def test_a_failed_motion_write_leaves_the_old_file_and_no_half_written_one(tmp_path, monkeypatch):
    from backchannel.bridge.outputs import files as motion_files

    block = MotionBlock(0, np.zeros((3, MOTION_DIM), np.float32), [0, 1, 2])
    path = write_motion(tmp_path / "m.jsonl", block)
    before = path.read_bytes()

    def failing(f, suffix, block):
        f.write("{half a line")
        raise OSError("disk full")

    monkeypatch.setattr(motion_files, "_write", failing)
    with pytest.raises(OSError, match="disk full"):
        write_motion(path, MotionBlock(0, np.ones((9, MOTION_DIM), np.float32), [0] * 9))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]


def test_run_says_in_one_line_what_is_wrong_with_its_files(tmp_path, capsys):
    from backchannel.bridge.cli import main
    from backchannel.models.audio import save_audio

    save_audio(tmp_path / "empty.wav", np.zeros(0, np.float32))
    save_audio(tmp_path / "a.wav", np.zeros(1600, np.float32))
    (tmp_path / "taken.jsonl").mkdir()
    for args, message in (
            ([tmp_path / "empty.wav", tmp_path / "empty.wav", tmp_path / "m.jsonl"], "hold no audio"),
            ([tmp_path, tmp_path / "a.wav", tmp_path / "m.jsonl"], "is a folder; give an audio file"),
            ([tmp_path / "a.wav", tmp_path / "a.wav", tmp_path / "taken.jsonl"], "Is a directory")):
        code = main(["run", "--self", str(args[0]), "--other", str(args[1]), "--out", str(args[2]),
                     "--generator", "baseline"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.jsonl").exists()
