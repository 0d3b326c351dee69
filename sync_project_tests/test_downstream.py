"""An asset of yours that depends on one synced table runs after that table syncs, and only then: the
automation condition as the daemon's automation sensor evaluates it, tick after tick."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from sync_project.definitions import build_definitions
from sync_project.demo_tables import DEMO_SCHEMA
from sync_project.downstream import table_dep, when_table_syncs
from sync_project.jobs import SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings
from sync_project_tests.helpers import run_job

if TYPE_CHECKING:  # the cursor's class is not exported; only its type is needed
    from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor

ALL_TYPES = f"{DEMO_SCHEMA}.ALL_TYPES"
DATA = f"{DEMO_SCHEMA}.data"


@dg.asset(deps=[table_dep(ALL_TYPES)], automation_condition=when_table_syncs())
def all_types_report() -> None:
    """A downstream asset of ALL_TYPES only."""


class Ticks:
    """The automation sensor's evaluations, one after another, each from the previous one's cursor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self.cursor: AssetDaemonCursor | None = None

    def requested(self) -> int:
        result = dg.evaluate_automation_conditions(self.defs, self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return result.get_num_requested(all_types_report.key)


def test_a_downstream_asset_runs_once_after_its_table_syncs_and_not_for_another(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA, ALL_TYPES])
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(assets=[all_types_report]))
    ticks = Ticks(defs, instance)
    assert ticks.requested() == 0  # its table was never synced: nothing to build on

    assert run_job(settings, instance, SYNC_JOB, ALL_TYPES).success
    assert ticks.requested() == 1  # its table synced
    instance.report_runless_asset_event(dg.AssetMaterialization(all_types_report.key))  # it ran
    assert ticks.requested() == 0  # once per sync, not on every tick

    assert run_job(settings, instance, SYNC_JOB, DATA).success
    assert ticks.requested() == 0  # another table's sync is not its business

    assert run_job(settings, instance, SYNC_JOB, ALL_TYPES).success
    assert ticks.requested() == 1  # its table synced again


# -- the demo's downstream location: a Python asset and a dbt model (SnowflakeMirrorTranslator) over ALL_TYPES ----


def test_the_demos_dbt_model_and_python_asset_follow_all_types_and_only_it(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """The translator maps the dbt source to ALL_TYPES' partition: after ALL_TYPES syncs, the automation condition
    requests the model and the Python asset once; a sync of another table requests nothing. Built, the model
    holds the row count the sync left."""
    from sync_project.downstream_demo.definitions import build_downstream_definitions
    from sync_project.resources import duckdb_resource

    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA, ALL_TYPES])
    downstream = build_downstream_definitions(duckdb_resource(settings))
    model, profile = dg.AssetKey("all_types_summary"), dg.AssetKey("all_types_profile")
    assets = [a for a in downstream.assets or [] if isinstance(a, dg.AssetsDefinition)]
    # One asset graph for the evaluation, as the daemon sees the two locations (each keeps its own resources).
    dbt = {"dbt": (downstream.resources or {})["dbt"]}
    defs = dg.Definitions.merge(build_definitions(settings), dg.Definitions(assets=assets, resources=dbt))
    cursor = None

    def requested() -> dict[dg.AssetKey, int]:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
        cursor = result.cursor
        return {key: result.get_num_requested(key) for key in (model, profile)}

    assert requested() == {model: 0, profile: 0}
    assert run_job(settings, instance, SYNC_JOB, ALL_TYPES).success
    assert requested() == {model: 1, profile: 1}

    built = dg.materialize(
        assets,
        resources=dict(downstream.resources or {}),
        instance=instance,
    )
    assert built.success
    with duckdb.connect(str(settings.duckdb_path.with_name("analytics.duckdb")), read_only=True) as con:
        (count,) = con.execute("SELECT row_count FROM all_types_summary").fetchone() or (None,)
    synced = instance.get_latest_materialization_event(dg.AssetKey("snowflake_table"))
    assert synced and synced.asset_materialization
    assert count == synced.asset_materialization.metadata["dagster/partition_row_count"].value
    profiled = built.asset_materializations_for_node("all_types_profile")[0].metadata["rows"]
    assert profiled.value == count
    assert requested() == {model: 0, profile: 0}  # built once: not again on the next tick
    assert run_job(settings, instance, SYNC_JOB, DATA).success
    assert requested() == {model: 0, profile: 0}  # another table's sync is not theirs
