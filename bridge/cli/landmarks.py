"""`backchannel landmarks`: write or check the landmark file a portrait's renderer uses (docs/render.md)."""
from __future__ import annotations

from pathlib import Path


def register(commands) -> None:
    p = commands.add_parser("landmarks", help="detect a portrait's face landmarks into a file, or check one")
    p.add_argument("image", metavar="IMG")
    p.add_argument("--out", metavar="JSON", help="where to write (default: IMG's .landmarks.json beside it)")
    p.add_argument("--check", metavar="JSON", help="read this landmark file instead of detecting (a hand-made one)")
    p.add_argument("--overlay", metavar="PNG", help="also draw the points on the image here, to check them by eye")
    p.add_argument("--force", action="store_true", help="overwrite an existing landmark file")
    p.set_defaults(func=landmarks_command)


def landmarks_command(args) -> int:
    from PIL import Image

    from backchannel.models.render.landmarks import (
        detect_landmarks,
        draw_landmarks,
        landmark_path_for,
        read_landmarks,
        write_landmarks,
    )
    from backchannel.models.render.portrait import load_image

    image = load_image(args.image)
    size = (image.shape[1], image.shape[0])
    if args.check:
        lm = read_landmarks(args.check, size)
        print(f"{args.check}: all {len(lm.points)} points present and plausible")
    else:
        out = Path(args.out) if args.out else landmark_path_for(args.image)
        if out.exists() and not args.force:
            raise ValueError(f"{out} exists; pass --force to overwrite it or --check it")
        lm = detect_landmarks(image)
        if lm is None:
            raise ValueError(f"no face found in {args.image}; write {out} by hand (format and point guide in "
                             f"docs/render.md), then check it with --check {out} --overlay check.png")
        print(f"wrote {write_landmarks(out, lm, size)} ({lm.source})")
    if args.overlay:
        Image.fromarray(draw_landmarks(image, lm)).save(args.overlay)
        print(f"wrote {args.overlay}")
    return 0
