"""How the project's own readers (status, sample) read a DuckDB file mirror: the working file when it is
free, the published copy when a sync holds it. (A lake is simply attached read-only: `LakeMirror.read`.)"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb

from sync_project.sync.errors import LockTimeoutError, PermanentError
from sync_project.sync.mirror.access import Log, duckdb_session
from sync_project.sync.mirror.publish import PUBLICATION_TABLE, current_snapshot
from sync_project.sync.state import STATE_SCHEMA


@contextlib.contextmanager
def read_mirror(
    working: Path, published: Path, wait: float, what: str, log: Log = lambda _: None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A read-only connection for a reader of the project's own (status, sample), and what it reads.

    The working file if it is free this instant (it is the freshest); if a sync holds it, the published copy,
    at once; with nothing published, the working file after waiting (bounded, and saying so).
    """
    with contextlib.ExitStack() as stack:
        if not working.exists():
            if current_snapshot(published) is None:
                raise PermanentError(f"{what}: nothing has been synced yet (neither {working} nor {published} exists)")
            yield stack.enter_context(read_published(published)), f"the published copy {published}"
            return
        try:
            con = stack.enter_context(duckdb_session(working, 0, what, read_only=True))
        except LockTimeoutError as busy:
            if current_snapshot(published) is not None:
                con = stack.enter_context(read_published(published))
                when = published_at(con) or "earlier"
                yield con, f"the published copy {published} (published {when}; a sync holds the working file)"
                return
            log(f"{what}: {busy}; nothing is published yet, so waiting for the working file")
            con = stack.enter_context(duckdb_session(working, wait, what, read_only=True, log=log))
        yield con, f"the working file {working}"


@contextlib.contextmanager
def read_published(published: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the published copy: never waits for a sync, never makes one wait."""
    if current_snapshot(published) is None:
        raise PermanentError(f"nothing is published at {published} yet")
    con = duckdb.connect(str(published), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def published_at(con: duckdb.DuckDBPyConnection) -> str | None:
    """When the snapshot this connection reads was published (UTC, ISO 8601)."""
    with contextlib.suppress(duckdb.Error):
        row = con.execute(f"SELECT max(published_at) FROM {STATE_SCHEMA}.{PUBLICATION_TABLE}").fetchone()
        if row and isinstance(row[0], dt.datetime):
            return row[0].astimezone(dt.UTC).isoformat()
    return None
