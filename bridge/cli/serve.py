"""`backchannel serve`: the live worker, configured by flags and/or a TOML file (flags win)."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from pathlib import Path

from backchannel.bridge.cli.common import GENERATOR_HELP, json_object
from backchannel.bridge.cli.portrait import add_portrait_arguments
from backchannel.models.atomic import replacing

# every key a config file may set; each is also a flag (--audio-in for audio_in ...)
OUTPUT_KEYS = ("livelink", "vmc", "vmc_names", "vmc_session", "mic", "partner_device", "local_session", "device_rate",
               "ready_file", "ws", "ws_token", "ws_queue_kb", "portrait", "size", "framing", "landmarks", "renderer", "frame_format", "frame_quality")


def register(commands) -> None:
    p = commands.add_parser("serve", help="serve many avatar sessions over ZeroMQ, Live Link and VMC",
                            description="Audio in on a ZeroMQ PULL socket (protocol v1), motion out on PUB, control on "
                                        "REP; see engine_plugins/PROTOCOL.md. Any flag can also be set in --config.")
    p.add_argument("--config", metavar="FILE.toml", help="settings file; keys are the flag names with underscores")
    p.add_argument("--audio-in", metavar="ENDPOINT", help="ZeroMQ endpoint to bind for audio (default tcp://127.0.0.1:5555)")
    p.add_argument("--motion-out", metavar="ENDPOINT", help="ZeroMQ PUB endpoint (default tcp://127.0.0.1:5556)")
    p.add_argument("--control", metavar="ENDPOINT", help="ZeroMQ REP endpoint (default tcp://127.0.0.1:5557)")
    p.add_argument("--curve", metavar="DIR", help="ZeroMQ CURVE on every socket with the keys in DIR (backchannel "
                                                  "keys): encrypted, and only clients whose keys are there admitted")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="allow binding beyond loopback without --curve (anyone who reaches the ports may use it)")
    p.add_argument("--ws", metavar="HOST:PORT", help="also serve protocol v1 over WebSocket, and the live viewer page "
                                                     "at http://HOST:PORT/ (port 0: any free one)")
    p.add_argument("--ws-token", metavar="TOKEN", help="a secret every WebSocket client must show (?token=TOKEN): "
                                                       "16-128 of A-Z a-z 0-9 _ -")
    p.add_argument("--ws-queue-kb", type=int, metavar="KB", help="what may wait for one slow WebSocket client before "
                                                                  "its oldest messages are dropped (default 8192; "
                                                                  "replies may hold as much again)")
    p.add_argument("--livelink", metavar="HOST:PORT", help="also send Live Link Face UDP packets (Unreal's port is 11111)")
    p.add_argument("--vmc", metavar="HOST:PORT", help="also send VMC over OSC/UDP (VSeeFace listens on 39539)")
    p.add_argument("--vmc-names", choices=("arkit", "vrm0", "vrm1"),
                   help="VMC blend shape names: arkit (Perfect Sync), vrm0 presets or vrm1 expressions (default arkit)")
    p.add_argument("--vmc-session", metavar="NAME", help="send only this session over VMC (default: --local-session "
                                                         "with --mic, else all; * for all)")
    p.add_argument("--mic", metavar="DEVICE", help="capture this input device as the avatar's own voice")
    p.add_argument("--partner-device", metavar="DEVICE", help="capture this input device as the partner's voice")
    p.add_argument("--local-session", metavar="NAME", help="session name for --mic/--partner-device (default local)")
    p.add_argument("--device-rate", type=int, metavar="HZ", help="capture rate (default: each device's own)")
    p.add_argument("--generator", help="default for new sessions: " + GENERATOR_HELP)
    p.add_argument("--tier", metavar="NAME", help="pin the model's quality tier (calibration/tiers.toml: full, fast, "
                                                  "faster, baseline); default: the governor moves it with the load")
    p.add_argument("--tiers", metavar="FILE.toml", help="another tier table than calibration/tiers.toml")
    p.add_argument("--device", help="where the model runs: cpu (default), cuda or cuda:N (torch)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="the model's frame step precision (default fp32; others run on torch)")
    p.add_argument("--compile", choices=("off", "default", "reduce-overhead", "max-autotune"),
                   help="torch.compile the model's frame step, CUDA only (reduce-overhead: CUDA graphs)")
    p.add_argument("--generators", type=lambda text: tuple(filter(None, (s.strip() for s in text.split(",")))),
                   metavar="A,B", help="what sessions may choose besides the default, loaded at start (default: "
                                       "baseline); a client can never make the worker load a generator")
    p.add_argument("--seed", type=int, help="base seed: a session not given one gets it mixed with its name (default 0)")
    p.add_argument("--style", type=json_object, metavar="JSON", help='default style, e.g. {"expressiveness": 1.2}')
    p.add_argument("--jitter-ms", type=float, help="jitter deadline (default 40)")
    p.add_argument("--idle-timeout-s", type=float, help="close sessions silent this long (default 30)")
    p.add_argument("--max-message-bytes", type=int, help="larger audio messages are refused (default 1 MiB)")
    p.add_argument("--max-sessions", type=int, help="sessions served at once (default 1024)")
    p.add_argument("--max-subscribers", type=int, help="motion subscribers connected at once (default 64)")
    p.add_argument("--stats-interval-s", type=float, help="how often stats are published (default 1)")
    p.add_argument("--ready-file", metavar="FILE.json", help="write the bound endpoints here once serving")
    add_portrait_arguments(p, frames=True)
    p.set_defaults(func=serve_command)


def load_settings(args) -> tuple[dict, dict]:
    """(worker settings, output settings): config file first, then the flags that were given."""
    from backchannel.bridge.worker import WorkerConfig

    worker_keys = {f.name for f in fields(WorkerConfig)}
    settings: dict = {}
    if args.config:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            settings = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
        unknown = set(settings) - worker_keys - set(OUTPUT_KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown keys {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(worker_keys | set(OUTPUT_KEYS)))}")
        for key, value in settings.items():
            check_type(path, key, value)
        if "generators" in settings:
            settings["generators"] = tuple(settings["generators"])
    for key, value in vars(args).items():
        if value is not None and (key in worker_keys or key in OUTPUT_KEYS):
            settings[key] = value
    return ({k: v for k, v in settings.items() if k in worker_keys},
            {k: v for k, v in settings.items() if k in OUTPUT_KEYS})


# what each setting of a config file must be (the flags' own types check the command line)
SETTING_TYPES = {"seed": int, "ws_queue_kb": int, "max_message_bytes": int, "max_sessions": int, "max_subscribers": int, "pub_hwm": int, "device_rate": int,
                 "size": int, "frame_quality": int, "jitter_ms": float, "idle_timeout_s": float, "max_ahead_s": float,
                 "max_buffer_s": float, "stats_interval_s": float, "style": dict, "generators": list, "insecure": bool}


def check_type(path, key: str, value) -> None:
    """One line naming the key, at start: a wrong type would otherwise be accepted and fail every session later."""
    want = SETTING_TYPES.get(key, str)
    ok = type(value) is want or (want is float and type(value) is int)
    if want is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        kind = {float: "a number", int: "a whole number", dict: "a table", list: "a list of strings", bool: "true or "
                "false", str: "a string"}[want]
        raise ValueError(f"{path}: {key} must be {kind}, not {value!r:.60}")


def vmc_session(out: dict) -> str | None:
    """The one session VMC carries (None: all). With a local microphone, the avatar a VMC app shows is the local
    session's, and a stranger's session must not drive it; --vmc-session names another, "*" all."""
    only = out.get("vmc_session") or (out.get("local_session", "local") if out.get("mic") else None)
    if only is None:
        logging.getLogger("backchannel.worker").warning(
            "--vmc sends every session's frames: any client's session drives the avatar (--vmc-session NAME sends "
            "only one)")
    return None if only == "*" else only


def build_worker(args, generator_factory=None):
    """The worker, its outputs and local capture, as the flags and config file ask."""
    from backchannel.bridge.cli.portrait import settings as portrait_settings
    from backchannel.bridge.outputs.livelink import LiveLinkSink
    from backchannel.bridge.outputs.vmc import VmcSink
    from backchannel.bridge.worker import Worker, WorkerConfig
    from backchannel.models.generator import make_generator

    worker_settings, out = load_settings(args)
    sinks = []
    if out.get("livelink"):
        sinks.append(LiveLinkSink(out["livelink"]))
    if out.get("vmc"):
        sinks.append(VmcSink(out["vmc"], out.get("vmc_names", "arkit"), vmc_session(out)))
    portrait_settings(out)  # bad flags fail here, portrait or not; a bad portrait costs only the frames (below)
    worker = Worker(WorkerConfig(**worker_settings), generator_factory or make_generator, sinks)
    if out.get("portrait"):
        for sink in frame_sinks(worker, out):
            worker.add_sink(sink)
    captures = []
    try:
        if out.get("ws"):
            from backchannel.bridge.websocket import DoorConfig, WebSocketDoor, parse_address

            host, port = parse_address(out["ws"])
            door = WebSocketDoor(worker, DoorConfig(host, port, out.get("ws_token"), bool(worker.config.insecure),
                                                    1024 * out.get("ws_queue_kb", 8192)))
            door.start()
            worker.add_sink(door)  # its counters in the worker's stats; closed with the worker
            worker.endpoints["ws"] = door.url
        if out.get("mic") or out.get("partner_device"):
            from backchannel.bridge.devices import DeviceCapture

            for track, device in (("self", out.get("mic")), ("other", out.get("partner_device"))):
                if device:
                    captures.append(DeviceCapture(device, track, out.get("local_session", "local"),
                                                  worker.local_audio, worker.ctx, out.get("device_rate")))
    except Exception:
        for capture in captures:
            capture.close()
        worker.close()
        raise
    return worker, captures, out.get("ready_file")


def frame_sinks(worker, out: dict) -> list:
    """`<session>/frame` for every session when a portrait is set; none (motion only, an error logged) when the
    portrait cannot be used."""
    from backchannel.bridge.cli.portrait import open_renderer, settings
    from backchannel.bridge.outputs.frames import FrameEncoder, FrameSink

    try:
        renderer = open_renderer(out)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        logging.getLogger("backchannel.worker").error("no rendered frames: %s; serving motion only", e)
        return []
    s = settings(out)
    logging.getLogger("backchannel.worker").info("rendering %s at %d x %d as %s frames", s["portrait"],
                                                 renderer.size, renderer.size, s["frame_format"])
    # tiers that render smaller (calibration/tiers.toml frame_size) get the same portrait at their size
    sink = FrameSink(worker.pub, FrameEncoder(renderer, s["frame_format"], s["frame_quality"]),
                     resize=lambda size: open_renderer({**out, "size": size}))
    return [sink]


def serve_command(args, generator_factory=None) -> int:
    import signal

    worker, captures, ready_file = build_worker(args, generator_factory)

    def stop(signum, frame):
        worker.stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for capture in captures:  # a device that fails to start stops the others and the worker (finally)
            capture.start()
        if ready_file:
            with replacing(ready_file) as tmp:  # a reader never sees half a file
                tmp.write_text(json.dumps({**worker.endpoints, "pid": os.getpid()}))
        worker.run()
    finally:
        for capture in captures:
            capture.close()
        worker.shutdown()
        logging.getLogger("backchannel.worker").info("stopped after %d frames", worker.frames)
    return 0
