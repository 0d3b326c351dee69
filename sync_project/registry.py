"""The table registry's chores, shared by the `sync-project` CLI and the jobs in the UI.

Discover a schema's tables, register (after DESC TABLE proves each one),
deregister, and report status. The registry is the dynamic partitions of
`snowflake_tables`; history is Dagster's run and event storage.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from sync_project.checks import ROW_COUNT_CHECK
from sync_project.dagster_api import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_TAG,
    latest_check_evaluation,
)
from sync_project.history import SYNC_ASSET_KEY, last_sync
from sync_project.metadata import human_bytes
from sync_project.partitions import SNOWFLAKE_TABLES, add_tables
from sync_project.resources import SyncDuckDBResource
from sync_project.sync.catalog import TableStats, describe_table, list_tables
from sync_project.sync.duckdb_access import Log, duckdb_session, ensure_writable_folder
from sync_project.sync.errors import PermanentError, SyncError, TableNotFoundError
from sync_project.sync.load import MirrorTable, lake_table_bytes, mirror_table
from sync_project.sync.mirror_read import read_mirror
from sync_project.sync.pipeline import Connect
from sync_project.sync.publish import current_snapshot, published_default
from sync_project.sync.state import (
    SyncState,
    TableOptions,
    describe_options,
    read_sync_state,
    validate_options,
    write_options,
)
from sync_project.sync.tables import TableRef, quote_identifier
from sync_project.sync.target import Lake

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Listing:
    table: TableStats
    key: str
    registered: bool
    last_synced: dt.datetime | None

    def cells(self) -> list[str]:
        """Text cells as people read them (the CLI's table, the discover job's metadata): key, kind, rows,
        size, last altered, registered, last synced; thousands separated, sizes in KiB/MiB, times to the second."""
        return [
            self.key,
            self.table.kind,
            f"{self.table.rows:,}" if self.table.rows is not None else "-",
            human_bytes(self.table.bytes),
            self.table.last_altered.strftime(TIME_FORMAT) if self.table.last_altered else "-",
            "yes" if self.registered else "no",
            self.last_synced.strftime(TIME_FORMAT) if self.last_synced else "-",
        ]


def discover(
    instance: dg.DagsterInstance, connect: Connect, database: str, schema: str, like: str | None = None
) -> list[Listing]:
    """A schema's tables with Snowflake's figures, and whether each is registered and when it last synced."""
    with connect() as conn:
        found = list_tables(conn, database, schema, like)
    registered = set(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    listings = []
    for stats in found:
        table = TableRef(database, stats.schema, stats.name)
        synced = last_sync(instance, table.key) if table.key in registered else None
        listings.append(Listing(stats, table.key, table.key in registered, synced.at if synced else None))
    return listings


def matching_tables(connect: Connect, database: str, schema: str, like: str) -> list[TableRef]:
    with connect() as conn:
        return [TableRef(database, schema, t.name) for t in list_tables(conn, database, schema, like)]


@dataclass(frozen=True)
class Registration:
    new: list[str]  # keys registered now
    existing: list[str]  # keys that were registered already
    changed: dict[str, str]  # key -> how its options changed (new or existing)


def _options_text(options: TableOptions) -> str:
    if options.strategy == "full":
        return "full"
    key = ", ".join(options.primary_key) or "none (append)"
    return f"incremental on {options.cursor_column}, key {key}"


def register(
    instance: dg.DagsterInstance,
    connect: Connect,
    tables: Iterable[TableRef],
    options: TableOptions | None = None,
    duckdb_path: Path | None = None,
    lock_timeout: float = 60.0,
    log: Log = lambda _: None,
    lake: Lake | None = None,
) -> Registration:
    """Verify every table with DESC TABLE (exists, is a table, every type maps), then add them all.

    With `options` (strategy, cursor, key), each table's options are checked against its columns and kept
    in the DuckDB file; registering again with other options changes them, and says so. All or nothing:
    every refusal is named in one PermanentError, and then none is added.
    """
    tables = list(dict.fromkeys(tables))
    checked: list[tuple[TableRef, TableOptions]] = []
    refusals: list[str] = []
    with connect() as conn:
        for table in tables:
            try:
                columns = describe_table(conn, table)
                if options is not None:
                    checked.append((table, validate_options(table, columns, options)))
            except TableNotFoundError as e:
                refusals.append(str(e) + _did_you_mean(conn, table))
            except PermanentError as e:
                refusals.append(str(e))
    if refusals:
        raise PermanentError(
            f"nothing registered: {len(refusals)} of {len(tables)} table(s) refused: " + " | ".join(refusals)
        )
    changed: dict[str, str] = {}
    if checked:
        if duckdb_path is None:
            raise ValueError("options need the DuckDB file (or the lake) they are kept in")
        with duckdb_session(duckdb_path, lock_timeout, "saving sync options", log=log, lake=lake) as con:
            con.execute("BEGIN TRANSACTION")
            for table, table_options in checked:
                before = read_sync_state(con, table).options
                if before != table_options:
                    changed[table.key] = f"{_options_text(before)} -> {_options_text(table_options)}"
                write_options(con, table, table_options)
            con.execute("COMMIT")
    new = add_tables(instance, tables)
    return Registration(new, [t.key for t in tables if t.key not in new], changed)


def _did_you_mean(conn: Any, table: TableRef) -> str:
    """The schema's table whose name differs only in case (a quoted name typed unquoted, or the reverse)."""
    try:
        names = [t.name for t in list_tables(conn, table.database, table.schema)]
    except SyncError:
        return ""
    same = [n for n in names if n.lower() == table.name.lower() and n != table.name]
    return f" Did you mean {TableRef(table.database, table.schema, same[0]).key}?" if same else ""


