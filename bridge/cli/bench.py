"""`backchannel bench latency|capacity|contention|ingress|websocket|length|render`. latency, contention and
`capacity --sockets` stream real-time audio through a worker subprocess over real sockets (the measuring is in
latency.py, callable from Python too); capacity by default drives the generator's batched step in process for many
sessions, and ingress the scale-out ingress with many sessions' traffic (both loadgen.py); websocket compares the
WebSocket door with ZeroMQ on one worker; length feeds one generator stream an hour-scale conversation in process (CPU
per frame and memory growth, here); render times the portrait renderer (models/render/speed.py)."""
from __future__ import annotations

import math

from backchannel.bridge.cli.common import GENERATOR_HELP, GENERATOR_SPEC_HELP


def _audio(args):
    """The two tracks to stream: the given files (the shorter or missing one padded) or a synthetic dialogue."""
    from backchannel.bridge.latency import pad_tracks, synthetic_dialogue
    from backchannel.models.audio import SAMPLE_RATE, load_audio

    for flag, value in (("--seconds", args.seconds), ("--chunk-ms", args.chunk_ms)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{flag} {value:g}: give a number above 0")
    if args.self_audio or args.other_audio:
        a, b = pad_tracks(*(load_audio(path) if path else None for path in (args.self_audio, args.other_audio)))
        if args.seconds is not None:
            a, b = a[:int(args.seconds * SAMPLE_RATE)], b[:int(args.seconds * SAMPLE_RATE)]
        return a, b
    return synthetic_dialogue(20.0 if args.seconds is None else args.seconds)


def _fmt(p: dict) -> str:
    return f"p50 {p['p50']:6.1f}  p95 {p['p95']:6.1f}  p99 {p['p99']:6.1f}  max {p['max']:6.1f} ms"


def _capacity_line(r: dict) -> str:
    return (f"{r['sessions']:4d} sessions: fps min {r['fps_min']:5.1f} mean {r['fps_mean']:5.1f}  "
            f"end-to-end p50 {r['end_to_end_ms']['p50']:6.1f} p95 {r['end_to_end_ms']['p95']:6.1f} ms  "
            f"processing p95 {r['processing_ms']['p95']:6.1f} ms  worker CPU {r['worker_cpu_share'] * 100:5.1f}%  "
            f"{'holds 30 fps' if r['holds_30fps'] else 'FALLS BEHIND'}"
            f"{f', {m} frames missing' if (m := r.get('frames_missing')) else ''}"
            f"{'' if r['latency_ok'] else ', p95 over target'}")


def add_dialogue_arguments(p) -> None:
    """The two tracks a streaming bench sends (read by _audio)."""
    p.add_argument("--self", dest="self_audio", metavar="SELF.wav", help="default: a synthetic dialogue")
    p.add_argument("--other", dest="other_audio", metavar="OTHER.wav")


def register(commands) -> None:
    p = commands.add_parser("bench", help="measure latency, capacity, cost under load and over time")
    kinds = p.add_subparsers(dest="bench", metavar="KIND", required=True)
    for name, helptext in (("latency", "audio-in -> motion-out latency of one real-time session"),
                           ("capacity", "how many real-time sessions one generator (or, --sockets, one worker) "
                                        "holds at 30 fps")):
        k = kinds.add_parser(name, help=helptext, description=None if name == "latency" else CAPACITY_HELP)
        k.add_argument("--generator", help="the worker's " + (
            GENERATOR_SPEC_HELP + " (default: model in process, the worker's default with --sockets)"
            if name == "capacity" else GENERATOR_HELP))
        k.add_argument("--seconds", type=float, help="audio per session (default 20 for latency, 10 for capacity "
                                                     "over sockets, 5 in process)")
        k.add_argument("--chunk-ms", type=float, default=None if name == "capacity" else 20.0,
                       help="audio per message, as a game would send (default 20" +
                       ("; --sockets only: in process the load generator feeds 1/30 s ticks)" if name == "capacity"
                        else ")"))
        add_dialogue_arguments(k)
        if name == "capacity":
            k.add_argument("--sessions", help="comma-separated session counts to try (default 1,8,32,128 in "
                                              "process, 1,2,4,8,12,16 over sockets)")
            k.add_argument("--sockets", action="store_true", help="stream over ZeroMQ to a worker subprocess, "
                                                                  "timed by a real client (the realistic figure)")
            k.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda or cuda:N")
            k.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                           help="the model's frame step precision (not fp32: the torch backend)")
            k.add_argument("--compile", choices=("off", "default", "reduce-overhead", "max-autotune"), default="off",
                           help="torch.compile the frame step (CUDA only; reduce-overhead replays CUDA graphs)")
            k.add_argument("--json", metavar="FILE", help="also write the results here")
        k.set_defaults(func=latency_command if name == "latency" else capacity_command)
    w = kinds.add_parser("websocket", help="what the WebSocket door adds to latency, and many sessions on one connection",
                         description="One worker with --ws: one real-time session over ZeroMQ, then one over "
                                     "WebSocket, --rounds times in turn; then --sessions real-time sessions over one "
                                     "WebSocket connection.")
    w.add_argument("--generator", help="the worker's " + GENERATOR_HELP)
    w.add_argument("--sessions", type=int, default=16, help="sessions on one connection (default 16)")
    w.add_argument("--seconds", type=float, help="audio per session (default 20)")
    w.add_argument("--rounds", type=int, default=2, help="ZeroMQ / WebSocket turns of the one-session run")
    w.add_argument("--chunk-ms", type=float, default=20.0)
    add_dialogue_arguments(w)
    w.set_defaults(func=websocket_command)
    c = kinds.add_parser("contention", help="real-time sessions while a competing CPU load comes and goes",
                         description="Streams --sessions sessions in real time through a worker serving the model "
                                     "while, from --load-from to --load-to seconds, --hogs processes each keep a core "
                                     "busy; prints frames per second per session and the worker's tier every quarter "
                                     "second, and draws them (--png).")
    c.add_argument("--generator", default="model", help="the worker's " + GENERATOR_SPEC_HELP + " (default model)")
    c.add_argument("--sessions", type=int, default=4, help="real-time sessions streamed at once (default 4)")
    c.add_argument("--seconds", type=float, default=40.0, help="audio per session")
    c.add_argument("--load-from", type=float, default=10.0, help="seconds into the stream the load starts")
    c.add_argument("--load-to", type=float, default=25.0, help="seconds into the stream the load stops")
    c.add_argument("--hogs", type=int, default=1, help="busy processes (cores) of competing load")
    c.add_argument("--chunk-ms", type=float, default=20.0)
    add_dialogue_arguments(c)
    c.add_argument("--png", default="out/bench-contention.png", help="the picture of fps, tier and load over time")
    c.set_defaults(func=contention_command)
    g = kinds.add_parser("ingress", help="the scale-out ingress's CPU at many sessions' real-time traffic",
                         description="Runs the ingress (docs/scale.md) in a process of its own between stand-ins for "
                                     "a client and a replica, and sends each session's real-time traffic through "
                                     "it: 100 audio messages a second in, 30 motion messages a second out. Prints "
                                     "its CPU share, its time per message and whether every message came through.")
    g.add_argument("--sessions", default="64,256", help="comma-separated session counts (default 64,256)")
    g.add_argument("--seconds", type=float, default=5.0)
    g.set_defaults(func=ingress_command)
    n = kinds.add_parser("length", help="per-frame CPU and memory growth over one long conversation (no sockets)",
                         description="Feeds one generator stream a synthetic conversation in 1/30 s ticks, made "
                                     "10 s at a time, and prints per minute the CPU per frame and the process's "
                                     "resident memory (RSS), then how much RSS grew from the end of minute 1 to the "
                                     "end of the last: flat CPU and no growth mean the cost does not grow with the "
                                     "conversation. RSS itself includes the generator and its libraries.")
    n.add_argument("--generator", help=GENERATOR_HELP)
    n.add_argument("--minutes", type=float, default=10.0, help="length of the conversation (default 10, at least 2 "
                   "for a growth figure)")
    n.set_defaults(func=length_command)
    r = kinds.add_parser("render", help="portrait renderer frames per second at several sizes")
    r.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], metavar="N")
    r.add_argument("--frames", type=int, default=300, help="frames timed per size (default 300)")
    r.add_argument("--portrait", metavar="IMG", help="default: the bundled portrait")
    r.add_argument("--framing", choices=("image", "face"), default="face",
                   help="face (default) fills the frame with the head: the renderer's most expensive case")
    r.add_argument("--landmarks", metavar="JSON")
    r.add_argument("--renderer")
    r.add_argument("--quality", type=int, default=85, help="JPEG quality for the render+JPEG column")
    r.add_argument("--threads", type=int, help="OpenCV threads (default: OpenCV's choice)")
    r.add_argument("--json", metavar="FILE", help="also write the results here")
    r.set_defaults(func=render_command)


