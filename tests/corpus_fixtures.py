"""Shared paths for the corpus tests (only files committed in the repository)."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALLISON = REPO / "models" / "assets" / "speech" / "allison"  # 14 real prompts, CC-BY-SA-3.0 (README there)
SAMPLE = REPO / "models" / "assets" / "sample"
