"""How an asset of yours depends on one synced table, and runs when (and only when) that table syncs.

The mirror is one asset whose partitions are the tables, so "depends on the ORDERS table" is a dependency on one
partition: `table_dep` maps it with `SpecificPartitionsPartitionMapping`. `when_table_syncs` is the automation
condition to put beside it: Dagster's automation sensor (its `default_automation_condition_sensor`, switched on in
the UI) requests the downstream asset once after each sync of its table, and never for another table's sync.

    @dg.asset(deps=[table_dep("WORKSPACE_833213390.ALL_TYPES")], automation_condition=when_table_syncs())
    def all_types_report(duckdb: SyncDuckDBResource) -> None: ...

Known limits (Dagster 1.13): the mapping names a partition key, so a table registered under another key (or
deregistered) leaves the downstream asset waiting, as a missing dependency; the downstream asset is
unpartitioned (one asset per table it depends on, not a partitioned asset following the mirror's partitions).
"""

from __future__ import annotations

import dagster as dg

from sync_project.sync_record import SYNC_ASSET_KEY


def table_dep(key: str) -> dg.AssetDep:
    """The dependency on one synced table's partition (`SCHEMA.TABLE`, as `sync-project status` lists keys)."""
    return dg.AssetDep(SYNC_ASSET_KEY, partition_mapping=dg.SpecificPartitionsPartitionMapping([key]))


def when_table_syncs() -> dg.AutomationCondition[dg.AssetKey | dg.AssetCheckKey]:
    """Run after the table this asset depends on syncs: not while it is missing or a sync of it is under way,
    and not for a sync of another table (the partition mapping hides those)."""
    return (
        dg.AutomationCondition.any_deps_updated()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("when its table syncs")