def deregister(instance: dg.DagsterInstance, table: TableRef, duckdb: SyncDuckDBResource, drop: bool) -> str:
    """Remove the partition; with `drop`, the DuckDB table too. Says what happened to the DuckDB table."""
    registered = table.key in instance.get_dynamic_partitions(SNOWFLAKE_TABLES)
    if registered:
        instance.delete_dynamic_partition(SNOWFLAKE_TABLES, table.key)
    prefix = f"deregistered {table.key}" if registered else f"{table.key} was not registered"
    state = duckdb.mirror_table(table, f"reading {table}")
    if not state.exists:
        return f"{prefix}; no DuckDB table {table.duckdb_relation} exists"
    if not drop:
        return f"{prefix}; the DuckDB table {table.duckdb_relation} ({state.rows:,} rows) is kept (--drop removes it)"
    with duckdb.get_connection(what=f"dropping {table}") as con:
        con.execute(f"DROP TABLE IF EXISTS {table.duckdb_sql}")
    return f"{prefix}; dropped the DuckDB table {table.duckdb_relation} ({state.rows:,} rows)"


def _duckdb_facts(
    duckdb_path: Path, published: Path, table: TableRef, lock_timeout: float, log: Log, lake: Lake | None = None
) -> tuple[MirrorTable, SyncState, int | None, str | None]:
    """The table's rows and columns, its sync state, its size, and which file said so: one brief session."""
    if lake is None and not duckdb_path.exists() and current_snapshot(published) is None:
        return MirrorTable(False, 0, {}), SyncState(), None, None
    with read_mirror(duckdb_path, published, lock_timeout, f"reading {table}", log, lake) as (con, source):
        state, progress = mirror_table(con, table), read_sync_state(con, table)
        if not state.exists:
            return state, progress, None, source
        if lake is not None:
            return state, progress, lake_table_bytes(con, table), source
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
        blocks = con.execute(
            "SELECT count(DISTINCT block_id) FROM pragma_storage_info(?) WHERE block_id >= 0",
            [f"{quote_identifier(table.duckdb_schema)}.{quote_identifier(table.duckdb_table)}"],
        ).fetchone()
    size = int(block_size[0]) * int(blocks[0]) if block_size and blocks else None
    return state, progress, size, source


def _run_summary(record: dg.RunRecord) -> dict[str, Any]:
    start, end = record.start_time, record.end_time
    return {
        "run_id": record.dagster_run.run_id,
        "status": record.dagster_run.status.value,
        "started": dt.datetime.fromtimestamp(start, dt.UTC).isoformat() if start else None,
        "seconds": round(end - start, 2) if start and end else None,
    }


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """What the run's last step failure said."""
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if failures and failures[-1].dagster_event and failures[-1].dagster_event.step_failure_data:
        error_info = failures[-1].dagster_event.step_failure_data.error
        return error_info.message.strip() if error_info else None
    return None


def runs_of(instance: dg.DagsterInstance, key: str, limit: int = 20) -> list[dg.RunRecord]:
    """The latest runs that synced a table, newest first: its own runs (one partition) and the runs of many
    tables whose partition range covers it (`sync --all`, the nightly schedule, the change sensor, backfills)."""
    from sync_project.jobs import SYNC_JOB  # jobs.py imports this module

    own = instance.get_run_records(dg.RunsFilter(tags={PARTITION_TAG: key}), limit=limit)
    order = {k: i for i, k in enumerate(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))}

    def covers(run: dg.DagsterRun) -> bool:
        start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
        return start in order and end in order and key in order and order[start] <= order[key] <= order[end]

    ranges = [r for r in instance.get_run_records(dg.RunsFilter(job_name=SYNC_JOB), limit=200) if covers(r.dagster_run)]
    runs = sorted(
        {r.dagster_run.run_id: r for r in [*own, *ranges]}.values(), key=lambda r: -r.create_timestamp.timestamp()
    )
    return [r for r in runs if SYNC_ASSET_KEY in (r.dagster_run.asset_selection or {SYNC_ASSET_KEY})][:limit]


def table_status(
    instance: dg.DagsterInstance,
    table: TableRef,
    duckdb_path: Path,
    lock_timeout: float,
    published: Path | None = None,
    log: Log = lambda _: None,
    lake: Lake | None = None,
) -> dict[str, Any]:
    """Everything `sync-project status` shows for a table, from Dagster's storage and the DuckDB file only."""
    sync_runs = runs_of(instance, table.key)
    last_run = sync_runs[0] if sync_runs else None
    failed = (r for r in sync_runs if r.dagster_run.status == dg.DagsterRunStatus.FAILURE)
    # A run of many tables fails when any of them does; it is this table's failure if its error names it.
    failures = ((r, _failure_message(instance, r.dagster_run.run_id)) for r in failed)
    last_failure, error = next(
        ((r, e) for r, e in failures if PARTITION_TAG in r.dagster_run.tags or (e and table.key in e)), (None, None)
    )
    evaluation = latest_check_evaluation(instance, dg.AssetCheckKey(SYNC_ASSET_KEY, ROW_COUNT_CHECK), table.key)
    synced = last_sync(instance, table.key)
    state, progress, size, source = _duckdb_facts(
        duckdb_path, published or published_default(duckdb_path), table, lock_timeout, log, lake
    )

    return {
        "table": table.key,
        "snowflake_table": str(table),
        "duckdb_relation": table.duckdb_relation,
        "registered": table.key in instance.get_dynamic_partitions(SNOWFLAKE_TABLES),
        "options": describe_options(progress.options),
        "high_water_mark": progress.high_water_mark,
        "last_run": _run_summary(last_run) if last_run else None,
        "last_successful_sync": synced.summary() if synced else None,
        "row_count_check": (
            {
                "passed": evaluation.passed,
                # A severity belongs to a failure: a passed check's stored ERROR would read as one in scripts.
                "severity": None if evaluation.passed else evaluation.severity.value,
                "description": evaluation.description,
            }
            if evaluation
            else None
        ),
        "last_failed_run": {**_run_summary(last_failure), "error": error} if last_failure else None,
        "duckdb": {
            "exists": state.exists,
            "rows": state.rows if state.exists else None,
            "bytes": size,
            "read_from": source,
            "problem": None if lake is not None else _unwritable(duckdb_path, table),
        },
    }


def _unwritable(duckdb_path: Path, table: TableRef) -> str | None:
    """Why a sync could not write the DuckDB file, if it could not: what its next sync would fail on."""
    try:
        ensure_writable_folder(duckdb_path, f"syncing {table.key}")
    except PermanentError as e:
        return str(e)
    return None
