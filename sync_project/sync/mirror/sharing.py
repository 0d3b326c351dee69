"""One open DuckDB file for the sessions of a run that follow each other closely.

Opening the working file reads its catalog and closing it checkpoints, together more than
a small table's whole load, and a run of small tables opens it twice per table (the state read and the load).
Within `sharing(path)` (a run of several tables), sessions of this process take turns on one instance, each
on its own cursor. The instance passes straight to a session already waiting; after a load it stays open
`LINGER_SECONDS` for the next table's load, and a read that found it open (a check after a load) leaves it so;
a read that had to open it (the state read, which Snowflake work follows) closes it at once; and it closes at
once when the run ends or a session fails.

What this relaxes of DESIGN.md's invariant 2 (no DuckDB connection while Snowflake works): other tables'
Snowflake work may go on while the file is open, as with several workers it always could; the file is never
held longer than `LINGER_SECONDS` past this process's last load, and a sync of another process that waits for
it gets it after the session in progress (`waiting.py`), so it waits at most one load longer; a reader of the
published copy never waits at all.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb

from sync_project.sync.mirror.access import (
    Log,
    Waited,
    duckdb_session,
    project_holder,
    quiet,
    session_settings,
    wait_for,
)
from sync_project.sync.mirror.waiting import make_way, wanted_elsewhere

LINGER_SECONDS = 0.5

_shared: dict[Path, SharedFile] = {}
_registry = threading.Lock()


class SharedFile:
    """The instance of one DuckDB file that this process's sessions take turns on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs = 0  # `sharing` blocks in this process that want it
        self._turn = threading.Lock()
        self._count = threading.Lock()
        self._waiting = 0  # sessions of this process waiting for their turn
        self._held: contextlib.AbstractContextManager[duckdb.DuckDBPyConnection] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closing: threading.Timer | None = None
        self._made_way = False  # closed for another process's waiting sync: let it in before opening again

    @contextlib.contextmanager
    def session(
        self, what: str, wait: float, log: Log | None, waited: Waited | None, read_only: bool
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the instance (opened now if it is closed), once no other session of this process is in."""
        with self._count:
            self._waiting += 1
        try:
            took = wait_for(
                lambda seconds: self._turn.acquire(timeout=seconds),
                lambda: project_holder(self.path),
                self.path,
                wait,
                what or "DuckDB access",
                log or quiet,
            )
        finally:
            with self._count:
                self._waiting -= 1
        if waited is not None:
            waited.seconds += took
        try:
            if self._closing is not None:
                self._closing.cancel()
                self._closing = None
            con, opened_now = self._con, self._con is None
            if con is None:
                if self._made_way:
                    make_way(self.path)
                    self._made_way = False
                opening = duckdb_session(self.path, wait, what, log=log, waited=waited)
                con = self._con = opening.__enter__()
                self._held = opening
            cursor = con.cursor()
            try:
                session_settings(cursor)
                yield cursor
            except BaseException:
                self._close_now(sys.exc_info())  # a failed session leaves nothing open for the next one
                raise
            finally:
                cursor.close()
            with self._count:
                waiting = self._waiting
            elsewhere = wanted_elsewhere(self.path)
            if waiting and not elsewhere:
                pass  # the next session takes it over at once
            elif elsewhere:
                self._close_now()  # another process's sync waits: it goes next
                self._made_way = True
            elif read_only and opened_now:
                self._close_now()  # a state read: Snowflake work follows, so nothing stays open
            else:
                self._closing = threading.Timer(LINGER_SECONDS, self._close_if_idle)
                self._closing.daemon = True
                self._closing.start()
        finally:
            self._turn.release()

    def _close_if_idle(self) -> None:
        with self._turn:
            if self._closing is not None and self._closing is threading.current_thread():
                self._close_now()

    def _close_now(self, error: tuple[object, ...] = (None, None, None)) -> None:
        """Close the instance; a session's error passes through the opener, which may say more of it."""
        if self._closing is not None and self._closing is not threading.current_thread():
            self._closing.cancel()
        self._closing = None
        held, self._held, self._con = self._held, None, None
        if held is not None:
            held.__exit__(*error)  # type: ignore[arg-type]

    def close(self) -> None:
        with self._turn:
            self._close_now()


def file_session(
    path: Path, lock_timeout: float, what: str, read_only: bool = False, log: Log | None = None,
    waited: Waited | None = None,
) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:  # fmt: skip
    """A session of the DuckDB file: on the shared instance within `sharing`, else a connection of its own.
    A read-only session on the shared instance is a cursor of this process's own writer, which is what it reads."""
    with _registry:
        shared = _shared.get(path)
    if shared is None or (read_only and not path.exists()):  # the latter: the plain session says it is missing
        return duckdb_session(path, lock_timeout, what, read_only=read_only, log=log, waited=waited)
    return shared.session(what, lock_timeout, log, waited, read_only)


@contextlib.contextmanager
def sharing(path: Path) -> Iterator[None]:
    """While inside, this process's sessions of `path` share one instance; it is closed when the last block ends."""
    with _registry:
        shared = _shared.setdefault(path, SharedFile(path))
        shared.runs += 1
    try:
        yield
    finally:
        with _registry:
            shared.runs -= 1
            last = not shared.runs
            if last:
                del _shared[path]
        if last:
            shared.close()
