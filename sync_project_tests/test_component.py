"""`SnowflakeMirrorComponent` from its YAML: attributes become the definitions, and tables declared as code are
registered (with their options) by its sensor, beside the tables registered at run time."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import dagster as dg

from sync_project.component import SnowflakeMirrorComponent
from sync_project.declared_tables import DECLARED_TABLES_SENSOR
from sync_project.demo_tables import DEMO_SCHEMA
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings
from sync_project.sync.state import TableOptions, read_sync_state
from sync_project.sync.tables import TableRef
from sync_project_tests.helpers import options

ALL_TYPES, DATA = f"{DEMO_SCHEMA}.ALL_TYPES", f"{DEMO_SCHEMA}.data"


def mirror(tmp_path: Path, extra: str = "") -> dg.Definitions:
    text = f"""
        duckdb_path: {tmp_path / "sync.duckdb"}
        download_dir: {tmp_path / "downloads"}
        schedule_cron: "15 4 * * *"
        schedule_timezone: Europe/Prague
        change_sensor_running: true
        batch_size: 5
        owners: ["team:analytics"]
        group: mirrors
        stage: SYNC_UNLOADS
        max_file_size: 1000000
        feed_from_bytes: 5000000
        get_parallel: 4
        disk_reserve_bytes: 0
    """
    component = SnowflakeMirrorComponent.resolve_from_yaml(textwrap.dedent(text) + textwrap.dedent(extra))
    return dg.component_defs(component=component)


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    sensor = defs.get_sensor_def(DECLARED_TABLES_SENSOR)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources)
    return sensor(context)


def test_the_attributes_shape_the_definitions(settings: Settings, tmp_path: Path) -> None:
    defs = mirror(tmp_path)
    spec = defs.resolve_assets_def("snowflake_table").specs_by_key[dg.AssetKey("snowflake_table")]
    assert (spec.group_name, list(spec.owners)) == ("mirrors", ["team:analytics"])
    nightly = defs.get_schedule_def("nightly_sync")
    assert (nightly.cron_schedule, nightly.execution_timezone) == ("15 4 * * *", "Europe/Prague")
    assert defs.get_sensor_def("snowflake_change_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_job_def("sync_tables").partitions_def is not None
    assert defs.resolve_assets_def("snowflake_table").backfill_policy == dg.BackfillPolicy.multi_run(5)
    duckdb = (defs.resources or {})["duckdb"]
    assert Path(duckdb.database) == tmp_path / "sync.duckdb"
    sync = duckdb.sync_options()  # what the engine is given: the attributes, not the environment's defaults
    chosen = (sync.stage, sync.max_file_size, sync.feed_from_bytes, sync.get_parallel, sync.disk_reserve)
    assert chosen == ("SYNC_UNLOADS", 1000000, 5000000, 4, 0)
    assert DECLARED_TABLES_SENSOR not in {s.name for s in defs.sensors or []}  # no tables declared: no sensor


def test_declared_tables_are_registered_with_their_options_and_again_when_they_change(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA])  # registered at run time: kept
    declared = f"""
        tables:
          - key: {ALL_TYPES}
    """
    defs = mirror(tmp_path, declared)
    first = tick(defs, instance, None)
    assert isinstance(first, dg.SensorResult) and first.cursor
    assert list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES)) == [DATA, ALL_TYPES]
    again = tick(defs, instance, first.cursor)
    assert isinstance(again, dg.SkipReason)  # nothing new: no DESC TABLE, no write

    incremental = f"- key: {ALL_TYPES}\n            strategy: incremental\n            cursor_column: ID"
    changed = mirror(tmp_path, declared.replace(f"- key: {ALL_TYPES}", incremental))
    third = tick(changed, instance, first.cursor)
    assert isinstance(third, dg.SensorResult) and third.cursor != first.cursor
    table = TableRef.from_key(ALL_TYPES, settings.snowflake_database)
    with options(tmp_path).mirror.session("reading the options", read_only=True, wait=10) as con:
        kept = read_sync_state(con, table).options
    assert kept == TableOptions("incremental", "ID", ("ID",))  # the key: ALL_TYPES' declared primary key
    assert list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES)) == [DATA, ALL_TYPES]


def test_a_declared_table_snowflake_refuses_is_named_and_registers_nothing(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    defs = mirror(tmp_path, f"\ntables:\n  - key: {DEMO_SCHEMA}.NO_SUCH_TABLE\n  - key: {ALL_TYPES}\n")
    result = tick(defs, instance, None)
    assert isinstance(result, dg.SkipReason) and "NO_SUCH_TABLE" in (result.skip_message or "")
    assert list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES)) == []
