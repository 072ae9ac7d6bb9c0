"""`backchannel scale`: many workers behind one ingress on Ray Serve (docs/scale.md; the `[scale]` extra)."""
from __future__ import annotations

import json

from backchannel.bridge.cli.common import GENERATOR_SPEC_HELP


def register(commands) -> None:
    p = commands.add_parser("scale", help="serve sessions from many workers on Ray Serve behind one ingress",
                            description="Starts (or joins, --address) a Ray cluster and runs --replicas workers as "
                                        "Ray Serve replicas behind one ZeroMQ ingress: clients use the ingress's "
                                        "endpoints exactly as a single worker's (protocol v1). Sessions stay on "
                                        "their replica; new ones go to the least loaded; a dead replica's sessions "
                                        "resume on the others. See docs/scale.md.")
    p.add_argument("--replicas", type=int, default=2, help="worker replicas (default 2)")
    p.add_argument("--address", help="a running Ray cluster (auto, or ray://HOST:10001); default: a local one")
    p.add_argument("--audio-in", default="tcp://127.0.0.1:5555", metavar="ENDPOINT")
    p.add_argument("--motion-out", default="tcp://127.0.0.1:5556", metavar="ENDPOINT")
    p.add_argument("--control", default="tcp://127.0.0.1:5557", metavar="ENDPOINT")
    p.add_argument("--insecure", action="store_true",
                   help="allow the ingress and replicas beyond loopback (no CURVE: a private network only)")
    p.add_argument("--host", help="the address replicas bind on (default 127.0.0.1; with --insecure their node's)")
    p.add_argument("--generator", help="the replicas' " + GENERATOR_SPEC_HELP +
                   " (default: the shipped default; model: tiers and load steer placement)")
    p.add_argument("--tier", metavar="NAME", help="pin the model's tier on every replica")
    p.add_argument("--tiers", metavar="FILE.toml", help="another tier table")
    p.add_argument("--device", help="where each replica runs the model: cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs Ray reserves per replica (default 1)")
    p.add_argument("--replica-gpus", type=float, default=0.0,
                   help="GPUs per replica (0.25: four replicas share one GPU)")
    p.add_argument("--dead-after-s", type=float, default=1.5,
                   help="a replica whose worker publishes no stats this long is dead: its sessions move (default 1.5)")
    p.add_argument("--ingress-on-head", action="store_true",
                   help="run the ingress on the cluster's head node (whose ports a Kubernetes Service exposes)")
    p.add_argument("--ready-file", metavar="FILE.json", help="write the ingress's endpoints here once serving")
    p.set_defaults(func=scale_command)


def scale_command(args) -> int:
    import signal
    import time

    import ray
    from ray import serve

    from backchannel.bridge.scaleout.ray_serve import build_app, start, wait_for_replicas
    from backchannel.models.atomic import replacing

    settings = {key: getattr(args, key) for key in ("generator", "tier", "device", "precision")
                if getattr(args, key) is not None}
    app = build_app(args.replicas, args.audio_in, args.motion_out, args.control, settings, args.host,
                    args.replica_cpus, args.replica_gpus, args.dead_after_s, args.tiers, args.insecure,
                    args.ingress_on_head)
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # either ends it as Ctrl-C does, the cluster shut down cleanly
        signal.signal(signum, lambda *_: stopping.append(True))
    ingress = start(app, args.address)
    try:
        stats = wait_for_replicas(ingress, args.replicas, timeout_s=300)
        endpoints = ingress.endpoints.remote().result()
        print(f"ingress: audio in {endpoints['audio_in']}, motion out {endpoints['motion_out']}, control "
              f"{endpoints['control']}; {len(stats['replicas'])} replicas", flush=True)
        if args.ready_file:
            with replacing(args.ready_file) as tmp:
                tmp.write_text(json.dumps(endpoints))
        while not stopping:
            time.sleep(0.2)
        return 0
    finally:
        serve.shutdown()
        ray.shutdown()
