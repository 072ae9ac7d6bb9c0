"""The scale-out on a one-machine Ray cluster (loopback): two Ray Serve worker replicas behind the ingress; a client
that knows only the ingress; one replica's process killed mid-stream. One cluster for the module (Ray starts slowly
on two cores)."""
import time

import pytest

from backchannel.bridge.client import ControlClient, MotionReceiver
from backchannel.bridge.latency import synthetic_dialogue
from backchannel.models.motion import FRAME_RATE

from .test_scale import assert_moved_sessions_resumed, collect_until_closed, stream_realtime

ray = pytest.importorskip("ray", reason="ray[serve] is not installed (pip install 'backchannel[scale]')")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Serve's own, on pydantic 2


@pytest.fixture(scope="module")
def cluster():
    from ray import serve

    from backchannel.bridge.scaleout.ray_serve import build_app, start, wait_for_replicas

    app = build_app(replicas=2, audio_in="tcp://127.0.0.1:*", motion_out="tcp://127.0.0.1:*",
                    control="tcp://127.0.0.1:*", worker_settings={"generator": "baseline"}, replica_cpus=0,
                    dead_after_s=1.0)
    ingress = start(app, ray_options={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
                                      "object_store_memory": 80 << 20})
    try:
        wait_for_replicas(ingress, 2)
        yield ingress, ingress.endpoints.remote().result()
    finally:
        serve.shutdown()
        ray.shutdown()


def test_sessions_spread_over_the_replicas_and_a_killed_one_s_sessions_resume_on_the_other(cluster):
    ingress, endpoints = cluster
    sessions = [f"r{i}" for i in range(4)]
    seconds = 4.0
    tracks = {s: dict(zip(("self", "other"), synthetic_dialogue(seconds, seed=i))) for i, s in enumerate(sessions)}
    receiver = MotionReceiver(endpoints["motion_out"])
    try:
        receiver.wait_ready()
        with ControlClient(endpoints["control"]) as control:
            tokens = {s: control.call("open", session=s)["token"] for s in sessions}
            stats = control.call("stats")
        placed = stats["placement"]
        replicas = {r["id"]: r for r in stats["replicas"]}
        assert len(replicas) == 2 and sorted(placed.values()) == sorted(list(replicas) * 2)  # spread evenly
        victim = placed[sessions[0]]
        moved = [s for s in sessions if placed[s] == victim]

        def kill():  # the replica's whole process, as a crash would take it
            ray.kill(ray.get_actor(replicas[victim]["endpoints"]["actor"], namespace="serve"), no_restart=True)

        stream_realtime(endpoints["audio_in"], sessions, tracks, seconds, tokens, at=(1.5, kill))
        seqs, closed = collect_until_closed(receiver, sessions, timeout_s=15)
    finally:
        receiver.close()
    assert closed == set(sessions)
    assert_moved_sessions_resumed(seqs, moved, int(seconds * FRAME_RATE))
    after = ingress.stats.remote().result()
    assert after["moved"] == {s: 1 for s in moved}
    assert victim not in {r["id"] for r in after["replicas"]}
    # Serve starts a replacement, which registers as a new replica
    deadline = time.time() + 60
    while time.time() < deadline and len(ingress.stats.remote().result()["replicas"]) < 2:
        time.sleep(0.5)
    assert len(ingress.stats.remote().result()["replicas"]) == 2
