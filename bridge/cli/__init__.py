"""The `backchannel` command. Each subcommand lives in its own module, which exposes `register(commands)`;
those modules keep heavy imports (torch, zmq) inside their handlers so `backchannel --help` stays instant."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# optional dependencies (pyproject.toml's extras), by the module a command imports
EXTRAS = {"torch": "train", "onnx": "train", "matplotlib": "train", "pocketsphinx": "corpus", "cv2": "render",
          "imageio_ffmpeg": "render", "PIL": "render", "mediapipe": "render", "pygltflib": "bake", "ray": "scale",
          "openfacefx": "peers", "librosa": "peers", "pylipsync": "peers"}
# where the extra alone does not bring the module (its own pins would break the install: scripts/setup.sh)
INSTALLS = {"pylipsync": "pip install 'backchannel[peers]' && pip install --no-deps pylipsync==0.2.1"}

COMMAND_MODULES = tuple(f"backchannel.bridge.cli.{name}" for name in (
    "run", "serve", "scale", "send", "keys", "top", "bench", "train", "eval", "export", "data", "landmarks", "demo",
    "bake", "plot"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backchannel", description="Audio-driven talking and listening faces.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as e:
        root = (e.name or "").partition(".")[0]
        if root not in EXTRAS or args.verbose:
            raise
        install = INSTALLS.get(root, f"pip install 'backchannel[{EXTRAS[root]}]'")
        print(f"backchannel {args.command}: error: this needs {root}, an optional dependency: {install}",
              file=sys.stderr)
        return 2
    # user-facing errors, an unwritable --out among them (OSError): one clear line, no trace
    except (ValueError, OSError, RuntimeError) as e:
        if args.verbose:
            raise
        print(f"backchannel {args.command}: error: {e}", file=sys.stderr)
        return 2

