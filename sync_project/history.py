"""What Dagster's storage knows about past syncs, read one way: the asset's key, a table's latest sync, its figures.

The sync writes its metadata under the keys named here (`assets.report_metadata`); the checks, the change
sensor, the registry chores and the CLI read them back through `last_sync`, typed, never by string key.
(`_sync.tables` in the mirror holds the sync's own state: options, high-water mark, the shape it left; the
metadata holds what people see and what the sensors compare, including Snowflake's figures at the time.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from sync_project.sync.types import duckdb_type_name

SYNC_ASSET_KEY = dg.AssetKey("snowflake_table")
FIGURES = "figures"  # the one machine-readable metadata value: every number of a sync, never plotted
COLUMNS = "columns"  # the table schema the sync loaded (DuckDB types), shown as the asset's columns


@dataclass(frozen=True)
class LastSync:
    """A table's latest successful sync, as its materialization recorded it."""

    at: dt.datetime
    run_id: str
    strategy: str | None
    rows: int | None  # rows in the mirror's table afterwards
    bytes: int | None  # bytes of Parquet unloaded
    # Snowflake's rows, bytes and LAST_ALTERED as the sync saw them (-1, -1, "" when unknown): the change
    # sensor syncs again when they move.
    snowflake_stamp: tuple[int, int, str] = (-1, -1, "")
    columns: dict[str, str] = field(default_factory=dict)  # name -> DuckDB type

    def summary(self) -> dict[str, Any]:
        """What `sync-project status` shows of it."""
        return {"at": self.at.isoformat(), "rows": self.rows, "bytes": self.bytes, "strategy": self.strategy,
                "run_id": self.run_id}  # fmt: skip


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


def sync_figures(materialization: dg.AssetMaterialization) -> dict[str, Any]:
    """The numbers of one sync, every one of them (tests and benchmarks read them all)."""
    value = materialization.metadata.get(FIGURES)
    return dict(value.value) if value is not None and isinstance(value.value, dict) else {}


def last_sync(instance: dg.DagsterInstance, partition_key: str) -> LastSync | None:
    """The table's latest sync, or None if it never synced."""
    found = latest_sync_materialization(instance, partition_key)
    if found is None:
        return None
    materialization, record = found
    return sync_of(materialization, dt.datetime.fromtimestamp(record.timestamp, dt.UTC), record.run_id)


def sync_of(materialization: dg.AssetMaterialization, at: dt.datetime, run_id: str) -> LastSync:
    figures = sync_figures(materialization)

    def number(key: str) -> int | None:
        value = figures.get(key)
        return int(value) if isinstance(value, int | float) else None

    schema = materialization.metadata.get(COLUMNS)
    table_schema = schema.value if schema is not None else None
    columns = (
        {c.name: duckdb_type_name(c.type) for c in table_schema.columns}
        if isinstance(table_schema, dg.TableSchema)
        else {}
    )
    return LastSync(
        at=at,
        run_id=run_id,
        strategy=str(figures["strategy"]) if "strategy" in figures else None,
        rows=number("rows_total"),
        bytes=number("bytes_unloaded"),
        snowflake_stamp=(
            int(figures.get("snowflake_rows", -1)),
            int(figures.get("snowflake_bytes", -1)),
            str(figures.get("snowflake_last_altered", "")),
        ),
        columns=columns,
    )
