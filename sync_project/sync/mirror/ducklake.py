"""The DuckLake mirror: concurrent writers commit with snapshot isolation; readers attach it and never wait."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sync_project.sync.mirror.access import Log, quiet
from sync_project.sync.mirror.base import Mirror, NothingToDo, Session, SessionAsk
from sync_project.sync.mirror.lake import LAKE_ALIAS, Lake, lake_session
from sync_project.sync.mirror.maintenance import LakeMaintenance, maintain_lake
from sync_project.sync.mirror.object_store import WRITER_ACTIONS, probe_storage
from sync_project.sync.mirror.publish import PublishReport
from sync_project.sync.setting_names import SYNC_DUCKLAKE_CATALOG, SYNC_DUCKLAKE_DATA_PATH
from sync_project.sync.state import STATE_SCHEMA
from sync_project.sync.tables import TableRef, sql_string


@dataclass(frozen=True)
class LakeMirror(Mirror):
    """A DuckLake: its catalog (SQLite or PostgreSQL) and its Parquet files; no lock, readers never wait."""

    lake: Lake
    lock_timeout: float = 600.0
    check_name = "ducklake"
    bytes_figure = "lake_table_bytes"

    def where(self, table: TableRef, snapshot_id: int | None) -> dict[str, str | Path]:
        found: dict[str, str | Path] = {"lake": self.describe()}
        if snapshot_id is not None:
            found["lake_snapshot"] = (
                f"snapshot {snapshot_id}; this sync's rows, whatever came later: "
                f"SELECT * FROM {table.duckdb_sql} AT (VERSION => {snapshot_id})"
            )
        return found

    def probe_fix(self) -> str:
        catalog = f"{SYNC_DUCKLAKE_CATALOG} (a SQLite file, or postgres:dbname=... host=...)"
        return f"check {catalog} and {SYNC_DUCKLAKE_DATA_PATH}"

    def describe(self) -> str:
        return self.lake.describe()

    def storage_probe(self) -> tuple[Callable[[], str], str] | None:
        if not self.lake.on_object_store:
            return None
        fix = (
            f"give the key in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY {', '.join(WRITER_ACTIONS)} on "
            f"{self.lake.data_path}, and check the bucket, AWS_REGION and AWS_ENDPOINT_URL_S3"
        )
        return lambda: probe_storage(self.lake.data_path), fix

    @property
    def shared_across_machines(self) -> bool:
        return self.lake.is_postgres  # a SQLite catalog is a file on one machine

    def _open(self, ask: SessionAsk) -> Session:
        return lake_session(self.lake, ask.read_only, ask.what, ask.log)  # no lock: it never waits

    @contextlib.contextmanager
    def read(
        self, what: str, log: Log = quiet, wait: float | None = None
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        with self.session(what, read_only=True, log=log) as con:
            yield con, self.describe()

    def is_empty(self) -> bool:
        return False  # a lake that was never written attaches empty, which is what a reader should see

    def growth_folder(self) -> Path | None:
        return None if "://" in self.lake.data_path else Path(self.lake.data_path)

    def table_bytes(self, con: duckdb.DuckDBPyConnection, table: TableRef) -> int:
        """The bytes of the table's current Parquet files in the lake."""
        row = con.execute(
            f"SELECT coalesce(sum(data_file_size_bytes), 0) FROM ducklake_list_files('{LAKE_ALIAS}', ?, schema => ?)",
            [table.duckdb_table, table.duckdb_schema],
        ).fetchone()
        return int(row[0]) if row else 0

    def label_commit(self, con: duckdb.DuckDBPyConnection, commit: str) -> None:
        con.execute(f"CALL {LAKE_ALIAS}.set_commit_message('sync_project', {sql_string(commit)})")

    def committed_snapshot(self, con: duckdb.DuckDBPyConnection, commit: str) -> int | None:
        row = con.execute(
            f"SELECT snapshot_id FROM ducklake_snapshots('{LAKE_ALIAS}') WHERE commit_message = ?", [commit]
        ).fetchone()
        return int(row[0]) if row else None

    def probe(self, wait: float) -> str:
        """The lake attaches (its catalog reachable, the extensions loaded from their packages) and can be written."""
        if "://" not in self.lake.data_path:  # a local folder; object stores need no folder made
            Path(self.lake.data_path).mkdir(parents=True, exist_ok=True)
        with self.session("checking the lake") as con:
            tables = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name != ?",
                [STATE_SCHEMA],
            ).fetchone()
            snapshot = con.execute(f"SELECT max(snapshot_id) FROM ducklake_snapshots('{LAKE_ALIAS}')").fetchone()
        return (
            f"{self.describe()} attaches: {tables[0] if tables else 0} table(s), latest snapshot "
            f"{snapshot[0] if snapshot else 'none'}; DuckDB {duckdb.__version__}"
        )

    def publish(self, storage_version: str, log: Log = quiet) -> PublishReport:
        raise NothingToDo(
            f"nothing to publish: the target is {self.describe()}; readers attach it read-only "
            "(ATTACH 'ducklake:...' AS lake (READ_ONLY)) and see every committed sync at once"
        )

    def maintain(self, retention_days: float) -> LakeMaintenance:
        return maintain_lake(self.lake, retention_days)
