"""One sync of one table, start to finish: describe -> stage -> unload -> GET -> load -> cleanup.

Plain Python: takes a way to connect to Snowflake and a few settings, returns a
SyncReport. The Dagster asset is a thin shell around `sync_table`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync import extract
from sync_project.sync.catalog import Column, TableStats, describe_table, table_figures
from sync_project.sync.duckdb_access import Log, duckdb_session
from sync_project.sync.errors import LockTimeoutError, PermanentError, TransientError, from_snowflake
from sync_project.sync.load import LoadPlan, load_table, table_columns
from sync_project.sync.state import Strategy, TableOptions, TableSyncState, read_state, validate_options
from sync_project.sync.tables import TableRef, quote_identifier, sql_string
from sync_project.sync.target import Lake

Connect = Callable[[], contextlib.AbstractContextManager[Any]]
WAIT_PHASE = "wait_for_duckdb"  # time a load waited for the DuckDB file, kept apart from the load itself


@dataclass(frozen=True)
class SyncOptions:
    duckdb_path: Path
    download_root: Path
    lock_timeout: float = 600.0
    get_parallel: int = 10
    max_file_size: int = 64 * 1024 * 1024
    disk_reserve: int = 0  # bytes a sync must leave free on each disk it writes to
    stage: str = extract.USER_STAGE  # "~" (no privilege needed) or a stage name; attempts unload below sync_project/
    lake: Lake | None = None  # set: tables land in this DuckLake, not in duckdb_path


@dataclass
class SyncReport:
    table: TableRef
    strategy: str
    strategy_reason: str = ""
    options: TableOptions = field(default_factory=TableOptions)
    columns: list[Column] = field(default_factory=list)
    # Snowflake's figures read before the unload, so a change during the sync is seen by the next check.
    source: TableStats | None = None
    unload_query_id: str = ""
    rows_unloaded: int = 0
    rows_loaded: int = 0
    rows_total: int = 0
    rows_updated: int = 0
    high_water_mark: str | None = None
    schema_changes: list[str] = field(default_factory=list)
    input_bytes: int = 0
    output_bytes: int = 0
    bytes_downloaded: int = 0
    files: int = 0
    files_reused: int = 0
    resumed_unload: bool = False
    duckdb_bytes: int = 0
    snapshot_id: int | None = None  # on a lake: the snapshot the load committed
    phase_seconds: dict[str, float] = field(default_factory=dict)
    preview_columns: list[str] = field(default_factory=list)
    preview_rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return round(sum(self.phase_seconds.values()), 3)

    @property
    def rows_per_second(self) -> float:
        """Rows over the time spent working: waiting for the DuckDB file does not count."""
        working = self.total_seconds - self.phase_seconds.get(WAIT_PHASE, 0.0)
        return round(self.rows_loaded / working, 1) if working > 0 else 0.0


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
        extract.configure_session(conn)
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


def read_local_state(options: SyncOptions, table: TableRef) -> tuple[TableSyncState, dict[str, str]]:
    """The table's sync state and current DuckDB columns, read briefly before any Snowflake work."""
    if options.lake is None and not options.duckdb_path.exists():
        return TableSyncState(), {}
    with duckdb_session(
        options.duckdb_path, options.lock_timeout, f"reading the state of {table}", read_only=True, lake=options.lake
    ) as con:
        return read_state(con, table), table_columns(con, table)


def choose_strategy(
    requested: Strategy | None, state: TableSyncState, target: dict[str, str], rebuild: bool
) -> tuple[Strategy, str]:
    """Which strategy this run uses, and why (said in logs and metadata)."""
    wanted = requested or state.options.strategy
    if rebuild:
        return "full", "rebuild requested: full sync, state reset"
    if wanted == "full":
        return "full", "full sync requested" if requested == "full" else "table is configured for full syncs"
    if state.columns is None and state.high_water_mark is None:
        return "full", "first incremental sync of this table is a full one"
    if not target:
        return "full", "target table is missing in DuckDB: rebuilding it with a full sync"
    if state.columns is not None and state.columns != target:
        return "full", "target table's columns differ from what the last sync left: rebuilding with a full sync"
    if state.high_water_mark is None:
        return "full", "first incremental sync of this table is a full one"
    return "incremental", f"rows with {state.options.cursor_column} >= {state.high_water_mark}"


