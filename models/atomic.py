"""Files written whole or not at all."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (hidden, one per process) to write; renamed over `path` when the block ends
    and removed if it fails. A write cut short (a kill, a full disk, an error) never leaves a damaged file under the
    name, the old file stays whole until the new one is, and processes writing the same name never mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