def latency_command(args) -> int:
    from backchannel.bridge.latency import measure_latency
    from backchannel.models.audio import SAMPLE_RATE

    a, b = _audio(args)
    r = measure_latency(a, b, args.generator, args.chunk_ms)
    print(f"generator {r['generator']} (look-ahead {r['lookahead_ms']:.0f} ms), {len(a) / SAMPLE_RATE:.1f} s "
          f"real time in {args.chunk_ms:g} ms chunks, {r['frames']} frames")
    print(f"  end-to-end  {_fmt(r['end_to_end_ms'])}   (includes the look-ahead)")
    print(f"  processing  {_fmt(r['processing_ms'])}")
    print(f"  worker clock: end-to-end p95 {r['server_end_to_end_ms']['p95']:.1f} ms, "
          f"processing p95 {r['server_processing_ms']['p95']:.1f} ms; "
          f"worker CPU {r['worker_cpu_per_audio_s'] * 100:.1f}% of a core")
    return 0


def websocket_command(args) -> int:
    from backchannel.bridge.latency import measure_websocket
    from backchannel.models.audio import SAMPLE_RATE

    if args.sessions < 1 or args.rounds < 1:
        raise ValueError("--sessions and --rounds must be >= 1")
    a, b = _audio(args)
    r = measure_websocket(a, b, args.sessions, args.generator, args.chunk_ms, args.rounds)
    print(f"generator {r['generator']} (look-ahead {r['lookahead_ms']:.0f} ms), {len(a) / SAMPLE_RATE:.1f} s real "
          f"time per session in {args.chunk_ms:g} ms chunks, {r['rounds']} rounds per door")
    for door, m in r["one_session"].items():
        print(f"  one session over {door:9s}  end-to-end {_fmt(m['end_to_end_ms'])}   processing p95 "
              f"{m['processing_ms']['p95']:6.1f} ms{f', {n} frames missing' if (n := m['frames_missing']) else ''}"
              f"{f', {n} frames twice' if (n := m['frames_repeated']) else ''}")
    added = r["added_p95_ms"]
    print(f"  WebSocket adds {added['end_to_end_ms']:+.1f} ms to the end-to-end p95 "
          f"({added['processing_ms']:+.1f} ms to processing p95)")
    for door, c in r["crowd"].items():
        print(f"  {c['sessions']} sessions over {'one WebSocket connection' if door == 'websocket' else 'ZeroMQ'}: "
              f"fps min {c['fps_min']:.1f} mean {c['fps_mean']:.1f}, end-to-end p95 {c['end_to_end_ms']['p95']:.1f} "
              f"ms, processing p95 {c['processing_ms']['p95']:.1f} ms, worker CPU {c['worker_cpu_share'] * 100:.1f}%"
              f"{f', {m} frames missing' if (m := c['frames_missing']) else ''}"
              f"{f', {m} frames twice' if (m := c['frames_repeated']) else ''}: "
              f"{'holds 30 fps' if c['holds_30fps'] else 'FALLS BEHIND'}")
    return 0


