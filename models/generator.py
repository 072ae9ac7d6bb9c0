"""The interface between the bridge and anything that turns two audio tracks into motion.

A Generator makes one MotionStream per avatar session. The bridge feeds each stream equal-length, time-aligned
chunks of the two tracks (16 kHz mono float32: `self_audio` is the avatar's own voice, `other_audio` the
conversation partner's). Motion frame k answers audio time k / FRAME_RATE; a stream returns it as soon as it has
audio up to k / FRAME_RATE + lookahead_s, so the generator's look-ahead is part of the latency budget and is
declared, not hidden. `flush()` ends the audio: the stream pads with silence and returns every frame still owed,
so a stream fed N samples returns frame_count(N / SAMPLE_RATE) frames in all, however the audio was chunked.

Generators that batch (the diffusion model) override `feed_many`, which the worker calls once per tick with every
session that has new audio. A batching `feed_many` is all or nothing: when it raises, it leaves every stream as it
was, so the worker can retry the sessions one by one and close only the one that fails.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import FRAME_RATE, MotionBlock

DEFAULT_GENERATOR = "baseline"


@dataclass
class Style:
    """Per-avatar style: how much it moves and emotes. Generators map these to their own controls."""

    expressiveness: float = 1.0  # scales head motion and facial activity
    smile: float = 0.0  # resting smile, -1 (frown) .. 1
    blink_rate: float = 1.0  # multiplier on the natural blink rate
    extra: dict = field(default_factory=dict)  # generator-specific knobs (e.g. a reference-motion style vector)

    # what each knob may be: beyond these the motion leaves what a face does (expressiveness 50 turned the head
    # 100 degrees), and 1e300 overflowed it to inf
    RANGES = {"expressiveness": (0.0, 3.0), "smile": (-1.0, 1.0), "blink_rate": (0.0, 5.0)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Style":
        d = dict(d or {})
        known = {k: float(d.pop(k)) for k in cls.RANGES if k in d}
        for k, v in known.items():
            low, high = cls.RANGES[k]
            if not low <= v <= high:
                raise ValueError(f"style {k} {v:g} is outside {low:g}..{high:g}")
        return cls(**known, extra=d)


class MotionStream(ABC):
    """One session's generator state."""

    @abstractmethod
    def feed(self, self_audio: np.ndarray, other_audio: np.ndarray) -> MotionBlock:
        """Append aligned audio (same length) and return the frames it settles (possibly none)."""

    @abstractmethod
    def flush(self) -> MotionBlock:
        """End of audio: return every remaining frame."""


class Generator(ABC):
    name: str = "?"
    lookahead_s: float = 0.0  # audio needed beyond a frame's own time before the frame is emitted

    @abstractmethod
    def open_stream(self, seed: int = 0, style: Style | None = None) -> MotionStream:
        """A fresh stream; the same seed, style and audio give the same frames."""

    def feed_many(self, items: list[tuple[MotionStream, np.ndarray, np.ndarray]]) -> list[MotionBlock]:
        """Feed several streams at once; batching generators override this."""
        return [stream.feed(a, b) for stream, a, b in items]

    def describe(self) -> dict:
        return {"name": self.name, "lookahead_s": self.lookahead_s, "frame_rate": FRAME_RATE, "sample_rate": SAMPLE_RATE}


# name -> "module:factory" (relative to this package), imported only when asked for
GENERATORS: dict[str, str] = {
    "baseline": "baseline:BaselineGenerator",
    "model": "infp.generator:ModelGenerator",
}


def parse_spec(spec: str) -> tuple[str, dict]:
    """A generator spec: a name ("model", "baseline") with options in brackets, if any: "model[sampler_steps=2]",
    "model[temperature=0.5;smooth_head=false;backend=torch]". Whole numbers become ints, other numbers floats
    (finite only), true/false booleans, the rest stays text."""
    name, _, rest = spec.strip().partition("[")
    options = {}
    if rest:
        if not rest.endswith("]"):
            raise ValueError(f"generator {spec!r}: options go in brackets, e.g. model[sampler_steps=2]")
        for item in filter(None, rest[:-1].split(";")):
            key, _, value = (part.strip() for part in item.partition("="))
            if re.search(r",\s*\w+\s*=", item):  # "false,head_gain=1" would reach a switch as text
                raise ValueError(f"generator {spec!r}: separate options with ';', e.g. model[sampler_steps=2;temperature=0.5]")
            if not key or not value:
                raise ValueError(f"generator {spec!r}: {item!r} is not option=value")
            if key in options:
                raise ValueError(f"generator {spec!r}: {key} given twice")
            options[key] = _option_value(value, spec)
    return name.strip(), options


def split_specs(text: str) -> list[str]:
    """A comma-separated list of generator specs ("model[sampler_steps=2],baseline"); commas inside brackets stay."""
    specs, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth <= 0:
            specs.append(text[start:i].strip())
            start = i + 1
    specs.append(text[start:].strip())  # the last, an unclosed bracket's included: parse_spec says what is wrong
    return [spec for spec in specs if spec]


def _option_value(text: str, spec: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise ValueError(f"generator {spec!r}: {text} is not a finite number")
    return value


def make_generator(spec: str | None = None, **options) -> Generator:
    """A generator from its spec (parse_spec; default DEFAULT_GENERATOR); keyword options add to the spec's and
    win where both give one."""
    name, parsed = parse_spec(spec or DEFAULT_GENERATOR)
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose from {', '.join(sorted(GENERATORS))}")
    module, factory = GENERATORS[name].split(":")
    factory = getattr(importlib.import_module(f"{__package__}.{module}"), factory)
    # `model` (an in-memory network, for tests and training) is no option a spec can give
    known = [k for k in inspect.signature(factory).parameters if k != "model"]
    unknown = sorted(set(parsed) - set(known))
    if unknown:
        raise ValueError(f"generator {name!r} has no option {', '.join(unknown)}; it takes {', '.join(known) or 'none'}")
    defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
    for key, value in parsed.items():
        _check_option_kind(spec, key, value, defaults[key])
    return factory(**{**parsed, **options})


def _check_option_kind(spec: str, key: str, value, default) -> None:
    """A spec option must be of its default's kind: text would otherwise reach a switch as a true value or a
    number as text."""
    if isinstance(default, bool) and value not in (True, False):  # true/false, or 1/0
        raise ValueError(f"generator {spec!r}: {key} takes true or false, not {value!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool) and (
            isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"generator {spec!r}: {key} takes a number, not {value!r}")


def session_seed(base: int, name: str) -> int:
    """The seed of a session that was not given one: the worker's base seed mixed with the session's name, so a
    crowd of avatars on one worker does not sway and blink in unison, and a session reopened under its name moves
    as before. blake2b, not Python's hash(), which changes from process to process."""
    digest = hashlib.blake2b(f"{base}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 2 ** 31


def generate(generator: Generator, self_audio: np.ndarray, other_audio: np.ndarray, seed: int = 0,
             style: Style | None = None, chunk_s: float = 1.0) -> MotionBlock:
    """Offline: run whole tracks (the shorter padded with silence) through a fresh stream."""
    n = max(len(self_audio), len(other_audio))
    a = np.pad(np.asarray(self_audio, np.float32), (0, n - len(self_audio)))
    b = np.pad(np.asarray(other_audio, np.float32), (0, n - len(other_audio)))
    stream = generator.open_stream(seed, style)
    step = max(1, int(chunk_s * SAMPLE_RATE))
    blocks = [stream.feed(a[i:i + step], b[i:i + step]) for i in range(0, n, step)]
    return MotionBlock.concat(blocks + [stream.flush()])
