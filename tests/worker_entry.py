"""`backchannel serve` with the tests' generators (tests start the worker as a real subprocess through this)."""
import sys

from helpers import energy_factory

from backchannel.bridge.cli import build_parser
from backchannel.bridge.cli.serve import serve_command

if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(sys.argv[1:])
    sys.exit(serve_command(args, generator_factory=energy_factory))
