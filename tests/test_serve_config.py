import gc
import time
import warnings

import pytest

from backchannel.bridge.cli import build_parser, main
from backchannel.bridge.cli.serve import load_settings
from backchannel.bridge.client import ControlClient, spawn_worker

from .helpers import WORKER_COMMAND


def settings(tmp_path, toml: str, *flags: str):
    path = tmp_path / "serve.toml"
    path.write_text(toml)
    return load_settings(build_parser().parse_args(["serve", "--config", str(path), *flags]))


def test_config_file_sets_what_flags_set_and_flags_win(tmp_path):
    worker, outputs = settings(tmp_path, 'audio_in = "tcp://127.0.0.1:6000"\njitter_ms = 60\nvmc = "127.0.0.1:39539"\n'
                                         'vmc_names = "vrm0"\n[style]\nexpressiveness = 1.5\n', "--jitter-ms", "25")
    assert worker == {"audio_in": "tcp://127.0.0.1:6000", "jitter_ms": 25.0, "style": {"expressiveness": 1.5}}
    assert outputs == {"vmc": "127.0.0.1:39539", "vmc_names": "vrm0"}


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown keys jitter"):
        settings(tmp_path, "jitter = 3\n")
    with pytest.raises(ValueError, match="serve.toml"):
        settings(tmp_path, "jitter_ms = = 3\n")
    with pytest.raises(FileNotFoundError):
        load_settings(build_parser().parse_args(["serve", "--config", str(tmp_path / "missing.toml")]))


def test_a_worker_started_from_a_config_file(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text("jitter_ms = 55\nidle_timeout_s = 12\nstats_interval_s = 0.2\n")
    with spawn_worker("--config", str(path), command=WORKER_COMMAND) as ep:
        d = ControlClient(ep["control"]).call("describe")
    assert d["jitter_ms"] == 55 and d["idle_timeout_s"] == 12


@pytest.mark.parametrize("command", [["serve"], ["run", "--self", "a.wav", "--other", "b.wav", "--out", "m.jsonl"]])
def test_json_object_flags_refuse_what_is_not_an_object_clearly(command, capsys):
    for text, message in (("[1]", "is a JSON list; give an object"), ("{x", "is not JSON: Expecting property name"),
                          ('"calm"', "is a JSON str; give an object")):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([*command, "--style", text])
        assert e.value.code == 2 and f"argument --style: {text!r} {message}" in capsys.readouterr().err
    assert build_parser().parse_args([*command, "--style", '{"smile": 0.5}']).style == {"smile": 0.5}


@pytest.mark.parametrize("flags, message", [(["--seed", "-1"], "seed must be a whole number >= 0"),
                                            (["--style", '{"smile": "wide"}'], "style must be a map of names to"),
                                            (["--style", '{"smile": 4}'], "style smile 4 is outside -1..1")])
def test_a_bad_seed_or_style_stops_run_and_serve_with_one_line(tmp_path, flags, message, capsys):
    anywhere = [f"--{socket}=tcp://127.0.0.1:*" for socket in ("audio-in", "motion-out", "control")]
    for command in (["serve", *anywhere], ["run", "--self", "a.wav", "--other", "b.wav", "--out", "m.jsonl"]):
        assert main([*command, *flags]) == 2  # before: serve started and failed every session, run a traceback
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_bad_frame_flags_stop_serve_even_without_a_portrait(capsys):
    anywhere = [f"--{socket}=tcp://127.0.0.1:*" for socket in ("audio-in", "motion-out", "control")]
    assert main(["serve", *anywhere, "--frame-quality", "0"]) == 2  # before: ignored, the worker served
    assert "frame_quality 0: a whole number in 1..100" in capsys.readouterr().err


def test_spawn_worker_closes_its_log_when_the_worker_cannot_even_start(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FileNotFoundError):
            with spawn_worker(command=[str(tmp_path / "no-such-program")], log_path=tmp_path / "worker.log"):
                pass
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []  # before: "unclosed file"


def test_send_with_no_worker_says_so_instead_of_hanging_or_claiming_success(tmp_path, capsys):
    """Before: a long file blocked for ever once ZeroMQ's queue filled, a short one printed "sent" into nothing;
    and a bad --out suffix was found only after the whole stream."""
    import socket

    import numpy as np

    from backchannel.models.audio import save_audio

    save_audio(tmp_path / "me.wav", np.zeros(16000, np.float32))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        nobody = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    started = time.time()
    assert main(["send", "--to", nobody, "--session", "npc", "--self", str(tmp_path / "me.wav"),
                 "--timeout", "1"]) == 2
    assert "no worker took audio at" in capsys.readouterr().err and time.time() - started < 10
    assert main(["send", "--to", nobody, "--session", "npc", "--self", str(tmp_path / "me.wav"),
                 "--out", str(tmp_path / "m.txt")]) == 2
    assert "--out" in capsys.readouterr().err and time.time() - started < 10
