"""Protocol v1 on the wire: audio in, control requests and replies, motion / latent / stats bodies out.

Every check that can reject a message lives here and raises ProtocolError with a `kind` from ERROR_KINDS, so the
worker can count failures per kind and a client can tell exactly what it got wrong. Unknown fields are ignored
(forward compatibility); a different `v` is refused. engine_plugins/PROTOCOL.md is the human-readable form.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import msgpack
import numpy as np

from backchannel.models.audio import PCM_FORMATS, check_rate, decode_pcm, encode_pcm
from backchannel.models.generator import Style
from backchannel.models.motion import (
    BLENDSHAPES,
    GAZE,
    HEAD_ROTATION,
    HEAD_TRANSLATION,
    STATES,
    MotionBlock,
    frame_time,
)

VERSION = 1
TRACKS = ("self", "other")
SESSION_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # no "/" (topics are "<session>/<kind>"), no leading "_"
WORKER_TOPIC = "_worker"  # the worker's own stats topic; the session rule keeps it out of session names
MAX_SEQ = 2 ** 63 - 1
TOKEN_RULE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # a session's owner token: long enough that guessing is hopeless
# the lanes of the worker's in-process socket for the WebSocket door (Worker.serve_door, bridge/websocket.py)
DOOR_AUDIO, DOOR_CONTROL = b"audio", b"control"
MAX_STYLE_KEYS = 32  # a style map holds a few knobs; a longer one is refused before anything is checked

# kind -> what the sender did wrong; every rejected message is counted under exactly one kind
ERROR_KINDS = {
    "oversize": "message larger than the worker's max_message_bytes",
    "not_msgpack": "bytes that are not one complete msgpack object (or strings that are not UTF-8)",
    "not_a_map": "msgpack, but not a map",
    "multipart": "a multipart ZeroMQ message where one frame was expected",
    "missing_field": "a required field is absent",
    "wrong_type": "a field has the wrong type (e.g. seq as a string, pcm as text)",
    "unsupported_version": "v is not a protocol version this worker speaks",
    "bad_type": "type is not a message type this socket takes",
    "bad_session": "session name outside 1-64 of [A-Za-z0-9_.-], first character a letter or digit",
    "unknown_track": "track is neither 'self' nor 'other'",
    "bad_seq": "seq negative or beyond 2**63-1",
    "bad_time": "t negative, not finite, too far ahead of the session, or jumping further ahead than real time allows",
    "bad_rate": "sample rate outside 4000..192000 Hz",
    "rate_changed": "a track changed its sample rate within a session",
    "bad_format": "format is neither 's16le' nor 'f32le'",
    "odd_bytes": "pcm is not a whole number of samples",
    "nan_samples": "f32le samples contain NaN or infinity",
    "duplicate": "a seq this track already delivered",
    "late": "audio older than the track's newest, for a time already played out",
    "buffer_full": "a track ran further ahead of its partner track than the buffer holds, or max_pending chunks "
                   "already wait for a hole",
    "too_many_sessions": "audio or open for a new session while the worker already serves max_sessions",
    "unknown_request": "control request type the worker does not know",
    "unknown_session": "control request names a session that is not open",
    "not_owner": "audio, end or a control request for a session its client owns, without that client's token",
    "bad_token": "token outside 16-128 of [A-Za-z0-9_-]",
    "session_exists": "open for a session that is already open",
    "bad_generator": "generator name not known to this worker",
    "bad_style": "style is not a map of numbers, or a knob is outside its range",
    "bad_seed": "seed is not a whole number >= 0",
    "generator_error": "the generator failed: on this session's audio (the session was closed), or to open a stream "
                       "for open / set (the request was refused and nothing changed)",
    "session_failed": "audio or a request for a session closed after a failure, before its client sent end or open",
    "bad_subscription": "a WebSocket subscribe names a topic other than motion, latent, frame and stats, more "
                        "than 4096 sessions, or more than 4096 session-topic pairs on one connection",
    "internal_error": "the worker failed on this message (a bug: the log has the trace); nothing else is affected",
    "no_replica": "a scale-out ingress (docs/scale.md) has no live replica for the session, or its replica did not "
                  "answer",
}


class ProtocolError(ValueError):
    def __init__(self, kind: str, message: str, session: str | None = None):
        assert kind in ERROR_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.session = session  # the session a refused audio message named, where its name was valid


@dataclass
class AudioChunk:
    """One validated audio message: float32 samples at the sender's rate, placed at `t` seconds of session audio."""

    session: str
    track: str
    seq: int
    t: float
    rate: int
    samples: np.ndarray
    token: str | None = None  # the owner's token, when the client uses one

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


