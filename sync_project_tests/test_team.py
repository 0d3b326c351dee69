"""The team deployment end to end: Postgres storage, a Redis broker, the webserver and daemon on the team
profile, two Celery workers writing one DuckLake on Postgres; and what a killed worker, a restarted broker
and a restarted Postgres do to runs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import redis
import snowflake.connector
from dagster._core.event_api import PartitionKeyFilter
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from sync_project.automation import CHANGE_SENSOR, SYNC_SCHEDULE
from sync_project.checks import ROW_COUNT_CHECK
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.resources import duckdb_resource
from sync_project.settings import Settings
from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror.lake import Lake
from sync_project.sync.tables import TableRef
from sync_project.team.worker import WorkerPlan, worker_plan
from sync_project_tests.daemon import BIN, PARTITION_RUNS, DagsterProcesses, graphql
from sync_project_tests.emulator_controls import fault_state, inject_fault
from sync_project_tests.helpers import assert_exact_copy, create_numbered_tables, fetch, snowflake_settings
from sync_project_tests.postgres import postgres_server
from sync_project_tests.s3 import S3Server
from sync_project_tests.team import BROKER_QUEUE, WORKSPACE, Team, run_pids, team_deployment, wait_for_runs

pytestmark = pytest.mark.e2e
TABLES = 8
ROWS = 20_000
DATABASE = "KEBOOLA_33"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, local_snowflake: LocalSnowflakeProcess) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team")
    with (
        postgres_server(root / "pgdata") as postgres,
        # The change sensor looks every 5 s here (300 by default), so the automation test waits seconds.
        team_deployment(root, local_snowflake, postgres, SYNC_CHANGE_SENSOR_SECONDS="5") as deployment,
    ):
        yield deployment


def create_tables(local_snowflake: LocalSnowflakeProcess, count: int, rows: int = ROWS) -> list[str]:
    """`count` new tables of `rows` (+i) rows in a new schema; their partition keys, registered."""
    keys = create_numbered_tables(local_snowflake, "TEAM", count, rows)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    return keys


def wait_until_fired(local_snowflake: LocalSnowflakeProcess, kind: str, team: Team) -> None:
    """Return once the emulator has fired the injected fault of `kind` (the sync is in it now)."""
    deadline = time.monotonic() + 120
    while kind not in fault_state(local_snowflake.base_url)["fired"]:
        assert time.monotonic() < deadline, team.logs()
        time.sleep(0.2)


def assert_synced(team: Team, local_snowflake: LocalSnowflakeProcess, key: str, download_root: Path) -> None:
    """The lake's table equals Snowflake's and the row-count check passed for its partition."""
    schema, name = key.split(".")
    lake = Lake(team.lake_catalog, team.lake_data)
    assert_exact_copy(
        local_snowflake, team.home / "unused.duckdb", download_root, TableRef(DATABASE, schema, name), lake
    )
    check = dg.AssetCheckKey(dg.AssetKey("snowflake_table"), ROW_COUNT_CHECK)
    with dg.DagsterInstance.get() as instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [check], partition_filter=PartitionKeyFilter(key=key)
        )[check]
    assert latest.event and latest.event.asset_check_evaluation and latest.event.asset_check_evaluation.passed


def backfill_new_tables(team: Team, local_snowflake: LocalSnowflakeProcess) -> tuple[list[str], list[Any]]:
    """A CLI backfill of TABLES new tables, each run succeeded: their keys and the runs' records."""
    keys = create_tables(local_snowflake, TABLES)
    # Each unload stalls a second, as real ones take seconds: both workers get runs to do.
    inject_fault(local_snowflake.base_url, "unload", mode="stall", seconds=1, count=TABLES)
    team.backfill(keys)
    with dg.DagsterInstance.get() as instance:
        records = wait_for_runs(instance, TABLES, 300, team)
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}, team.logs()
    return keys, list(records)


