import pytest


@pytest.fixture(scope="session")
def align_cache(tmp_path_factory):
    """One forced-alignment cache for the whole test session (aligning is the slow part)."""
    return str(tmp_path_factory.mktemp("alignments"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Exported graphs go to a throwaway cache, not the user's ~/.cache (subprocesses inherit it)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BACKCHANNEL_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
