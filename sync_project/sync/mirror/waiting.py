"""Notes that a process is waiting for the project's lock on a DuckDB file, so that a holder can make way.

A run of several tables keeps the file open between its loads (`sharing.py`). Without a word from the other
side, a sync of another process (a table synced from the UI while the nightly run loads its batch) would wait
for the whole run. A waiting process leaves `<file>.lock.wanted-<pid>-<thread>` beside the file while it waits;
the holder looks for one after each of its sessions and, if it finds one, closes the file at once and lets the
waiter in before it opens the file again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# How long a holder that made way waits for the waiter to take the file before it competes for it again.
MAKE_WAY_SECONDS = 2.0


def _prefix(duckdb_path: Path) -> str:
    return f"{duckdb_path.name}.lock.wanted-"


@contextlib.contextmanager
def wanting(duckdb_path: Path) -> Iterator[Callable[[], None]]:
    """While inside, calling the given function leaves this thread's note (once); leaving removes it."""
    note = duckdb_path.with_name(f"{_prefix(duckdb_path)}{os.getpid()}-{threading.get_ident()}")
    left: list[bool] = []

    def leave_note() -> None:
        if not left:
            with contextlib.suppress(OSError):
                note.touch()
                left.append(True)

    try:
        yield leave_note
    finally:
        if left:
            with contextlib.suppress(OSError):
                note.unlink()


def wanted_elsewhere(duckdb_path: Path) -> bool:
    """Whether a live process other than this one has left a note that it waits for the file."""
    prefix, mine = _prefix(duckdb_path), f"{_prefix(duckdb_path)}{os.getpid()}-"
    try:
        with os.scandir(duckdb_path.parent) as entries:
            names = [e.name for e in entries if e.name.startswith(prefix) and not e.name.startswith(mine)]
    except OSError:
        return False
    for name in names:
        try:
            os.kill(int(name[len(prefix) :].split("-")[0]), 0)
        except (ValueError, ProcessLookupError):
            # A waiter killed while it waited: nobody waits, and the note goes before its PID is reused.
            with contextlib.suppress(OSError):
                (duckdb_path.parent / name).unlink()
            continue
        except PermissionError:
            return True
        return True
    return False


def make_way(duckdb_path: Path) -> None:
    """After closing the file for a waiter: give it up to MAKE_WAY_SECONDS to take the lock (its note goes then)."""
    deadline = time.monotonic() + MAKE_WAY_SECONDS
    while wanted_elsewhere(duckdb_path) and time.monotonic() < deadline:
        time.sleep(0.02)
