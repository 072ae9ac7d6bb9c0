"""`backchannel send`: the reference client. Streams two audio files to a worker the way a game streams its
voice chat: both tracks in chunks, each chunk with its track's seq and its time `t`, optionally in real time, then
an `end` message so the worker publishes the last frames. `--out` records the motion that comes back."""
from __future__ import annotations

import time
from pathlib import Path


def register(commands) -> None:
    p = commands.add_parser("send", help="stream two audio files to a worker, as a game would")
    p.add_argument("--to", default="tcp://127.0.0.1:5555", metavar="ENDPOINT", help="the worker's audio endpoint")
    p.add_argument("--session", required=True, metavar="NAME")
    p.add_argument("--self", dest="self_audio", metavar="SELF.wav", help="the avatar's own voice")
    p.add_argument("--other", dest="other_audio", metavar="OTHER.wav", help="the partner's voice")
    p.add_argument("--realtime", action="store_true", help="pace chunks at the audio's own speed")
    p.add_argument("--chunk-ms", type=float, default=20.0)
    p.add_argument("--rate", type=int, default=16000, help="sample rate on the wire (files are resampled to it)")
    p.add_argument("--format", choices=("s16le", "f32le"), default="s16le")
    p.add_argument("--out", metavar="motion.jsonl|.csv|.npz", help="record the motion the worker publishes")
    p.add_argument("--motion-out", default="tcp://127.0.0.1:5556", metavar="ENDPOINT",
                   help="the worker's motion endpoint (for --out)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the last frames (with --out)")
    p.set_defaults(func=send_command)


def send_command(args) -> int:
    import zmq

    from backchannel.bridge import protocol
    from backchannel.bridge.client import audio_chunks
    from backchannel.bridge.outputs.files import FORMATS
    from backchannel.models.audio import check_rate, load_audio

    if not (args.self_audio or args.other_audio):
        raise ValueError("give --self and/or --other")
    protocol.check_session(args.session)
    check_rate(args.rate)
    if args.out and Path(args.out).suffix.lower() not in FORMATS:  # before the stream, not after it
        raise ValueError(f"--out {args.out}: use one of {', '.join(FORMATS)}")
    tracks = {track: load_audio(path, args.rate) for track, path in (("self", args.self_audio),
                                                                     ("other", args.other_audio)) if path}
    chunks = audio_chunks(args.session, tracks, args.rate, args.chunk_ms, args.format)
    # its own context, terminated at the end: that waits (LINGER) until the last messages have left
    ctx = zmq.Context()
    try:
        return stream(args, ctx, tracks, chunks)
    finally:
        ctx.destroy(linger=5000)


def stream(args, ctx, tracks: dict, chunks: list) -> int:
    import zmq

    from backchannel.bridge import protocol
    from backchannel.bridge.client import MotionReceiver, frames_to_block, send_chunks
    from backchannel.bridge.outputs.files import write_motion

    receiver = None
    if args.out:
        receiver = MotionReceiver(args.motion_out, [args.session], ctx)
        receiver.wait_ready()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)
    # queue only on a connection that is up, and give up after --timeout: with no worker there, send would block
    # for ever once its queue filled, or report a short file sent into nothing
    push.setsockopt(zmq.IMMEDIATE, 1)
    push.setsockopt(zmq.SNDTIMEO, int(args.timeout * 1000))
    push.connect(args.to)
    seconds = max(len(a) for a in tracks.values()) / args.rate
    start = time.time()
    try:
        send_chunks(push, chunks, args.realtime, progress=True)
        push.send(protocol.end_message(args.session))
    except zmq.Again:
        raise RuntimeError(f"no worker took audio at {args.to} for {args.timeout:g} s (is `backchannel serve` "
                           "running there?)") from None
    print(f"sent {seconds:.2f} s of audio ({', '.join(tracks)}) as {len(chunks)} chunks to {args.to} "
          f"in {time.time() - start:.2f} s")
    if receiver:
        bodies, closed = [], None
        deadline = time.time() + args.timeout
        while closed is None and time.time() < deadline:
            msg = receiver.receive(deadline - time.time())
            if msg is None or msg.session != args.session:
                continue
            if msg.kind == "motion":
                bodies.append(msg.body)
            elif msg.kind == "stats" and msg.body.get("closed"):
                closed = msg.body
        receiver.close()
        if closed is None:
            raise RuntimeError(f"the session did not close within {args.timeout:g} s ({len(bodies)} frames so far)")
        block = frames_to_block(bodies)
        if len(block) != closed["frames"]:
            raise RuntimeError(f"received {len(block)} of the {closed['frames']} frames published (dropped by a "
                               "full PUB queue?)")
        print(f"wrote {write_motion(args.out, block)} ({len(block)} frames)")
        errors = closed.get("errors")
        if errors:
            print(f"the worker rejected some input: {errors}")
    return 0
