"""The options that pick, frame and render a portrait, shared by `run` and `serve` (docs/render.md)."""
from __future__ import annotations

from backchannel.bridge.protocol import FRAME_FORMATS

DEFAULTS = {"size": 512, "framing": "image"}
FRAME_DEFAULTS = {"frame_format": "jpeg", "frame_quality": 85}


def add_portrait_arguments(p, frames: bool = False) -> None:
    """Adds --portrait, --size, --framing, --landmarks, --renderer (and with `frames`, --frame-format and
    --frame-quality). Defaults stay None so a config file can set them; `settings` fills them in."""
    p.add_argument("--portrait", metavar="IMG", help="animate this portrait (PNG, JPEG...; see docs/render.md)")
    p.add_argument("--size", type=int, metavar="N", help="rendered frames are N x N, N even (default 512)")
    p.add_argument("--framing", choices=("image", "face"),
                   help="image: the whole picture (cropped square); face: head and shoulders (default image)")
    p.add_argument("--landmarks", metavar="JSON", help="landmark file (default: IMG's .landmarks.json if present, "
                   "else mediapipe's face mesh)")
    p.add_argument("--renderer", help="portrait renderer (default: warp)")
    if frames:
        p.add_argument("--frame-format", choices=FRAME_FORMATS, help="<session>/frame encoding (default jpeg)")
        p.add_argument("--frame-quality", type=int, metavar="1-100", help="JPEG quality (default 85)")


def settings(values: dict) -> dict:
    """The portrait settings among `values` (flags or config keys), defaults filled in."""
    keys = ("portrait", "landmarks", "renderer", *DEFAULTS, *FRAME_DEFAULTS)
    given = {k: values[k] for k in keys if values.get(k) is not None}
    s = {**DEFAULTS, **FRAME_DEFAULTS, "landmarks": None, "renderer": None, **given}
    size = s["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size % 2:
        # video encoders (H.264 in yuv420p) take only even sides; the range is open_portrait's to check
        raise ValueError(f"size {size!r}: frames need an even whole number of pixels a side")
    if s["frame_format"] not in FRAME_FORMATS:
        raise ValueError(f"frame_format {s['frame_format']!r}: choose {' or '.join(FRAME_FORMATS)}")
    if not isinstance(s["frame_quality"], int) or not 1 <= s["frame_quality"] <= 100:
        raise ValueError(f"frame_quality {s['frame_quality']!r}: a whole number in 1..100")
    return s


def open_renderer(values: dict):
    """The renderer the portrait settings ask for; raises ValueError/FileNotFoundError/RuntimeError with a clear
    message on a bad portrait."""
    from backchannel.models.render import make_renderer, open_portrait

    s = settings(values)
    return make_renderer(open_portrait(s["portrait"], s["size"], s["framing"], s["landmarks"]), s["renderer"])
