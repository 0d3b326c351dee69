"""The sync state of the tables a sync is about to move, read before any Snowflake work: one table's, or a
run's tables' in one short session."""

from __future__ import annotations

import threading

import duckdb

from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror import table_columns
from sync_project.sync.mirror.access import Log, Waited
from sync_project.sync.options import SyncOptions
from sync_project.sync.state import SyncState, read_sync_state, synced_from_another_database
from sync_project.sync.tables import TableRef

# A table's sync state, its DuckDB columns, and the database it was last synced from if another.
StateBefore = tuple[SyncState, dict[str, str], str | None]


def state_before_sync(options: SyncOptions, table: TableRef, log: Log, waited: Waited) -> StateBefore:
    """The table's sync state and current DuckDB columns, read briefly before any Snowflake work. A writer
    holding the file delays the sync here, saying who it is: better than unloading a table it cannot load."""
    what = f"reading the state of {table}"
    if problem := options.mirror.writable_problem(what):
        raise PermanentError(problem)
    if options.mirror.is_empty():
        return SyncState(), {}, None
    with options.mirror.session(what, read_only=True, log=log, waited=waited) as con:
        return _state_in(con, table)


def _state_in(con: duckdb.DuckDBPyConnection, table: TableRef) -> StateBefore:
    return read_sync_state(con, table), table_columns(con, table), synced_from_another_database(con, table)


class RunStates:
    """The sync state of a run's tables, read in one short session when its first table asks: a session of the
    DuckDB file costs about as much as a small table's load. A mirror empty at the start holds no state for any
    of them (tables loaded meanwhile change nothing: each first sync is full). Each table's own read stands in
    when the shared one could not be made (the first read failed: that table reports why)."""

    def __init__(self, options: SyncOptions, tables: list[TableRef]) -> None:
        self._options, self._tables = options, tables
        self._read: dict[TableRef, StateBefore] | None = None
        self._lock = threading.Lock()

    def of(self, table: TableRef, log: Log, waited: Waited) -> StateBefore:
        mirror = self._options.mirror
        with self._lock:
            if self._read is None:
                self._read = {}
                what = f"reading the state of {len(self._tables)} table(s)"
                if len(self._tables) > 1 and not mirror.writable_problem(what):
                    if mirror.is_empty():  # a first sync: nothing to read, however many of them load meanwhile
                        self._read = {t: (SyncState(), {}, None) for t in self._tables}
                    else:
                        with mirror.session(what, read_only=True, log=log, waited=waited) as con:
                            self._read = {t: _state_in(con, t) for t in self._tables}
        found = self._read.get(table)
        return found if found is not None else state_before_sync(self._options, table, log, waited)
