"""Ctrl-C and SIGTERM stop a sync at once: Snowflake's statement cancelled, nothing retried, nothing left behind,
the previous DuckDB table untouched, exit code 130.

The sync is caught inside its unload by the emulator's `hold` fault (no timing: the test acts once the fault
has fired), and the hold is never released, so the sync can only end by being cancelled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
import snowflake.connector

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import CLEANUP_JOB
from sync_project.launcher import RUN_PID_TAG
from sync_project.partitions import table_for_partition
from sync_project.settings import Settings, project_root
from sync_project.sync.cancel import Cancellation, Interrupted
from sync_project.sync.pipeline import sync_table
from sync_project_tests.daemon import BIN, DagsterProcesses
from sync_project_tests.emulator_controls import fault_state, inject_fault, release_faults
from sync_project_tests.helpers import (
    connector,
    demo_table,
    duckdb_rows,
    fetch,
    file_of,
    options,
    snowflake_settings,
    stage_leftovers,
)
from sync_project_tests.reliability import observe
from sync_project_tests.test_first_hour import DATA, cli, register_and_sync

HELD = 600.0  # the hold's own limit, far beyond any wait below: only a cancel ends it


@pytest.fixture(autouse=True)
def no_hold_outlives_the_test(local_snowflake: LocalSnowflakeProcess) -> Iterator[None]:
    """A failing test's held request is let go, so its thread ends rather than keep the session waiting."""
    yield
    release_faults(local_snowflake.base_url)


def wait_until_held(base_url: str, kind: str = "unload") -> None:
    deadline = time.monotonic() + 300  # a bound for a sync that never gets there, not a timing claim
    while kind not in fault_state(base_url)["fired"]:
        assert time.monotonic() < deadline, f"the sync never reached its {kind}"
        time.sleep(0.1)


