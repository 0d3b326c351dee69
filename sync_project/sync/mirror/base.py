"""What every mirror answers, and the facts about a table that do not depend on where it lives."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb

from sync_project.sync.mirror.access import Log, Waited, quiet
from sync_project.sync.mirror.maintenance import LakeMaintenance
from sync_project.sync.mirror.publish import PublishReport
from sync_project.sync.state import DELETED_AT, SyncState, read_sync_state
from sync_project.sync.tables import TableRef, quote_identifier

Session = contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]
Reading = contextlib.AbstractContextManager[tuple[duckdb.DuckDBPyConnection, str]]  # and which copy it reads


class NothingToDo(Exception):
    """A chore this kind of mirror has no use for (publishing a lake, maintaining a file): said, not failed."""


@dataclass(frozen=True)
class MirrorTable:
    """What the mirror holds for a table right now (for checks and status)."""

    exists: bool
    rows: int
    columns: dict[str, str]  # name -> DuckDB type


def table_columns(con: duckdb.DuckDBPyConnection, table: TableRef) -> dict[str, str]:
    """The table's columns in the mirror (name -> DuckDB type), empty if it does not exist."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [table.duckdb_schema, table.duckdb_table],
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def live_rows(con: duckdb.DuckDBPyConnection, table: TableRef, columns: dict[str, str]) -> int:
    """The table's rows that Snowflake still holds: all of them, but for rows marked deleted (`deletes: mark`)."""
    marked = f" WHERE {quote_identifier(DELETED_AT)} IS NULL" if DELETED_AT in columns else ""
    counted = con.execute(f"SELECT count(*) FROM {table.duckdb_sql}{marked}").fetchone()
    return int(counted[0]) if counted else 0


def mirror_table(con: duckdb.DuckDBPyConnection, table: TableRef) -> MirrorTable:
    columns = table_columns(con, table)
    if not columns:
        return MirrorTable(False, 0, {})
    return MirrorTable(True, live_rows(con, table, columns), columns)


@dataclass(frozen=True)
class TableFacts:
    """What `status` shows of a table's copy: the table, its sync state, its size, and where they were read."""

    table: MirrorTable
    state: SyncState
    bytes: int | None
    read_from: str | None


@dataclass(frozen=True)
class SessionAsk:
    """What a session is for, and how long it may wait: what `Mirror.session` hands each kind of mirror."""

    what: str
    read_only: bool
    wait: float
    log: Log
    waited: Waited | None


class Mirror(ABC):
    """Where the tables land. `lock_timeout` bounds every wait for the mirror (only a file ever waits)."""

    lock_timeout: float
    # Readers open a published copy rather than the mirror itself (a file has one writer, which excludes them).
    has_published_copy: bool = False

    @abstractmethod
    def describe(self) -> str: ...

    # What a sync's figures call the bytes `bytes_after_load` measured (each kind names its own).
    bytes_figure: ClassVar[str]

    @abstractmethod
    def where(self, table: TableRef, snapshot_id: int | None) -> dict[str, str | Path]:
        """Where a synced table can be found, for people: a file's path, or the lake and the snapshot to query."""

    @property
    def shared_across_machines(self) -> bool:
        """Can writers on several machines write it at once (what a team's Celery workers need)?"""
        return False

    def session(
        self,
        what: str,
        *,
        read_only: bool = False,
        wait: float | None = None,
        log: Log = quiet,
        waited: Waited | None = None,
    ) -> Session:
        """A short connection in the mirror's catalog, for `what` (the lock note and every wait say it). `wait`
        bounds a wait for the mirror (default `lock_timeout`); `waited` adds up the seconds spent waiting."""
        return self._open(SessionAsk(what, read_only, self.lock_timeout if wait is None else wait, log, waited))

    @abstractmethod
    def _open(self, ask: SessionAsk) -> Session: ...

    def sharing(self) -> contextlib.AbstractContextManager[None]:
        """While inside, this process's sessions that follow each other closely may share one opening of the
        mirror (a file's: `sharing.py`); a lake's sessions never wait for each other, so it opens each."""
        return contextlib.nullcontext()

    @abstractmethod
    def read(self, what: str, log: Log = quiet, wait: float | None = None) -> Reading:
        """A read-only connection for the project's own readers, and which copy it reads."""

    @abstractmethod
    def is_empty(self) -> bool:
        """Nothing was ever written to it: there is no state to read and no table to find."""

    def has_nothing_to_read(self) -> bool:
        """Not even a copy for readers (a file's published snapshot outlives a removed working file)."""
        return self.is_empty()

    def writable_problem(self, what: str) -> str | None:
        """Why a sync could not write the mirror, checked before any Snowflake work (None: it can)."""
        return None

    @abstractmethod
    def growth_folder(self) -> Path | None:
        """The local folder a load grows on disk, for the free-space check (None: not on this machine)."""

    @abstractmethod
    def table_bytes(self, con: duckdb.DuckDBPyConnection, table: TableRef) -> int | None:
        """What the table takes where it is stored."""

    def bytes_after_load(self, con: duckdb.DuckDBPyConnection, table: TableRef) -> int:
        """What a load reports as the size it left: the table's own bytes, unless the file says more."""
        return self.table_bytes(con, table) or 0

    def label_commit(self, con: duckdb.DuckDBPyConnection, commit: str) -> None:
        """Name the open transaction's commit so `committed_snapshot` can find it among concurrent ones."""
        return None  # a file keeps no snapshots to find

    def committed_snapshot(self, con: duckdb.DuckDBPyConnection, commit: str) -> int | None:
        """The snapshot a labelled commit made (a file keeps none)."""
        return None

    @abstractmethod
    def probe(self, wait: float) -> str:
        """Open the mirror as a sync would and say what is there; raises what a sync would meet."""

    check_name: str = "mirror"  # the doctor's name for `probe`

    @abstractmethod
    def probe_fix(self) -> str:
        """What to do when `probe` fails."""

    def storage_probe(self) -> tuple[Callable[[], str], str] | None:
        """A probe of where the mirror keeps its data when that is not beside it (object storage), and its fix."""
        return None

    def table(self, table: TableRef, what: str, wait: float | None = None, waited: Waited | None = None) -> MirrorTable:
        """What the mirror holds for a table, read in one short read-only session."""
        if self.is_empty():
            return MirrorTable(False, 0, {})
        with self.session(what, read_only=True, wait=wait, waited=waited) as con:
            return mirror_table(con, table)

    def facts(self, table: TableRef, what: str, log: Log = quiet, wait: float | None = None) -> TableFacts:
        """The table's rows, columns, size and sync state, and which copy said so: one brief read."""
        if self.has_nothing_to_read():
            return TableFacts(MirrorTable(False, 0, {}), SyncState(), None, None)
        with self.read(what, log, wait) as (con, read_from):
            found, state = mirror_table(con, table), read_sync_state(con, table)
            size = self.table_bytes(con, table) if found.exists else None
        return TableFacts(found, state, size, read_from)

    def drop_table(self, table: TableRef, what: str) -> None:
        with self.session(what) as con:
            con.execute(f"DROP TABLE IF EXISTS {table.duckdb_sql}")

    def publish(self, storage_version: str, log: Log = quiet) -> PublishReport:
        raise NothingToDo(f"nothing to publish: the target is {self.describe()}")

    def remove_old_snapshots(self) -> tuple[list[str], list[str]]:
        """Published snapshots no reader holds any more, removed; and those still open."""
        return [], []

    def maintain(self, retention_days: float) -> LakeMaintenance:
        raise NothingToDo(f"the target is {self.describe()}: it keeps no snapshots, so there is nothing to maintain")
