"""Faults around the DuckDB file: other writers, corrupt files."""

from __future__ import annotations

import re
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


def test_a_table_with_a_thousand_columns(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    import duckdb
    import snowflake.connector

    from sync_project_tests.helpers import fetch, snowflake_settings

    kinds = ["NUMBER(38,0)", "VARCHAR(20)", "NUMBER(12,2)", "TIMESTAMP_NTZ(9)"]
    columns = ", ".join(f"C{i} {kinds[i % 4]}" for i in range(1000))
    values = ", ".join(
        ["SEQ8()", "'v' || SEQ8()", "SEQ8() / 100", "'2024-01-01 00:00:00'::TIMESTAMP_NTZ"][i % 4] for i in range(1000)
    )
    table = demo_table("WIDE_1000")
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE OR REPLACE TABLE {table.snowflake_sql} ({columns})")
        fetch(conn, f"INSERT INTO {table.snowflake_sql} SELECT {values} FROM TABLE(GENERATOR(ROWCOUNT => 50))")
    report = sync_table(connector(local_snowflake), table, options(tmp_path))
    assert report.rows_total == 50 and len(report.columns) == 1000
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        types = con.execute(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = 'WIDE_1000' ORDER BY column_index"
        ).fetchall()
    assert [t[0] for t in types[:4]] == ["HUGEINT", "VARCHAR", "DECIMAL(12,2)", "TIMESTAMP"] and len(types) == 1000


def test_a_table_of_every_type_with_only_nulls(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    import snowflake.connector

    from sync_project.local_snowflake.demo import ALL_TYPES_DDL, SEMI_DDL
    from sync_project_tests.helpers import FQ, fetch, snowflake_settings

    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        for ddl, name in ((ALL_TYPES_DDL, "ALL_TYPES"), (SEMI_DDL, "SEMI_STRUCTURED")):
            empty = f"{name}_NULLS"
            nullable = re.sub(r",\s*PRIMARY KEY \(ID\)", "", ddl.format(fq=FQ)).replace(" NOT NULL", "")
            fetch(conn, nullable.replace(f"{FQ}.{name} (", f"{FQ}.{empty} ("))
            width = len(fetch(conn, f"DESC TABLE {FQ}.{empty}"))
            fetch(
                conn,
                f"INSERT INTO {FQ}.{empty} VALUES ({', '.join(['NULL'] * width)}), ({', '.join(['NULL'] * width)})",
            )
            report = sync_table(connector(local_snowflake), demo_table(empty), options(tmp_path))
            assert report.rows_total == 2
            rows = duckdb_rows(tmp_path / "sync.duckdb", demo_table(empty).duckdb_sql)
            assert rows == [(None,) * width] * 2


def test_config_values_of_the_wrong_type_are_refused_before_running(tmp_path: Path) -> None:
    import dagster as dg

    from sync_project.definitions import build_definitions
    from sync_project.jobs import SYNC_JOB
    from sync_project.settings import Settings

    job = build_definitions(Settings.from_env()).resolve_job_def(SYNC_JOB)
    for bad in ({"strategy": "sideways"}, {"strategy": 5}, {"rebuild": "yes please"}, {"unknown": 1}):
        with dg.instance_for_test() as instance, pytest.raises(dg.DagsterInvalidConfigError):
            job.execute_in_process(
                run_config={"ops": {"snowflake_table": {"config": bad}}},
                tags={"dagster/partition": "WORKSPACE_833213390.data"},
                instance=instance,
            )
