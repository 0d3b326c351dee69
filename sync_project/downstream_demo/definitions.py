"""The demo's downstream definitions (workspace.yaml's second code location): see the package's docstring."""

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from sync_project.dbt_translator import SnowflakeMirrorTranslator
from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.downstream import table_dep, when_table_syncs
from sync_project.process import skip_final_collection
from sync_project.resources import SyncDuckDBResource
from sync_project.scope import FIRST_MIRROR
from sync_project.sync.tables import TableRef

ALL_TYPES = f"{DEMO_SCHEMA}.ALL_TYPES"
GROUP = "demo_downstream"
DBT_PROJECT = DbtProject(project_dir=Path(__file__).resolve().parent.parent / "dbt_demo", profiles_dir=None)
AUTOMATION_SENSOR = "downstream_of_the_mirror"
# The virtualenv's dbt (the dbt extra), found beside its Python: processes started without activating it have no
# dbt on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


@dg.asset(
    deps=[table_dep(ALL_TYPES)],
    automation_condition=when_table_syncs(),
    group_name=GROUP,
    kinds={"python", "duckdb"},
)
def all_types_profile(duckdb: SyncDuckDBResource) -> dg.MaterializeResult[None]:
    """ALL_TYPES as the mirror holds it now: its rows and columns (read through the mirror, under its lock)."""
    state = duckdb.mirror.table(TableRef.from_key(ALL_TYPES, DEMO_DATABASE), "profiling ALL_TYPES", 60)
    return dg.MaterializeResult(metadata={"rows": state.rows, "columns": len(state.columns)})


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Variables for the dbt process this step starts (dagster-dbt passes the run's environment to it)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(manifest=DBT_PROJECT.manifest_path, project=DBT_PROJECT, dagster_dbt_translator=SnowflakeMirrorTranslator())
def demo_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, duckdb: SyncDuckDBResource
) -> Iterator[Any]:
    """dbt builds its models over the published copy, published first so the model reads the sync that woke it
    (the publish sensor would otherwise publish it up to 30 s later)."""
    mirror = duckdb.mirror
    if not mirror.has_published_copy:
        raise dg.Failure(
            "the demo's dbt project reads the published copy of a DuckDB-file mirror; this one is a "
            "DuckLake, which dbt-duckdb reads by attaching the lake",
            allow_retries=False,
        )
    report = mirror.publish(duckdb.published_storage_version, context.log.info)
    models_file = Path(duckdb.database).with_name("analytics.duckdb")  # the models' own file, beside the mirror
    with _environment(SYNC_DBT_DUCKDB_PATH=str(models_file)):
        vars_ = f'{{"mirror_path": "{report.published_path}"}}'
        yield from dbt.cli(["build", "--vars", vars_], context=context).stream()


def _first_mirrors_duckdb() -> SyncDuckDBResource:
    """The first mirror's DuckDB resource as its own code location builds it (defs.yaml over the environment)."""
    from sync_project.definitions import load_definitions

    # Loading the mirror's defs folder from this location makes dg warn that the location's name is not the
    # project's; it is not meant to be.
    components = logging.getLogger("dagster.components.core.component_tree")
    level = components.level
    components.setLevel(logging.ERROR)
    try:
        resource: SyncDuckDBResource = (load_definitions().resources or {})[FIRST_MIRROR.duckdb_key]
    finally:
        components.setLevel(level)
    return resource


# The mirror's asset as this location sees it: defined (and materialized) in the sync_project location, named
# here with its partitions so that the automation sensor, which evaluates this location's assets on this
# location's asset graph, maps a sync of ALL_TYPES to its partition (a bare dependency would be an unpartitioned
# stub here, and a partition's materialization would never count as its update).
MIRROR_AS_SEEN_HERE = dg.AssetSpec(
    FIRST_MIRROR.asset_key,
    partitions_def=FIRST_MIRROR.partitions_def,
    description="Synced Snowflake tables: defined and materialized in the sync_project code location.",
)


def build_downstream_definitions(duckdb: SyncDuckDBResource | None = None) -> dg.Definitions:
    """The location's definitions; `duckdb` for a test's own mirror (default: the first mirror's resource)."""
    return dg.Definitions(
        assets=[MIRROR_AS_SEEN_HERE, all_types_profile, demo_dbt_models],
        sensors=[
            # On by default, unlike Dagster's default automation sensor: the demo shows the models follow their table.
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.assets(all_types_profile) | dg.AssetSelection.assets(demo_dbt_models),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=10,
            )
        ],
        resources={
            "duckdb": duckdb or _first_mirrors_duckdb(),
            "dbt": DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE),
        },
        executor=dg.in_process_executor,
    )


skip_final_collection()
defs = build_downstream_definitions()
