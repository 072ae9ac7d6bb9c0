"""Writes docs/render-contact-sheet.png: the bundled portrait under a few single controls (docs/render.md).

    .venv/bin/python scripts/render_contact_sheet.py
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from backchannel.models.motion import BS, HEAD_ROTATION, neutral
from backchannel.models.render import BUNDLED_PORTRAIT, make_renderer, open_portrait

TILE = 200
POSES = {
    "neutral": {}, "JawOpen 0.7": {"JawOpen": 0.7}, "smile": {"MouthSmileLeft": 1, "MouthSmileRight": 1},
    "blink": {"EyeBlinkLeft": 1, "EyeBlinkRight": 1}, "yaw +0.35 (left)": {"yaw": 0.35},
    "yaw -0.35 (right)": {"yaw": -0.35}, "pucker": {"MouthPucker": 1},
    "funnel + jaw": {"MouthFunnel": 1, "JawOpen": 0.3},
}


def main() -> None:
    renderer = make_renderer(open_portrait(BUNDLED_PORTRAIT, 2 * TILE, "face"))
    tiles = []
    for caption, values in POSES.items():
        row = neutral(1)[0]
        for name, v in values.items():
            row[HEAD_ROTATION.start + 1 if name == "yaw" else BS[name]] = v
        tile = Image.fromarray(renderer.render_frame(row)).resize((TILE, TILE), Image.LANCZOS)
        ImageDraw.Draw(tile).text((6, 4), caption, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        tiles.append(np.asarray(tile))
    sheet = np.concatenate([np.concatenate(tiles[i:i + 4], 1) for i in range(0, len(tiles), 4)], 0)
    out = Path(__file__).resolve().parent.parent / "docs" / "render-contact-sheet.png"
    Image.fromarray(sheet).quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
