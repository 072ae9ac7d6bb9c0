"""`backchannel train`, `eval` and `export` on tiny data: mistakes refused in one line before any work, runs that
resume only as they began, Ctrl-C that keeps the work done, files written whole."""
import json
import shutil
import signal

import numpy as np
import pytest
import torch

from backchannel.bridge.cli import main
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.infp.config import ModelConfig
from backchannel.models.infp.network import MotionModel
from backchannel.models.infp.weights import load_weights
from backchannel.models.motion import MOTION_DIM, frame_count
from backchannel.models.training import data as training_data
from backchannel.models.training import runs
from backchannel.models.training.config import LossConfig, TrainConfig
from backchannel.models.training.data import make_clip
from backchannel.models.training.loop import Interrupted, Run, fit_input_statistics, save_weights, train_motion

from .corpus_fixtures import SAMPLE

SMALL = dict(latent_dim=8, d_model=32, heads=2, depth=2, enc_channels=32, enc_hidden=32, enc_layers=2, bank_slots=8,
             style_dim=8, vad_state=True)
MOTION = ["--train-steps", "12", "--batch", "2", "--window", "20"]  # a few seconds of training on one core


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small graphs on shared cores: a second thread only spin-waits (tens of times slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    n = 3 * SAMPLE_RATE
    frames = frame_count(n / SAMPLE_RATE)
    a, b = (0.05 * rng.standard_normal((2, n))).astype(np.float32)
    motion = np.cumsum(0.02 * rng.standard_normal((frames, MOTION_DIM)), axis=0).astype(np.float32)
    return [make_clip("tiny", a, b, motion, np.zeros(frames, np.int64))]


@pytest.fixture
def features(clips, monkeypatch):
    """The training commands read these clips instead of a corpus's; `loaded` counts the reads."""
    loaded = []
    monkeypatch.setattr(runs, "load_training_clips", lambda *args: loaded.append(args) or clips)
    return loaded


@pytest.fixture(scope="module")
def codec_run(clips, tmp_path_factory):
    """A run folder with a trained (tiny) codec, for `train motion` to start from."""
    run = tmp_path_factory.mktemp("codec-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runs, "load_training_clips", lambda *args: clips)
        assert main(["train", "codec", "--data", "corpus", "--run", str(run), "--train-steps", "30", "--batch", "64",
                     "--model", json.dumps(SMALL)]) == 0
    return run


@pytest.fixture
def run_dir(codec_run, tmp_path):
    shutil.copytree(codec_run, tmp_path / "run")
    return tmp_path / "run"


def train(run_dir, *args, data="corpus"):
    return main(["train", "motion", "--data", str(data), "--run", str(run_dir), *MOTION, *args])


def state(path):
    """The tensors shipped in a weights file."""
    return torch.load(path, weights_only=True)["model"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


# 1. a run folder resumes only with the settings it began with

def test_a_run_resumed_with_other_settings_is_refused_naming_each(run_dir, features, capsys, tmp_path):
    for name, seed in (("corpus", 1), ("other", 2)):  # two corpora, known by what they hold, not by their folder
        (tmp_path / name).mkdir()
        (tmp_path / name / "corpus.json").write_text(json.dumps({"settings": {"seed": seed}, "split_clips": {}}))
    shutil.copytree(tmp_path / "corpus", tmp_path / "moved")
    corpus = tmp_path / "corpus"
    assert train(run_dir, data=corpus) == 0
    shipped, trained = (run_dir / "motion.pt").read_bytes(), state(run_dir / "motion.pt")
    capsys.readouterr()
    assert train(run_dir, "--seed", "3", "--lr", "1e-3", data=tmp_path / "other") == 2
    err = one_error_line(capsys)
    assert "--data settings {'seed': 1} (now {'seed': 2})" in err
    assert "--seed 0 (now 3)" in err and "--lr 0.0003 (now 0.001)" in err
    assert "--batch" not in err and "use a new --run folder" in err
    assert train(run_dir, "--model", '{"depth": 3}', data=corpus) == 2  # not load_state_dict's list of keys
    assert "--model depth 2 (now 3)" in one_error_line(capsys)
    assert (run_dir / "motion.pt").read_bytes() == shipped  # refusals leave the run as it was
    assert train(run_dir, "--model", '{"depth": 2}', data=tmp_path / "moved") == 0  # what it has, and a moved copy
    capsys.readouterr()
    assert train(run_dir, "--train-steps", "20", data=corpus) == 2  # its learning rate schedule was laid out for 12 steps
    assert "--train-steps 12 (now 20)" in one_error_line(capsys)
    assert train(run_dir, "--init", str(run_dir / "motion.pt"), data=corpus) == 2
    assert "--init None (now " in one_error_line(capsys)
    assert len(features) == 2  # refused before the features: read by the first run and the moved copy's only
    assert train(run_dir, data=corpus) == 0  # the same command goes on as before (here: nothing left to train)
    for name, value in state(run_dir / "motion.pt").items():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=0, msg=name)


def test_a_codec_run_resumed_with_another_batch_is_refused(run_dir, features, capsys):
    assert main(["train", "codec", "--data", "corpus", "--run", str(run_dir), "--train-steps", "30", "--batch", "32",
                 "--model", json.dumps(SMALL)]) == 2
    assert "--batch 64 (now 32)" in one_error_line(capsys) and not features


# 2. numbers out of range, refused before anything is loaded; 0 is no "default"

@pytest.mark.parametrize("args, message", [
    (["train", "motion", "--train-steps", "-5"], "--train-steps must be a whole number >= 1, got -5"),
    (["train", "motion", "--train-steps", "0"], "--train-steps must be a whole number >= 1, got 0"),
    (["train", "motion", "--batch", "0"], "--batch must be a whole number >= 1, got 0"),
    (["train", "codec", "--batch", "-3"], "--batch must be a whole number >= 1, got -3"),
    (["train", "motion", "--window", "-5"], "--window must be a whole number >= 1, got -5"),
    (["train", "motion", "--seed", "-1"], "--seed must be a whole number >= 0, got -1"),
    (["train", "motion", "--lr", "0"], "--lr must be a number > 0, got 0.0"),
    (["train", "motion", "--lr", "-1"], "--lr must be a number > 0, got -1.0"),
    (["train", "motion", "--lr", "nan"], "--lr must be a number > 0, got nan"),
    (["export", "onnx", "--sampler-steps", "-1"], "--sampler-steps must be a whole number >= 1, got -1"),
    (["export", "onnx", "--sampler-steps", "0"], "--sampler-steps must be a whole number >= 1, got 0"),
    (["eval", "--clips", "0"], "--clips must be a whole number >= 1, got 0"),
    (["eval", "--clips", "-1"], "--clips must be a whole number >= 1, got -1"),
])
def test_numbers_out_of_range_are_refused_in_one_line_before_any_work(args, message, tmp_path, features, capsys):
    where = {"train": ["--data", str(tmp_path / "corpus"), "--run", str(tmp_path / "run")],
             "eval": ["--data", str(tmp_path), "--out", str(tmp_path / "out")],
             "export": ["--out", str(tmp_path / "out")]}[args[0]]
    assert main([*args, *where]) == 2
    assert capsys.readouterr().err == f"backchannel {args[0]}: error: {message}\n"
    assert list(tmp_path.iterdir()) == [] and not features


# 3. files written whole or not at all

def test_an_interrupted_save_leaves_the_old_weights_whole(tmp_path, monkeypatch):
    path = tmp_path / "motion.pt"
    save_weights(MotionModel(ModelConfig(**SMALL)), path, {"stage": "motion"})
    before = path.read_bytes()

    def dies_half_way(obj, f):
        open(f, "wb").write(before[:100])
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError):
        save_weights(MotionModel(ModelConfig(**SMALL)), path, {"stage": "motion"})
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]  # no temporary left either


