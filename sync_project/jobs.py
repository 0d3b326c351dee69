"""A mirror's jobs: sync and verify over its asset, and its chores (chores.py) for the UI's launchpad."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from sync_project.chores import (
    CleanupConfig,
    DiscoverConfig,
    RegisterConfig,
    check_setup,
    discover_schema,
    maintain_the_lake,
    publish_working_file,
    register_in_schema,
    remove_old_stages_and_folders,
)
from sync_project.dagster_api import PARTITION_TAG, UnresolvedAssetJobDefinition
from sync_project.partitions import tables_tag
from sync_project.scope import FIRST_MIRROR, MirrorScope

SYNC_JOB = "sync_tables"
DOCTOR_JOB = "doctor"
PUBLISH_JOB = "publish_mirror"
VERIFY_JOB = "verify_synced_tables"
DISCOVER_JOB = "discover_tables"
REGISTER_JOB = "register_tables"
CLEANUP_JOB = "cleanup_leftovers"

# The code location's label as the UI filters runs by it (workspace.yaml's location_name).
CODE_LOCATION = "sync_project"
REPOSITORY_LABEL = f"__repository__@{CODE_LOCATION}"


def in_process_run_tags(partition_key: str) -> dict[str, str]:
    """Tags for a run started in this process (demo, rebuild) so the UI lists it under its job like any other.

    Dagster tags runs launched from a workspace with their repository's label; `execute_in_process` does not.
    """
    return {PARTITION_TAG: partition_key, ".dagster/repository": REPOSITORY_LABEL} | tables_tag([partition_key])


def build_sync_job(scope: MirrorScope, batch_size: int) -> UnresolvedAssetJobDefinition:
    key = scope.asset_key
    return dg.define_asset_job(
        scope.name(SYNC_JOB),
        selection=dg.AssetSelection.assets(key).without_checks() | dg.AssetSelection.checks_for_assets(key),
        description=f"Sync registered tables: one from the UI, up to {batch_size} per run from backfills and the "
        "nightly schedule, each with its own materialization and checks. Backfill from the CLI: "
        f"`dagster job backfill -w workspace.yaml -j {scope.name(SYNC_JOB)} --all all`.",
    )


def build_verify_job(scope: MirrorScope) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        scope.name(VERIFY_JOB),
        selection=dg.AssetSelection.checks_for_assets(scope.asset_key),
        # Dagster gives a checks-only job no partitions (a partitions_def here is ignored, and deprecated); the
        # partition goes in as the `dagster/partition` run tag, as the tests and `sync-project` do.
        description="Check tables without syncing them again: the row-count and schema checks against their latest "
        "sync, and the content check against Snowflake now (one aggregate query per table).",
    )


def chore_job(name: str, description: str, *ops: dg.OpDefinition) -> dg.JobDefinition:
    """A job that runs its ops one after another (a chore, not a sync: no partitions, no assets)."""

    @dg.job(name=name, description=description)
    def chore() -> None:
        for op in ops:
            op()

    return chore


def _op(scope: MirrorScope, work: Callable[[dg.OpExecutionContext, MirrorScope], None]) -> dg.OpDefinition:
    """An op of this mirror (its name prefixed like the mirror's, its resources the mirror's) that does `work`."""

    @dg.op(name=scope.name(work.__name__), description=work.__doc__, required_resource_keys=scope.resource_keys)
    def chore(context: dg.OpExecutionContext) -> None:
        work(context, scope)

    return chore


def _configured_op(
    scope: MirrorScope, work: Callable[[dg.OpExecutionContext, Any, MirrorScope], None], config: type[dg.Config]
) -> dg.OpDefinition:
    """`_op` for work that takes run config (`config`'s fields, as the launchpad shows them)."""

    @dg.op(
        name=scope.name(work.__name__),
        description=work.__doc__,
        required_resource_keys=scope.resource_keys,
        config_schema=config.to_config_schema().as_field(),
    )
    def chore(context: dg.OpExecutionContext) -> None:
        work(context, config(**context.op_config), scope)

    return chore


@dataclass(frozen=True)
class MirrorJobs:
    """A mirror's jobs: the sync and its checks over the asset, and the chores the UI's launchpad runs."""

    sync: UnresolvedAssetJobDefinition
    verify: UnresolvedAssetJobDefinition
    discover: dg.JobDefinition
    register: dg.JobDefinition
    doctor: dg.JobDefinition
    publish: dg.JobDefinition
    cleanup: dg.JobDefinition

    def all(self) -> list[dg.JobDefinition | UnresolvedAssetJobDefinition]:
        return [self.sync, self.verify, self.discover, self.register, self.cleanup, self.doctor, self.publish]


def build_jobs(scope: MirrorScope = FIRST_MIRROR, batch_size: int = 25) -> MirrorJobs:
    return MirrorJobs(
        sync=build_sync_job(scope, batch_size),
        verify=build_verify_job(scope),
        discover=chore_job(
            scope.name(DISCOVER_JOB),
            "List a schema's tables with their figures (see the run's metadata).",
            _configured_op(scope, discover_schema, DiscoverConfig),
        ),
        register=chore_job(
            scope.name(REGISTER_JOB),
            f"Register tables of a schema as partitions of {scope.asset_key.to_user_string()}.",
            _configured_op(scope, register_in_schema, RegisterConfig),
        ),
        doctor=chore_job(
            scope.name(DOCTOR_JOB),
            "Will a sync work? Sign-in, warehouse, database, a stage round trip, every registered table, the "
            "DuckDB file, disk and the instance: each check passed or failed with its fix (see the run's metadata).",
            _op(scope, check_setup),
        ),
        publish=chore_job(
            scope.name(PUBLISH_JOB),
            "Publish the mirror for readers: a new snapshot of the working file behind SYNC_PUBLISHED_PATH. The "
            "publish_after_syncs sensor runs it after syncs; run it by hand for an immediate one.",
            _op(scope, publish_working_file),
        ),
        cleanup=chore_job(
            scope.name(CLEANUP_JOB),
            "Drop stages and download folders left behind more than a day ago; on a DuckLake target, expire old "
            "snapshots and compact the lake's files.",
            _configured_op(scope, remove_old_stages_and_folders, CleanupConfig),
            _op(scope, maintain_the_lake),
        ),
    )
