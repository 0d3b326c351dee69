"""Incremental syncs, schema evolution, resume and rebuild, against the local Snowflake and real DuckDB files."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.attempt import Attempt
from sync_project.sync.errors import TransientError
from sync_project.sync.leftovers import remove_leftovers
from sync_project.sync.options import SyncOptions
from sync_project.sync.pipeline import sync_table
from sync_project.sync.state import TableOptions
from sync_project.sync.tables import TableRef
from sync_project_tests.emulator_controls import inject_fault
from sync_project_tests.helpers import (
    configure,
    connector,
    duckdb_rows,
    fetch,
    file_of,
    mark_of,
    options,
    orders_in_a_new_schema,
    snowflake_settings,
    sorted_rows,
    stage_leftovers,
)

DATABASE = "KEBOOLA_33"


@pytest.fixture
def table(sf: Any) -> TableRef:
    """A fresh ORDERS table in a schema of its own."""
    return orders_in_a_new_schema(sf, "INC")


def source(sf: Any, table: TableRef) -> list[tuple[Any, ...]]:
    return sorted_rows(fetch(sf, f"SELECT * FROM {table.snowflake_sql}"))


def target(opts: SyncOptions, table: TableRef) -> list[tuple[Any, ...]]:
    return sorted_rows(duckdb_rows(file_of(opts), table.duckdb_sql))


MERGE = TableOptions("incremental", "UPDATED_AT", ("ID",))


KILLED_BEFORE_COMMIT = """
import contextlib, json, os, signal, sys
from pathlib import Path
import snowflake.connector
from sync_project.sync import load
from sync_project.sync.pipeline import sync_table
from sync_project.sync.tables import TableRef
from sync_project_tests.helpers import options

settings, database, schema, name, folder = json.loads(sys.argv[1])