CAPACITY_HELP = ("In process (default): every session's next 1/30 s of audio goes through the generator's batched "
                 "step in one call per tick, no sockets and no client, and each tick is timed; a level holds 30 fps "
                 "when its ticks' p95 is within 1/30 s. --sockets: each session streamed in real time over ZeroMQ to "
                 "a worker subprocess and timed by the client, which shares the machine.")


def engine_options(args) -> dict:
    """The model's engine settings the flags give (left out where they are the defaults)."""
    given = {"device": args.device, "precision": args.precision, "compile": args.compile}
    return {k: v for k, v in given.items() if v != {"device": "cpu", "precision": "fp32", "compile": "off"}[k]}


def with_options(spec: str, options: dict) -> str:
    """A generator spec with these options added (they must not be given twice)."""
    from backchannel.models.generator import parse_spec

    if not options:
        return spec
    name, given = parse_spec(spec)
    twice = sorted(set(given) & set(options))
    if twice:
        raise ValueError(f"{', '.join(twice)} given both in --generator and as flags")
    return f"{name}[{';'.join(f'{k}={v}' for k, v in {**given, **options}.items())}]"


def capacity_command(args) -> int:
    from backchannel.bridge.latency import LATENCY_TARGET_MS, measure_capacity
    from backchannel.models.audio import SAMPLE_RATE

    if args.seconds is None:
        args.seconds = 10.0 if args.sockets else 5.0
    a, b = _audio(args)
    sessions = args.sessions or ("1,2,4,8,12,16" if args.sockets else "1,8,32,128")
    try:
        levels = [int(x) for x in sessions.split(",") if x.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise ValueError("--sessions: give positive counts, e.g. 1,2,4,8")
    options = engine_options(args)
    if options and parse_name(args.generator or "model") != "model":
        raise ValueError("--device, --precision and --compile are the model's: give --generator model (or leave "
                         "it out)")
    if not args.sockets:
        if args.chunk_ms is not None:
            raise ValueError("--chunk-ms is for --sockets: in process the load generator feeds each session "
                             "1/30 s ticks, with no messages to size")
        return in_process_capacity(args, a, b, levels, options)
    args.chunk_ms = args.chunk_ms or 20.0
    # the worker loads the model with them, every tier of it (`serve --device ...`: its governor stays on)
    flags = tuple(x for key, value in options.items() for x in (f"--{key}", value))
    print(f"{len(a) / SAMPLE_RATE:.1f} s real time per session, {args.chunk_ms:g} ms chunks")
    done = []

    def progress(r):  # each level written as it ends: a run stopped by a timeout keeps what it measured
        print(_capacity_line(r))
        done.append(r)
        if args.json:
            _write_json(args.json, {"mode": "sockets", "generator": args.generator, "rows": done})

    rows = measure_capacity(a, b, levels, args.generator or ("model" if options else None), args.chunk_ms,
                            progress=progress, worker_flags=flags)
    held = [r["sessions"] for r in rows if r["holds_30fps"]]
    both = [r["sessions"] for r in rows if r["holds_30fps"] and r["latency_ok"]]
    print(f"holds 30 fps up to {max(held) if held else 0} sessions; "
          f"with p95 end-to-end <= {LATENCY_TARGET_MS:.0f} ms up to {max(both) if both else 0}")
    if args.json:
        _write_json(args.json, {"mode": "sockets", "generator": args.generator, "rows": rows})
    return 0


def parse_name(spec: str) -> str:
    from backchannel.models.generator import parse_spec

    return parse_spec(spec)[0] if spec else ""


def _write_json(path, body: dict) -> None:
    import json
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(body, indent=1))


