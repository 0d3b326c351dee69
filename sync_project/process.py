"""How a Python process that loads our definitions ends.

Every Dagster process (a run, the code server, a CLI call) holds millions of objects once Dagster,
SQLAlchemy and the connector are imported. At exit, CPython runs a last cyclic garbage collection
over all of them: 0.4 s of every run's wall time on this 2-core machine, measured from the last
`atexit` handler to the process's end (`python -c "import dagster, sync_project.definitions"`).
Nothing needs that collection: the operating system frees the memory, and the sync closes its
DuckDB and Snowflake connections itself instead of leaving them to finalizers.
"""

from __future__ import annotations

import atexit
import gc


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
