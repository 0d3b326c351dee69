"""Faults around the DuckDB file: other writers, corrupt files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sync_project.local_snowflake import LocalSnowflakeProcess
from sync_project.sync.errors import LockTimeoutError, PermanentError
from sync_project.sync.pipeline import sync_table
from sync_project_tests.helpers import connector, demo_table, duckdb_rows, options, sorted_rows


def hold_duckdb(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process (think: someone's DuckDB CLI) holding the file open for writing."""
    code = f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep({seconds})"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def synced(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> list[Any]:
    sync_table(connector(local_snowflake), demo_table("ALL_TYPES"), options(tmp_path))
    return sorted_rows(duckdb_rows(tmp_path / "sync.duckdb", '"WORKSPACE_833213390"."ALL_TYPES"'))


def test_foreign_writer_longer_than_the_timeout_fails_retryably_naming_its_pid(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced: list[Any]
) -> None:
    holder = hold_duckdb(tmp_path / "sync.duckdb", 30)
    try:
        with pytest.raises(LockTimeoutError) as error:
            sync_table(connector(local_snowflake), demo_table("ALL_TYPES"), options(tmp_path, lock_timeout=1.0))
        assert f"process {holder.pid}" in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    assert sorted_rows(duckdb_rows(tmp_path / "sync.duckdb", '"WORKSPACE_833213390"."ALL_TYPES"')) == synced
    assert list((tmp_path / "downloads").rglob("*.parquet")) == []


def test_foreign_writer_for_a_moment_only_delays_the_sync(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced: list[Any]
) -> None:
    holder = hold_duckdb(tmp_path / "sync.duckdb", 2)
    started = time.monotonic()
    report = sync_table(connector(local_snowflake), demo_table("ALL_TYPES"), options(tmp_path, lock_timeout=30))
    holder.wait()
    assert report.rows_total == len(synced) and time.monotonic() - started >= 1.0


def test_corrupt_duckdb_file_is_reported_and_left_alone(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    path = tmp_path / "sync.duckdb"
    garbage = b"this is not a DuckDB database " * 1000
    path.write_bytes(garbage)
    with pytest.raises(PermanentError, match="not a valid DuckDB database"):
        sync_table(connector(local_snowflake), demo_table("ALL_TYPES"), options(tmp_path))
    assert path.read_bytes() == garbage


KILL_SCRIPT = """
import contextlib, sys
import snowflake.connector
from pathlib import Path
from sync_project.sync.pipeline import SyncOptions, sync_table
from sync_project.sync.tables import TableRef

port, root = int(sys.argv[1]), Path(sys.argv[2])

@contextlib.contextmanager
def connect():
    conn = snowflake.connector.connect(account="local", user="local", password="local", host="127.0.0.1",
                                       port=port, protocol="http", database="KEBOOLA_33")
    try:
        yield conn
    finally:
        conn.close()

options = SyncOptions(duckdb_path=root / "sync.duckdb", download_root=root / "downloads")
sync_table(connect, TableRef("KEBOOLA_33", sys.argv[3], "BIG"), options, lambda m: print(m, flush=True))
"""


def test_sigkill_during_the_load_keeps_the_previous_table(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    import signal
    import uuid

    import duckdb
    import snowflake.connector

    from sync_project.sync.tables import TableRef
    from sync_project_tests.helpers import fetch, snowflake_settings

    schema = f"KILL_{uuid.uuid4().hex[:6].upper()}"
    table = TableRef("KEBOOLA_33", schema, "BIG")
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA KEBOOLA_33.{schema}")
        fetch(conn, f"CREATE TABLE {table.snowflake_sql} (ID NUMBER(38,0), V VARCHAR, AMOUNT NUMBER(12,2))")
        fetch(conn, f"INSERT INTO {table.snowflake_sql} SELECT SEQ8(), 'v' || SEQ8(), SEQ8() / 7 "
                    "FROM TABLE(GENERATOR(ROWCOUNT => 1500000))")  # fmt: skip
        sync_table(connector(local_snowflake), table, options(tmp_path))
        fetch(conn, f"INSERT INTO {table.snowflake_sql} VALUES (-1, 'new', 0)")
    check = f"SELECT count(*), sum(ID), sum(AMOUNT) FROM {table.duckdb_sql}"
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        before = con.execute(check).fetchone()
    run = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(local_snowflake.port), str(tmp_path), schema],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.stdout is not None
    for line in run.stdout:
        if "download took" in line:
            break
    time.sleep(0.3)  # well inside the load of 1.5 million rows
    run.send_signal(signal.SIGKILL)
    rest = run.stdout.read()
    run.wait()
    assert run.returncode == -signal.SIGKILL
    assert "load took" not in rest  # killed inside the load, before it could finish
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:  # opens cleanly
        assert con.execute(check).fetchone() == before
    report = sync_table(connector(local_snowflake), table, options(tmp_path))
    assert report.rows_total == 1_500_001


def test_two_snowflake_tables_on_one_duckdb_name_are_refused(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    import duckdb

    path = tmp_path / "sync.duckdb"
    with duckdb.connect(str(path)) as con:  # "DATA" synced earlier, say; DuckDB names ignore case
        con.execute('CREATE SCHEMA "WORKSPACE_833213390"')
        con.execute('CREATE TABLE "WORKSPACE_833213390"."DATA" AS SELECT 1 AS X')
    with pytest.raises(PermanentError, match="ignore case"):
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path))
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute('SELECT * FROM "WORKSPACE_833213390"."DATA"').fetchall() == [(1,)]