# 4. Ctrl-C keeps the steps done and resumes to an unbroken run's weights, each step logged once

@pytest.fixture
def terminal_ctrl_c():
    """SIGINT handled as Python does when started from a terminal, whoever started the tests: a shell that runs a
    job in the background (nohup, &) sets it to ignored, and training rightly keeps an ignored Ctrl-C ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def ctrl_c_at_batch(monkeypatch, n, how="signal"):
    real_batch, calls = training_data.WindowSampler.batch, []

    def batch(self, rng, size):
        calls.append(1)
        if len(calls) == n:
            if how == "signal":
                signal.raise_signal(signal.SIGINT)  # as from a terminal: the step goes on to its end
            else:
                raise RuntimeError("killed")  # a crash mid-step, after the last checkpoint
        return real_batch(self, rng, size)

    monkeypatch.setattr(training_data.WindowSampler, "batch", batch)


def test_ctrl_c_saves_the_current_step_and_the_same_command_resumes_to_the_same_weights(run_dir, tmp_path,
                                                                                          features, capsys,
                                                                                          terminal_ctrl_c):
    straight = tmp_path / "straight"
    shutil.copytree(run_dir, straight)
    assert train(straight) == 0
    handler = signal.getsignal(signal.SIGINT)
    with pytest.MonkeyPatch.context() as mp:
        ctrl_c_at_batch(mp, 4)
        assert train(run_dir) == 130
    assert signal.getsignal(signal.SIGINT) == handler  # a later Ctrl-C does what it did before
    assert f"stopped at step 4 of 12, checkpoint saved in {run_dir / 'motion-checkpoint.pt'}: run the same command " \
           "again to resume\n" in capsys.readouterr().err
    assert torch.load(run_dir / "motion-checkpoint.pt", weights_only=True)["step"] == 4
    assert train(run_dir) == 0
    for name, value in state(straight / "motion.pt").items():
        torch.testing.assert_close(state(run_dir / "motion.pt")[name], value, rtol=0, atol=0, msg=name)
    assert (run_dir / "motion-losses.jsonl").read_text() == (straight / "motion-losses.jsonl").read_text()


def test_a_resumed_run_drops_the_loss_lines_logged_after_its_checkpoint(clips, tmp_path, terminal_ctrl_c):
    tc = TrainConfig(train_steps=12, batch=2, window_frames=20, warmup=4, checkpoint_every=5)

    def fresh():
        torch.manual_seed(1)
        model = MotionModel(ModelConfig(**SMALL))
        fit_input_statistics(model, clips)
        return model

    logged = lambda: [json.loads(line)["step"] for line in (tmp_path / "motion-losses.jsonl").open()]  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        ctrl_c_at_batch(mp, 12, how="crash")  # in step 11: step 10 was logged, the checkpoint is at 10
        with pytest.raises(RuntimeError, match="killed"):
            train_motion(fresh(), clips, Run(tmp_path, "motion"), tc, LossConfig(), "cpu", progress=False)
    assert logged() == [0, 10]
    with pytest.MonkeyPatch.context() as mp:
        ctrl_c_at_batch(mp, 1)  # in step 10 again, which ends, is logged once and checkpointed
        with pytest.raises(Interrupted):
            train_motion(fresh(), clips, Run(tmp_path, "motion"), tc, LossConfig(), "cpu", progress=False)
    assert logged() == [0, 10]
    assert torch.load(tmp_path / "motion-checkpoint.pt", weights_only=True)["step"] == 11
    train_motion(fresh(), clips, Run(tmp_path, "motion"), tc, LossConfig(), "cpu", progress=False)
    assert logged() == [0, 10, 11]


# 5, 6. weights files that are not motion weights

def test_codec_weights_are_refused_as_motion_weights(codec_run, corpus, tmp_path, features, capsys):
    codec = codec_run / "codec.pt"
    with pytest.raises(ValueError, match="holds codec weights"):
        load_weights(codec)
    for args in (["export", "onnx", "--weights", str(codec), "--out", str(tmp_path / "out")],
                 ["eval", "--data", str(corpus), "--split", "val", "--generator", f"model[weights={codec}]",
                  "--out", str(tmp_path / "out")],
                 ["train", "motion", "--data", "corpus", "--run", str(tmp_path / "run"), "--init", str(codec)]):
        assert main(args) == 2
        assert f"{codec} holds codec weights (`backchannel train codec`), not a trained motion model" in \
            one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not features


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "a list"])
def test_a_file_that_is_no_weights_is_named_in_one_line(kind, codec_run, tmp_path, features, capsys):
    path = tmp_path / "weights.pt"
    whole = (codec_run / "codec.pt").read_bytes()
    if kind == "a list":
        torch.save([1, 2], path)
    else:
        path.write_bytes({"garbage": b"not weights at all\n", "empty": b"", "truncated": whole[:len(whole) // 2]}[kind])
    with pytest.raises(ValueError, match="is not a Backchannel weights file"):
        load_weights(path)
    for args in (["export", "onnx", "--weights", str(path), "--out", str(tmp_path / "onnx")],
                 ["train", "motion", "--data", "corpus", "--run", str(tmp_path / "run"), "--init", str(path)]):
        assert main(args) == 2
        assert f"{path} is not a Backchannel weights file" in one_error_line(capsys)
    assert not features


# 7, 8, 9. devices, config values, the codec's batch

@pytest.mark.parametrize("device, message", [
    ("foo", "--device 'foo' is not a device: give cpu, cuda or cuda:N"),
    pytest.param("cuda", "--device cuda is not available here", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_a_device_torch_cannot_use_is_refused_before_the_features_load(device, message, run_dir, features, capsys):
    assert train(run_dir, "--device", device) == 2
    assert message in one_error_line(capsys) and not features


@pytest.mark.parametrize("flag, config, message", [
    ("--model", {"depth": "three"}, "--model: depth must be int like its default 4, got 'three'"),
    ("--model", {"vad_state": 1}, "--model: vad_state must be bool like its default True, got 1"),
    ("--model", {"prev_noise": 0.1}, "--model: unknown setting(s) prev_noise (known: latent_dim,"),
    ("--loss", {"prev_noise": "0.1"}, "--loss: prev_noise must be float like its default 0.5, got '0.1'"),
    ("--loss", {"depth": 2}, "--loss: unknown setting(s) depth"),
])
def test_config_values_of_the_wrong_type_or_place_are_refused(flag, config, message, run_dir, features, capsys):
    assert train(run_dir, flag, json.dumps(config)) == 2
    assert one_error_line(capsys).startswith(f"backchannel train: error: {message}") and not features


def test_train_codec_takes_batch_as_frames_per_step_and_refuses_motion_only_flags(tmp_path, features, capsys,
                                                                                  monkeypatch):
    from backchannel.models.infp.codec import MotionCodec

    sizes, real_loss = [], MotionCodec.reconstruction_loss
    monkeypatch.setattr(MotionCodec, "reconstruction_loss", lambda self, x: sizes.append(len(x)) or real_loss(self, x))
    codec = ["train", "codec", "--data", "corpus", "--run", str(tmp_path / "run"), "--model", json.dumps(SMALL)]
    assert main([*codec, "--train-steps", "2", "--batch", "48"]) == 0
    assert sizes == [48, 48]
    capsys.readouterr()
    assert main([*codec, "--window", "20", "--lr", "1e-3"]) == 2
    assert "--window, --lr: for `train motion` alone" in one_error_line(capsys)


# 10. export: graphs move into place only once checked

def test_export_replaces_the_graphs_only_after_they_pass_the_check(tmp_path, monkeypatch, capsys):
    from backchannel.models.infp import export

    weights, out = tmp_path / "motion.pt", tmp_path / "onnx"
    torch.manual_seed(0)
    save_weights(MotionModel(ModelConfig(**SMALL)), weights, {"stage": "motion"})
    out.mkdir()
    (out / "encoder.onnx").write_text("the last good one")
    real_check = export.check_onnx
    monkeypatch.setattr(export, "check_onnx", lambda *args: {**real_check(*args), "encoder": 0.5})
    assert main(["export", "onnx", "--weights", str(weights), "--out", str(out), "--sampler-steps", "1"]) == 2
    assert "disagree with torch beyond 0.001 (encoder 5.00e-01" in one_error_line(capsys)
    assert sorted(tmp_path.iterdir()) == [weights, out] and list(out.iterdir()) == [out / "encoder.onnx"]
    assert (out / "encoder.onnx").read_text() == "the last good one"
    monkeypatch.setattr(export, "check_onnx", real_check)
    assert main(["export", "onnx", "--weights", str(weights), "--out", str(out), "--sampler-steps", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["encoder.onnx", "frame_step.onnx", "model.json", "style.onnx"]
    assert sorted(tmp_path.iterdir()) == [weights, out]
    assert export.stamped(out / "frame_step.onnx")["sampling"].startswith('{"sampler_steps": 1,')


# 11. eval: arguments checked before the output folder is made

@pytest.fixture
def corpus(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "corpus" / "val" / "0000" / "sample")
    return tmp_path / "corpus"


@pytest.mark.parametrize("args, message", [
    (["--split", "nope", "--split", "val"], "has no clips in split nope (splits: val)"),
    ([], "has no test split: name one with --split (splits: val)"),
    (["--split", "val", "--generator", ""], "--generator '' names no generator: give e.g. model,baseline"),
    (["--split", "val", "--generator", " , "], "--generator ' , ' names no generator"),
    (["--split", "val", "--generator", "model[sampler_steps=2"], "'model[sampler_steps=2': options go in brackets"),
    (["--split", "val", "--generator", "labels,nonsense"], "unknown generator 'nonsense'; choose from baseline, "
                                                           "model, labels or a peer (openfacefx-energy, "),
    (["--split", "val", "--generator", "baseline[a=1]x"], "options go in brackets"),
])
def test_eval_checks_its_arguments_before_making_the_output_folder(args, message, corpus, tmp_path, capsys):
    assert main(["eval", "--data", str(corpus), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing, install", [
    ("pylipsync", "pip install 'backchannel[peers]' && pip install --no-deps pylipsync==0.2.1"),
    ("librosa", "pip install 'backchannel[peers]'"),  # what pylipsync imports, when it went in alone
])
def test_eval_names_what_a_missing_peer_needs_before_scoring(missing, install, corpus, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "pylipsync", raising=False)
    monkeypatch.delitem(sys.modules, "pylipsync.analyzer", raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ModuleNotFoundError
    assert main(["eval", "--data", str(corpus), "--split", "val", "--generator", "labels,pylipsync",
                 "--out", str(tmp_path / "out")]) == 2
    assert f"needs {missing}, an optional dependency: {install}" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_eval_with_good_arguments_still_scores(corpus, tmp_path):
    assert main(["eval", "--data", str(corpus), "--split", "val", "--generator", "labels", "--clips", "1",
                 "--out", str(tmp_path / "out")]) == 0
    assert list(json.loads((tmp_path / "out" / "eval.json").read_text())["val"]) == ["labels"]


# 12. recipes: a file of stages, each fine-tuning the last

def test_a_recipe_trains_its_stages_in_order_and_a_second_run_skips_what_is_done(tmp_path, features, capsys):
    recipe = tmp_path / "tiny.toml"
    small = ", ".join(f"{k} = {json.dumps(v)}" for k, v in SMALL.items() if k != "vad_state")
    train = "train = { train_steps = 6, batch = 2, window_frames = 20, codec_steps = 20, codec_batch = 64 }"
    recipe.write_text(f"""
