"""Many tables in one run: each keeps its own materialization and checks; one failing table hides nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import snowflake.connector

from sync_project.checks import ROW_COUNT_CHECK, SCHEMA_CHECK
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES, snowflake_tables_partitions
from sync_project.settings import Settings
from sync_project.sync.pipeline import sync_tables
from sync_project.sync.tables import TableRef
from sync_project.sync_record import SYNC_ASSET_KEY
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.helpers import connector, duckdb_rows, fetch, options, snowflake_settings

TABLES = 10


def sync_job() -> dg.JobDefinition:
    """The job as a run process builds it (module level, so Dagster can reconstruct it for a re-execution)."""
    return build_definitions(Settings.from_env()).resolve_job_def(SYNC_JOB)


def make_table(conn: object, schema: str, i: int) -> None:
    fetch(conn, f"CREATE OR REPLACE TABLE KEBOOLA_33.{schema}.T{i} (ID NUMBER(38,0), LABEL VARCHAR)")
    fetch(
        conn, f"INSERT INTO KEBOOLA_33.{schema}.T{i} SELECT SEQ8(), 'row' FROM TABLE(GENERATOR(ROWCOUNT => {100 + i}))"
    )


@pytest.fixture
def schema(local_snowflake: LocalSnowflakeProcess) -> str:
    name = f"MANY_{uuid.uuid4().hex[:6].upper()}"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA KEBOOLA_33.{name}")
        for i in range(TABLES):
            make_table(conn, name, i)
    return name


def test_ten_tables_in_one_run_one_failing_and_a_reexecution_of_only_that_one(
    local_snowflake: LocalSnowflakeProcess, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", str(local_snowflake.port))
    monkeypatch.setenv("SYNC_DUCKDB_PATH", str(tmp_path / "sync.duckdb"))
    monkeypatch.setenv("SYNC_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    keys = [f"{schema}.T{i}" for i in range(TABLES)]
    broken = keys[3]
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"DROP TABLE KEBOOLA_33.{schema}.T3")  # registered, then gone from Snowflake: permanent
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
        result = sync_job().execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        )
        assert not result.success
        materialized = sorted(str(m.partition) for m in result.asset_materializations_for_node("snowflake_table"))
        assert materialized == sorted(k for k in keys if k != broken)
        evaluations = result.get_asset_check_evaluations()
        assert {(e.check_name, e.partition) for e in evaluations if e.passed} == {
            (check, key) for check in (ROW_COUNT_CHECK, SCHEMA_CHECK) for key in keys if key != broken
        }
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        error = failure.step_failure_data.error
        assert error is not None and broken in error.message and "does not exist" in error.message
        assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
        status = instance.get_status_by_partition(SYNC_ASSET_KEY, keys, snowflake_tables_partitions)
        assert status is not None and {k for k, v in status.items() if v is not None and v.value == "FAILED"} == {
            broken
        }
        for i, key in enumerate(keys):
            if key != broken:
                assert len(duckdb_rows(tmp_path / "sync.duckdb", f'"{schema}"."T{i}"')) == 100 + i

        with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
            make_table(conn, schema, 3)  # fixed in Snowflake
        # As the UI's "Re-execute from failure" does: the parent's step, with the parent's tags (its tables).
        parent_tags = {k: v for k, v in result.dagster_run.tags.items() if k.startswith("dagster/asset_partition")}
        again = dg.execute_job(
            dg.reconstructable(sync_job),
            instance=instance,
            tags=parent_tags,
            reexecution_options=dg.ReexecutionOptions.from_failure(result.run_id, instance),
        )
        assert again.success
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=SYNC_ASSET_KEY), limit=100).records
        by_run = [r.partition_key for r in records if r.run_id == again.run_id]
        assert by_run == [broken]  # the re-execution synced only the failed table
        assert len(duckdb_rows(tmp_path / "sync.duckdb", f'"{schema}"."T3"')) == 103


def test_the_engine_overlaps_tables_and_keeps_their_outcomes_apart(
    local_snowflake: LocalSnowflakeProcess, schema: str, tmp_path: Path
) -> None:
    tables = [TableRef("KEBOOLA_33", schema, f"T{i}") for i in range(TABLES)] + [
        TableRef("KEBOOLA_33", schema, "NOT_THERE")
    ]
    outcomes = {o.table.name: o for o in sync_tables(connector(local_snowflake), tables, options(tmp_path), workers=4)}
    assert set(outcomes) == {t.name for t in tables}
    assert outcomes["NOT_THERE"].report is None and "does not exist" in str(outcomes["NOT_THERE"].error)
    for i in range(TABLES):
        report = outcomes[f"T{i}"].report
        assert report is not None and report.rows_total == 100 + i


def test_batches_are_contiguous_stretches_of_at_most_25_and_even() -> None:
    from sync_project.automation import batches

    registered = [f"S.T{i:02d}" for i in range(60)]
    assert [len(b) for b in batches(registered, set(registered))] == [20, 20, 20]
    wanted = {"S.T01", "S.T02", "S.T05", "S.T59"}
    assert batches(registered, wanted) == [["S.T01", "S.T02"], ["S.T05"], ["S.T59"]]


def test_sync_all_queues_runs_of_many_tables(dagster_processes: DagsterProcesses) -> None:
    from click.testing import CliRunner

    from sync_project.cli import main

    keys = [f"WORKSPACE_833213390.T{i:02d}" for i in range(30)]
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    result = CliRunner().invoke(main, ["sync", "--all"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = dg.DagsterInstance.get().get_runs(dg.RunsFilter(job_name=SYNC_JOB))
    ranges = sorted(
        (r.tags.get("dagster/asset_partition_range_start"), r.tags.get("dagster/asset_partition_range_end"))
        for r in runs
        if "dagster/asset_partition_range_start" in r.tags
    )
    assert ranges == [(keys[0], keys[14]), (keys[15], keys[29])]  # 30 tables: two runs of 15
    assert all(r.status == dg.DagsterRunStatus.QUEUED for r in runs) and len(runs) == 2
    assert "queued a sync of 15 tables" in result.output


def test_a_process_that_loads_the_definitions_skips_the_final_collection() -> None:
    """The last cyclic collection at exit walks Dagster's whole heap (0.4 s of every run); the definitions
    freeze the heap at exit instead. A handler registered before the import runs after theirs and looks."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "import sync_project.definitions\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "frozen True"


def test_tables_of_one_run_share_sessions_and_release_the_file_when_it_ends(
    local_snowflake: LocalSnowflakeProcess, schema: str, tmp_path: Path
) -> None:
    """A run of small tables signs in once per worker (a failed table's session is dropped, not reused), and the
    DuckDB file its loads shared is free for another process the moment the run's last outcome is read."""
    signed_in: list[int] = []
    real = connector(local_snowflake)

    def counting() -> Any:
        signed_in.append(1)
        return real()

    tables = [TableRef("KEBOOLA_33", schema, f"T{i}") for i in range(TABLES)]
    tables.insert(3, TableRef("KEBOOLA_33", schema, "NOT_THERE"))
    opts = options(tmp_path)
    outcomes = list(sync_tables(counting, tables, opts, workers=2))
    assert sum(o.report is not None for o in outcomes) == TABLES, [str(o.error) for o in outcomes if o.error]
    assert len(signed_in) <= 3  # two workers, and one new session after the failed table's
    other = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(tmp_path / 'sync.duckdb')!r}).close()"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
