"""The synced-table asset: one dynamic partition per Snowflake table.

A thin shell: it parses the partition key, calls the engine (`sync/`), and turns
its report into materialization metadata. Retries cover transient failures only.
"""

from decimal import Decimal
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from sync_project.partitions import snowflake_tables_partitions, table_for_partition
from sync_project.resources import SnowflakeResource, SyncDuckDBResource
from sync_project.sync.errors import PermanentError, TransientError
from sync_project.sync.pipeline import SyncReport, sync_table

SYNC_ASSET_KEY = dg.AssetKey("snowflake_table")
SYNC_GROUP = "snowflake_mirror"
PREVIEW_CELL_CHARS = 40

# Transient failures (network, Snowflake hiccups, a busy DuckDB file) get 3 more tries with backoff;
# permanent ones raise Failure(allow_retries=False) and stop at once.
SYNC_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def retry_note(retry_number: int) -> str:
    """What happens after a transient failure on try `retry_number + 1`."""
    tries = SYNC_RETRY_POLICY.max_retries + 1
    if retry_number < SYNC_RETRY_POLICY.max_retries:
        return f"try {retry_number + 1} of {tries}; will be retried"
    return f"try {tries} of {tries}; no retries left"


class SyncConfig(dg.Config):
    """Run config of one sync."""

    strategy: Literal["table", "full", "incremental"] = Field(
        default="table",
        description="`table`: the strategy the table was registered with; `full` forces a full sync.",
    )
    rebuild: bool = Field(default=False, description="Forget the table's sync state and rebuild it with a full sync.")


def latest_sync_materialization(
    instance: dg.DagsterInstance, partition_key: str
) -> tuple[dg.AssetMaterialization, dg.EventLogRecord] | None:
    """The latest successful sync of one table (its materialization and event record), if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SYNC_ASSET_KEY, asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return records[0].asset_materialization, records[0]


FIGURES = "figures"  # the one machine-readable metadata value: every number of a sync, never plotted


def sync_figures(materialization: dg.AssetMaterialization) -> dict[str, Any]:
    """The numbers of one sync, as the change sensor, the checks and `status` read them."""
    value = materialization.metadata.get(FIGURES)
    return dict(value.value) if value is not None and isinstance(value.value, dict) else {}


def preview_cell(value: Any) -> str:
    """One cell of the preview as people read it: exact decimals, hex bytes, short."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray):
        text = "0x" + bytes(value).hex()
    elif isinstance(value, Decimal):
        text = format(value, "f")  # 0E-10 is 0.0000000000
    else:
        text = str(value)
    text = text.replace("\n", "⏎").replace("\r", "")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def preview_table(columns: list[str], rows: list[tuple[Any, ...]]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns])
    records = [dg.TableRecord(dict(zip(columns, map(preview_cell, row), strict=True))) for row in rows]
    return dg.MetadataValue.table(records, schema)


def _count(n: int) -> str:
    return f"{n:,}"


