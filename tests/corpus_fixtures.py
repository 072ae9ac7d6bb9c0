"""Shared paths for the corpus tests (only files committed in the repository)."""
from backchannel.models import ASSETS

ALLISON = ASSETS / "speech" / "allison"  # 20 real prompts, CC-BY-SA-3.0 (README there)
SAMPLE = ASSETS / "sample"
