"""What Dagster's storage knows about past syncs: the asset's key, a table's latest materialization, its figures.

Its own module so the asset, the checks, the registry chores and the sensors read history one way.
"""

from typing import Any

import dagster as dg

SYNC_ASSET_KEY = dg.AssetKey("snowflake_table")


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