def test_cancel_all_queries_stops_a_running_statement_of_ones_own_session(
    local_snowflake: LocalSnowflakeProcess,
) -> None:
    base = local_snowflake.base_url
    inject_fault(base, "unload", mode="hold", seconds=HELD)
    settings = snowflake_settings(local_snowflake)
    with snowflake.connector.connect(**settings) as busy, snowflake.connector.connect(**settings) as other:
        failure: list[BaseException] = []

        def unload() -> None:
            try:
                fetch(busy, "COPY INTO '@~/cancel_test/' FROM (SELECT 1 AS N) FILE_FORMAT = (TYPE = PARQUET)")
            except BaseException as e:
                failure.append(e)

        worker = threading.Thread(target=unload)
        worker.start()
        wait_until_held(base)
        assert fetch(other, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({busy.session_id})") == [("1 cancelled.",)]
        worker.join(60)
        assert not worker.is_alive()
        (error,) = failure
        assert getattr(error, "errno", None) == 604 and "SQL execution canceled" in str(error)
        assert fault_state(base)["cancelled"] == ["unload"]
        # Nothing running now: nothing to cancel; and an unknown session is refused.
        assert fetch(other, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({busy.session_id})") == [("0 cancelled.",)]
        with pytest.raises(snowflake.connector.ProgrammingError, match="does not exist or not authorized"):
            fetch(other, "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)")


def test_the_connectors_abort_request_stops_that_statement_and_cancelling_needs_a_warehouse(
    local_snowflake: LocalSnowflakeProcess,
) -> None:
    """What the connector sends on Ctrl-C in its main thread (`_cancel_query`: the statement's SQL and request
    id), sent here from another thread while the statement is held."""
    base = local_snowflake.base_url
    inject_fault(base, "unload", mode="hold", seconds=HELD)
    sql = "COPY INTO '@~/abort_test/' FROM (SELECT 1 AS N) FILE_FORMAT = (TYPE = PARQUET)"
    request_id = str(uuid.uuid4())
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        failure: list[BaseException] = []

        def unload() -> None:
            try:
                conn.cursor().execute(sql, _statement_params={"requestId": request_id})
            except BaseException as e:
                failure.append(e)

        worker = threading.Thread(target=unload)
        worker.start()
        wait_until_held(base)
        conn._cancel_query(sql, uuid.UUID(request_id))
        worker.join(60)
        assert not worker.is_alive()
        (error,) = failure
        assert getattr(error, "errno", None) == 604 and fault_state(base)["cancelled"] == ["unload"]
    without_warehouse = {k: v for k, v in snowflake_settings(local_snowflake).items() if k != "warehouse"}
    with snowflake.connector.connect(**without_warehouse) as conn:
        with pytest.raises(snowflake.connector.ProgrammingError) as refused:
            fetch(conn, f"SELECT SYSTEM$CANCEL_ALL_QUERIES({conn.session_id})")
        assert refused.value.errno == 606


@pytest.mark.parametrize(("held", "phase"), [("unload", "unload"), ("get", "download")])
def test_a_cancelled_sync_is_interrupted_not_retried_and_leaves_nothing(
    held: str, phase: str, local_snowflake: LocalSnowflakeProcess, tmp_path: Path, snowflake_conn: object
) -> None:
    """Held in its GET, the sync has unloaded files to the stage and written its manifest: what a retry would
    resume from, and what an interrupted sync must remove all the same."""
    base = local_snowflake.base_url
    opts = options(tmp_path)
    table = demo_table("ALL_TYPES")
    sync_table(connector(local_snowflake), table, opts)
    before = duckdb_rows(file_of(opts), table.duckdb_relation)
    inject_fault(base, held, mode="hold", seconds=HELD)
    cancellation = Cancellation()
    outcome: list[BaseException] = []

    def sync() -> None:
        try:
            # keep_for_retry: what a run with retries left asks; an interrupt must keep nothing all the same.
            sync_table(
                connector(local_snowflake), table, opts, cancellation=cancellation, keep_for_retry=True,
                attempt_id="interrupted-run",
            )  # fmt: skip
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=sync)
    worker.start()
    wait_until_held(base, held)
    if held == "get":
        assert stage_leftovers(snowflake_conn)  # the unload's files, which the interrupted sync must remove
    cancellation.cancel()
    worker.join(60)
    assert not worker.is_alive()
    (error,) = outcome
    assert isinstance(error, Interrupted) and f"interrupted during its {phase}" in str(error)
    assert fault_state(base)["cancelled"] == [held]
    assert duckdb_rows(file_of(opts), table.duckdb_relation) == before
    assert stage_leftovers(snowflake_conn) == []
    assert not any(opts.download_root.rglob("*"))


MATERIALIZE = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "sync_project.definitions"]


