"""Stopping a sync when told (Ctrl-C, SIGTERM, Dagster's Terminate): within seconds, leaving nothing behind.

A sync's Snowflake work runs in worker threads that wait on Snowflake for minutes, and an interrupt reaches
only the main thread; so the main thread sets a `Cancellation` that
- asks Snowflake to cancel what each sync's session is running (`SYSTEM$CANCEL_ALL_QUERIES`, documented; a
  user may cancel their own sessions' statements), so a waiting COPY INTO answers at once;
- interrupts a DuckDB load in flight, whose transaction then rolls back (the previous table stays);
- is checked between phases, so no new unload, download or load starts.
The sync then fails with `Interrupted`, which is neither transient nor permanent: nobody retries it, and its
stage folder and downloaded files are removed as after any failure that cannot resume.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import duckdb

from sync_project.sync.errors import SyncError
from sync_project.sync.mirror.access import Log
from sync_project.sync.tables import TableRef

# How long the interrupting thread waits for Snowflake to confirm the cancels: an unreachable Snowflake must
# not hold up a Ctrl-C (the statement then ends on Snowflake's side, and the cleanup job removes its files).
CANCEL_WAIT_SECONDS = 5.0


class Interrupted(SyncError):
    """Someone stopped the sync. Never retried: the person or the run's termination asked for it to stop."""


class Cancellation:
    """Set once, from any thread; what the syncs of one run check and register with."""

    def __init__(self) -> None:
        self._set = threading.Event()
        self._lock = threading.Lock()
        self._snowflake: list[Any] = []
        self._duckdb: list[duckdb.DuckDBPyConnection] = []

    @property
    def is_set(self) -> bool:
        return self._set.is_set()

    def raise_if_set(self, table: TableRef, before: str) -> None:
        if self._set.is_set():
            raise self.interrupted(table, before)

    @staticmethod
    def interrupted(table: TableRef, during: str) -> Interrupted:
        return Interrupted(
            f"{table}: interrupted {during}; the previous DuckDB table is untouched and this sync's stage folder "
            "and downloaded files are removed (not retried)"
        )

    @contextlib.contextmanager
    def snowflake(self, conn: Any) -> Iterator[None]:
        """While inside, a cancel asks Snowflake to cancel what `conn`'s session runs."""
        with self._registered(self._snowflake, conn):
            yield

    @contextlib.contextmanager
    def duckdb(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """While inside, a cancel interrupts what `con` runs."""
        with self._registered(self._duckdb, con):
            yield

    @contextlib.contextmanager
    def _registered(self, into: list[Any], item: Any) -> Iterator[None]:
        with self._lock:
            into.append(item)
        try:
            yield
        finally:
            with self._lock:
                into.remove(item)

    def cancel(self, log: Log = lambda _: None) -> None:
        """Stop every sync registered here; returns once Snowflake confirmed (or CANCEL_WAIT_SECONDS passed)."""
        with self._lock:
            if self._set.is_set():
                return
            self._set.set()
            sessions, loads = list(self._snowflake), list(self._duckdb)
        for con in loads:
            with contextlib.suppress(Exception):  # its query may have ended meanwhile
                con.interrupt()
        threads = [threading.Thread(target=_cancel_session, args=(conn, log), daemon=True) for conn in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(CANCEL_WAIT_SECONDS)


def _cancel_session(conn: Any, log: Log) -> None:
    try:
        with conn.cursor() as cur:
            # The same connection: Snowflake runs a session's statements side by side, and it needs no new sign-in.
            cur.execute("SELECT SYSTEM$CANCEL_ALL_QUERIES(%s)", (int(conn.session_id),))
            found = cur.fetchone()
        log(f"asked Snowflake to cancel session {conn.session_id}'s statements: {found[0] if found else '?'}")
    except Exception as e:
        log(f"could not cancel session {conn.session_id}'s statements: {type(e).__name__}")