def test_a_cli_backfill_runs_on_both_workers_and_lands_in_one_lake(
    team: Team, local_snowflake: LocalSnowflakeProcess
) -> None:
    keys, records = backfill_new_tables(team, local_snowflake)
    with dg.DagsterInstance.get() as instance:
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == sorted(keys)
        pids = {r.dagster_run.run_id: run_pids(instance, r.dagster_run.run_id) for r in records}
        # The run history is Dagster's Postgres storage, which the webserver and daemon share.
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    # The webserver on the team profile shows the same runs, each partition's run succeeded.
    for key in keys:
        [shown] = graphql(team.ui_port, PARTITION_RUNS, {"value": key})["runsOrError"]["results"]
        assert shown["status"] == "SUCCESS"
    stored = team.postgres.psql(f'\\c "{team.dagster_database}"\nSELECT count(*) FROM runs;')
    assert f" {TABLES}\n" in stored
    # Every step ran in a worker's pool (its PID in the step's events), and both workers took runs.
    assert all(len(p) == 1 for p in pids.values()), pids
    assert {team.worker_of(p[0]) for p in pids.values()} == {"a", "b"}, pids
    for key in keys:
        assert_synced(team, local_snowflake, key, team.downloads)


ANALYST = """
import json, sys
from sync_project.sync.mirror.lake import lake_session
from sync_project.sync.mirror.lake import Lake
catalog, data, *tables = sys.argv[1:]
with lake_session(Lake(catalog, data), read_only=True, what="an analyst's read") as con:
    print(json.dumps({t: [[str(v) for v in r] for r in con.execute(f"SELECT * FROM {t}").fetchall()] for t in tables}))
"""


