"""The DuckDB file mirror: one writer at a time through the project's lock, readers on a published copy."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror.access import Log, ensure_writable_folder, quiet
from sync_project.sync.mirror.base import Mirror, Reading, Session, SessionAsk
from sync_project.sync.mirror.publish import PublishReport, current_snapshot, publish, remove_old_snapshots
from sync_project.sync.mirror.read import read_mirror
from sync_project.sync.mirror.sharing import file_session, sharing
from sync_project.sync.setting_names import SYNC_DUCKDB_PATH
from sync_project.sync.tables import TableRef, quote_identifier


@dataclass(frozen=True)
class FileMirror(Mirror):
    """One DuckDB file (the working file, written under the project's lock) and its published copy."""

    path: Path
    published: Path
    lock_timeout: float = 600.0
    has_published_copy = True
    check_name = "duckdb file"
    bytes_figure = "duckdb_file_bytes"

    def where(self, table: TableRef, snapshot_id: int | None) -> dict[str, str | Path]:
        return {"duckdb_file": self.path}

    def probe_fix(self) -> str:
        if not self.path.exists():
            return f"make {self.path.parent} writable, or set {SYNC_DUCKDB_PATH}"
        return "close the process holding the file open for writing (DuckDB allows one writer), or let the sync finish"

    def describe(self) -> str:
        return f"the DuckDB file {self.path}"

    def _open(self, ask: SessionAsk) -> Session:
        return file_session(self.path, ask.wait, ask.what, read_only=ask.read_only, log=ask.log, waited=ask.waited)

    def sharing(self) -> contextlib.AbstractContextManager[None]:
        return sharing(self.path)

    def read(self, what: str, log: Log = quiet, wait: float | None = None) -> Reading:
        return read_mirror(self.path, self.published, self.lock_timeout if wait is None else wait, what, log)

    def is_empty(self) -> bool:
        return not self.path.exists()

    def has_nothing_to_read(self) -> bool:
        return not self.path.exists() and current_snapshot(self.published) is None

    def writable_problem(self, what: str) -> str | None:
        try:
            ensure_writable_folder(self.path, what)
        except PermanentError as e:
            return str(e)
        return None

    def growth_folder(self) -> Path:
        return self.path.parent

    def table_bytes(self, con: duckdb.DuckDBPyConnection, table: TableRef) -> int | None:
        """The table's blocks times the block size: what it takes inside the shared file."""
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
        blocks = con.execute(
            "SELECT count(DISTINCT block_id) FROM pragma_storage_info(?) WHERE block_id >= 0",
            [f"{quote_identifier(table.duckdb_schema)}.{quote_identifier(table.duckdb_table)}"],
        ).fetchone()
        return int(block_size[0]) * int(blocks[0]) if block_size and blocks else None

    def bytes_after_load(self, con: duckdb.DuckDBPyConnection, table: TableRef) -> int:
        """The whole file: what a load grew, and what a reader copies."""
        return os.path.getsize(self.path)

    def probe(self, wait: float) -> str:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path.parent):
                pass
            return f"{self.path} does not exist yet; the first sync creates it (DuckDB {duckdb.__version__})"
        with self.session("opening the DuckDB file", read_only=True, wait=wait) as con:
            version = con.execute(
                "SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal LIMIT 1"
            ).fetchone()
            tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal").fetchone()
        return (
            f"{self.path} opens: storage version {version[0] if version else 'unknown'}, "
            f"{tables[0] if tables else 0} table(s); this DuckDB is {duckdb.__version__}"
        )

    def publish(self, storage_version: str, log: Log = quiet) -> PublishReport:
        return publish(
            self.path, self.published, storage_version=storage_version, lock_timeout=self.lock_timeout, log=log
        )

    def remove_old_snapshots(self) -> tuple[list[str], list[str]]:
        return remove_old_snapshots(self.published)
