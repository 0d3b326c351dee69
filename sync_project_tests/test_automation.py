"""Schedule and sensors, evaluated against the local Snowflake and a temporary instance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import snowflake.connector

from sync_project.assets import SYNC_BATCH_SIZE
from sync_project.automation import (
    CLEANUP_SCHEDULE,
    SYNC_SCHEDULE,
    VERIFY_SCHEDULE,
    build_auto_register_sensor,
    build_change_sensor,
    build_sync_schedule,
    build_verify_schedule,
)
from sync_project.checks import CONTENT_CHECK
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB, VERIFY_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.publishing import build_publish_sensor
from sync_project.resources import duckdb_resource, snowflake_resource
from sync_project.settings import Settings
from sync_project_tests.helpers import fetch, snowflake_settings

DATABASE = "KEBOOLA_33"


@pytest.fixture
def schema(local_snowflake: LocalSnowflakeProcess) -> Iterator[str]:
    """A fresh schema per test, so other tests' tables never show up here."""
    name = f"AUTO_{uuid.uuid4().hex[:8].upper()}"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA {DATABASE}.{name}")
    yield name


def make_tables(sf: Any, schema: str, names: list[str], rows: int = 100) -> list[str]:
    for name in names:
        fetch(sf, f"CREATE TABLE {DATABASE}.{schema}.{name} (ID NUMBER(38,0), V VARCHAR)")
        fetch(
            sf, f"INSERT INTO {DATABASE}.{schema}.{name} SELECT SEQ8(), 'v' FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
        )
    return [f"{schema}.{name}" for name in names]


def sync(settings: Settings, instance: dg.DagsterInstance, key: str) -> None:
    result = (
        build_definitions(settings)
        .resolve_job_def(SYNC_JOB)
        .execute_in_process(tags={"dagster/partition": key}, instance=instance)
    )
    assert result.success


def evaluate(
    sensor: dg.SensorDefinition, settings: Settings, instance: dg.DagsterInstance, cursor: str | None = None
) -> Any:
    context = dg.build_sensor_context(
        instance=instance, resources={"snowflake": snowflake_resource(settings)}, cursor=cursor
    )
    return sensor(context)


def test_change_sensor_requests_exactly_the_changed_table(
    settings: Settings, instance: dg.DagsterInstance, sf: Any, schema: str
) -> None:
    keys = make_tables(sf, schema, ["CHG_A", "CHG_B", "CHG_C"])
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    sensor = build_change_sensor(settings)
    first = evaluate(sensor, settings, instance)
    # Never synced, and registered one after another: one run for the three.
    (batch,) = first.run_requests
    assert (batch.tags["dagster/asset_partition_range_start"], batch.tags["dagster/asset_partition_range_end"]) == (
        keys[0],
        keys[-1],
    )
    for key in keys:
        sync(settings, instance, key)
    quiet = evaluate(sensor, settings, instance)
    assert isinstance(quiet, dg.SkipReason) and "none changed" in str(quiet.skip_message)
    fetch(sf, f"INSERT INTO {DATABASE}.{schema}.CHG_B VALUES (1000, 'new')")
    changed = evaluate(sensor, settings, instance)
    (request,) = changed.run_requests
    assert request.partition_key == f"{schema}.CHG_B"
    assert "rows 100 -> 101" in request.tags["sync_reason"]
    # What its last sync did with deleted rows (a full sync copies the table whole).
    assert "its last sync: 0 deleted row(s), copied whole" in request.tags["sync_reason"]
    again = evaluate(sensor, settings, instance)
    assert [r.run_key for r in again.run_requests] == [request.run_key]  # same figures, same run key: no double run
    sync(settings, instance, f"{schema}.CHG_B")
    assert isinstance(evaluate(sensor, settings, instance), dg.SkipReason)


def test_change_sensor_explains_a_vanished_table(
    settings: Settings, instance: dg.DagsterInstance, sf: Any, schema: str
) -> None:
    keys = make_tables(sf, schema, ["GONE"])
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    sync(settings, instance, keys[0])
    fetch(sf, f"DROP TABLE {DATABASE}.{schema}.GONE")
    result = evaluate(build_change_sensor(settings), settings, instance)
    assert isinstance(result, dg.SkipReason) and "not found in Snowflake" in str(result.skip_message)


