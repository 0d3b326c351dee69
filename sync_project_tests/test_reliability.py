"""Faults around the DuckDB file: other writers, corrupt files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import snowflake.connector

from sync_project.checks import ROW_COUNT_CHECK, WAIT_METADATA, evaluations
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import CLEANUP_JOB, SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.resources import duckdb_resource
from sync_project.settings import Settings
from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror import FileMirror
from sync_project.sync.mirror.publish import published_default
from sync_project.sync.options import SyncOptions
from sync_project.sync.pipeline import sync_table
from sync_project.sync.report import WAIT_PHASE, SyncReport
from sync_project.sync.tables import TableRef
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import fault_state, inject_fault, release_faults
from sync_project_tests.helpers import (
    assert_exact_copy,
    connector,
    demo_table,
    duckdb_rows,
    events_of,
    fetch,
    file_of,
    options,
    run_job,
    snowflake_settings,
    sorted_rows,
    stage_leftovers,
)
from sync_project_tests.reliability import observe


def hold_duckdb(path: Path, seconds: float, read_only: bool = False) -> subprocess.Popen[str]:
    """Another process (think: someone's DuckDB CLI or notebook) holding the file open."""
    code = (
        f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only={read_only}); print('held', flush=True); "
        f"time.sleep({seconds})"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


ALL_TYPES = demo_table("ALL_TYPES")


@pytest.fixture
def synced(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> list[Any]:
    sync_table(connector(local_snowflake), ALL_TYPES, options(tmp_path))
    return sorted_rows(duckdb_rows(tmp_path / "sync.duckdb", ALL_TYPES.duckdb_sql))


def test_foreign_writer_longer_than_the_timeout_fails_retryably_naming_its_pid(
    settings: Settings, local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced: list[Any]
) -> None:
    # The download is held inside GET, after the state read: the writer takes the file there, so the wait that
    # times out is the load's.
    inject_fault(local_snowflake.base_url, "download", mode="hold", seconds=120)
    with dg.instance_for_test() as instance, ThreadPoolExecutor(1) as pool:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [ALL_TYPES.key])
        short = dataclasses.replace(settings, lock_timeout_seconds=1.0)
        running = pool.submit(run_job, short, instance, SYNC_JOB, ALL_TYPES.key)
        wait_until_fired(local_snowflake, "download")
        holder = hold_duckdb(tmp_path / "sync.duckdb", 4)  # longer than a try's 1 s wait, shorter than the retries
        release_faults(local_snowflake.base_url)
        result = running.result(timeout=300)
    holder.wait()
    retries = events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert result.success and retries
    first = str(retries[0].event_specific_data.error.cause.message)  # type: ignore[union-attr]
    assert f": loading {ALL_TYPES}: " in first and f"held by process {holder.pid} (" in first, first
    assert "read-write" in first and "try 1 of 4; will be retried" in first
    observe(
        "Fault",
        "DuckDB file held by another writer longer than the lock timeout",
        "the load (the writer took the file during GET) failed with a retryable error naming the holder's PID; "
        "Dagster retried the step with backoff and, once the holder let go, the run succeeded",
        assert_exact_copy(local_snowflake, settings.duckdb_path, settings.download_dir, ALL_TYPES),
    )


def wait_until_fired(local_snowflake: LocalSnowflakeProcess, kind: str) -> None:
    """Return once the emulator has fired the fault of `kind`: the sync is inside that request now."""
    deadline = time.monotonic() + 120  # a bound for a sync that never gets there, not a timing claim
    while kind not in fault_state(local_snowflake.base_url)["fired"]:
        assert time.monotonic() < deadline, f"the sync never reached the {kind} fault"
        time.sleep(0.05)


def sync_logging(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, on_line: Callable[[str], None] = lambda _: None
) -> tuple[SyncReport, list[str]]:
    """sync_table of ALL_TYPES (30 s lock timeout), its log lines kept; `on_line` sees each as it is said."""
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        on_line(line)

    return sync_table(connector(local_snowflake), ALL_TYPES, options(tmp_path, lock_timeout=30), log), lines


def waits_of(lines: list[str], what: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{what}: waiting for ")]


def test_foreign_writer_for_a_moment_only_delays_the_load(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced: list[Any]
) -> None:
    holders: list[subprocess.Popen[str]] = []

    def take_the_file_during_the_snowflake_work(line: str) -> None:
        if "unloaded" in line and not holders:  # after the state read, before the load
            holders.append(hold_duckdb(tmp_path / "sync.duckdb", 2))

    report, lines = sync_logging(local_snowflake, tmp_path, take_the_file_during_the_snowflake_work)
    holders[0].wait()
    [loading] = waits_of(lines, f"loading {ALL_TYPES}")[:1]
    assert (
        f"held by process {holders[0].pid} (" in loading and waits_of(lines, f"reading the state of {ALL_TYPES}") == []
    )
    assert report.phase_seconds[WAIT_PHASE] > 0 and report.load is not None and report.load.waited_seconds > 0
    # In order: the load waited, then it opened its transaction.
    assert lines.index(loading) < next(i for i, line in enumerate(lines) if "in one transaction" in line)
    observe(
        "Fault",
        "DuckDB file held by another writer for 2 s, within the lock timeout",
        "the load waited for the file (its wait_for_duckdb phase, logged with the holder's PID) and then ran; no error",
        assert_exact_copy(local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", ALL_TYPES),
    )


def test_foreign_writer_before_the_sync_delays_it_before_any_snowflake_work(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced: list[Any]
) -> None:
    holder = hold_duckdb(tmp_path / "sync.duckdb", 2)
    report, lines = sync_logging(local_snowflake, tmp_path)
    holder.wait()
    [reading] = waits_of(lines, f"reading the state of {ALL_TYPES}")[:1]
    assert f"held by process {holder.pid} (" in reading
    # In order: the state read waited, then the Snowflake work began; the load found the file free.
    assert lines.index(reading) < next(i for i, line in enumerate(lines) if "unloaded" in line)
    assert waits_of(lines, f"loading {ALL_TYPES}") == [] and report.load is not None and not report.load.waited_seconds
    assert report.phase_seconds[WAIT_PHASE] > 0  # the state read's wait, counted as waiting
    observe(
        "Fault",
        "DuckDB file held by another writer for 2 s when the sync starts",
        "the sync waited at its state read, before any Snowflake work (no unload is wasted on a file it cannot "
        "load), then ran; no error",
        assert_exact_copy(local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", ALL_TYPES),
    )


def _garbage(good: bytes) -> bytes:
    return b"this is not a DuckDB database " * 1000


def _damaged_tail(good: bytes) -> bytes:
    return good[: -256 * 1024] + bytes(range(256)) * 1024  # blocks the load reads no longer match their checksums


@pytest.mark.parametrize(
    ("case", "damage", "message"),
    [
        ("The DuckDB file is not a DuckDB file", _garbage, "not a valid DuckDB database"),
        ("The DuckDB file is corrupt (damaged blocks)", _damaged_tail, "is corrupt"),
    ],
)
def test_a_bad_duckdb_file_is_reported_and_left_alone(
    local_snowflake: LocalSnowflakeProcess,
    tmp_path: Path,
    synced: list[Any],
    case: str,
    damage: Callable[[bytes], bytes],
    message: str,
) -> None:
    path = tmp_path / "sync.duckdb"
    bad = damage(path.read_bytes())
    path.write_bytes(bad)
    with pytest.raises(PermanentError, match=message) as error:
        sync_table(connector(local_snowflake), ALL_TYPES, options(tmp_path))
    assert str(path) in str(error.value) and "left untouched" in str(error.value)
    assert path.read_bytes() == bad
    assert [p for p in (tmp_path / "downloads").rglob("*") if p.is_file()] == []
    observe(
        "Fault",
        case,
        f"the sync failed with a permanent error that names the file and says '{message}'",
        "the file is byte for byte as it was; nothing left in the download folder",
    )


def materialize(processes: DagsterProcesses, key: str, **env: str) -> subprocess.Popen[str]:
    """`dagster asset materialize` of one partition, as someone would type it; output on a pipe."""
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "sync_project.definitions"]
    return processes.spawn([*command, "--select", "snowflake_table", "--partition", key], **env)


def engine_options(processes: DagsterProcesses) -> SyncOptions:
    """The engine's view of the same DuckDB file and download folder the Dagster processes use."""
    path = Path(processes.env["SYNC_DUCKDB_PATH"])
    return SyncOptions(
        mirror=FileMirror(path, published_default(path)), download_root=Path(processes.env["SYNC_DOWNLOAD_DIR"])
    )


BIG_ROWS = 1_500_000  # big enough that the load takes about a second on this machine
# Loaded as its files arrive (feed.py) from the first byte, and unloaded in files of 4 MiB: the table comes in
# groups of one file each.
FED = {"SYNC_FEED_FROM_BYTES": "0", "SYNC_MAX_FILE_SIZE": str(4 * 2**20)}


def wait_until_first_group_loaded(local_snowflake: LocalSnowflakeProcess, downloads: Path) -> None:
    """With the second group's GET held, return once the load has read the first group into its transaction.
    The feed GETs one group after another, so the held GET means the first group's file had arrived; the feed
    deletes it when the load asks for the next group, which the hold keeps from coming."""
    deadline = time.monotonic() + 120  # a bound for a load that never gets there, not a timing claim
    while "get" not in fault_state(local_snowflake.base_url)["fired"] or any(downloads.rglob("*.parquet")):
        assert time.monotonic() < deadline, "the load never finished its first group"
        time.sleep(0.05)


@pytest.mark.parametrize("fed", [False, True], ids=["downloaded-first", "fed"])
def test_sigkill_of_the_run_process_during_the_load_keeps_the_previous_table(
    local_snowflake: LocalSnowflakeProcess, dagster_processes: DagsterProcesses, fed: bool
) -> None:
    schema = f"KILL_{uuid.uuid4().hex[:6].upper()}"
    table = TableRef("KEBOOLA_33", schema, "BIG")
    options = engine_options(dagster_processes)
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA KEBOOLA_33.{schema}")
        fetch(conn, f"CREATE TABLE {table.snowflake_sql} (ID NUMBER(38,0), V VARCHAR, AMOUNT NUMBER(12,2))")
        fetch(conn, f"INSERT INTO {table.snowflake_sql} SELECT SEQ8(), 'v' || SEQ8(), SEQ8() / 7 "
                    f"FROM TABLE(GENERATOR(ROWCOUNT => {BIG_ROWS}))")  # fmt: skip
        sync_table(connector(local_snowflake), table, options)  # the previous table
        fetch(conn, f"INSERT INTO {table.snowflake_sql} VALUES (-1, 'new', 0)")
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, [table.key])
    check = f"SELECT count(*), sum(ID), sum(AMOUNT) FROM {table.duckdb_sql}"
    with duckdb.connect(str(file_of(options)), read_only=True) as con:
        before = con.execute(check).fetchone()
    if fed:  # killed between two groups: the second group's GET is held (after the first), the load waits for it
        inject_fault(local_snowflake.base_url, "get", mode="hold", seconds=120, after=1)
    run = materialize(dagster_processes, table.key, **(FED if fed else {}))
    assert run.stdout is not None
    for line in run.stdout:
        if "in one transaction" in line:  # the load has the file and its transaction is open
            break
    if fed:
        wait_until_first_group_loaded(local_snowflake, options.download_root)
    os.killpg(run.pid, signal.SIGKILL)  # the whole group: the run process and anything it started
    release_faults(local_snowflake.base_url)
    rest = run.stdout.read()
    run.wait()
    assert run.returncode == -signal.SIGKILL and "in one transaction" in line
    assert "load took" not in rest  # killed inside the load, before it could finish
    files = int(re.findall(r"loading (\d+) file", line)[0])
    # Downloaded first, every file was on disk; fed, the first group's was read and deleted, the rest on the stage.
    assert len(list(options.download_root.rglob("*.parquet"))) == (0 if fed else files) and files > 2
    with duckdb.connect(str(file_of(options)), read_only=True) as con:  # opens cleanly
        assert con.execute(check).fetchone() == before
    again = materialize(dagster_processes, table.key, **(FED if fed else {}))
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output[-3000:]
    with duckdb.connect(str(file_of(options)), read_only=True) as con:
        (after,) = con.execute(f"SELECT count(*) FROM {table.duckdb_sql}").fetchone() or (0,)
    assert before is not None and after == before[0] + 1
    # The killed run could not clean up its downloaded files; the cleanup job removes them, run as an operator
    # would run it early (its folders are minutes old, not the day the schedule waits for). Fed, the folder holds
    # no Parquet file at that moment, but its manifest.
    assert any(p.is_file() for p in options.download_root.rglob("*" if fed else "*.parquet"))
    config = dagster_processes.home / "cleanup-now.yaml"
    config.write_text(json.dumps({"ops": {"remove_old_stages_and_folders": {"config": {"older_than_hours": 0}}}}))
    command = ["job", "execute", "-m", "sync_project.definitions", "-j", CLEANUP_JOB, "--config", str(config)]
    cleanup = dagster_processes.dagster(*command)
    assert cleanup.returncode == 0, (cleanup.stdout + cleanup.stderr)[-3000:]
    # Downloaded first, the stage went before the load; fed, the load's GETs still needed it.
    assert f"removed {int(fed)} stage folder(s), 1 local folder(s)" in cleanup.stdout + cleanup.stderr
    assert not any(options.download_root.rglob("*.parquet"))
    if fed:
        observe(
            "Fault",
            "Run process killed with SIGKILL during the DuckDB load of a table loaded as its files arrive",
            "killed between two groups of files (the first read into the load's transaction and deleted, the next "
            "one's GET held), the rest still on the stage; DuckDB discarded the uncommitted transaction; the "
            "cleanup_leftovers job removed the stage folder and the local one",
            f"previous {before[0]:,} rows intact (count, sum of ids and of amounts), the file opens cleanly, "
            f"the next run loaded all {after:,} rows",
        )
        return
    observe(
        "Fault",
        "Run process (dagster asset materialize) killed with SIGKILL during the DuckDB load",
        "killed after the load said its transaction was open and before it finished; DuckDB discarded the "
        "uncommitted transaction; its downloaded files stayed until the cleanup_leftovers job "
        "(run through Dagster) removed them",
        f"previous {before[0]:,} rows intact (count, sum of ids and of amounts), the file opens cleanly, "
        f"the next run loaded all {after:,} rows",
    )


def test_too_little_disk_fails_before_downloading_and_leaves_nothing(
    local_snowflake: LocalSnowflakeProcess, dagster_processes: DagsterProcesses
) -> None:
    table = demo_table("data")
    options = engine_options(dagster_processes)
    sync_table(connector(local_snowflake), table, options)
    before = sorted_rows(duckdb_rows(file_of(options), table.duckdb_sql))
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, [table.key])
    reserve = 10**15  # a petabyte to keep free: no disk has that, so the download cannot fit
    inject_fault(local_snowflake.base_url, "get", count=1)  # a tripwire: it fires if a GET is ever sent
    run = materialize(dagster_processes, table.key, SYNC_DISK_RESERVE_BYTES=str(reserve))
    output, _ = run.communicate(timeout=300)
    assert run.returncode != 0
    figures = re.search(r"needs about ([\d,]+) bytes .* but only ([\d,]+) are free", output)
    assert figures is not None, output[-3000:]
    needed, free = (int(x.replace(",", "")) for x in figures.groups())
    assert needed > 0 and free < needed + reserve
    assert abs(free - shutil.disk_usage(options.download_root).free) < 0.05 * free
    assert "STEP_UP_FOR_RETRY" not in output  # a permanent error: retrying cannot make room
    assert fault_state(local_snowflake.base_url)["fired"] == []  # no GET was sent
    assert [p for p in options.download_root.rglob("*") if p.is_file()] == []
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        assert stage_leftovers(conn) == []
    assert sorted_rows(duckdb_rows(file_of(options), table.duckdb_sql)) == before
    observe(
        "Fault",
        "Download disk too small (SYNC_DISK_RESERVE_BYTES asks to keep 1 PB free)",
        "the run failed once, before GET, naming the bytes needed and the bytes free; no retry",
        f"no file in the download folder, no stage left, previous {len(before):,} rows intact",
    )


def test_the_checks_record_how_long_their_read_waited_for_the_file(
    settings: Settings, local_snowflake: LocalSnowflakeProcess, synced: list[Any]
) -> None:
    """What the benchmark counts as a check's wait: another process's load holds the file when the checks read."""
    path = settings.duckdb_path
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from sync_project.sync.mirror.access import writer_lock\n"
         f"with writer_lock(Path({str(path)!r}), 5, 'loading another table'):\n"
         "    print('held', flush=True)\n    time.sleep(1)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    checked = evaluations(ALL_TYPES, len(synced), {}, None, duckdb_resource(settings).mirror)
    holder.wait()
    (row_count,) = [e for e in checked if e.check_name == ROW_COUNT_CHECK]
    assert row_count.passed and float(row_count.metadata[WAIT_METADATA].value) > 0  # type: ignore[arg-type]
