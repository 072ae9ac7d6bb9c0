import pytest

from backchannel.bridge.cli import build_parser
from backchannel.bridge.client import ControlClient, spawn_worker
from backchannel.bridge.serve import load_settings

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