def unpack_map(raw: bytes, max_bytes: int, max_array_len: int = 256) -> dict:
    if len(raw) > max_bytes:
        raise ProtocolError("oversize", f"{len(raw)} bytes is over the limit of {max_bytes}")
    try:
        # no message of the protocol holds more than a few dozen items or long strings: the limits make msgpack
        # refuse a container header claiming a million items before it builds anything
        msg = msgpack.unpackb(raw, raw=False, max_str_len=4096, max_bin_len=max_bytes, max_array_len=max_array_len,
                              max_map_len=64, max_ext_len=0)
    except Exception as e:  # msgpack raises several types (ExtraData, FormatError, UnicodeDecodeError...)
        raise ProtocolError("not_msgpack", f"cannot decode msgpack: {type(e).__name__}: {str(e)[:80]}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("not_a_map", f"expected a msgpack map, got {type(msg).__name__}")
    return msg


def _field(msg: dict, name: str, types: type | tuple, what: str):
    if name not in msg:
        raise ProtocolError("missing_field", f"missing field {name!r}")
    value = msg[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise ProtocolError("wrong_type", f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_version(msg: dict) -> None:
    v = _field(msg, "v", int, "an integer")
    if v != VERSION:
        raise ProtocolError("unsupported_version", f"protocol version {v} is not supported (this worker speaks {VERSION})")


def check_session(name) -> str:
    if not isinstance(name, str):
        raise ProtocolError("wrong_type", f"session must be a string, got {type(name).__name__}")
    if not SESSION_RULE.fullmatch(name):
        raise ProtocolError("bad_session", f"session {name[:80]!r} must be 1-64 of [A-Za-z0-9_.-] starting with a letter or digit")
    return name


def check_token(msg: dict) -> str | None:
    """The optional `token` field: who owns a session (see the worker's ownership rule)."""
    if msg.get("token") is None:
        return None
    token = _field(msg, "token", str, "a string")
    if not TOKEN_RULE.fullmatch(token):
        raise ProtocolError("bad_token", "token must be 16-128 of [A-Za-z0-9_-]")
    return token


@dataclass
class EndOfAudio:
    """The sender's last message for a session: the worker closes it once everything before it arrived."""

    session: str
    token: str | None = None


def parse_audio(raw: bytes, max_bytes: int) -> AudioChunk | EndOfAudio:
    msg = unpack_map(raw, max_bytes)
    check_version(msg)
    kind = _field(msg, "type", str, "a string")
    if kind not in ("audio", "end"):
        raise ProtocolError("bad_type", f"type {kind[:40]!r} on the audio socket (expected 'audio' or 'end')")
    session = check_session(_field(msg, "session", str, "a string"))
    try:
        if kind == "end":
            return EndOfAudio(session, check_token(msg))
        return _parse_chunk(msg, session)
    except ProtocolError as e:
        e.session = session
        raise


def _parse_chunk(msg: dict, session: str) -> AudioChunk:
    track = _field(msg, "track", str, "a string")
    if track not in TRACKS:
        raise ProtocolError("unknown_track", f"track {track[:40]!r} is neither 'self' nor 'other'")
    seq = _field(msg, "seq", int, "an integer")
    if not 0 <= seq <= MAX_SEQ:
        raise ProtocolError("bad_seq", f"seq {seq} is outside 0..2**63-1")
    t = float(_field(msg, "t", (int, float), "a number"))
    if not (math.isfinite(t) and t >= 0):
        raise ProtocolError("bad_time", f"t={t} must be a finite number of seconds >= 0")
    sr = _field(msg, "sr", int, "an integer")
    try:
        rate = check_rate(sr)
    except ValueError as e:
        raise ProtocolError("bad_rate", str(e)) from None
    fmt = _field(msg, "format", str, "a string")
    if fmt not in PCM_FORMATS:
        raise ProtocolError("bad_format", f"format {fmt[:40]!r} is not one of {sorted(PCM_FORMATS)}")
    pcm = _field(msg, "pcm", bytes, "bytes (msgpack bin)")
    if len(pcm) % PCM_FORMATS[fmt].itemsize:
        raise ProtocolError("odd_bytes", f"{len(pcm)} bytes is not a whole number of {fmt} samples")
    try:
        samples = decode_pcm(pcm, fmt)
    except ValueError as e:  # the only failure left once the format and length are checked
        raise ProtocolError("nan_samples", str(e)) from None
    return AudioChunk(session, track, seq, t, rate, samples, check_token(msg))


def audio_message(session: str, track: str, seq: int, t: float, samples: np.ndarray | bytes, rate: int,
                  fmt: str = "s16le", token: str | None = None) -> bytes:
    """The bytes of one audio message (what a game sends): float samples, or PCM bytes already in `fmt`."""
    pcm = samples if isinstance(samples, bytes) else encode_pcm(samples, fmt)
    return msgpack.packb({"v": VERSION, "type": "audio", "session": session, "track": track, "seq": seq,
                          "t": float(t), "sr": rate, "format": fmt, "pcm": pcm, **({"token": token} if token else {})})


def end_message(session: str, token: str | None = None) -> bytes:
    return msgpack.packb({"v": VERSION, "type": "end", "session": session, **({"token": token} if token else {})})


# --- control (REQ/REP) ----------------------------------------------------------------------------------------------

CONTROL_TYPES = ("describe", "open", "close", "set", "stats")


def parse_control(raw: bytes, max_bytes: int = 1 << 16) -> dict:
    """A validated control request: {"type", "session"?, "token"?, "generator"?, "seed"?, "style"?}."""
    msg = unpack_map(raw, max_bytes)
    check_version(msg)
    kind = _field(msg, "type", str, "a string")
    if kind not in CONTROL_TYPES:
        raise ProtocolError("unknown_request", f"unknown request {kind[:40]!r}; one of {', '.join(CONTROL_TYPES)}")
    req = {"type": kind}
    if kind in ("open", "close", "set") or (kind == "stats" and "session" in msg):
        req["session"] = check_session(_field(msg, "session", str, "a string"))
        if (token := check_token(msg)) is not None:
            req["token"] = token
    if kind in ("open", "set"):
        if msg.get("generator") is not None:
            req["generator"] = _field(msg, "generator", str, "a string")
        if "seed" in msg:
            req["seed"] = check_seed(msg["seed"])
        if "style" in msg:
            req["style"] = check_style(msg["style"])
    return req


def check_seed(seed) -> int:
    """A generator seed: a whole number >= 0 (what numpy's random generators take)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ProtocolError("bad_seed", f"seed must be a whole number >= 0, got {seed!r:.40}")
    return seed


def check_style(style) -> dict:
    """A style: a map of names to finite numbers, the known knobs within their ranges (models/generator.py Style).
    Only the known knobs are kept: what a session echoes in its stats is bounded, whatever a client sends."""
    if isinstance(style, dict) and len(style) > MAX_STYLE_KEYS:
        raise ProtocolError("bad_style", f"style has {len(style)} entries; at most {MAX_STYLE_KEYS}")
    if not isinstance(style, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in style.items()):
        raise ProtocolError("bad_style", f"style must be a map of names to finite numbers, got {style!r:.80}")
    style = {k: v for k, v in style.items() if k in Style.RANGES}
    try:
        Style.from_dict(style)
    except ValueError as e:
        raise ProtocolError("bad_style", str(e)) from None
    return style


def control_request(kind: str, **fields) -> bytes:
    return msgpack.packb({"v": VERSION, "type": kind, **fields})


def reply_ok(**fields) -> bytes:
    return msgpack.packb({"v": VERSION, "ok": True, **fields})


def reply_error(error: ProtocolError) -> bytes:
    return msgpack.packb({"v": VERSION, "ok": False, "error": error.kind, "message": str(error)})


# --- motion out (PUB) -----------------------------------------------------------------------------------------------

def topic(session: str, kind: str) -> bytes:
    return f"{session}/{kind}".encode()


def motion_bodies(block: MotionBlock, published: float, arrived: list[float], ready: float,
                  upto: float) -> list[bytes]:
    """One msgpack body per frame. `arrived[i]`: wall time the audio at frame i's own time first reached the worker;
    `ready`: wall time the audio whose release let these frames out was there (the newest chunk's arrival, or the
    jitter deadline that concealed a late track); `upto`: seconds of session audio released when they went out."""
    rows = block.motion.tolist()
    bodies = []
    for i, row in enumerate(rows):
        seq = block.first + i
        bodies.append(msgpack.packb({
            "v": VERSION, "seq": seq, "t": frame_time(seq), "state": STATES[block.state[i]],
            "blendshapes": row[BLENDSHAPES], "head_rotation": row[HEAD_ROTATION],
            "head_translation": row[HEAD_TRANSLATION], "gaze": row[GAZE],
            "published": published, "audio_arrived": arrived[i], "audio_ready": ready, "audio_upto": upto,
        }))
    return bodies


def latent_bodies(block: MotionBlock, published: float) -> list[bytes]:
    return [msgpack.packb({"v": VERSION, "seq": block.first + i, "t": frame_time(block.first + i),
                           "latent": row, "published": published})
            for i, row in enumerate(block.latent.tolist())]


FRAME_FORMATS = ("jpeg", "rgb24")  # `<session>/frame` encodings


def frame_body(seq: int, state: int, fmt: str, width: int, height: int, data: bytes, rendered: float) -> dict:
    """One rendered frame, unpacked (its publisher adds `published` and packs it). "rgb24" data is raw rows top to
    bottom, 3 bytes a pixel, width * height * 3 bytes in all."""
    return {"v": VERSION, "seq": seq, "t": float(frame_time(seq)), "state": STATES[state], "format": fmt,
            "width": width, "height": height, "data": data, "rendered": rendered}


def pack(body: dict) -> bytes:
    return msgpack.packb({"v": VERSION, **body})


def unpack(raw: bytes) -> dict:
    return msgpack.unpackb(raw, raw=False)
