"""One open DuckDB file for the sessions of a run that follow each other closely.

Opening the working file reads its catalog and closing it checkpoints, together more than
a small table's whole load, and a run of small tables opens it twice per table (the state read and the load).
Within `sharing(path)` (a run of several tables), sessions of this process share one instance, each on its
own cursor, and go in together: one table's long load holds up no other table's load (across processes the
project's lock still lets one in at a time). When the last session leaves, the instance passes straight to a
session going in; after a load it stays open `LINGER_SECONDS` for the next table's load, and a read that found
it open (a check after a load) leaves it so; a read that had to open it (the state read, which Snowflake work
follows) closes it at once; and it closes once the sessions inside have left when the run ends, when a
session fails, or when another process's sync waits for the file.

What this relaxes of DESIGN.md's invariant 2 (no DuckDB connection while Snowflake works): other tables'
Snowflake work may go on while the file is open, as with several workers it always could; the file is never
held longer than `LINGER_SECONDS` past this process's last load, and a sync of another process that waits for
it gets it after the sessions in progress (`waiting.py`: none goes in meanwhile), so it waits at most one load
longer; a reader of the published copy never waits at all.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from sync_project.sync.mirror.access import (
    Log,
    Waited,
    corrupt_file_error,
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
    """The instance of one DuckDB file that this process's sessions share, each on a cursor of its own.

    Sessions go in together: DuckDB runs several writing transactions in one instance (a write conflict fails
    one of them at COMMIT, which the load reports as transient), so one table's long load holds up no other
    table's. `_gate` orders the opening and the closing: it is held while the file is opened, and the last
    session out decides whether the instance closes, lingers or passes to a session waiting to go in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs = 0  # `sharing` blocks in this process that want it
        self._gate = threading.Condition(threading.Lock())
        self._inside = 0  # sessions in
        self._waiting = 0  # sessions asking to go in (counted under `_count`, which the gate may not be free for)
        self._count = threading.Lock()
        self._closing_soon = False  # a session failed or another process waits: close once the last one leaves
        self._closing_for_another = False  # ... and closing for another process, which goes next
        self._held: contextlib.AbstractContextManager[duckdb.DuckDBPyConnection] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closing: threading.Timer | None = None
        self._made_way = False  # closed for another process's waiting sync: let it in before opening again

    def _enter(self, seconds: float) -> bool:
        """Take the gate within `seconds`, once the instance is not closing; True with the gate held."""
        deadline = time.monotonic() + seconds
        if not self._gate.acquire(timeout=seconds):
            return False
        while self._closing_soon:
            if not self._gate.wait(max(deadline - time.monotonic(), 0.0)):
                self._gate.release()
                return False
        return True

    @contextlib.contextmanager
    def session(
        self, what: str, wait: float, log: Log | None, waited: Waited | None, read_only: bool
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the instance (opened now if it is closed), beside the other sessions of this process."""
        with self._count:
            self._waiting += 1
        try:
            took = wait_for(
                self._enter, lambda: project_holder(self.path), self.path, wait, what or "DuckDB access", log or quiet
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
            self._inside += 1
        finally:
            self._gate.release()
        failed = False
        try:
            cursor = con.cursor()
            try:
                session_settings(cursor)
                yield cursor
            finally:
                cursor.close()
        except duckdb.Error as e:
            failed = True
            corrupt = corrupt_file_error(self.path, e)
            if corrupt is None:
                raise
            raise corrupt from None
        except BaseException:
            failed = True  # a failed session leaves nothing open for the next one
            raise
        finally:
            self._leave(failed, read_only and opened_now)

    def _leave(self, failed: bool, state_read: bool) -> None:
        with self._gate:
            self._inside -= 1
            elsewhere = wanted_elsewhere(self.path)
            self._closing_soon = self._closing_soon or failed or elsewhere
            self._closing_for_another = self._closing_for_another or elsewhere
            if self._inside:
                return  # the last session out decides
            with self._count:
                waiting = self._waiting
            if self._closing_soon:
                self._close_now()
                self._made_way, self._closing_for_another, self._closing_soon = self._closing_for_another, False, False
                self._gate.notify_all()
            elif waiting:
                pass  # a session going in takes it over at once
            elif state_read:
                self._close_now()  # a state read that opened it: Snowflake work follows, so nothing stays open
            else:
                self._closing = threading.Timer(LINGER_SECONDS, self._close_if_idle)
                self._closing.daemon = True
                self._closing.start()

    def _close_if_idle(self) -> None:
        with self._gate:
            if self._closing is not None and self._closing is threading.current_thread() and not self._inside:
                self._close_now()

    def _close_now(self) -> None:
        if self._closing is not None and self._closing is not threading.current_thread():
            self._closing.cancel()
        self._closing = None
        held, self._held, self._con = self._held, None, None
        if held is not None:
            held.__exit__(None, None, None)

    def close(self) -> None:
        with self._gate:
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
