"""`python -m backchannel.bridge.cli`: the `backchannel` command."""
import sys

from backchannel.bridge.cli import main

sys.exit(main())