def _in_process_line(r: dict) -> str:
    t = r["tick_ms"]
    return (f"{r['sessions']:5d} sessions: tick p50 {t['p50']:7.2f} p95 {t['p95']:7.2f} max {t['max']:7.2f} ms  "
            f"{r['ms_per_frame']:6.3f} ms per session-frame  fps sustainable {r['fps_sustainable']:8.1f}  "
            f"CPU {r['cpu_share'] * 100:4.0f}%  {'holds 30 fps' if r['holds_30fps'] else 'FALLS BEHIND'}")


def in_process_capacity(args, a, b, levels: list[int], options: dict) -> int:
    import os
    import platform

    from backchannel.bridge.loadgen import TICK_BUDGET_MS, largest_holding, measure_in_process
    from backchannel.models.audio import SAMPLE_RATE
    from backchannel.models.cpus import usable_cpus

    generator = args.generator or "model"
    machine = f"{platform.processor() or platform.machine()}, {usable_cpus()} cores usable"
    if options.get("device", "cpu").startswith("cuda"):
        import torch

        if torch.cuda.is_available():  # else the generator says what is missing
            machine += f", {torch.cuda.get_device_name(torch.device(options['device']))}"
    shown = with_options(generator, options)
    print(f"in process, no sockets: {shown} on {machine}; {len(a) / SAMPLE_RATE:.1f} s of audio "
          f"per session in 1/30 s ticks (the first second left out); load average {os.getloadavg()[0]:.2f}")
    done = []

    def progress(r):  # each level written as it ends: a run stopped by a timeout keeps what it measured
        print(_in_process_line(r))
        done.append(r)
        if args.json:
            _write_json(args.json, {"mode": "in process", "generator": generator, "options": options,
                                    "machine": machine, "rows": done, "partial": True})

    rows = measure_in_process(a, b, levels, generator, progress=progress, **options)
    held, estimate = largest_holding(rows)
    print(f"{rows[0]['describe'].get('backend', generator)} backend: holds 30 fps (tick p95 <= {TICK_BUDGET_MS:.1f} "
          f"ms) up to {held} of the sessions tried"
          + (f"; about {estimate:.0f} where its p95 would cross the budget" if estimate is not None else ""))
    if args.json:
        _write_json(args.json, {"mode": "in process", "generator": generator, "options": options,
                                "machine": machine, "rows": rows, "largest_holding": held,
                                "estimated_largest": estimate})
    return 0