def test_a_backfill_on_both_workers_writes_the_lake_to_s3_and_an_analyst_reads_it_with_a_read_only_key(
    tmp_path_factory: pytest.TempPathFactory, local_snowflake: LocalSnowflakeProcess, s3: S3Server
) -> None:
    root = tmp_path_factory.mktemp("team-s3")
    data_path = s3.new_prefix()
    with (
        postgres_server(root / "pgdata") as postgres,
        team_deployment(root, local_snowflake, postgres, SYNC_DUCKLAKE_DATA_PATH=data_path, **s3.env("worker")) as team,
    ):
        keys, records = backfill_new_tables(team, local_snowflake)
        with dg.DagsterInstance.get() as instance:
            workers = {team.worker_of(run_pids(instance, r.dagster_run.run_id)[0]) for r in records}
        assert workers == {"a", "b"}
        tables = [TableRef(DATABASE, *key.split(".")) for key in keys]
        stored = s3.objects(data_path)
        for table in tables:  # every table's rows are objects in the bucket, none in a folder
            assert any(k.startswith(f"{table.duckdb_schema}/{table.duckdb_table}/") for k in stored), stored
        assert not (root / "lake-data").exists()

        # An analyst's process, with only its own read-only key, attaches the lake and reads every table.
        analyst_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | s3.env("analyst")
        read = subprocess.run(
            [sys.executable, "-c", ANALYST, team.lake_catalog, data_path, *(t.duckdb_sql for t in tables)],
            env=analyst_env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert read.returncode == 0, read.stderr
        seen = json.loads(read.stdout)
        with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
            for table in tables:
                source = sorted([str(v) for v in r] for r in fetch(conn, f"SELECT * FROM {table.snowflake_sql}"))
                assert sorted(seen[table.duckdb_sql]) == source


def test_a_worker_killed_mid_sync_has_its_run_resumed_on_the_other(
    team: Team, local_snowflake: LocalSnowflakeProcess
) -> None:
    [key] = create_tables(local_snowflake, 1, rows=50_000)
    # The download stalls long enough to kill the worker in the middle of the sync.
    inject_fault(local_snowflake.base_url, "download", mode="stall", seconds=60, count=1)
    team.backfill([key])
    wait_until_fired(local_snowflake, "download", team)
    with dg.DagsterInstance.get() as instance:
        [record] = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": key}))
        run_id = record.dagster_run.run_id
        [first_pid] = run_pids(instance, run_id)
        victim = team.worker_of(first_pid)
        assert victim is not None
        team.kill_worker(victim)
        # Its pool process, which ran the sync, dies with it: nothing goes on syncing the table unseen.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{first_pid}").exists():
            assert time.monotonic() < deadline, f"the pool process {first_pid} outlived its worker"
            time.sleep(0.1)
        [record] = wait_for_runs(instance, 1, 180, team, run_ids=[run_id])
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, team.logs()
        # The same run, resumed by run monitoring: its second step start is in the other worker.
        first, second = run_pids(instance, run_id)
        assert first == first_pid and team.worker_of(second) not in (None, victim)
        resumed = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
        assert any("Resuming run" in (r.event_log_entry.message or "") for r in resumed)
    survivor = next(name for name in team.workers if name != victim)
    assert_synced(team, local_snowflake, key, team.downloads / survivor)
    team.start_worker(victim)  # back to two workers for the next test
    team.wait_for_workers()


def restart_mid_run(
    team: Team, local_snowflake: LocalSnowflakeProcess, keys: list[str], restart: Callable[[], None]
) -> None:
    """Sync keys[0], `restart` a service while its run waits on Snowflake, then sync keys[1]: both succeed."""
    inject_fault(local_snowflake.base_url, "unload", mode="stall", seconds=6, count=1)
    team.backfill(keys[:1])
    wait_until_fired(local_snowflake, "unload", team)
    restart()
    with dg.DagsterInstance.get() as instance:
        for i, key in enumerate(keys):
            if i:  # the services reconnected: the next run is taken as usual
                team.backfill([key])
            [record] = wait_for_runs(instance, 1, 180, team, tags={"dagster/partition": key})
            assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, team.logs()
    for key in keys:
        assert_synced(team, local_snowflake, key, team.downloads)


def test_the_broker_restarting_mid_run_loses_nothing(team: Team, local_snowflake: LocalSnowflakeProcess) -> None:
    restart_mid_run(team, local_snowflake, create_tables(local_snowflake, 2), team.redis.restart)


def test_a_run_waiting_in_the_broker_survives_its_restart_and_runs_once(
    team: Team, local_snowflake: LocalSnowflakeProcess
) -> None:
    """A run sent to Redis while no worker can take it sits in the broker's queue; Redis restarts (its data on
    disk, `appendonly yes`), the workers come back, and the run executes exactly once."""
    [key] = create_tables(local_snowflake, 1)
    broker = redis.Redis.from_url(team.redis.url)
    for name in list(team.workers):
        team.stop_worker(name)
    try:
        team.backfill([key])
        deadline = time.monotonic() + 120
        while broker.llen(BROKER_QUEUE) == 0:  # the daemon has launched the run: its task waits in Redis
            assert time.monotonic() < deadline, team.logs()
            time.sleep(0.2)
        team.redis.restart()
        broker = redis.Redis.from_url(
            team.redis.url, retry=Retry(ExponentialBackoff(cap=2, base=0.1), 15)
        )  # while it loads
        assert broker.llen(BROKER_QUEUE) == 1  # still there after the restart
    finally:
        for name in list(team.workers):
            team.start_worker(name)
        team.wait_for_workers()
    with dg.DagsterInstance.get() as instance:
        [record] = wait_for_runs(instance, 1, 180, team, tags={"dagster/partition": key})
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, team.logs()
        assert len(run_pids(instance, record.dagster_run.run_id)) == 1  # one step start: it ran once
    assert broker.llen(BROKER_QUEUE) == 0
    assert_synced(team, local_snowflake, key, team.downloads)


def test_postgres_restarting_mid_run_keeps_history_and_the_run(
    team: Team, local_snowflake: LocalSnowflakeProcess
) -> None:
    """A fast shutdown while the run waits on Snowflake: Dagster's storage and the lake's catalog both lose
    their server, and every client is disconnected."""
    with dg.DagsterInstance.get() as instance:
        before = len(instance.get_run_records(dg.RunsFilter(job_name="sync_tables")))
    restart_mid_run(team, local_snowflake, create_tables(local_snowflake, 2), team.postgres.restart)
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_run_records(dg.RunsFilter(job_name="sync_tables"))) == before + 2


