"""Jobs over the synced-table asset (registry chores arrive with their own jobs)."""

import dagster as dg

from sync_project.assets import SYNC_ASSET_KEY
from sync_project.partitions import snowflake_tables_partitions

SYNC_JOB = "sync_tables"
VERIFY_JOB = "verify_synced_tables"

sync_tables_job = dg.define_asset_job(
    SYNC_JOB,
    selection=dg.AssetSelection.assets(SYNC_ASSET_KEY).without_checks()
    | dg.AssetSelection.checks_for_assets(SYNC_ASSET_KEY),
    partitions_def=snowflake_tables_partitions,
    description="Sync one registered table per run (asset plus its checks). "
    "Backfill from the CLI: `dagster job backfill -j sync_tables --all`.",
)

verify_synced_tables_job = dg.define_asset_job(
    VERIFY_JOB,
    selection=dg.AssetSelection.checks_for_assets(SYNC_ASSET_KEY),
    partitions_def=snowflake_tables_partitions,
    description="Re-run the row-count and schema checks of a table without syncing it again.",
)
