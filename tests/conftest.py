import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests share helpers as plain modules


@pytest.fixture(scope="session")
def align_cache(tmp_path_factory):
    """One forced-alignment cache for the whole test session (aligning is the slow part)."""
    return str(tmp_path_factory.mktemp("alignments"))
