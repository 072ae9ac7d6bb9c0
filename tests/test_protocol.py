import math

import msgpack
import numpy as np
import pytest

from backchannel.bridge import protocol
from backchannel.bridge.protocol import ERROR_KINDS, AudioChunk, EndOfAudio, ProtocolError, parse_audio, parse_control

LIMIT = 1 << 16


def good(**changes) -> dict:
    msg = {"v": 1, "type": "audio", "session": "npc-7", "track": "self", "seq": 3, "t": 0.06, "sr": 48000,
           "format": "s16le", "pcm": np.arange(-4, 4, dtype="<i2").tobytes()}
    msg.update(changes)
    return {k: v for k, v in msg.items() if v is not DROP}


DROP = object()


def test_a_good_message_decodes_and_unknown_fields_are_ignored():
    chunk = parse_audio(msgpack.packb(good(future_field={"x": 1}, priority=5)), LIMIT)
    assert isinstance(chunk, AudioChunk)
    assert (chunk.session, chunk.track, chunk.seq, chunk.t, chunk.rate) == ("npc-7", "self", 3, 0.06, 48000)
    np.testing.assert_allclose(chunk.samples, np.arange(-4, 4) / 32768)
    assert chunk.duration == 8 / 48000


def test_the_helpers_write_what_the_parser_reads():
    x = np.linspace(-0.5, 0.5, 160, dtype=np.float32)
    chunk = parse_audio(protocol.audio_message("a", "other", 9, 1.5, x, 16000, "f32le"), LIMIT)
    assert (chunk.track, chunk.seq, chunk.t) == ("other", 9, 1.5)
    np.testing.assert_array_equal(chunk.samples, x)
    assert parse_audio(protocol.end_message("a"), LIMIT) == EndOfAudio("a")


BAD = {
    "oversize": msgpack.packb(good(pcm=bytes(LIMIT))),
    "not_msgpack": b"\xc1\xc1 definitely not msgpack",
    "not_a_map": msgpack.packb([1, "audio", "npc"]),
    "missing_field": msgpack.packb(good(seq=DROP)),
    "wrong_type": msgpack.packb(good(seq="3")),
    "unsupported_version": msgpack.packb(good(v=2)),
    "bad_type": msgpack.packb(good(type="video")),
    "bad_session": msgpack.packb(good(session="a/b")),
    "unknown_track": msgpack.packb(good(track="narrator")),
    "bad_seq": msgpack.packb(good(seq=-1)),
    "bad_time": msgpack.packb(good(t=math.nan)),
    "bad_rate": msgpack.packb(good(sr=100)),
    "bad_format": msgpack.packb(good(format="mp3")),
    "odd_bytes": msgpack.packb(good(pcm=b"\x01\x02\x03")),
    "nan_samples": msgpack.packb(good(format="f32le", pcm=np.array([0.1, np.nan], "<f4").tobytes())),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_each_malformed_message_is_refused_with_its_own_kind(kind):
    with pytest.raises(ProtocolError) as e:
        parse_audio(BAD[kind], LIMIT)
    assert e.value.kind == kind and kind in ERROR_KINDS
    assert str(e.value)  # says what was wrong


@pytest.mark.parametrize("changes, kind", [
    ({"pcm": "text, not bytes"}, "wrong_type"),
    ({"t": -0.5}, "bad_time"),
    ({"t": math.inf}, "bad_time"),
    ({"sr": 10 ** 7}, "bad_rate"),
    ({"sr": 16000.0}, "wrong_type"),
    ({"seq": True}, "wrong_type"),
    ({"seq": 2 ** 64 - 1}, "bad_seq"),
    ({"session": ""}, "bad_session"),
    ({"session": "_worker"}, "bad_session"),
    ({"session": "x" * 65}, "bad_session"),
    ({"session": 7}, "wrong_type"),
    ({"v": DROP}, "missing_field"),
])
def test_field_checks(changes, kind):
    with pytest.raises(ProtocolError) as e:
        parse_audio(msgpack.packb(good(**changes)), LIMIT)
    assert e.value.kind == kind


def test_invalid_utf8_and_trailing_bytes_are_not_msgpack():
    for raw in (b"\xa3\xff\xfe\xfd", msgpack.packb(good()) + b"\x00"):
        with pytest.raises(ProtocolError) as e:
            parse_audio(raw, LIMIT)
        assert e.value.kind == "not_msgpack"


def test_control_requests():
    assert parse_control(protocol.control_request("describe")) == {"type": "describe"}
    req = parse_control(protocol.control_request("open", session="a", generator="energy", seed=4,
                                                 style={"smile": 0.5}, extra="ignored"))
    assert req == {"type": "open", "session": "a", "generator": "energy", "seed": 4, "style": {"smile": 0.5}}
    assert parse_control(protocol.control_request("stats")) == {"type": "stats"}
    for raw, kind in [
        (protocol.control_request("reboot"), "unknown_request"),
        (protocol.control_request("open"), "missing_field"),
        (protocol.control_request("open", session="a", seed="x"), "bad_seed"),
        (protocol.control_request("set", session="a", style={"smile": "wide"}), "bad_style"),
        (protocol.control_request("set", session="a", style={"smile": 2}), "bad_style"),
        (protocol.control_request("open", session="a", style={"expressiveness": 1e300}), "bad_style"),
        (protocol.control_request("close", session="no/slash"), "bad_session"),
        (b"garbage", "not_msgpack"),
    ]:
        with pytest.raises(ProtocolError) as e:
            parse_control(raw)
        assert e.value.kind == kind, raw