# Explicit formats for the high-water mark, so the account's TIMESTAMP_INPUT_FORMAT / DATE_INPUT_FORMAT never
# decide how it is read back (DESIGN.md, "Snowflake facts").
_LITERAL_FORMATS = {
    "TIMESTAMP": ("TO_TIMESTAMP_NTZ", "YYYY-MM-DD HH24:MI:SS.FF6"),
    "TIMESTAMPTZ": ("TO_TIMESTAMP_TZ", "YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM"),
    "DATE": ("TO_DATE", "YYYY-MM-DD"),
}


def _cursor_predicate(column: Column, mark: str) -> str:
    # A typed literal, never the clock: the mark is the largest value the last sync loaded.
    literal = sql_string(mark)
    converted = _LITERAL_FORMATS.get(column.duckdb_type)
    if converted:
        function, fmt = converted
        value = f"{function}({literal}, '{fmt}')"
        if column.snowflake_type.upper().startswith("TIMESTAMP_LTZ"):
            value = f"{value}::TIMESTAMP_LTZ"
    else:
        value = f"CAST({literal} AS {column.snowflake_type})"
    return f"{quote_identifier(column.name)} >= {value}"


def sync_table(
    connect: Connect,
    table: TableRef,
    options: SyncOptions,
    log: Log = lambda _: None,
    *,
    strategy: Strategy | None = None,
    rebuild: bool = False,
    attempt_id: str | None = None,
    attempt_started: dt.datetime | None = None,
    keep_for_retry: bool = False,
) -> SyncReport:
    """Sync one table. On any failure the previous DuckDB table and its state are untouched.

    `attempt_id` ties retries of one run together: they reuse its stage and the files already
    downloaded. With `keep_for_retry`, a transient failure keeps both for that retry; otherwise (and
    on success) the stage and local files are removed.
    """
    state, target = read_local_state(options, table)
    if (strategy or state.options.strategy) == "incremental" and not state.options.cursor_column:
        raise PermanentError(
            f"{table}: an incremental sync needs a cursor column; set it with "
            f"`sync-project register {table.key} --strategy incremental --cursor COLUMN`"
        )
    effective, reason = choose_strategy(strategy, state, target, rebuild)
    report = SyncReport(table=table, strategy=effective, strategy_reason=reason, options=state.options)
    log(f"{table}: {effective} sync ({reason})")
    attempt = extract.Attempt.new(table, options.download_root, attempt_id, attempt_started, options.stage)
    files: list[Path] = []
    keep = False
    try:
        # Snowflake work first, with no DuckDB connection open (DESIGN.md invariant 2).
        with snowflake_session(connect, table) as conn:
            with _phase(report, "describe", log):
                report.columns = describe_table(conn, table)
                report.source = table_figures(conn, table)
                report.options = validate_options(table, report.columns, state.options)
            cursor = next((c for c in report.columns if c.name == report.options.cursor_column), None)
            where = None
            if effective == "incremental" and cursor is not None and state.high_water_mark is not None:
                where = _cursor_predicate(cursor, state.high_water_mark)
            try:
                with _phase(report, "unload", log):
                    query = extract.unload_query(table, report.columns, where)
                    unload = extract.load_manifest(attempt, query)
                    downloaded = extract.downloaded_files(attempt, query) if unload is not None else None
                    if unload is not None and downloaded is not None:
                        report.resumed_unload = True
                        log(f"{table}: resuming attempt {attempt.name}: its unload and download are done")
                    elif unload is not None and (not unload.rows_unloaded or extract.staged_names(conn, attempt)):
                        report.resumed_unload = True
                        log(f"{table}: resuming attempt {attempt.name}: its unload is done already")
                    else:
                        extract.clear_location(conn, attempt)
                        unload = extract.unload_to_stage(conn, attempt, report.columns, options.max_file_size, where)
                        extract.save_manifest(attempt, unload, query)
                report.unload_query_id = unload.query_id
                report.rows_unloaded = unload.rows_unloaded
                report.input_bytes, report.output_bytes = unload.input_bytes, unload.output_bytes
                log(f"{table}: unloaded {unload.rows_unloaded:,} rows, {unload.output_bytes:,} bytes of Parquet")
                with _phase(report, "download", log):
                    if downloaded is not None:
                        files = downloaded
                        report.files_reused = len(files)
                    elif unload.rows_unloaded:  # a 0-row unload writes no file, and GET on nothing raises
                        staged = extract.staged_names(conn, attempt)
                        for folder, needed in _needed_space(options, unload).items():
                            extract.check_free_space(folder, needed, f"sync {table}", options.disk_reserve)
                        download = extract.download_files(conn, attempt, unload, query, staged, options.get_parallel)
                        files = download.files
                        report.files_reused = len(download.reused)
                        log(
                            f"{table}: downloaded {len(download.fetched)} file(s)"
                            + (f", reused {len(download.reused)} from the failed try" if download.reused else "")
                        )
                report.files = len(files)
                report.bytes_downloaded = sum(f.stat().st_size for f in files)
            except TransientError:
                keep = keep_for_retry
                raise
            finally:
                if not keep:
                    with contextlib.suppress(Exception):  # best effort; the cleanup job removes leftovers
                        extract.clear_location(conn, attempt)
        with _phase(report, "load", log):
            plan = LoadPlan(
                strategy=effective,
                cursor_column=report.options.cursor_column,
                primary_key=report.options.primary_key,
                previous_mark=state.high_water_mark if effective == "incremental" else None,
            )
            try:
                loaded = load_table(
                    options.duckdb_path,
                    table,
                    report.columns,
                    files,
                    report.rows_unloaded,
                    options.lock_timeout,
                    plan,
                    log,
                    lake=options.lake,
                )
            except LockTimeoutError:
                # The files are fine; only the DuckDB file was busy. Other load failures start from scratch.
                keep = keep_for_retry
                raise
        if loaded.waited_seconds:
            # Waiting for the file is not loading: its own phase, so rows/s measure the load.
            report.phase_seconds[WAIT_PHASE] = loaded.waited_seconds
            report.phase_seconds["load"] = round(max(report.phase_seconds["load"] - loaded.waited_seconds, 0.0), 3)
        report.rows_loaded = loaded.rows_loaded
        report.rows_total = loaded.rows_total
        report.rows_updated = loaded.rows_updated
        report.high_water_mark = loaded.high_water_mark
        report.schema_changes = loaded.schema_changes
        report.duckdb_bytes = loaded.duckdb_bytes
        report.snapshot_id = loaded.snapshot_id
        report.preview_columns, report.preview_rows = loaded.preview_columns, loaded.preview_rows
        return report
    finally:
        if not keep:
            extract.remove_local_files(attempt)


@dataclass(frozen=True)
class TableOutcome:
    """One table of a many-table sync: its report, or the error that stopped it (never both)."""

    table: TableRef
    report: SyncReport | None = None
    error: Exception | None = None


def sync_tables(
    connect: Connect,
    tables: list[TableRef],
    options: SyncOptions,
    workers: int,
    log: Log = lambda _: None,
    **per_table: Any,
) -> Iterator[TableOutcome]:
    """Sync several tables, yielding each outcome as it completes; one table's failure stops no other.

    Up to `workers` tables are in flight at once: their Snowflake work (DESC, COPY INTO, GET) mostly waits on
    Snowflake and overlaps, while their DuckDB loads still take the writer lock one at a time.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sync") as pool:
        futures = {pool.submit(sync_table, connect, t, options, log, **per_table): t for t in tables}
        for future in as_completed(futures):
            table = futures[future]
            try:
                yield TableOutcome(table, report=future.result())
            except Exception as e:  # each table's failure is its own outcome, reported with its table
                yield TableOutcome(table, error=e)
