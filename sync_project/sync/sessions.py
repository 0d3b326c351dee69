"""Snowflake sessions for the tables of one run: one per worker thread, reused from table to table.

A sign-in and the session's settings are two round trips (more with SSO or key-pair on a real account, each
100-300 ms) that a small table's rows do not justify; a plain connector loop pays them once. So `sync_tables`
keeps each worker's session for its next table. A table whose sync fails drops its session, so whatever the
failure left behind (a cancelled statement, a broken socket) is never the next table's problem.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.cancel import Cancellation
from sync_project.sync.errors import from_snowflake
from sync_project.sync.options import Connect
from sync_project.sync.stage import configure_session
from sync_project.sync.tables import TableRef


class SnowflakeSessions:
    """Sessions opened through `connect`, at most one per thread, each configured once; `close` ends them all."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._local = threading.local()
        self._open: list[tuple[contextlib.AbstractContextManager[Any], Any]] = []
        self._lock = threading.Lock()

    def _sign_in(self, table: TableRef) -> tuple[contextlib.AbstractContextManager[Any], Any]:
        try:
            manager = self._connect()
            conn = manager.__enter__()
        except SnowflakeError as e:
            raise from_snowflake(e, f"connecting to Snowflake to sync {table}") from None
        held = (manager, conn)
        with self._lock:
            self._open.append(held)
        try:
            configure_session(conn)
        except BaseException:
            self._drop(held)
            raise
        return held

    def _drop(self, held: tuple[contextlib.AbstractContextManager[Any], Any]) -> None:
        with self._lock:
            if held in self._open:
                self._open.remove(held)
        if getattr(self._local, "held", None) is held:
            self._local.held = None
        with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
            held[0].__exit__(None, None, None)

    @contextlib.contextmanager
    def session(self, table: TableRef, cancellation: Cancellation | None = None) -> Iterator[Any]:
        """This thread's session for syncing `table`; a cancel asks Snowflake to stop what it runs meanwhile."""
        held = getattr(self._local, "held", None) or self._sign_in(table)
        self._local.held = held
        try:
            with cancellation.snowflake(held[1]) if cancellation else contextlib.nullcontext():
                yield held[1]
        except BaseException:
            self._drop(held)
            raise

    def close(self) -> None:
        with self._lock:
            held = list(self._open)
        for each in held:
            self._drop(each)


@contextlib.contextmanager
def session_for(
    connect: Connect, sessions: SnowflakeSessions | None, table: TableRef, cancellation: Cancellation | None
) -> Iterator[Any]:
    """A session from `sessions` when tables share them, else one of its own, closed after `table`."""
    chosen = sessions if sessions is not None else SnowflakeSessions(connect)
    try:
        with chosen.session(table, cancellation) as conn:
            yield conn
    finally:
        if chosen is not sessions:
            chosen.close()
