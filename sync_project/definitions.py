"""The one Definitions object of the project: assets, checks, jobs, schedules, sensors, resources.

No logic lives here; each concern has its own module.
"""

import dagster as dg

from sync_project.assets import snowflake_table
from sync_project.automation import (
    build_auto_register_sensor,
    build_change_sensor,
    build_cleanup_schedule,
    build_publish_sensor,
    build_sync_schedule,
)
from sync_project.jobs import (
    cleanup_leftovers_job,
    discover_tables_job,
    doctor_job,
    publish_mirror_job,
    register_tables_job,
    sync_tables_job,
    verify_synced_tables_job,
)
from sync_project.process import skip_final_collection
from sync_project.resources import build_resources
from sync_project.settings import Settings


def _with_target_kind(asset: dg.AssetsDefinition, target: str) -> dg.AssetsDefinition:
    """Kinds `snowflake` and the target's (`duckdb` or `ducklake`), so the catalog's search by kind finds it.
    Code references (added around it) let the UI link the asset to the function that syncs a table."""
    return asset.map_asset_specs(lambda spec: spec.replace_attributes(kinds={"snowflake", target}))


def build_definitions(settings: Settings) -> dg.Definitions:
    """The project's definitions for given settings (tests build them against their own folders)."""
    return dg.Definitions(
        assets=dg.with_source_code_references([_with_target_kind(snowflake_table, settings.target)]),
        jobs=[
            sync_tables_job,
            verify_synced_tables_job,
            discover_tables_job,
            register_tables_job,
            cleanup_leftovers_job,
            doctor_job,
            publish_mirror_job,
        ],
        schedules=[build_sync_schedule(settings), build_cleanup_schedule(settings)],
        sensors=[build_change_sensor(settings), build_auto_register_sensor(settings), build_publish_sensor(settings)],
        resources=build_resources(settings),
        # One table per run; parallelism comes from concurrent runs, so a step needs no process of its own
        # (the multiprocess executor would pay Python and Dagster start-up again for every step).
        executor=dg.in_process_executor,
    )


skip_final_collection()
defs = build_definitions(Settings.from_env())
