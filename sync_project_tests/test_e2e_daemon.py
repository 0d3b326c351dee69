"""End to end with real processes: `dagster job backfill` -> daemon -> run queue -> one run process per table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import duckdb
import pytest
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.scheduler.instigation import TickStatus

from sync_project.checks import ROW_COUNT_CHECK
from sync_project.demo_tables import DEMO_SCHEMA
from sync_project.downstream_demo.definitions import AUTOMATION_SENSOR
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.launcher import RUN_PID_TAG
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import project_root
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import inject_fault
from sync_project_tests.helpers import create_numbered_tables

pytestmark = pytest.mark.e2e
T = TypeVar("T")
TABLES = 8
ROWS = 20_000


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_cli_backfill_runs_every_table_in_parallel_through_the_daemon(
    dagster_processes: DagsterProcesses, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    keys = create_numbered_tables(local_snowflake, "E2E", TABLES, ROWS)
    schema = keys[0].split(".")[0]
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    # Real unloads take seconds; so does each one here, which is when parallel runs pay off.
    inject_fault(local_snowflake.base_url, "unload", mode="stall", seconds=4, count=TABLES)
    dagster_processes.start_daemon()
    dagster_processes.backfill_every_table()
    [backfill] = instance.get_backfills()
    ours = dg.RunsFilter(job_name="sync_tables", tags={"dagster/backfill": backfill.backfill_id})  # its runs only
    deadline = time.monotonic() + 420
    records: Sequence[Any] = []
    while time.monotonic() < deadline:
        records = instance.get_run_records(ours)
        if len(records) == TABLES and all(r.dagster_run.is_finished for r in records):
            break
        time.sleep(2)
    log = (dagster_processes.home / "daemon.log").read_text()[-3000:]
    assert len(records) == TABLES, log
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}, log
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == sorted(keys)
    # Separate run processes that really ran at the same time, each forked from the daemon's warm server.
    assert max_overlap([(r.start_time, r.end_time) for r in records]) >= 2
    pids = [r.dagster_run.tags.get(RUN_PID_TAG) for r in records]
    assert None not in pids and len(set(pids)) == TABLES, pids
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        for i in range(TABLES):
            assert con.execute(f'SELECT count(*) FROM "{schema}"."T{i}"').fetchone() == (ROWS + i,)
    check = dg.AssetCheckKey(dg.AssetKey("snowflake_table"), ROW_COUNT_CHECK)
    for key in keys:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [check], partition_filter=PartitionKeyFilter(key=key)
        )[check]
        assert latest.event and latest.event.asset_check_evaluation and latest.event.asset_check_evaluation.passed


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    return len(instance.fetch_materializations(key, limit=100).records)


def _automation_ticks(instance: dg.DagsterInstance, after: float) -> int:
    """Evaluations of the demo location's automation sensor that started after `after` (a timestamp)."""
    states = [s for s in instance.all_instigator_state() if s.instigator_name == AUTOMATION_SENSOR]
    return sum(
        1
        for state in states
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=200)
        if tick.timestamp > after and tick.status != TickStatus.STARTED
    )


def test_with_the_daemon_syncing_all_types_builds_its_downstream_once_and_another_table_nothing(
    dagster_processes: DagsterProcesses,
) -> None:
    """The demo's workspace (the mirror and its downstream location): a sync of ALL_TYPES, launched from the CLI
    and run by the daemon, materializes the Python asset and the dbt model over it once, through the automation
    sensor across the two locations; a sync of `data` after it, watched for two more evaluations, none."""
    instance = dg.DagsterInstance.get()
    all_types, data = f"{DEMO_SCHEMA}.ALL_TYPES", f"{DEMO_SCHEMA}.data"
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [all_types, data])
    downstream = [dg.AssetKey("all_types_profile"), dg.AssetKey("all_types_summary")]
    dagster_processes.start_daemon(project_root() / "sync_project" / "downstream_demo" / "workspace.yaml")

    def sync(key: str) -> dg.DagsterRun:
        launched = dagster_processes.dagster(
            "job", "launch", "-w", str(project_root() / "workspace.yaml"), "-j", "sync_tables",
            "--tags", json.dumps({"dagster/partition": key}),
        )  # fmt: skip
        assert launched.returncode == 0, launched.stdout + launched.stderr
        return _wait_for(lambda: _finished_run(instance, key), "the sync of " + key, dagster_processes)

    assert sync(all_types).status == dg.DagsterRunStatus.SUCCESS
    _wait_for(
        lambda: all(_materializations(instance, k) == 1 for k in downstream) or None,
        "the downstream assets of ALL_TYPES",
        dagster_processes,
    )
    synced_data = sync(data)
    assert synced_data.status == dg.DagsterRunStatus.SUCCESS
    finished = instance.get_run_record_by_id(synced_data.run_id)
    assert finished is not None and finished.end_time is not None
    _wait_for(lambda: _automation_ticks(instance, finished.end_time or 0) >= 2 or None, "two ticks", dagster_processes)
    assert [_materializations(instance, k) for k in downstream] == [1, 1]


def _finished_run(instance: dg.DagsterInstance, key: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(job_name="sync_tables", tags={"dagster/partition": key}))
    return runs[0] if runs and runs[0].is_finished else None


def _wait_for(found: Callable[[], T | None], what: str, processes: DagsterProcesses, timeout: float = 300) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        time.sleep(1)
    raise AssertionError(f"no {what} in {timeout:.0f}s: {(processes.home / 'daemon.log').read_text()[-3000:]}")