def ingress_command(args) -> int:
    import os

    from backchannel.bridge.loadgen import measure_ingress

    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise ValueError(f"--seconds {args.seconds:g}: give a number above 0")
    levels = [int(x) for x in args.sessions.split(",") if x.strip()]
    if not levels or min(levels) < 1:
        raise ValueError("--sessions: give positive counts, e.g. 64,256")
    print(f"ingress, {args.seconds:g} s per level, load average {os.getloadavg()[0]:.2f}")
    for n in levels:
        r = measure_ingress(n, args.seconds)
        print(f"{n:5d} sessions: ingress CPU {100 * r['cpu_share']:5.1f}% of a core, {r['us_per_message']:5.1f} us "
              f"per message, {'every message through' if r['lossless'] else 'LOST: sent %s, received %s, errors %s' % (r['sent'], r['received'], r['errors'])}")
    return 0


def render_command(args) -> int:
    import json
    import os

    import cv2

    from backchannel.models.cpus import usable_cpus
    from backchannel.models.render import BUNDLED_PORTRAIT
    from backchannel.models.render.portrait import find_landmarks, load_image
    from backchannel.models.render.speed import measure_render

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    path = args.portrait or BUNDLED_PORTRAIT
    image = load_image(path)
    landmarks = find_landmarks(image, path, args.landmarks)
    cores = usable_cpus()
    print(f"portrait {path} ({args.framing} framing), {args.frames} frames per size, {cores} cores, "
          f"OpenCV threads {cv2.getNumThreads()}, load average {os.getloadavg()[0]:.2f}")
    print("| size | setup ms | render fps | p50 ms | p95 ms | CPU ms/frame | render+JPEG fps | bare remap fps "
          "| render / remap |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(r: dict) -> None:
        print(f"| {r['size']} | {r['setup_ms']:.0f} | {r['fps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
              f"{r['cpu_ms_per_frame']:.2f} | {r['fps_with_jpeg']:.0f} | {r['bare_remap_fps']:.0f} | "
              f"{r['ratio_to_remap']:.1f}x |")

    results = measure_render(image, landmarks, args.sizes, args.frames, args.framing, args.renderer, args.quality,
                             progress=row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"portrait": str(path), "framing": args.framing, "frames": args.frames, "cores": cores,
                       "opencv_threads": cv2.getNumThreads(), "results": results}, f, indent=1)
    return 0


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def length_command(args) -> int:
    """One stream fed a long synthetic conversation a tick (1/30 s) at a time: CPU per frame and RSS minute by
    minute, and the growth of RSS from the end of minute 1 (generator loaded, stream warm) to the end of the last.
    The audio is made as it is fed, 10 s at a time: whole minutes of it (and their float64 temporaries) made RSS
    swing by 25 MB from minute to minute, hiding what the stream itself holds."""
    import math
    import time

    from backchannel.bridge.latency import synthetic_dialogue
    from backchannel.models.audio import SAMPLE_RATE
    from backchannel.models.generator import make_generator

    if not args.minutes > 0:
        raise ValueError(f"--minutes {args.minutes:g}: give a positive length")
    generator = make_generator(args.generator)
    stream = generator.open_stream(seed=0)
    tick = SAMPLE_RATE // 30
    print(f"generator {args.generator or generator.name}: {args.minutes:g} min fed {1000 * tick / SAMPLE_RATE:.1f} ms at a time")
    print("minute | CPU ms per frame | frames | RSS MB")
    rss = []
    for m in range(math.ceil(args.minutes)):
        frames, cpu = 0, 0.0
        for piece in range(6):
            seconds = min(10.0, args.minutes * 60 - m * 60 - piece * 10)
            if seconds <= 0:
                break
            a, b = synthetic_dialogue(seconds, seed=1 + 6 * m + piece)
            start = time.process_time()
            for i in range(0, len(a), tick):
                frames += len(stream.feed(a[i:i + tick], b[i:i + tick]))
            cpu += time.process_time() - start
        rss.append(_rss_mb())
        print(f"{m + 1:6d} | {1000 * cpu / max(frames, 1):16.2f} | {frames:6d} | {rss[-1]:6.0f}")
    if len(rss) > 1:
        print(f"RSS grew {rss[-1] - rss[0]:+.1f} MB from the end of minute 1 to the end of minute {len(rss)} "
              f"({(rss[-1] - rss[0]) / (len(rss) - 1):+.2f} MB a minute)")
    return 0


