import pytest


@pytest.fixture(scope="session")
def align_cache(tmp_path_factory):
    """One forced-alignment cache for the whole test session (aligning is the slow part)."""
    return str(tmp_path_factory.mktemp("alignments"))