def test_schedule_requests_batches_of_tables_with_unique_run_keys(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    schedule = build_sync_schedule(settings)
    empty = schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(empty, dg.SkipReason)
    keys = [f"S.T{i:02d}" for i in range(SYNC_BATCH_SIZE + 2)] + ['S."c.d"']
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    tick = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)
    result = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
    assert isinstance(result, list)
    requests: list[dg.RunRequest] = result
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]) for r in requests
    ]
    # 28 tables: two runs of 14 (not 25 and 3), in registration order, covering each table once.
    assert ranges == [(keys[0], keys[13]), (keys[14], keys[-1])]
    assert len({r.run_key for r in requests}) == 2 and all(tick.isoformat() in str(r.run_key) for r in requests)
    # The runs list shows each run's tables by name (it cuts the long partition keys in the middle).
    assert [r.tags["tables"] for r in requests] == ["T00 .. T13 (14)", "T14 .. c.d (14)"]


def test_auto_registration_adds_new_and_deregisters_only_when_told(
    settings: Settings, instance: dg.DagsterInstance, sf: Any, schema: str
) -> None:
    make_tables(sf, schema, ["AR_ONE", "AR_TWO", "OTHER"])
    configured = dataclasses.replace(settings, auto_register_schema=schema, auto_register_like="AR\\_%")
    sensor = build_auto_register_sensor(configured)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    result = evaluate(sensor, configured, instance)
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == [f"{schema}.AR_ONE", f"{schema}.AR_TWO"]
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, add.partition_keys)
    fetch(sf, f"DROP TABLE {DATABASE}.{schema}.AR_TWO")
    kept = evaluate(sensor, configured, instance, result.cursor)
    assert kept.dynamic_partitions_requests == []
    told = dataclasses.replace(configured, auto_deregister=True)
    removed = evaluate(build_auto_register_sensor(told), told, instance, result.cursor)
    (delete,) = removed.dynamic_partitions_requests
    assert isinstance(delete, dg.DeleteDynamicPartitionsRequest) and delete.partition_keys == [f"{schema}.AR_TWO"]


def test_auto_registration_is_inert_until_configured(settings: Settings, instance: dg.DagsterInstance) -> None:
    result = evaluate(build_auto_register_sensor(settings), settings, instance)
    assert isinstance(result, dg.SkipReason) and "SYNC_AUTO_REGISTER_SCHEMA" in str(result.skip_message)


def shipped_schedules() -> dict[str, dg.ScheduleDefinition]:
    """The schedules the definitions built from the current environment hold, by name."""
    schedules = build_definitions(Settings.from_env()).schedules or []
    return {s.name: s for s in schedules if isinstance(s, dg.ScheduleDefinition)}


def test_schedules_follow_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shipped: the nightly sync at 02:00 UTC and the cleanup at 03:30, both running; the weekly verify on Sundays
    at 04:00, stopped whatever SYNC_SCHEDULES says (each table costs a scan on the warehouse). The crons and the
    first two's default state come from the environment: a test instance runs no schedule by the wall clock."""
    for name in (
        "SYNC_SCHEDULE_CRON",
        "SYNC_CLEANUP_CRON",
        "SYNC_VERIFY_CRON",
        "SYNC_SCHEDULE_TIMEZONE",
        "SYNC_SCHEDULES",
    ):
        monkeypatch.delenv(name, raising=False)

    def following(schedules: dict[str, dg.ScheduleDefinition]) -> set[dg.DefaultScheduleStatus]:
        return {s.default_status for name, s in schedules.items() if name != VERIFY_SCHEDULE}

    shipped = shipped_schedules()
    assert shipped[SYNC_SCHEDULE].cron_schedule == "0 2 * * *"
    assert shipped[CLEANUP_SCHEDULE].cron_schedule == "30 3 * * *"
    assert shipped[VERIFY_SCHEDULE].cron_schedule == "0 4 * * 0"
    assert {s.execution_timezone for s in shipped.values()} == {"UTC"}
    assert following(shipped) == {dg.DefaultScheduleStatus.RUNNING}
    assert shipped[VERIFY_SCHEDULE].default_status == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("SYNC_CLEANUP_CRON", "*/5 * * * *")
    monkeypatch.setenv("SYNC_VERIFY_CRON", "0 5 * * 6")
    monkeypatch.setenv("SYNC_SCHEDULES", "stopped")
    schedules = shipped_schedules()
    assert schedules[CLEANUP_SCHEDULE].cron_schedule == "*/5 * * * *"
    assert schedules[VERIFY_SCHEDULE].cron_schedule == "0 5 * * 6"
    assert following(schedules) == {dg.DefaultScheduleStatus.STOPPED}
    monkeypatch.setenv("SYNC_SCHEDULES", "running")
    assert following(shipped_schedules()) == {dg.DefaultScheduleStatus.RUNNING}
    monkeypatch.setenv("SYNC_SCHEDULES", "paused")
    with pytest.raises(ValueError, match="SYNC_SCHEDULES='paused' is not a schedule state"):
        Settings.from_env()


