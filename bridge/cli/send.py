"""`backchannel send`: the reference client. Streams two audio files to a worker the way a game streams its
voice chat: both tracks in chunks, each chunk with its track's seq and its time `t`, optionally in real time, then
an `end` message so the worker publishes the last frames. `--out` records the motion that comes back."""
from __future__ import annotations

import time
from pathlib import Path

from backchannel.bridge.cli.run import add_audio_arguments, audio_sources


def register(commands) -> None:
    p = commands.add_parser("send", help="stream two audio files to a worker, as a game would")
    p.add_argument("--to", default="tcp://127.0.0.1:5555", metavar="ENDPOINT", help="the worker's audio endpoint")
    p.add_argument("--session", required=True, metavar="NAME")
    add_audio_arguments(p, required=False)
    p.add_argument("--realtime", action="store_true", help="pace chunks at the audio's own speed")
    p.add_argument("--chunk-ms", type=float, default=20.0)
    p.add_argument("--rate", type=int, default=16000, help="sample rate on the wire (files are resampled to it)")
    p.add_argument("--format", choices=("s16le", "f32le"), default="s16le")
    p.add_argument("--out", metavar="motion.jsonl|.csv|.npz", help="record the motion the worker publishes")
    p.add_argument("--motion-out", default="tcp://127.0.0.1:5556", metavar="ENDPOINT",
                   help="the worker's motion endpoint (for --out)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for a worker that does not take audio, and for the last frames (with --out)")
    p.add_argument("--seed", type=int, help="open the session with this seed (default: the worker's, mixed with the "
                                            "session's name, as for any session opened by its first audio)")
    p.add_argument("--control", default="tcp://127.0.0.1:5557", metavar="ENDPOINT",
                   help="the worker's control endpoint (for --seed)")
    p.add_argument("--token", metavar="TOKEN", help="the session's owner token (16-128 of A-Z a-z 0-9 _ -; default: a "
                                                    "new one): the worker refuses this session's audio without it")
    add_key_arguments(p)
    p.set_defaults(func=send_command)


def add_key_arguments(p) -> None:
    p.add_argument("--server-key", metavar="server.key", help="the worker's public key, for a worker run with --curve")
    p.add_argument("--client-key", metavar="NAME.key_secret", help="this client's key pair (backchannel keys)")


def keys_from(args) -> tuple | None:
    if bool(args.server_key) != bool(args.client_key):
        raise ValueError("--server-key and --client-key go together")
    return (args.server_key, args.client_key) if args.server_key else None


def send_command(args) -> int:
    from backchannel.models.atomic import sigterm_exits

    with sigterm_exits():  # a `kill` ends it as Ctrl-C does: no half-written --out under its name
        return send_files(args)


def send_files(args) -> int:
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
    if args.token is None:
        import secrets

        args.token = secrets.token_urlsafe(24)
    elif not protocol.TOKEN_RULE.fullmatch(args.token):
        raise ValueError("--token must be 16-128 of A-Z a-z 0-9 _ -")
    args.keys = keys_from(args)
    sources = audio_sources(args)
    tracks = {track: load_audio(path, args.rate, channel) for track, (path, channel) in sources.items()}
    chunks = audio_chunks(args.session, tracks, args.rate, args.chunk_ms, args.format, args.token)
    # its own context, terminated at the end: that waits (LINGER) until the last messages have left
    ctx = zmq.Context()
    try:
        return stream(args, ctx, tracks, chunks)
    finally:
        ctx.destroy(linger=5000)