def die(*args, **kwargs):  # the last step inside the transaction: the merge is done, COMMIT not yet sent
    print("merged; dying before COMMIT", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

load.write_sync_state = die

@contextlib.contextmanager
def connect():
    with snowflake.connector.connect(**settings) as conn:
        yield conn

sync_table(connect, TableRef(database, schema, name), options(Path(folder)))
"""


def test_crash_between_load_and_commit_keeps_data_and_cursor(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path
) -> None:
    """The run process really dies (SIGKILL, no exception handler runs) after merging and before COMMIT."""
    opts = options(tmp_path)
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    before_rows, before_mark = target(opts, table), mark_of(opts, table)
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (9000, 2.00, 'x', '2025-01-01 00:00:00')")
    arguments = [snowflake_settings(local_snowflake), table.database, table.schema, table.name, str(tmp_path)]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_COMMIT, json.dumps(arguments)], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL and "dying before COMMIT" in killed.stdout, killed.stderr[-3000:]
    assert target(opts, table) == before_rows and mark_of(opts, table) == before_mark  # the file opens, as before
    sync_table(connector(local_snowflake), table, opts)
    assert target(opts, table) == source(sf, table)


def test_missing_or_damaged_target_rebuilds_and_says_so(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path
) -> None:
    opts = options(tmp_path)
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    with duckdb.connect(str(file_of(opts))) as con:
        con.execute(f"ALTER TABLE {table.duckdb_sql} DROP COLUMN STATUS")
    damaged = sync_table(connector(local_snowflake), table, opts)
    assert damaged.strategy == "full" and "differ" in damaged.strategy_reason
    assert target(opts, table) == source(sf, table)
    with duckdb.connect(str(file_of(opts))) as con:
        con.execute(f"DROP TABLE {table.duckdb_sql}")
    missing = sync_table(connector(local_snowflake), table, opts)
    assert missing.strategy == "full" and "missing" in missing.strategy_reason
    rebuilt = sync_table(connector(local_snowflake), table, opts, rebuild=True)
    assert rebuilt.strategy == "full" and "rebuild" in rebuilt.strategy_reason
    assert target(opts, table) == source(sf, table)


def test_failed_get_resumes_with_only_the_missing_files(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path
) -> None:
    fetch(  # enough rows for several files (the emulator cuts files at 2,048-row chunks)
        sf,
        f"INSERT INTO {table.snowflake_sql} SELECT 10000 + SEQ8(), 1, 'bulk', '2024-03-01 00:00:00'::TIMESTAMP_NTZ "
        "FROM TABLE(GENERATOR(ROWCOUNT => 9000))",
    )
    opts = options(tmp_path, max_file_size=8_000, get_parallel=1)
    attempt: dict[str, Any] = {
        "attempt_id": "run-1234",
        "attempt_started": dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
    }
    inject_fault(local_snowflake.base_url, "download", mode="truncate")
    logs: list[str] = []
    with pytest.raises(TransientError):
        sync_table(connector(local_snowflake), table, opts, logs.append, keep_for_retry=True, **attempt)
    folder = Attempt.new(table, opts.download_root, "run-1234", attempt["attempt_started"]).local_dir
    arrived = sorted(p.name for p in folder.glob("data_*.parquet"))
    assert len(arrived) >= 2  # the stage and the files that arrived are kept for the retry
    report = sync_table(connector(local_snowflake), table, opts, logs.append, keep_for_retry=True, **attempt)
    assert report.resumed_unload and report.files_reused == len(arrived) and report.files == len(arrived) + 1
    assert f"downloaded 1 file(s), reused {len(arrived)} from the failed try" in "\n".join(logs)
    assert target(opts, table) == source(sf, table)
    assert not folder.exists()  # success cleans up
    assert stage_leftovers(sf) == []


def test_final_failure_removes_stage_and_files(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path
) -> None:
    opts = options(tmp_path)
    inject_fault(local_snowflake.base_url, "get")
    with pytest.raises(TransientError):
        sync_table(connector(local_snowflake), table, opts, keep_for_retry=False, attempt_id="run-9")
    assert list((tmp_path / "downloads").rglob("*.parquet")) == []
    assert stage_leftovers(sf) == []


def test_cleanup_removes_only_old_leftovers(sf: Any, table: TableRef, tmp_path: Path) -> None:
    def put(path: str) -> None:
        fetch(
            sf,
            f"COPY INTO '@~/{path}' FROM (SELECT 1 AS X FROM {table.snowflake_sql} LIMIT 1) "
            "FILE_FORMAT = (TYPE = PARQUET) OVERWRITE = TRUE",
        )

    put("sync_project/SYNC_PROJECT_20200101T000000Z_deadbeef/")
    put("sync_project/SYNC_PROJECT_20991231T000000Z_cafef00d/")
    put("someone_elses/SYNC_PROJECT_20200101T000000Z_deadbeef/")
    old = tmp_path / "downloads" / table.folder_name / "SYNC_PROJECT_20200101T000000Z_deadbeef"
    young = tmp_path / "downloads" / table.folder_name / "SYNC_PROJECT_20991231T000000Z_cafef00d"
    for folder in (old, young):
        folder.mkdir(parents=True)
        (folder / "data_0_0_0.snappy.parquet").write_bytes(b"x")
    leftovers = remove_leftovers(sf, "~", tmp_path / "downloads", dt.timedelta(days=1), dt.datetime.now(dt.UTC))
    assert leftovers.stage_folders == ["@~/sync_project/SYNC_PROJECT_20200101T000000Z_deadbeef/"]
    assert leftovers.folders == [old] and not old.exists() and young.exists()
    kept = sorted(str(r[0]).rsplit("/", 1)[0] for r in fetch(sf, "LIST @~"))
    assert "sync_project/SYNC_PROJECT_20991231T000000Z_cafef00d" in kept
    assert "someone_elses/SYNC_PROJECT_20200101T000000Z_deadbeef" in kept
    assert not any("20200101T000000Z_deadbeef" in k and k.startswith("sync_project/") for k in kept)
    fetch(sf, "REMOVE '@~/sync_project/'")
    fetch(sf, "REMOVE '@~/someone_elses/'")


def test_a_mirror_from_before_keeps_syncing_its_hugeint_columns_become_decimal(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path
) -> None:
    """NUMBER(38,0) was HUGEINT before it became DECIMAL(38,0); an incremental sync of such a table widens the
    column in its own transaction (every value fits: it came from a 38-digit NUMBER) instead of refusing."""
    opts = options(tmp_path)
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    with duckdb.connect(str(file_of(opts))) as con:  # the table as the old type map left it
        con.execute(f'ALTER TABLE {table.duckdb_sql} ALTER COLUMN "ID" TYPE HUGEINT')
        con.execute("""UPDATE _sync.tables SET columns = replace(columns, '"DECIMAL(38,0)"', '"HUGEINT"')""")
    fetch(sf, f"UPDATE {table.snowflake_sql} SET UPDATED_AT = '2031-01-01 00:00:00' WHERE ID < 10")
    report = sync_table(connector(local_snowflake), table, opts)
    assert "widened ID HUGEINT -> DECIMAL(38,0)" in report.schema_changes
    assert target(opts, table) == source(sf, table)
    with duckdb.connect(str(file_of(opts)), read_only=True) as con:
        kind = con.execute(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = ? AND column_name = 'ID'", [table.name]
        ).fetchone()
    assert kind == ("DECIMAL(38,0)",)