def report_metadata(report: SyncReport, duckdb_path: str) -> dict[str, Any]:
    """What a sync shows on its partition: text for people (thousands separated, the table named first),
    and every number once more in `figures` for code.

    None of Dagster's asset-level keys (dagster/row_count, dagster/column_schema, dagster/table_name): the
    asset's overview would show the last-synced table's values as if they were the whole asset's, and plot
    one table's rows against another's.
    """
    relation = report.table.duckdb_relation
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.duckdb_type,
                description=f"Snowflake {c.snowflake_type}",
                constraints=dg.TableColumnConstraints(nullable=c.nullable),
            )
            for c in report.columns
        ]
    )
    figures: dict[str, Any] = {
        "strategy": report.strategy,
        "rows_total": report.rows_total,
        "rows_unloaded": report.rows_unloaded,
        "rows_updated": report.rows_updated,
        "rows_inserted": report.rows_loaded - report.rows_updated,
        "input_bytes": report.input_bytes,
        "bytes_unloaded": report.output_bytes,
        "bytes_downloaded": report.bytes_downloaded,
        "files": report.files,
        "files_reused": report.files_reused,
        "resumed_unload": report.resumed_unload,
        "duckdb_file_bytes": report.duckdb_bytes,
        "rows_per_second": report.rows_per_second,
        "seconds": dict(report.phase_seconds, total=report.total_seconds),
    }
    if report.source is not None:
        # What the change sensor compares against: Snowflake's figures as of this sync.
        figures["snowflake_rows"] = report.source.rows if report.source.rows is not None else -1
        figures["snowflake_bytes"] = report.source.bytes if report.source.bytes is not None else -1
        figures["snowflake_last_altered"] = report.source.last_altered.isoformat() if report.source.last_altered else ""
    metadata: dict[str, Any] = {
        "table": dg.MetadataValue.text(f"{report.table.key} (Snowflake {report.table}, DuckDB {relation})"),
        "rows": dg.MetadataValue.text(f"{report.rows_total:,} rows in {relation}"),
        "sync": dg.MetadataValue.text(
            f"{report.strategy}: {_count(report.rows_unloaded)} rows unloaded, {_count(report.rows_updated)} "
            f"updated, {_count(report.files)} file(s) ({_count(report.output_bytes)} bytes), "
            f"{report.total_seconds:.2f}s at {report.rows_per_second:,.0f} rows/s"
        ),
        "strategy_reason": report.strategy_reason,
        "preview": preview_table(report.preview_columns, report.preview_rows),
        "columns": dg.MetadataValue.table_schema(schema),
        "high_water_mark": report.high_water_mark or "",
        "cursor_column": report.options.cursor_column or "",
        "primary_key": dg.MetadataValue.json(list(report.options.primary_key)),
        "schema_changes": dg.MetadataValue.json(report.schema_changes),
        "unload_query_id": report.unload_query_id,
        "duckdb_file": dg.MetadataValue.path(duckdb_path),
        FIGURES: dg.MetadataValue.json(figures),
    }
    return metadata


@dg.asset(
    key=SYNC_ASSET_KEY,
    partitions_def=snowflake_tables_partitions,
    kinds={"snowflake", "duckdb"},
    group_name=SYNC_GROUP,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=SYNC_RETRY_POLICY,
)
def snowflake_table(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    snowflake: SnowflakeResource,
    duckdb: SyncDuckDBResource,
) -> dg.MaterializeResult[Any]:
    """A Snowflake table mirrored into DuckDB, exactly typed and swapped in atomically.

    Each partition is one registered table (`SCHEMA.TABLE`). A run unloads it
    through the user stage `@~` (or SYNC_STAGE) as Parquet (`COPY INTO @stage` with an explicit,
    aliased projection), downloads the files with `GET`, and loads them in one
    DuckDB transaction that replaces the old table only if the row count equals
    what Snowflake unloaded. A failed run leaves the previous table untouched.
    Types follow the type map: NUMBER stays exact (BIGINT, HUGEINT, DECIMAL),
    TIMESTAMP_TZ/LTZ become TIMESTAMPTZ, VARIANT/OBJECT/ARRAY become JSON.
    """
    try:
        table = table_for_partition(context.partition_key)
        # Retries and re-executions of one run share an attempt, so they can resume its stage and files.
        root_run_id = context.run.root_run_id or context.run.run_id
        root = context.instance.get_run_record_by_id(root_run_id)
        report = sync_table(
            snowflake.get_connection,
            table,
            duckdb.sync_options(),
            log=context.log.info,
            strategy=None if config.strategy == "table" else config.strategy,
            rebuild=config.rebuild,
            attempt_id=root_run_id,
            attempt_started=root.create_timestamp if root else None,
            keep_for_retry=context.retry_number < SYNC_RETRY_POLICY.max_retries,
        )
    except PermanentError as e:
        raise dg.Failure(description=str(e), allow_retries=False) from None
    except TransientError as e:
        # Only here is it known whether a retry follows; the message says which.
        raise dg.Failure(description=f"{e}; {retry_note(context.retry_number)}", allow_retries=True) from None
    context.log.info(
        f"{table}: {report.strategy} sync, {report.rows_loaded:,} rows in {report.total_seconds:.2f}s "
        f"({report.rows_per_second:,.0f} rows/s); table now has {report.rows_total:,} rows"
        + (f"; schema: {', '.join(report.schema_changes)}" if report.schema_changes else "")
    )
    return dg.MaterializeResult(metadata=report_metadata(report, duckdb.database))
