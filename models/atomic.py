"""Files written whole or not at all."""
from __future__ import annotations

import os
import signal
import sys
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
    Python ignores an exception raised where nothing can catch it (a weakref callback, a __del__, a garbage
    collector's run): it reports it to sys.unraisablehook and carries on. The hook set here sees our SystemExit go
    that way and has SIGTERM sent again, so it is raised afresh where the program can unwind.
    The previous handler and hook are back afterwards. Only the main thread may set handlers; elsewhere this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    terminating = False

    def exit_(signum, frame):
        nonlocal terminating
        terminating = True
        raise SystemExit(128 + signum)  # the shell's code for "ended by this signal"

    def unraisable(report):
        if terminating and report.exc_type is not None and issubclass(report.exc_type, SystemExit):
            # swallowed: signal the main thread again, a moment later from another thread so the handler runs
            # once the hook has returned (sent from here, its SystemExit would be raised in the hook, ignored too)
            again = threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGTERM))
            again.daemon = True
            again.start()
        else:
            previous_hook(report)

    main = threading.main_thread().ident
    previous_hook = sys.unraisablehook
    previous = signal.signal(signal.SIGTERM, exit_)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook
