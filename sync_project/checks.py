"""Checks on the synced tables, per partition so one table's failure never hides behind another's success."""

import warnings
from typing import Any

import dagster as dg

from sync_project.assets import SYNC_ASSET_KEY, latest_sync_materialization, sync_figures
from sync_project.partitions import snowflake_tables_partitions, table_for_partition
from sync_project.resources import SnowflakeResource, SyncDuckDBResource
from sync_project.sync.catalog import table_figures
from sync_project.sync.errors import SyncError
from sync_project.sync.load import read_table_state
from sync_project.sync.tables import TableRef
from sync_project.sync.types import duckdb_type_name

# Partitioned asset checks are a preview feature; we rely on them knowingly (history per table).
warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")

ROW_COUNT_CHECK = "row_count_matches_snowflake"
SCHEMA_CHECK = "schema_matches_type_map"

# Readers wait for a sync that is writing, but not for long.
READ_LOCK_TIMEOUT_SECONDS = 60.0


def checked_partition(context: dg.AssetCheckExecutionContext) -> str:
    """The table this check run is for; a run without one (the checks-only job launched bare) is told how."""
    if not context.has_partition_key:
        raise dg.Failure(
            "this check runs per table, and the run names none: set the run tag dagster/partition to the "
            'table\'s key (Launchpad > "Edit tags"), e.g. dagster/partition=WORKSPACE_833213390.data, or run '
            "`dagster job launch -j verify_synced_tables -w workspace.yaml "
            '--tags \'{"dagster/partition": "SCHEMA.TABLE"}\'`',
            allow_retries=False,
        )
    return str(context.partition_key)


def _latest_materialization(context: dg.AssetCheckExecutionContext, partition: str) -> dg.AssetMaterialization | None:
    found = latest_sync_materialization(context.instance, partition)
    return found[0] if found else None


def _snowflake_rows(snowflake: SnowflakeResource, table: TableRef) -> int | None:
    """The source's current row count, or None if Snowflake cannot say right now (the check still runs)."""
    try:
        with snowflake.get_connection() as conn:
            figures = table_figures(conn, table)
    except SyncError:
        return None
    return figures.rows if figures else None


@dg.asset_check(
    asset=SYNC_ASSET_KEY,
    name=ROW_COUNT_CHECK,
    blocking=True,
    partitions_def=snowflake_tables_partitions,
)
def row_count_check(
    context: dg.AssetCheckExecutionContext, snowflake: SnowflakeResource, duckdb: SyncDuckDBResource
) -> dg.AssetCheckResult:
    """DuckDB holds exactly the rows the latest sync of this table left there.

    A full sync must hold what Snowflake unloaded; an incremental one what it
    kept plus what it merged. Fails (blocking) if the counts differ. If
    Snowflake's table has a different count now (it changed since, or deleted
    rows an incremental sync cannot see), it says so with a warning.
    """
    partition = checked_partition(context)
    table = table_for_partition(partition)
    materialization = _latest_materialization(context, partition)
    if materialization is None:
        return dg.AssetCheckResult(passed=False, description=f"{table} has not been synced yet")
    unloaded = int(sync_figures(materialization).get("rows_total", -1))
    state = read_table_state(duckdb.sync_options().duckdb_path, table, READ_LOCK_TIMEOUT_SECONDS)
    source_rows = _snowflake_rows(snowflake, table)
    # Text, not numbers: Dagster would plot every table's counts on one axis.
    metadata: dict[str, Any] = {
        "table": table.key,
        "duckdb_rows": f"{state.rows:,}",
        "rows_expected": f"{unloaded:,}",
        "snowflake_rows_now": f"{source_rows:,}" if source_rows is not None else "unknown",
    }
    if not state.exists or state.rows != unloaded:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{table}: DuckDB holds {state.rows:,} rows, the last sync left {unloaded:,}",
            metadata=metadata,
        )
    if source_rows is not None and source_rows != unloaded:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{table}: copy is exact, but Snowflake now has {source_rows:,} rows; sync again",
            metadata=metadata,
        )
    return dg.AssetCheckResult(passed=True, metadata=metadata)


@dg.asset_check(asset=SYNC_ASSET_KEY, name=SCHEMA_CHECK, partitions_def=snowflake_tables_partitions)
def schema_check(context: dg.AssetCheckExecutionContext, duckdb: SyncDuckDBResource) -> dg.AssetCheckResult:
    """Every column of the source is in DuckDB with the type the type map gives it."""
    partition = checked_partition(context)
    table = table_for_partition(partition)
    materialization = _latest_materialization(context, partition)
    schema_value = materialization.metadata.get("columns") if materialization else None
    if schema_value is None:
        return dg.AssetCheckResult(passed=False, description=f"{table} has not been synced yet")
    expected = {c.name: duckdb_type_name(c.type) for c in schema_value.value.columns}  # type: ignore[union-attr]
    state = read_table_state(duckdb.sync_options().duckdb_path, table, READ_LOCK_TIMEOUT_SECONDS)
    actual = {name: duckdb_type_name(t) for name, t in state.columns.items()}
    problems = [
        f"{name}: expected {want}, found {actual.get(name, 'nothing')}"
        for name, want in expected.items()
        if actual.get(name) != want
    ] + [f"{name}: not in the source" for name in actual if name not in expected]
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else None,
        metadata={"table": table.key, "columns": f"{len(expected):,}", "mismatches": f"{len(problems):,}"},
    )
