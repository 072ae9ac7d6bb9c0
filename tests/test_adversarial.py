"""A live worker under a hostile client's traffic, with a legit session streaming beside it in real time: the
flood of one-sample chunks after holes, a chunk far ahead (the amplifier), decode bombs, a hijacker with the legit
session's name. Bounded: a few seconds of traffic on 127.0.0.1. The legit session loses no frame and no audio to
it, and every control request is answered without the stall the flood once caused (11 s). The attacker is a
process of its own, as it would be: a thread beside the legit sender would starve it of the GIL and make its own
audio late, which the worker rightly re-aligns."""
import multiprocessing
import threading
import time

import msgpack
import numpy as np

from backchannel.bridge import protocol
from backchannel.bridge.client import ControlClient, MotionReceiver, audio_chunks, send_chunks, spawn_worker
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import frame_count

from .helpers import WORKER_COMMAND, collect, push_socket


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def attack(endpoint: str, victim: str, stop) -> None:
    push = push_socket(endpoint)
    one = np.full(1, 0.1)
    try:
        push.send(protocol.audio_message("flood", "self", 0, 0.0, np.full(160, 0.1), 16000))
        for i in range(20_000):  # one sample each, each after a hole
            push.send(protocol.audio_message("flood", "self", i + 1, 0.02 + i * 0.002, one, 16000))
        push.send(protocol.audio_message("amp", "self", 0, 0.0, np.full(160, 0.1), 16000))
        push.send(protocol.audio_message("amp", "self", 1, 29.9, np.full(16, 0.1), 16000))  # 81 bytes, 30 s ahead
        bomb = msgpack.packb([None] * 1_000_000)
        for _ in range(20):
            push.send(bomb)
        while not stop.is_set():  # the hijacker: the victim's name, no token
            push.send(protocol.audio_message(victim, "self", 10**6, 1.0, np.zeros(1600), 16000))
            push.send(protocol.end_message(victim))
            time.sleep(0.05)
    finally:
        push.close()


def test_a_hostile_client_neither_stalls_the_worker_nor_touches_a_legit_session():
    a, b = synthetic_dialogue(6.0, seed=2)
    with spawn_worker("--stats-interval-s", "0.5", command=WORKER_COMMAND) as worker:
        receiver = MotionReceiver(worker["motion_out"], ["legit"])
        control = ControlClient(worker["control"], timeout_s=10.0)
        try:
            receiver.wait_ready()
            token = control.call("open", session="legit")["token"]
            rss_before = rss_mb(worker["pid"])
            spawn = multiprocessing.get_context("spawn")
            stop, replies = spawn.Event(), []
            attacker = spawn.Process(target=attack, args=(worker["audio_in"], "legit", stop))

            def legit():
                chunks = audio_chunks("legit", {"self": a, "other": b}, SAMPLE_RATE, token=token)
                push = push_socket(worker["audio_in"])
                send_chunks(push, chunks, realtime=True)
                push.send(protocol.end_message("legit", token))
                push.close()

            sender = threading.Thread(target=legit)
            sender.start(), attacker.start()
            while sender.is_alive():  # the control socket answers throughout
                tic = time.perf_counter()
                control.call("stats")
                replies.append(time.perf_counter() - tic)
                time.sleep(0.05)
            stop.set(), attacker.join()
            rss_after = rss_mb(worker["pid"])
            got = collect(receiver, ["legit"], timeout_s=20)["legit"]
            errors = control.call("stats")["errors"]
        finally:
            receiver.close(), control.close()
    assert max(replies) < 1.0, f"a control reply took {max(replies):.2f} s"  # before: 11 s under the flood alone
    assert rss_after - rss_before < 50, f"the worker grew {rss_after - rss_before:.0f} MB"
    closed = got["closed"]
    assert len(got["motion"]) == closed["frames"] == frame_count(len(a) / SAMPLE_RATE)  # no frame lost
    assert closed["tracks"]["self"]["concealed_s"] == 0 and closed["tracks"]["other"]["concealed_s"] == 0
    assert set(closed["errors"]) == {"not_owner"}  # the hijacker's audio and ends, refused and counted
    assert errors["not_msgpack"] == 20