def stream(args, ctx, tracks: dict, chunks: list) -> int:
    import zmq

    from backchannel.bridge import protocol
    from backchannel.bridge.client import MotionReceiver, send_chunks
    from backchannel.bridge.outputs.files import write_motion
    from backchannel.bridge.security import connect_with_keys

    receiver = None
    if args.out:
        receiver = MotionReceiver(args.motion_out, [args.session], ctx, args.keys)
        receiver.wait_ready()
        received = Collected(receiver, args.session, args.timeout)
    push = ctx.socket(zmq.PUSH)
    if args.keys:
        connect_with_keys(push, *args.keys)
    push.setsockopt(zmq.LINGER, 5000)
    # queue only on a connection that is up, and give up after --timeout: with no worker there, send would block
    # for ever once its queue filled, or report a short file sent into nothing
    push.setsockopt(zmq.IMMEDIATE, 1)
    push.setsockopt(zmq.SNDTIMEO, int(args.timeout * 1000))
    push.connect(args.to)
    if args.seed is not None:  # opened first, with this client's token: its audio then finds the session seeded
        from backchannel.bridge.client import ControlClient

        with ControlClient(args.control, args.timeout, ctx, args.keys) as control:
            control.call("open", session=args.session, seed=args.seed, token=args.token)
    seconds = max(len(a) for a in tracks.values()) / args.rate
    start = time.time()
    try:
        # after a worker restart, the motion subscriber reconnects before the backlog goes out (its frames would be
        # published before anyone listened)
        send_chunks(push, chunks, args.realtime, progress=True, after_stall=received.reconnected if receiver else None)
        push.send(protocol.end_message(args.session, args.token))
    except zmq.Again:
        raise RuntimeError(f"no worker took audio at {args.to} for {args.timeout:g} s (is `backchannel serve` "
                           "running there?)") from None
    print(f"sent {seconds:.2f} s of audio ({', '.join(tracks)}) as {len(chunks)} chunks to {args.to} "
          f"in {time.time() - start:.2f} s")
    if receiver:
        received.until_closed()
        receiver.close()
        if received.closed is None:
            raise RuntimeError(f"the session did not close within {args.timeout:g} s ({len(received.bodies)} frames "
                               "so far)")
        block, missing = frames_with_gaps(received.bodies)
        closed = received.closed
        print(f"wrote {write_motion(args.out, block)} ({len(block)} frames)")
        if missing:  # a worker restarted mid-stream (the session resumed on the new one), or a full PUB queue
            print(f"{missing} frames never arrived (the worker restarted, or dropped them): each holds the frame "
                  "before it")
        errors = closed.get("errors")
        if errors:
            print(f"the worker rejected some input: {errors}")
    return 0


class Collected:
    """The session's motion and its closing stats, read from the receiver while and after the audio goes out."""

    def __init__(self, receiver, session: str, timeout_s: float):
        self.receiver, self.session, self.timeout_s = receiver, session, timeout_s
        self.bodies: list[dict] = []
        self.closed: dict | None = None

    def take(self, msg) -> None:
        if msg is None or msg.session != self.session:
            return
        if msg.kind == "motion":
            self.bodies.append(msg.body)
        elif msg.kind == "stats" and msg.body.get("closed"):
            self.closed = msg.body

    def reconnected(self) -> None:
        """After the worker was away: keep what arrives until its stats show the subscription is back."""
        from backchannel.bridge import protocol

        deadline = time.time() + self.timeout_s
        while time.time() < deadline:
            msg = self.receiver.receive(deadline - time.time())
            if msg is not None and msg.session == protocol.WORKER_TOPIC:
                return
            self.take(msg)

    def until_closed(self) -> None:
        deadline = time.time() + self.timeout_s
        while self.closed is None and time.time() < deadline:
            self.take(self.receiver.receive(deadline - time.time()))


def frames_with_gaps(bodies: list[dict]):
    """Motion bodies as one block from the first frame to the last: duplicates (a resumed session's) once, and a
    frame that never came holding the one before it. Returns the block and how many frames were missing."""
    from backchannel.bridge.client import frames_to_block

    by_seq = {body["seq"]: body for body in bodies}
    if not by_seq:
        return frames_to_block([]), 0
    first, last = min(by_seq), max(by_seq)
    filled, missing = [], 0
    for seq in range(first, last + 1):
        if seq not in by_seq:
            missing += 1
        filled.append({**(by_seq.get(seq) or filled[-1]), "seq": seq})
    return frames_to_block(filled), missing
