"""The `backchannel` command. Each subcommand lives in its own module, which exposes `register(commands)`;
those modules keep heavy imports (torch, zmq) inside their handlers so `backchannel --help` stays instant."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

COMMAND_MODULES = (
    "backchannel.bridge.offline",
    "backchannel.bridge.serve",
    "backchannel.bridge.send",
    "backchannel.bridge.bench",
    "backchannel.bridge.model_commands",
    "backchannel.bridge.data",
    "backchannel.bridge.landmark_files",
    "backchannel.bridge.demo",
)


# every command that runs one generator takes the same spec (models.generator.parse_spec)
GENERATOR_HELP = ('motion generator, "baseline" or "model", with options in brackets if any, e.g. '
                  '"model[temperature=0.5;steps=2]" (default: the shipped default)')


def json_object(text: str) -> dict:
    """argparse type of every flag that takes a JSON object (--style '{"expressiveness": 1.2}')."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r:.80} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r:.80} is a JSON {type(value).__name__}; give an object, "
                                         "e.g. '{\"expressiveness\": 1.2}'")
    return value


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
    # user-facing errors, an unwritable --out among them (OSError): one clear line, no trace
    except (ValueError, OSError, RuntimeError) as e:
        if args.verbose:
            raise
        print(f"backchannel {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