RAMP_S = 2.0  # bench contention: the sessions starting and their first full second of frames: in no phase


def contention_command(args) -> int:
    from pathlib import Path

    from backchannel.bridge.latency import measure_contention, plot_contention

    if args.sessions < 1 or args.hogs < 0:
        raise ValueError("--sessions must be >= 1 and --hogs >= 0")
    if not 0 <= args.load_from < args.load_to:
        raise ValueError("--load-from must be >= 0 and before --load-to")
    a, b = _audio(args)
    r = measure_contention(a, b, args.sessions, args.load_from, args.load_to, args.hogs, args.generator,
                           args.chunk_ms)
    for phase, rows in (("before the load", [x for x in r["timeline"] if RAMP_S <= x["t"] < args.load_from]),
                        ("under the load", [x for x in r["timeline"] if x["load"] and x["t"] >= RAMP_S]),
                        ("after the load", [x for x in r["timeline"] if x["t"] >= args.load_to])):
        if rows:
            slowest, mean = min(x["fps_min"] for x in rows), sum(x["fps"] for x in rows) / len(rows)
            tiers = ", ".join(dict.fromkeys(x["tier"] for x in rows))
            print(f"{phase:16s} fps of the slowest session min {slowest:5.1f}, of all sessions mean {mean:5.1f}  "
                  f"tiers {tiers}")
    for change in r["changes"]:
        print(f"  tier {change['from']} -> {change['to']}: {change['reason']}")
    print(f"end-to-end p95 {r['end_to_end_ms']['p95']:.1f} ms, {r['frames_missing']} frames missing")
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    plot_contention(r, args.png)
    print(f"wrote {args.png}")
    return 0