# -- the resources are the configuration: an override there reaches the sensors ---------------------------------


def test_auto_registration_lists_the_database_of_the_snowflake_resource(
    settings: Settings, instance: dg.DagsterInstance, sf: Any, schema: str
) -> None:
    """Settings name the demo's database; the resource, overridden, another one: the sensor lists the resource's
    (the one the sync reads), not the settings'."""
    other = f"OTHER_{uuid.uuid4().hex[:6].upper()}"
    fetch(sf, f"CREATE DATABASE {other}")
    fetch(sf, f"CREATE SCHEMA {other}.{schema}")
    fetch(sf, f"CREATE TABLE {other}.{schema}.ELSEWHERE (ID NUMBER(38,0))")
    make_tables(sf, schema, ["HERE"])  # in the settings' database only
    configured = dataclasses.replace(settings, auto_register_schema=schema, auto_register_like="%")
    overridden = snowflake_resource(dataclasses.replace(configured, snowflake_database=other))
    context = dg.build_sensor_context(instance=instance, resources={"snowflake": overridden})
    result = build_auto_register_sensor(configured)(context)
    assert isinstance(result, dg.SensorResult), result
    (add,) = result.dynamic_partitions_requests or []
    assert add.partition_keys == [f"{schema}.ELSEWHERE"]


def test_the_change_sensor_reads_the_database_of_the_snowflake_resource(
    settings: Settings, instance: dg.DagsterInstance, sf: Any, schema: str
) -> None:
    """A table only the overridden resource's database has: with the settings' resource the sensor finds it
    missing; with the overridden one it asks for the table's first sync."""
    other = f"OTHER_{uuid.uuid4().hex[:6].upper()}"
    fetch(sf, f"CREATE DATABASE {other}")
    fetch(sf, f"CREATE SCHEMA {other}.{schema}")
    fetch(sf, f"CREATE TABLE {other}.{schema}.ONLY_THERE (ID NUMBER(38,0))")
    key = f"{schema}.ONLY_THERE"
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [key])
    sensor = build_change_sensor(settings)
    assert isinstance(evaluate(sensor, settings, instance), dg.SkipReason)  # not in the settings' database
    overridden = snowflake_resource(dataclasses.replace(settings, snowflake_database=other))
    result = sensor(dg.build_sensor_context(instance=instance, resources={"snowflake": overridden}))
    assert isinstance(result, dg.SensorResult), result
    assert [r.partition_key for r in result.run_requests or []] == [key]


def test_the_publish_sensor_follows_the_target_of_the_duckdb_resource(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """Settings say the DuckDB file; the resource, overridden, a lake: the sensor publishes nothing, as the
    publish job (which reads the same resource) would not."""
    lake = dataclasses.replace(
        settings, target="ducklake", ducklake_catalog=str(tmp_path / "lake.sqlite"), ducklake_data_path=str(tmp_path)
    )
    for resource, publishes in ((duckdb_resource(settings), True), (duckdb_resource(lake), False)):
        context = dg.build_sensor_context(instance=instance, resources={"duckdb": resource})
        result = build_publish_sensor(settings)(context)
        said = str(result.skip_message) if isinstance(result, dg.SkipReason) else ""
        assert ("DuckLake" not in said) is publishes, said


def test_the_weekly_verify_checks_every_table_content_too_and_starts_stopped(
    settings: Settings, instance: dg.DagsterInstance, sf: Any, schema: str
) -> None:
    keys = make_tables(sf, schema, ["VER_A", "VER_B"])
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    for key in keys:
        sync(settings, instance, key)
    schedule = build_verify_schedule(settings)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # a scan per table: turned on on purpose
    fetch(sf, f"UPDATE {DATABASE}.{schema}.VER_B SET V = 'w' WHERE ID = 7")  # the counts stay equal
    requests = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 12, 6)))
    assert isinstance(requests, list) and len(requests) == 1 and isinstance(requests[0], dg.RunRequest)
    request = requests[0]
    result = (
        build_definitions(settings)
        .resolve_job_def(VERIFY_JOB)
        .execute_in_process(tags=request.tags, instance=instance, raise_on_error=False)
    )
    content = {str(e.partition): e for e in result.get_asset_check_evaluations() if e.check_name == CONTENT_CHECK}
    assert sorted(content) == keys
    assert content[keys[0]].passed and not content[keys[1]].passed
    assert "V: sum of MD5s" in str(content[keys[1]].description)