@pytest.mark.parametrize(
    ("command", "how", "exit_code"),
    [
        ([str(BIN / "sync-project"), "rebuild", DATA], signal.SIGINT, 130),
        ([str(BIN / "sync-project"), "rebuild", DATA], signal.SIGTERM, 130),
        # Dagster's own command: its exit code is Dagster's (1 for a failed run); the sync stops all the same.
        ([*MATERIALIZE, "--select", "snowflake_table", "--partition", DATA], signal.SIGINT, 1),
    ],
    ids=["rebuild-ctrl-c", "rebuild-sigterm", "materialize-ctrl-c"],
)
def test_ctrl_c_stops_a_sync_at_once_and_the_table_stays(
    command: list[str],
    how: signal.Signals,
    exit_code: int,
    local_snowflake: LocalSnowflakeProcess,
    dagster_processes: DagsterProcesses,
) -> None:
    base = local_snowflake.base_url
    register_and_sync(DATA)
    settings = Settings.from_env()
    relation = table_for_partition(DATA, settings.snowflake_database).duckdb_relation
    before = duckdb_rows(settings.duckdb_path, relation)
    inject_fault(base, "unload", mode="hold", seconds=HELD)
    rebuild = subprocess.Popen(
        command, env=dagster_processes.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_held(base)
        rebuild.send_signal(how)
        out, err = rebuild.communicate(timeout=120)
    finally:
        release_faults(base)
        if rebuild.poll() is None:
            rebuild.kill()
    said = out + err
    assert rebuild.returncode == exit_code, said[-3000:]
    assert "interrupted" in err, said[-3000:]
    if exit_code == 130:  # ours: one line, no stack trace
        assert "Traceback" not in said and "Stack Trace" not in said, said[-3000:]
    state = fault_state(base)
    assert state["cancelled"] == ["unload"] and state["fired"].count("unload") == 1  # cancelled, not retried
    (run, synced) = dg.DagsterInstance.get().get_runs(limit=2)  # the rebuild's, after register_and_sync's
    assert synced.status == dg.DagsterRunStatus.SUCCESS
    assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        assert stage_leftovers(conn) == []
    assert not any(settings.download_dir.rglob("*.parquet"))
    assert duckdb_rows(settings.duckdb_path, relation) == before
    assert cli("status", DATA).exit_code == 0


def test_a_cancel_interrupts_the_duckdb_statement_of_a_load_in_flight() -> None:
    """What the load registers (its connection, up to COMMIT) a cancel interrupts: a statement that would never end
    (it counts an endless stream) ends with DuckDB's interrupt. The stream says when DuckDB first reads it,
    before the cancel comes, so nothing depends on timing."""
    cancellation = Cancellation()
    started = threading.Event()
    outcome: list[BaseException] = []
    with duckdb.connect() as con:

        def endless() -> Iterator[pa.RecordBatch]:
            started.set()  # DuckDB asks for the first rows: the statement runs
            while True:
                yield pa.record_batch([pa.array(range(2048))], names=["n"])

        rows = pa.RecordBatchReader.from_batches(pa.schema([("n", pa.int64())]), endless())
        con.register("rows", rows)

        def load() -> None:
            try:
                with cancellation.duckdb(con):
                    con.execute("SELECT count(*) FROM rows").fetchall()
            except BaseException as e:
                outcome.append(e)

        worker = threading.Thread(target=load)
        worker.start()
        assert started.wait(60)
        cancellation.cancel()
        worker.join(60)
        stuck = worker.is_alive()
        if stuck:  # the cancel did not reach it: stop it here, so the failure is reported rather than hanging
            con.interrupt()
            worker.join()
    assert not stuck, "the cancel did not interrupt the statement"
    (error,) = outcome
    assert isinstance(error, duckdb.InterruptException)


def _stop_a_daemon_run_in_its_unload(
    local_snowflake: LocalSnowflakeProcess,
    dagster_processes: DagsterProcesses,
    stop: Callable[[dg.DagsterInstance, dg.DagsterRun], None],
    within: float,
) -> tuple[dg.DagsterRun, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Launch a sync of DATA through the daemon, `stop` its run while its unload is held, and wait `within`
    seconds (a bound, not a timing claim) for the run to end: the ended run, and DATA's rows before and after."""
    base = local_snowflake.base_url
    register_and_sync(DATA)
    settings = Settings.from_env()
    relation = table_for_partition(DATA, settings.snowflake_database).duckdb_relation
    before = duckdb_rows(settings.duckdb_path, relation)
    instance = dg.DagsterInstance.get()
    inject_fault(base, "unload", mode="hold", seconds=HELD)
    dagster_processes.start_daemon()
    try:
        launched = dagster_processes.dagster(
            "job", "launch", "-w", str(project_root() / "workspace.yaml"), "-j", "sync_tables",
            "--tags", json.dumps({"dagster/partition": DATA}),
        )  # fmt: skip
        assert launched.returncode == 0, launched.stdout + launched.stderr
        wait_until_held(base)
        (run,) = instance.get_runs(dg.RunsFilter(job_name="sync_tables"), limit=1)  # not the sensor's publish
        assert run.status == dg.DagsterRunStatus.STARTED
        stop(instance, run)
        deadline = time.monotonic() + within
        while not (ended := instance.get_run_by_id(run.run_id)) or not ended.is_finished:
            assert time.monotonic() < deadline, (dagster_processes.home / "daemon.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        release_faults(base)
    return ended, before, duckdb_rows(settings.duckdb_path, relation)


def test_terminate_stops_a_daemon_launched_sync_and_the_run_is_canceled(
    local_snowflake: LocalSnowflakeProcess, dagster_processes: DagsterProcesses
) -> None:
    """Terminate (the run page's button, `run_launcher.terminate`) reaches the run's step as the same interrupt:
    the unload is cancelled, nothing is retried, and the run ends CANCELED with the table as it was."""

    def terminate(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
        assert instance.run_launcher.terminate(run.run_id)

    ended, before, after = _stop_a_daemon_run_in_its_unload(local_snowflake, dagster_processes, terminate, 120)
    instance = dg.DagsterInstance.get()
    assert ended.status == dg.DagsterRunStatus.CANCELED
    failures = instance.all_logs(ended.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert failures and "interrupted" in str(failures[-1].dagster_event.step_failure_data.error.message)  # type: ignore[union-attr]
    assert not instance.all_logs(ended.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    state = fault_state(local_snowflake.base_url)
    assert state["cancelled"] == ["unload"] and state["fired"].count("unload") == 1
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        assert stage_leftovers(conn) == []
    assert after == before


def test_a_run_process_killed_outright_is_marked_failed_by_run_monitoring(
    local_snowflake: LocalSnowflakeProcess, dagster_processes: DagsterProcesses
) -> None:
    """SIGKILL (the OOM killer's signal) gives a run no chance to report its end. The warm launcher tells run
    monitoring that its process is gone, and the run ends FAILURE with why, instead of STARTED for good."""

    def kill(_instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
        os.kill(int(run.tags[RUN_PID_TAG]), signal.SIGKILL)

    # Monitoring looks every poll_interval_seconds (dagster.yaml).
    ended, before, after = _stop_a_daemon_run_in_its_unload(local_snowflake, dagster_processes, kill, 180)
    assert ended.status == dg.DagsterRunStatus.FAILURE
    failure = dg.DagsterInstance.get().all_logs(ended.run_id, of_type=dg.DagsterEventType.PIPELINE_FAILURE)[-1]
    assert "ended without reporting the run's end" in str(failure.message), failure.message
    assert after == before
    # Its unload, released, still lands in the stage, and nobody is left to remove it: the cleanup job does,
    # run as an operator would run it early (the stage is minutes old, not the day the schedule waits for).
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        deadline = time.monotonic() + 120  # a bound for an unload that never lands, not a timing claim
        while not stage_leftovers(conn):
            assert time.monotonic() < deadline, "the released unload never wrote its files"
            time.sleep(0.5)
        config = dagster_processes.home / "cleanup-now.yaml"
        config.write_text(json.dumps({"ops": {"remove_old_stages_and_folders": {"config": {"older_than_hours": 0}}}}))
        cleanup = dagster_processes.dagster(
            "job", "execute", "-m", "sync_project.definitions", "-j", CLEANUP_JOB, "--config", str(config)
        )
        assert cleanup.returncode == 0, (cleanup.stdout + cleanup.stderr)[-3000:]
        assert stage_leftovers(conn) == []
    observe(
        "Fault",
        "Run process launched by the daemon killed with SIGKILL (as the OOM killer does) during its unload",
        "run monitoring found the process gone and marked the run FAILURE, saying it was killed or crashed; "
        "its stage stayed until the cleanup_leftovers job removed it",
        f"previous {len(before):,} rows intact, row for row; the run did not stay STARTED",
    )
