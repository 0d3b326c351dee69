"""One sync of one table, start to finish: describe -> stage -> unload -> GET -> load -> cleanup.

Plain Python: takes a way to connect to Snowflake and a few settings, returns a
SyncReport. The Dagster asset is a thin shell around `sync_table`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync import extract
from sync_project.sync.catalog import Column, TableStats, describe_table, table_figures
from sync_project.sync.errors import from_snowflake
from sync_project.sync.load import LoadResult, load_full
from sync_project.sync.tables import TableRef

Connect = Callable[[], contextlib.AbstractContextManager[Any]]
Log = Callable[[str], None]


@dataclass(frozen=True)
class SyncOptions:
    duckdb_path: Path
    download_root: Path
    lock_timeout: float = 600.0
    get_parallel: int = 10
    max_file_size: int = 64 * 1024 * 1024


@dataclass
class SyncReport:
    table: TableRef
    strategy: str
    columns: list[Column] = field(default_factory=list)
    # Snowflake's figures read before the unload, so a change during the sync is seen by the next check.
    source: TableStats | None = None
    unload_query_id: str = ""
    rows_unloaded: int = 0
    rows_loaded: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    bytes_downloaded: int = 0
    files: int = 0
    duckdb_bytes: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    preview_columns: list[str] = field(default_factory=list)
    preview_rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return round(sum(self.phase_seconds.values()), 3)

    @property
    def rows_per_second(self) -> float:
        return round(self.rows_loaded / self.total_seconds, 1) if self.total_seconds else 0.0


@contextlib.contextmanager
def _phase(report: SyncReport, name: str, log: Log) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.phase_seconds[name] = round(time.monotonic() - started, 3)
        log(f"{report.table}: {name} took {report.phase_seconds[name]:.2f}s")


@contextlib.contextmanager
def snowflake_session(connect: Connect, table: TableRef) -> Iterator[Any]:
    """A connector connection; login failures become transient/permanent errors naming the table."""
    try:
        manager = connect()
        conn = manager.__enter__()
    except SnowflakeError as e:
        raise from_snowflake(e, f"connecting to Snowflake to sync {table}") from None
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection must not hide the real error
            manager.__exit__(None, None, None)


def _needed_space(options: SyncOptions, unload: extract.UnloadResult) -> dict[Path, int]:
    """Download needs output_bytes; the DuckDB file grows by about the uncompressed size. Same disk: add up."""
    download = options.download_root
    database = options.duckdb_path.parent
    database.mkdir(parents=True, exist_ok=True)
    download.mkdir(parents=True, exist_ok=True)
    if download.stat().st_dev == database.stat().st_dev:
        return {download: unload.output_bytes + unload.input_bytes}
    return {download: unload.output_bytes, database: unload.input_bytes}


def sync_table(connect: Connect, table: TableRef, options: SyncOptions, log: Log = lambda _: None) -> SyncReport:
    """Full sync of one table. On any failure the previous DuckDB table is untouched and nothing is left behind."""
    report = SyncReport(table=table, strategy="full")
    attempt = extract.Attempt.new(table, options.download_root)
    files: list[Path] = []
    try:
        # Snowflake work first, with no DuckDB connection open (DESIGN.md invariant 2).
        with snowflake_session(connect, table) as conn:
            with _phase(report, "describe", log):
                report.columns = describe_table(conn, table)
                report.source = table_figures(conn, table)
            try:
                with _phase(report, "unload", log):
                    extract.create_stage(conn, attempt)
                    unload = extract.unload_to_stage(conn, attempt, report.columns, options.max_file_size)
                report.unload_query_id = unload.query_id
                report.rows_unloaded = unload.rows_unloaded
                report.input_bytes, report.output_bytes = unload.input_bytes, unload.output_bytes
                log(f"{table}: unloaded {unload.rows_unloaded:,} rows, {unload.output_bytes:,} bytes of Parquet")
                with _phase(report, "download", log):
                    if unload.rows_unloaded:  # a 0-row unload writes no file, and GET on nothing raises
                        staged = extract.list_staged_files(conn, attempt)
                        for folder, needed in _needed_space(options, unload).items():
                            extract.check_free_space(folder, needed, table)
                        files = extract.download_files(conn, attempt, staged, options.get_parallel)
                report.files = len(files)
                report.bytes_downloaded = sum(f.stat().st_size for f in files)
            finally:
                with contextlib.suppress(Exception):  # best effort; a leftover stage is cleaned up later
                    extract.drop_stage(conn, attempt)
        with _phase(report, "load", log):
            loaded: LoadResult = load_full(
                options.duckdb_path, table, report.columns, files, report.rows_unloaded, options.lock_timeout
            )
        report.rows_loaded = loaded.rows_loaded
        report.duckdb_bytes = loaded.duckdb_bytes
        report.preview_columns, report.preview_rows = loaded.preview_columns, loaded.preview_rows
        return report
    finally:
        extract.remove_local_files(attempt)
