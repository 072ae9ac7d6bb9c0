"""The scale-out on Ray Serve (the optional `[scale]` extra: ray[serve]): N worker replicas and one ingress.

    WorkerReplica (num_replicas=N): a ReplicaWorker (a whole protocol v1 worker on free ports of its node) that
        tells the ingress where it listens every REGISTER_EVERY_S, through a Serve handle;
    Ingress (one replica): the ZeroMQ front on the endpoints clients know (ingress.py), its Router fed by the
        replicas' registrations and their workers' `_worker/stats`.

Serve keeps the replica count: a replica that dies is started again elsewhere and registers as a new one, while
the ingress has already moved the dead one's sessions to the live ones (within the router's dead_after_s). Audio
and motion never pass through Ray: Serve places, restarts and health-checks the processes; ZeroMQ carries the
streams, as it does for a single worker.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import ray
from ray import serve

from backchannel.bridge.governor import load_tiers
from backchannel.bridge.scaleout.ingress import Ingress
from backchannel.bridge.scaleout.replica import ReplicaWorker
from backchannel.bridge.scaleout.router import Router
from backchannel.bridge.security import is_local
from backchannel.bridge.worker import WorkerConfig

APP_NAME = "backchannel"
REGISTER_EVERY_S = 0.5
STUCK_AFTER_S = 30.0  # a worker loop without a tick this long is restarted by Serve
log = logging.getLogger("backchannel.scale")


QUIET = {"enable_access_log": False}  # a line per registration call (two a second per replica) is noise


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, health_check_period_s=2.0, logging_config=QUIET)
class IngressDeployment:
    def __init__(self, audio_in: str, motion_out: str, control: str, dead_after_s: float, tiers: str | None,
                 insecure: bool):
        exposed = [e for e in (audio_in, motion_out, control) if not is_local(e)]
        if exposed and not insecure:
            raise RuntimeError(f"{', '.join(exposed)} would expose the ingress beyond this machine to anyone who "
                               "reaches the port (it has no CURVE): give insecure=True on a private network")
        names = [tier.name for tier in load_tiers(tiers)[0]]
        self.ingress = Ingress(audio_in, motion_out, control, Router(dead_after_s, names))
        self.thread = threading.Thread(target=self.ingress.run, name="backchannel-ingress", daemon=True)
        self.thread.start()

    def register(self, replica_id: str, endpoints: dict) -> None:
        self.ingress.register(replica_id, endpoints)

    def endpoints(self) -> dict:
        return dict(self.ingress.endpoints)

    def stats(self) -> dict:
        return self.ingress.stats()

    def check_health(self) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the ingress loop stopped")


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 1}, health_check_period_s=2.0, logging_config=QUIET)
class WorkerReplica:
    def __init__(self, ingress, worker_settings: dict, host: str | None):
        self.id = serve.get_replica_context().replica_id.unique_id
        host = host or ("127.0.0.1" if worker_settings.get("insecure") is not True else
                        ray.util.get_node_ip_address())
        self.replica = ReplicaWorker(WorkerConfig(**worker_settings), host)
        # the actor's name lets an operator (or a test) find this very replica: ray.get_actor(name, "serve")
        self.info = {**self.replica.endpoints, "actor": ray.get_runtime_context().get_actor_name(),
                     "pid": os.getpid()}
        self.ingress = ingress
        threading.Thread(target=self._register, name="backchannel-register", daemon=True).start()

    def _register(self) -> None:
        """Tell the ingress where this worker listens, again and again (a restarted ingress learns it anew). Not a
        heartbeat: the worker's own stats are (a stuck worker loop goes silent there while this thread goes on)."""
        while not self.replica.worker.stopping:
            try:
                self.ingress.register.remote(self.id, self.info).result(timeout_s=5)
            except Exception as e:  # the ingress restarting: try again
                log.warning("replica %s: cannot reach the ingress (%s)", self.id, e)
            time.sleep(REGISTER_EVERY_S)

    def check_health(self) -> None:
        """Serve restarts a replica whose worker loop stopped or is stuck (the ingress has moved its sessions
        already: it goes by the worker's stats, not by this host's registrations)."""
        if not self.replica.thread.is_alive():
            raise RuntimeError("the worker loop stopped")
        stuck = self.replica.silent_for(time.time())
        if stuck > STUCK_AFTER_S:
            raise RuntimeError(f"the worker loop has not ticked for {stuck:.0f} s")

    def __del__(self):
        replica = getattr(self, "replica", None)
        if replica is not None:
            replica.stop()


def build_app(replicas: int = 2, audio_in: str = "tcp://127.0.0.1:5555", motion_out: str = "tcp://127.0.0.1:5556",
              control: str = "tcp://127.0.0.1:5557", worker_settings: dict | None = None, host: str | None = None,
              replica_cpus: float = 1.0, replica_gpus: float = 0.0, dead_after_s: float = 1.5,
              tiers: str | None = None, insecure: bool = False, ingress_on_head: bool = False):
    """The Serve application: `replicas` workers (each `replica_cpus` CPUs and `replica_gpus` GPUs: 0.25 puts
    four on one GPU) behind one ingress on these endpoints (`ingress_on_head`: on the cluster's head node, whose
    ports a Kubernetes Service can expose). `worker_settings`: WorkerConfig's fields (generator, tier, device...);
    the endpoints are the replicas' own."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    settings = {**(worker_settings or {}), "insecure": insecure}
    if tiers:
        settings["tiers"] = tiers
    WorkerConfig(**settings)  # a wrong setting fails here, not in every replica
    ingress = IngressDeployment
    if ingress_on_head:  # Ray's own resource of the head node
        ingress = ingress.options(ray_actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.01}})
    ingress = ingress.bind(audio_in, motion_out, control, dead_after_s, tiers, insecure)
    actor = {"num_cpus": replica_cpus, **({"num_gpus": replica_gpus} if replica_gpus else {})}
    return WorkerReplica.options(num_replicas=replicas, ray_actor_options=actor).bind(ingress, settings, host)


def start(app, address: str | None = None, ray_options: dict | None = None):
    """Ray (a local one, or the cluster at `address`), Serve without its HTTP proxy (clients speak ZeroMQ to the
    ingress), and the application; returns the ingress's handle once every replica has registered."""
    if not ray.is_initialized():
        ray.init(address=address, **(ray_options or {}))
    serve.start(proxy_location="Disabled")
    serve.run(app, name=APP_NAME, route_prefix=None)
    return serve.get_deployment_handle("IngressDeployment", APP_NAME)


def wait_for_replicas(ingress, count: int, timeout_s: float = 60.0) -> dict:
    """The ingress's stats once it knows `count` live replicas."""
    deadline = time.time() + timeout_s
    while True:
        stats = ingress.stats.remote().result()
        if len(stats["replicas"]) >= count:
            return stats
        if time.time() > deadline:
            raise RuntimeError(f"{len(stats['replicas'])} of {count} replicas registered within {timeout_s:g} s")
        time.sleep(0.2)
