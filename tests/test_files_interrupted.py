"""Files written whole or not at all, also when the writer is interrupted: Ctrl-C, SIGTERM, even SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from backchannel.bridge.outputs.files import read_motion, write_motion
from backchannel.models import ASSETS
from backchannel.models.atomic import replacing
from backchannel.models.motion import MOTION_DIM, MotionBlock

SAMPLE = ASSETS / "sample"
PORTRAIT = ASSETS / "portrait" / "astronaut.png"
PREVIOUS = b"a previous, complete preview"


def start(argv: list[str]) -> subprocess.Popen:
    """A child in its own session (a signal for it reaches only it) with Ctrl-C's default action restored: a
    background job's shell may have set SIGINT to ignored, and Python then raises no KeyboardInterrupt."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(proc: subprocess.Popen, condition, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before the moment to interrupt it: {proc.communicate()}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"waited {timeout:g} s for the moment to interrupt it: {proc.communicate()}")
        time.sleep(0.02)


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler in place (Linux: the SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def encoding_started(folder: Path, video: Path) -> bool:
    """ffmpeg has written part of the mp4: under a temporary name beside it, or over the old file itself."""
    if video.exists() and video.read_bytes() != PREVIOUS:
        return True
    try:
        return any(p.name.startswith(f".{video.name}") and p.stat().st_size > 0 for p in folder.iterdir())
    except FileNotFoundError:  # removed between the listing and the look
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as Linux delivers them")
@pytest.mark.parametrize("signum, code, previous", [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)],
                         ids=["sigint", "sigterm-over-a-previous-video"])
def test_a_video_interrupted_while_encoding_leaves_no_partial_file(tmp_path, signum, code, previous):
    video = tmp_path / "talk.mp4"
    if previous:
        video.write_bytes(PREVIOUS)
    proc = start([sys.executable, "-m", "backchannel.bridge.cli", "run", "--self", str(SAMPLE / "self.wav"),
                  "--other", str(SAMPLE / "other.wav"), "--out", str(tmp_path / "talk.jsonl"),
                  "--portrait", str(PORTRAIT), "--video", str(video), "--generator", "baseline"])
    wait_for(proc, lambda: encoding_started(tmp_path, video))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    if previous:
        assert video.read_bytes() == PREVIOUS  # the old preview stays whole
    else:
        assert not video.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.jsonl"] + ["talk.mp4"] * previous


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as Linux delivers them")
def test_send_out_ends_in_order_on_sigterm(tmp_path):
    # no worker: send waits (10 s) for the worker's stats before it streams; SIGTERM then ends it as Ctrl-C would
    wav = tmp_path / "a.wav"
    from backchannel.models.audio import save_audio

    save_audio(wav, np.zeros(1600, np.float32))
    proc = start([sys.executable, "-m", "backchannel.bridge.cli", "send", "--session", "s", "--self", str(wav),
                  "--out", str(tmp_path / "m.jsonl"), "--to", "tcp://127.0.0.1:1", "--motion-out", "tcp://127.0.0.1:1"])
    wait_for(proc, lambda: catches_sigterm(proc.pid), timeout=8)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


# -- replacing itself --------------------------------------------------------------------------------------------------

def test_an_interrupted_write_removes_its_temporary_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    for interruption in (KeyboardInterrupt(), SystemExit(143), OSError("disk full")):
        with pytest.raises(type(interruption)):
            with replacing(path) as tmp:
                tmp.write_text("half")
                raise interruption
        assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


WRITER = textwrap.dedent("""
    import sys, time
    from backchannel.models.atomic import replacing, sigterm_exits
    with sigterm_exits(), replacing(sys.argv[1]) as tmp:
        tmp.write_text("half")
        print(tmp, flush=True)
        time.sleep(60)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as Linux delivers them")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, -signal.SIGINT), (signal.SIGTERM, 143)],
                         ids=["sigint", "sigterm"])
def test_a_write_ended_by_a_signal_removes_its_temporary(tmp_path, signum, code):
    path = tmp_path / "out.txt"
    path.write_text("old")
    proc = start([sys.executable, "-c", WRITER, str(path)])
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.parent == tmp_path and tmp.is_file()
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == code  # an uncaught KeyboardInterrupt ends Python by SIGINT
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as Linux delivers them")
def test_a_temporary_left_by_sigkill_is_not_taken_for_the_output(tmp_path):
    path = tmp_path / "m.jsonl"
    proc = start([sys.executable, "-c", WRITER, str(path)])
    stale = Path(proc.stdout.readline().strip())
    proc.kill()  # no handler runs: the temporary stays
    proc.wait(timeout=30)
    assert not path.exists() and stale.is_file() and stale.name.startswith(".")
    assert stale.name == f".m.jsonl.tmp{proc.pid}"
    # a later write of the same name gives a whole file under the name, whatever lies beside it
    block = MotionBlock(0, np.ones((4, MOTION_DIM), np.float32), [0, 1, 2, 0])
    np.testing.assert_array_equal(read_motion(write_motion(path, block)).motion, block.motion)


def test_a_leftover_under_this_very_pid_is_overwritten_not_appended_to(tmp_path):
    path = tmp_path / "m.jsonl"
    (tmp_path / f".m.jsonl.tmp{os.getpid()}").write_text("a dead process's longer half-written leftover\n" * 50)
    block = MotionBlock(0, np.zeros((2, MOTION_DIM), np.float32), [0, 0])
    assert len(read_motion(write_motion(path, block))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as Linux delivers them")
def test_sigterm_landing_in_a_weakref_callback_still_ends_the_process(tmp_path):
    """Python ignores an exception raised inside a weakref callback; a SIGTERM whose SystemExit lands there must
    still end the process, with the temporary of the file being written removed."""
    out = tmp_path / "out.txt"
    program = textwrap.dedent(f"""
        import time, weakref
        from backchannel.models.atomic import replacing, sigterm_exits

        class Thing:
            pass

        def callback(ref):
            print("in callback", flush=True)
            time.sleep(10)  # SIGTERM arrives here: its SystemExit is raised inside the callback

        with sigterm_exits(), replacing({str(out)!r}) as tmp:
            tmp.write_text("partial")
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing
            print("carried on", flush=True)
            time.sleep(10)
            tmp.write_text("whole")
    """)
    proc = start([sys.executable, "-c", program])
    assert proc.stdout.readline().strip() == "in callback"
    proc.send_signal(signal.SIGTERM)
    out_text, err = proc.communicate(timeout=5)
    assert proc.returncode == 143, (out_text, err)
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary
