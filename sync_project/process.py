"""How our processes end: a Python process that loads our definitions, and the Dagster processes a demo starts.

Every Dagster process (a run, the code server, a CLI call) holds millions of objects once Dagster,
SQLAlchemy and the connector are imported. At exit, CPython runs a last cyclic garbage collection
over all of them, a noticeable part of a short run's wall time. Nothing needs that collection: the
operating system frees the memory, and the sync closes its DuckDB and Snowflake connections itself
instead of leaving them to finalizers.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def skip_final_collection() -> None:
    """Freeze the heap when the interpreter exits, so its final collection has nothing to walk.

    Registered early, so it runs after every handler registered later (`atexit` runs last-in
    first-out): those still see a normal interpreter.
    """
    atexit.register(gc.freeze)


def keep_final_collection() -> None:
    """Undo `skip_final_collection` for a process that creates and disposes many Dagster instances (the
    test session): their pooled SQLite connections are only finalized by that last collection, and
    SQLAlchemy complains at teardown without it."""
    atexit.unregister(gc.freeze)


def other_processes() -> Iterator[tuple[int, bytes, bytes]]:
    """(PID, command line, environment) of every other live process whose /proc entries can be read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline, environ = (entry / "cmdline").read_bytes(), (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, a kernel thread, or another user's
            continue
        if cmdline:
            yield int(entry.name), cmdline, environ


def dagster_processes_of(home: Path) -> list[int]:
    """Other processes running Dagster for the instance in `home` (its path is in their command line: code
    servers carry the instance's reference there)."""
    needle = str(home).encode()
    return [pid for pid, cmdline, _ in other_processes() if needle in cmdline and b"dagster" in cmdline]


def stop_dagster_processes_of(home: Path, grace: float = 10.0) -> None:
    """End what a stopped `dagster dev` leaves: a code server it restarted while shutting down runs on until
    its heartbeat times out. SIGTERM, then SIGKILL after `grace` seconds."""
    deadline = time.monotonic() + grace
    sent: set[int] = set()
    while (pids := dagster_processes_of(home)) and time.monotonic() < deadline + grace:
        how = signal.SIGKILL if time.monotonic() > deadline else signal.SIGTERM
        for pid in pids:
            if how == signal.SIGKILL or pid not in sent:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, how)
                sent.add(pid)
        time.sleep(0.2)
