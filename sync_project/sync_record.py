"""The record of one sync in Dagster's storage: written by `to_metadata`, read back by `SyncRecord`, here only.

A sync's materialization carries text for people (thousands separated, the table named first) and, once more,
every number in `figures` for code: the checks, the change sensor, `status` and the CLI read a table's latest
sync through `last_sync`, typed, never by string key. (`_sync.tables` in the mirror holds the sync's own state:
options, high-water mark, the shape it left; the record holds what people see and what the sensors compare,
including Snowflake's figures at the time.)

Of Dagster's standard table metadata, the partition-level keys only: `dagster/partition_row_count` (the rows
the table holds after this sync, which Dagster charts per partition) and `dagster/table_name` (the DuckDB table
this partition is). Not the asset-level ones (`dagster/row_count`, `dagster/column_schema`): the asset's
overview would show the last-synced table's count and columns as if they were the whole asset's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg

from sync_project.metadata import text_table
from sync_project.scope import FIRST_MIRROR
from sync_project.sync.catalog import SnowflakeStamp
from sync_project.sync.mirror import Mirror
from sync_project.sync.report import SyncReport
from sync_project.sync.types import duckdb_type_name

SYNC_ASSET_KEY = FIRST_MIRROR.asset_key  # the first mirror's asset
FIGURES = "figures"  # the one machine-readable metadata value: every number of a sync, never plotted
COLUMNS = "columns"  # the table schema the sync loaded (DuckDB types), shown as the asset's columns
PREVIEW_CELL_CHARS = 40


@dataclass(frozen=True)
class SyncRecord:
    """One sync as its materialization recorded it."""

    strategy: str | None
    rows: int | None  # rows in the mirror's table afterwards
    bytes: int | None  # bytes of Parquet unloaded
    snowflake: SnowflakeStamp = field(default_factory=SnowflakeStamp)  # the change sensor syncs again when it moves
    columns: dict[str, str] = field(default_factory=dict)  # name -> DuckDB type
    figures: dict[str, Any] = field(default_factory=dict)  # every number, as written (tests and benchmarks)

    @classmethod
    def from_materialization(cls, materialization: dg.AssetMaterialization) -> SyncRecord:
        metadata = materialization.metadata
        found = metadata.get(FIGURES)
        figures = dict(found.value) if found is not None and isinstance(found.value, dict) else {}

        def number(key: str) -> int | None:
            value = figures.get(key)
            return int(value) if isinstance(value, int | float) else None

        schema = metadata.get(COLUMNS)
        table_schema = schema.value if schema is not None else None
        columns = (
            {c.name: duckdb_type_name(c.type) for c in table_schema.columns}
            if isinstance(table_schema, dg.TableSchema)
            else {}
        )
        strategy = str(figures["strategy"]) if "strategy" in figures else None
        return cls(
            strategy=strategy,
            rows=number("rows_total"),
            bytes=number("bytes_unloaded"),
            snowflake=SnowflakeStamp(
                int(figures.get("snowflake_rows", -1)),
                int(figures.get("snowflake_bytes", -1)),
                str(figures.get("snowflake_last_altered", "")),
            ),
            columns=columns,
            figures=figures,
        )


def figures_of(report: SyncReport, mirror: Mirror) -> dict[str, Any]:
    """Every number of one sync, for code (the change sensor, the checks, `status`)."""
    figures: dict[str, Any] = {
        "strategy": report.strategy,
        "rows_total": report.rows_total,
        "rows_unloaded": report.rows_unloaded,
        "rows_updated": report.rows_updated,
        "rows_inserted": report.rows_loaded - report.rows_updated,
        "rows_deleted": report.rows_deleted,
        "deletes": _deletes_of(report),
        # Every key read: the merged table's key aggregates differed from Snowflake's (deletes.py).
        "keys_read": report.keys is not None,
        "input_bytes": report.input_bytes,
        "bytes_unloaded": report.output_bytes,
        "bytes_downloaded": report.bytes_downloaded,
        "files": report.files,
        "files_reused": report.files_reused,
        # The most the download folder held at once: every file, unless they were loaded as they came (feed.py).
        "download_folder_peak_bytes": (
            report.bytes_downloaded if report.download_peak_bytes is None else report.download_peak_bytes
        ),
        "resumed_unload": report.resumed_unload,
        "extract": report.path,
        mirror.bytes_figure: report.duckdb_bytes,
        "rows_per_second": report.rows_per_second,
        "seconds": dict(report.phase_seconds, total=report.total_seconds),
    }
    if report.snapshot_id is not None:
        figures["lake_snapshot_id"] = report.snapshot_id
    if report.source is not None:
        stamp = report.source.stamp
        figures |= {"snowflake_rows": stamp.rows, "snowflake_bytes": stamp.bytes}
        figures["snowflake_last_altered"] = stamp.last_altered
    return figures


def _deletes_of(report: SyncReport) -> str:
    """How this sync treated rows gone from Snowflake, in a word: what `status` and the change sensor show."""
    if report.strategy == "full":
        return "copied whole"  # a full sync's copy has no deleted row
    if report.key_check is not None:
        return "marked" if report.options.deletes_mode == "mark" else "removed"
    if not report.options.primary_key:
        return "not detected (no key)"
    return "kept"


def to_metadata(report: SyncReport, mirror: Mirror) -> dict[str, Any]:
    """What a sync shows on its partition: text for people, and every number once more in `figures` for code."""
    relation = report.table.duckdb_relation
    metadata: dict[str, Any] = {
        "table": dg.MetadataValue.text(f"{report.table.key} (Snowflake {report.table}, DuckDB {relation})"),
        "rows": dg.MetadataValue.text(f"{report.rows_total:,} rows in {relation}"),
        "sync": dg.MetadataValue.text(
            f"{report.strategy}: {report.rows_unloaded:,} rows unloaded, {report.rows_updated:,} "
            f"updated, {report.rows_deleted:,} deleted ({_deletes_of(report)}), {report.files:,} file(s) "
            f"({report.output_bytes:,} bytes), "
            f"{report.total_seconds:.2f}s at {report.rows_per_second:,.0f} rows/s"
        ),
        "strategy_reason": report.strategy_reason,
        "extract": dg.MetadataValue.text(f"{report.path}: {report.path_reason}"),
        "preview": preview_table(report.preview_columns, report.preview_rows),
        COLUMNS: dg.MetadataValue.table_schema(_table_schema(report)),
        "high_water_mark": report.high_water_mark or "",
        "cursor_column": report.options.cursor_column or "",
        "primary_key": dg.MetadataValue.json(list(report.options.primary_key)),
        "schema_changes": dg.MetadataValue.json(report.schema_changes),
        "unload_query_id": report.unload_query_id,
        FIGURES: dg.MetadataValue.json(figures_of(report, mirror)),
        # Dagster's standard keys (its TableMetadataSet, which 1.13 does not export).
        "dagster/partition_row_count": dg.MetadataValue.int(report.rows_total),
        "dagster/table_name": dg.MetadataValue.text(relation),
    }
    for name, value in mirror.where(report.table, report.snapshot_id).items():
        metadata[name] = dg.MetadataValue.path(value) if isinstance(value, Path) else dg.MetadataValue.text(value)
    return metadata


def _table_schema(report: SyncReport) -> dg.TableSchema:
    return dg.TableSchema(
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
    return text_table(columns, [[preview_cell(v) for v in row] for row in rows])


@dataclass(frozen=True)
class LastSync:
    """A table's latest successful sync: when, in which run, and its record."""

    at: dt.datetime
    run_id: str
    record: SyncRecord

    def summary(self) -> dict[str, Any]:
        """What `sync-project status` shows of it."""
        record = self.record
        return {"at": self.at.isoformat(), "rows": record.rows, "bytes": record.bytes, "strategy": record.strategy,
                "run_id": self.run_id}  # fmt: skip


def latest_sync_materialization(
    instance: dg.DagsterInstance, partition_key: str, asset_key: dg.AssetKey = SYNC_ASSET_KEY
) -> tuple[dg.AssetMaterialization, dg.EventLogRecord] | None:
    """The latest successful sync of one table (its materialization and event record) in a mirror, if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return records[0].asset_materialization, records[0]


def sync_figures(materialization: dg.AssetMaterialization) -> dict[str, Any]:
    """The numbers of one sync, every one of them (tests and benchmarks read them all)."""
    return SyncRecord.from_materialization(materialization).figures


def last_sync(
    instance: dg.DagsterInstance, partition_key: str, asset_key: dg.AssetKey = SYNC_ASSET_KEY
) -> LastSync | None:
    """The table's latest sync in a mirror, or None if it never synced."""
    found = latest_sync_materialization(instance, partition_key, asset_key)
    if found is None:
        return None
    materialization, record = found
    at = dt.datetime.fromtimestamp(record.timestamp, dt.UTC)
    return LastSync(at, record.run_id, SyncRecord.from_materialization(materialization))
