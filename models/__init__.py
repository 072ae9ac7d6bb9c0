"""Backchannel's models: motion representation, audio features, generators (rule baseline, INFP-style diffusion)."""
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"  # shipped data: the demo conversation, the portrait, real speech prompts