def test_batched_syncs_and_the_change_sensor_work_unchanged_on_the_team_profile(
    team: Team, local_snowflake: LocalSnowflakeProcess
) -> None:
    keys = create_tables(local_snowflake, 3)
    with dg.DagsterInstance.get() as instance:
        before = {r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(job_name="sync_tables"))}
        # The many-tables path: one run covers the three tables, each still its own partition and checks.
        queued = team.processes.run([str(BIN / "sync-project"), "sync", *keys])
        assert queued.returncode == 0 and "3 tables" in queued.stdout, queued.stdout + queued.stderr
        [batch] = [r for r in wait_for_runs(instance, len(before) + 1, 180, team) if r.dagster_run.run_id not in before]
        assert batch.dagster_run.status == dg.DagsterRunStatus.SUCCESS, team.logs()
        for key in keys:
            assert_synced(team, local_snowflake, key, team.downloads)
        # The change sensor, ticked by the daemon, syncs a table that moved in Snowflake.
        schema, name = keys[1].split(".")
        with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
            fetch(conn, f"INSERT INTO {DATABASE}.{schema}.{name} VALUES (-1, 1.5, 'late row')")
        started = team.processes.dagster("sensor", "start", "-w", WORKSPACE, CHANGE_SENSOR)
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            records = wait_for_runs(instance, 1, 180, team, tags={"dagster/sensor_name": CHANGE_SENSOR})
        finally:
            team.processes.dagster("sensor", "stop", "-w", WORKSPACE, CHANGE_SENSOR)
        assert [r.dagster_run.tags.get("dagster/partition") for r in records] == [keys[1]]
        assert records[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS, team.logs()
    assert_synced(team, local_snowflake, keys[1], team.downloads)


def test_a_worker_refuses_a_mirror_that_lives_on_one_machine(settings: Settings, tmp_path: Path) -> None:
    def plan_for(**changes: Any) -> WorkerPlan:
        return worker_plan(duckdb_resource(dataclasses.replace(settings, **changes)), "a", None, 2)

    with pytest.raises(PermanentError, match="SYNC_TARGET=ducklake"):
        plan_for(target="duckdb")  # the DuckDB file
    with pytest.raises(PermanentError, match="PostgreSQL catalog"):
        plan_for(target="ducklake", ducklake_catalog=str(tmp_path / "lake.sqlite"))
    plan = plan_for(target="ducklake", ducklake_catalog="postgres:dbname=lake host=db.internal")
    assert plan.name.startswith("a@") and plan.download_dir == settings.download_dir / "a" and plan.concurrency == 2


def test_a_worker_on_an_instance_without_celery_says_which_file_to_copy(
    dagster_processes: DagsterProcesses,
) -> None:
    # The single-machine dagster.yaml, with a team's lake so that only the launcher is wrong.
    dagster_processes.env |= {"SYNC_TARGET": "ducklake", "SYNC_DUCKLAKE_CATALOG": "postgres:dbname=lake host=/nowhere"}
    done = dagster_processes.run([str(BIN / "sync-project"), "worker", "--name", "a"], timeout=60)
    assert done.returncode == 1 and "sync_project/team/dagster.yaml" in done.stderr, done.stdout + done.stderr


def test_the_nightly_schedule_runs_its_batches_on_a_worker(
    tmp_path: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    """The schedule's own path on the team profile: its cron every minute, the daemon ticks it, and the batch
    run of every registered table executes on a Celery worker (a deployment of its own, so that no other
    test's runs meet the schedule's)."""
    with (
        postgres_server(tmp_path / "pgdata") as postgres,
        team_deployment(
            tmp_path,
            local_snowflake,
            postgres,
            workers=("a",),
            SYNC_SCHEDULE_CRON="* * * * *",
            SYNC_SCHEDULES="running",
        ) as team,
    ):
        keys = create_tables(local_snowflake, 3)
        with dg.DagsterInstance.get() as instance:
            # Every minute: on a slow machine a second tick may come before the first run ends; each run is whole.
            records = wait_for_runs(instance, 1, 180, team, tags={"dagster/schedule_name": SYNC_SCHEDULE})
            assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}, team.logs()
            record = min(records, key=lambda r: r.create_timestamp)
            [pid] = run_pids(instance, record.dagster_run.run_id)
            assert team.worker_of(pid) == "a"
        for key in keys:
            assert_synced(team, local_snowflake, key, team.downloads)
