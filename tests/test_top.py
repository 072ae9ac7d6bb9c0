"""`backchannel top` reads a live worker through its control socket and shows its sessions as they stream."""
import subprocess
import sys
import threading

from backchannel.bridge.client import ControlClient, audio_chunks, send_chunks, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.audio import SAMPLE_RATE

from .helpers import WORKER_COMMAND, push_socket


def test_top_shows_each_session_with_its_fps_latency_and_errors():
    a, b = synthetic_dialogue(5.0, seed=1)
    with spawn_worker(command=WORKER_COMMAND) as worker:
        with ControlClient(worker["control"]) as control:
            token = control.call("open", session="npc-7")["token"]

        def stream():
            push = push_socket(worker["audio_in"])
            send_chunks(push, audio_chunks("npc-7", {"self": a, "other": b}, SAMPLE_RATE, token=token), realtime=True)
            push.close()

        sender = threading.Thread(target=stream)
        sender.start()
        try:
            shown = subprocess.run([sys.executable, "-m", "backchannel.bridge.cli", "top", "--control",
                                    worker["control"], "--once", "--interval", "1"],
                                   capture_output=True, text=True, timeout=60, env={"COLUMNS": "160", "PATH": ""})
        finally:
            sender.join()
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "npc-7" in line)
    cells = [c.strip() for c in row.strip("│┃| ").replace("┃", "│").split("│")]
    assert cells[0] == "npc-7" and cells[1] == "energy"
    assert 20 <= float(cells[2]) <= 40  # frames per second, streamed in real time
    assert 0 < float(cells[3]) <= float(cells[4]) < 1000  # p50 and p95 milliseconds from audio to frame
    assert "1 sessions" in shown.stdout and "CPU" in shown.stdout
