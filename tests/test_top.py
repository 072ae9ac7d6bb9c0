"""`backchannel top` reads a live worker through its control socket and shows its sessions as they stream."""
import subprocess
import sys
import threading

from backchannel.bridge.client import ControlClient, audio_chunks, send_chunks, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.audio import SAMPLE_RATE

from .helpers import WORKER_COMMAND, push_socket


def test_top_shows_each_session_with_its_fps_and_latency():
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


def test_top_on_an_ingress_whose_replica_does_not_answer_shows_that_and_goes_on():
    """The ingress waits 3 s for a replica before it answers no_replica: top waits longer, and shows the answer on
    the session's row instead of giving up."""
    import time

    import zmq

    from backchannel.bridge import protocol
    from backchannel.bridge.scaleout.ingress import Ingress
    from backchannel.bridge.scaleout.router import Router

    any_port = "tcp://127.0.0.1:*"
    ctx = zmq.Context()
    mute = {kind: ctx.socket(kind) for kind in (zmq.PULL, zmq.PUB, zmq.REP)}  # reports a session, answers nothing
    for sock in mute.values():
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(any_port)
    endpoints = {name: mute[kind].getsockopt(zmq.LAST_ENDPOINT).decode()
                 for name, kind in (("audio_in", zmq.PULL), ("motion_out", zmq.PUB), ("control", zmq.REP))}
    ingress = Ingress(any_port, any_port, any_port, Router(dead_after_s=60.0))
    ingress.register("mute", endpoints)
    threading.Thread(target=ingress.run, daemon=True).start()
    reporting = True

    def report():
        while reporting:
            mute[zmq.PUB].send_multipart([protocol.topic(protocol.WORKER_TOPIC, "stats"),
                                          protocol.pack({"sessions": ["npc-1"], "frames": 0})])
            time.sleep(0.1)

    reporter = threading.Thread(target=report)
    reporter.start()
    try:
        with ControlClient(ingress.endpoints["control"]) as control:
            while "npc-1" not in control.call("stats")["sessions"]:
                time.sleep(0.1)
        shown = subprocess.run([sys.executable, "-m", "backchannel.bridge.cli", "top", "--control",
                                ingress.endpoints["control"], "--once", "--interval", "0.1"],
                               capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": ""})
    finally:
        reporting = False
        reporter.join()
        ingress.stopping = True
        time.sleep(0.1)
        ingress.close()
        ctx.destroy(0)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "npc-1" in line)
    assert "mute" in row and "no_replica" in row
