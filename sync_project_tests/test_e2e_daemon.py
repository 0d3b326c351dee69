"""End to end with real processes: `dagster job backfill` -> daemon -> run queue -> one run process per table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster._core.event_api import PartitionKeyFilter

from sync_project.checks import ROW_COUNT_CHECK
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import project_root
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import inject_fault
from sync_project_tests.helpers import create_numbered_tables

pytestmark = pytest.mark.e2e
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
    launched = dagster_processes.dagster(
        "job", "backfill", "-w", str(project_root() / "workspace.yaml"), "-j", "sync_tables", "--all", "all",
        "--noprompt",
    )  # fmt: skip
    assert launched.returncode == 0, launched.stdout + launched.stderr
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
    # Separate run processes that really ran at the same time.
    assert max_overlap([(r.start_time, r.end_time) for r in records]) >= 2
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        for i in range(TABLES):
            assert con.execute(f'SELECT count(*) FROM "{schema}"."T{i}"').fetchone() == (ROWS + i,)
    check = dg.AssetCheckKey(dg.AssetKey("snowflake_table"), ROW_COUNT_CHECK)
    for key in keys:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [check], partition_filter=PartitionKeyFilter(key=key)
        )[check]
        assert latest.event and latest.event.asset_check_evaluation and latest.event.asset_check_evaluation.passed