[[stage]]
name = "codec"
what = "codec"
model = {{ {small}, vad_state = false }}
{train}

[[stage]]
name = "first"
what = "motion"
{train}

[[stage]]
name = "again"
what = "motion"
init = "checkpoint"
loss = {{ reply_weight = 2.0 }}
{train}

[[stage]]
name = "wider"
what = "motion"
init = "weights"
model = {{ vad_state = true }}
{train}
""")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--data", "corpus", "--run", str(run)]) == 0
    assert len(features) == 4  # one load per stage
    for stage in ("codec", "first", "again", "wider"):
        assert (run / stage / ("codec.pt" if stage == "codec" else "motion.pt")).is_file()
    first, last = load_weights(run / "first" / "motion.pt"), load_weights(run / "wider" / "motion.pt")
    assert (first.cfg.vad_state, last.cfg.vad_state) == (False, True)  # the last stage widened the encoder
    assert torch.load(run / "again" / "motion.pt", weights_only=True)["meta"]["loss"]["reply_weight"] == 2.0
    assert torch.load(run / "again" / "motion.pt", weights_only=True)["meta"]["init"] == \
        str(run / "first" / "motion-checkpoint.pt")
    before = (run / "wider" / "motion.pt").read_bytes()
    assert main(["train", str(recipe), "--data", "corpus", "--run", str(run)]) == 0
    assert len(features) == 4 and (run / "wider" / "motion.pt").read_bytes() == before  # nothing trained again


@pytest.mark.parametrize("body, message", [
    ('[[stage]]\nwhat = "motion"\ninit = "weights"\n', "init 'weights' of which stage? none trains before"),
    ('[[stage]]\nwhat = "both"\n', "what must be codec or motion, not 'both'"),
    ('[[stage]]\nwhat = "codec"\nsteps = 3\n', "unknown key(s) steps"),
    ('[[stage]]\nwhat = "motion"\ntrain = { steps = 3 }\n', "[train]: unknown setting(s) steps"),
    ('[[stage]]\nwhat = "motion"\nloss = { reply_weight = "4" }\n', "[loss]: reply_weight must be float"),
    ("stage = 3\n[[", "is not TOML"),
    ("", "has no [[stage]]"),
])
def test_a_bad_recipe_is_one_line_before_any_work(body, message, tmp_path, features, capsys):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(body)
    assert main(["train", str(recipe), "--data", "corpus", "--run", str(tmp_path / "run")]) == 2
    assert message in one_error_line(capsys) and not features
    assert main(["train", str(recipe), "--data", "corpus", "--train-steps", "3"]) == 2
    assert "a recipe sets these per stage" in one_error_line(capsys)


def test_the_shipped_recipe_is_the_shipped_weights_recipe():
    """Its last stage's loss and schedule are what the shipped weights record, its architecture theirs."""
    from dataclasses import asdict

    from backchannel.models.infp.weights import WEIGHTS
    from backchannel.models.training.runs import SHIPPED_RECIPE, read_recipe

    stages = read_recipe(SHIPPED_RECIPE)
    shipped = torch.load(WEIGHTS, weights_only=True)
    assert [s.what for s in stages] == ["codec"] + ["motion"] * (len(stages) - 1)
    assert shipped["meta"]["loss"] == asdict(stages[-1].loss)
    last = stages[-1].train
    assert (shipped["meta"]["train_steps"], shipped["meta"]["batch"], shipped["meta"]["window_frames"]) == (
        last.train_steps, last.batch, last.window_frames)
    architecture = {**asdict(ModelConfig()), **stages[0].model}
    for stage in stages:
        architecture.update(stage.model)
    assert architecture == shipped["config"]
