"""Files written whole or not at all."""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (hidden, one per process) to write; renamed over `path` when the block ends
    and removed if it fails. A write cut short (a kill, a full disk, an error) never leaves a damaged file under the
    name, the old file stays whole until the new one is, and processes writing the same name never mix.

    The temporary is removed on every way out of the block, KeyboardInterrupt and SystemExit included (a command
    under `sigterm_exits` turns SIGTERM into SystemExit). Only SIGKILL or a power cut, where no code runs, can leave
    one behind: `.NAME.tmpPID`, hidden and under a suffix no reader looks for, so it is never taken for the output,
    which only ever appears under its own name by the rename. A later process that happens to get the same pid
    truncates that leftover as it writes its own."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """While the block runs, SIGTERM raises SystemExit(143), as Ctrl-C raises KeyboardInterrupt: `finally` clauses
    (replacing's, an encoder's) run instead of the process vanishing with its temporaries and children left over.
    The previous handler is back afterwards. Only the main thread may set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_(signum, frame):
        raise SystemExit(128 + signum)  # the shell's code for "ended by this signal"

    previous = signal.signal(signal.SIGTERM, exit_)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
