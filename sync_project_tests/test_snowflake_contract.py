"""The Snowflake contract: what the sync needs Snowflake to do, as tests that run against either backend.

`make test` runs them against the embedded Snowflake; `make test-snowflake` runs the same tests against a
real account (SYNC_CONTRACT_BACKEND=account, the SNOWFLAKE_* variables, the account code path of the
resources). Every test works in one scratch schema with a unique name, created for the run and dropped
at the end, also when a test fails. Nothing here injects a fault: an account cannot be made to fail on cue.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from snowflake.connector.errors import ProgrammingError

from sync_project.demo_tables import DEMO_DATABASE, create_tables_in
from sync_project.sync.errors import PermanentError, TableNotFoundError, UnsupportedTypeError
from sync_project.sync.mirror.lake import Lake
from sync_project.sync.options import Connect, SyncOptions
from sync_project.sync.pipeline import sync_table
from sync_project.sync.state import TableOptions
from sync_project.sync.tables import TableRef, quote_identifier
from sync_project_tests.contract import BACKEND
from sync_project_tests.helpers import (
    configure,
    connector,
    create_orders,
    fetch,
    mark_of,
    mirror_tables,
    options,
    sorted_rows,
    stage_leftovers,
    synced_rows,
    synced_types,
)
from sync_project_tests.postgres import Postgres

ROWS = 5_000


@dataclass(frozen=True)
class Backend:
    """A Snowflake to hold the contract to, and the scratch schema the tests work in."""

    name: str
    connect: Connect
    database: str
    schema: str

    def table(self, name: str) -> TableRef:
        return TableRef(self.database, self.schema, name)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return fetch(conn, statement)

    @property
    def fq(self) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(self.schema)}"


def _account_connect() -> tuple[Connect, str]:
    from sync_project.resources import snowflake_resource
    from sync_project.settings import Settings

    settings = Settings.from_env()
    assert not settings.uses_local_snowflake, "SYNC_CONTRACT_BACKEND=account needs SNOWFLAKE_ACCOUNT"
    resource = snowflake_resource(settings).resolved()
    return resource.get_connection, settings.snowflake_database


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if os.environ.get(BACKEND) == "account":
        connect, database, name = *_account_connect(), "account"
    else:
        connect, database, name = connector(request.getfixturevalue("local_snowflake")), DEMO_DATABASE, "embedded"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    scratch = Backend(name, connect, database, f"SYNC_CONTRACT_{stamp}_{uuid.uuid4().hex[:6].upper()}")
    scratch.sql(f"CREATE SCHEMA {scratch.fq}")
    try:
        with connect() as conn:
            create_tables_in(conn.cursor(), scratch.fq, ROWS)
        yield scratch
    finally:
        scratch.sql(f"DROP SCHEMA IF EXISTS {scratch.fq} CASCADE")


@pytest.fixture
def sf(backend: Backend) -> Iterator[Any]:
    with backend.connect() as conn:
        yield conn


def source_rows(conn: Any, table: TableRef) -> list[tuple[Any, ...]]:
    return sorted_rows(fetch(conn, f"SELECT * FROM {table.snowflake_sql}"))


def target_rows(opts: SyncOptions, table: TableRef) -> list[tuple[Any, ...]]:
    return sorted_rows(synced_rows(opts, table.duckdb_sql))


@dataclass(frozen=True)
class Mirror:
    """Where the syncs of a test land: the DuckDB file, or a DuckLake on SQLite or on a real PostgreSQL, its data
    in a folder or in a real S3 server."""

    kind: str
    postgres: Postgres | None = None
    extract: str = "unload"  # the way out of Snowflake: a stage, or the result set (sync/paths.py)
    data_path: str = ""  # the lake's data in the S3 server (its worker's key in the test's environment)

    def options(self, tmp_path: Path, **overrides: Any) -> SyncOptions:
        overrides = {"extract": self.extract} | overrides
        if self.kind == "file":
            return options(tmp_path, **overrides)
        data = self.data_path or str(tmp_path / "lake-data")
        if self.postgres is not None:
            lake = Lake(f"postgres:{self.postgres.conninfo(self.postgres.new_database())}", data)
        else:
            lake = Lake(str(tmp_path / "lake.sqlite"), data)
        return options(tmp_path, lake=lake, **overrides)


TARGETS = ["file", "ducklake-sqlite", "ducklake-postgres", "ducklake-sqlite-s3", "ducklake-postgres-s3"]


@pytest.fixture(params=[*TARGETS, "file/results", "ducklake-sqlite/results"])
def mirror(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Mirror:
    """Every contract test runs against each target the mirror can have (a lake's data in a folder or in S3),
    and through both ways out of Snowflake (the result set on the file and on one lake: the load after it is
    the same)."""
    kind, _, extract = str(request.param).partition("/")
    postgres = request.getfixturevalue("postgres") if kind.startswith("ducklake-postgres") else None
    data_path = ""
    if kind.endswith("-s3"):
        s3 = request.getfixturevalue("s3")
        s3.use(monkeypatch)
        data_path = s3.new_prefix()
    return Mirror(kind, postgres, extract or "unload", data_path)


def phases(mirror: Mirror) -> set[str]:
    """The phases a full sync of a table with rows runs on this mirror's path."""
    moved = {"result_set"} if mirror.extract == "results" else {"unload", "download"}
    return {"describe", "load"} | moved


# -- full syncs: every type exact ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ALL_TYPES", "SEMI_STRUCTURED", "data"])
def test_tables_sync_exactly_and_leave_nothing(
    mirror: Mirror, backend: Backend, sf: Any, tmp_path: Path, name: str
) -> None:
    table = backend.table(name)
    opts = mirror.options(tmp_path)
    report = sync_table(backend.connect, table, opts)
    assert report.rows_loaded == report.rows_unloaded > 0
    assert set(report.phase_seconds) == phases(mirror)
    assert report.path == mirror.extract
    assert target_rows(opts, table) == source_rows(sf, table)
    assert list((tmp_path / "downloads").iterdir()) == []
    assert stage_leftovers(sf) == []


def test_types_land_as_the_type_map_says(mirror: Mirror, backend: Backend, tmp_path: Path) -> None:
    opts = mirror.options(tmp_path)
    for name in ("ALL_TYPES", "SEMI_STRUCTURED"):
        sync_table(backend.connect, backend.table(name), opts)
    types = synced_types(opts, backend.schema, "ALL_TYPES")
    assert types["NUM_38_0"] == "DECIMAL(38,0)"
    assert types["NUM_18_0"] == "BIGINT"
    assert types["NUM_12_2"] == "DECIMAL(12,2)"
    assert types["NUM_38_10"] == "DECIMAL(38,10)"
    assert types["FLOAT_COL"] == "DOUBLE"
    assert types["VARCHAR_COL"] == types["CHAR_COL"] == "VARCHAR"
    assert types["BINARY_COL"] == "BLOB"
    assert types["TIME_COL"] == "TIME"
    assert types["TS_NTZ"] == "TIMESTAMP"
    semi = synced_types(opts, backend.schema, "SEMI_STRUCTURED")
    assert semi["TS_TZ"] == semi["TS_LTZ"] == "TIMESTAMP WITH TIME ZONE"
    assert semi["VARIANT_COL"] == semi["OBJECT_COL"] == semi["ARRAY_COL"] == "JSON"
    assert semi["GEOGRAPHY_COL"] == semi["GEOMETRY_COL"] == "VARCHAR"
    relation = backend.table("ALL_TYPES").duckdb_sql + " WHERE ID < 3"
    extremes = {r[0]: r[1:] for r in synced_rows(opts, relation)}
    assert extremes[0][0] == int("9" * 38) and extremes[1][0] == -int("9" * 38)
    assert extremes[0][3] == Decimal("9999999999999999999999999999.9999999999")
    assert all(v is None for v in extremes[2])


def test_many_files_load_completely(mirror: Mirror, backend: Backend, sf: Any, tmp_path: Path) -> None:
    table = backend.table("data")
    report = sync_table(backend.connect, table, mirror.options(tmp_path, max_file_size=20_000))
    assert report.files > 2
    assert report.rows_loaded == len(source_rows(sf, table)) == ROWS


def test_empty_table_syncs_to_empty_table_with_schema(mirror: Mirror, backend: Backend, tmp_path: Path) -> None:
    backend.sql(
        f"CREATE OR REPLACE TABLE {backend.fq}.EMPTY (ID NUMBER(38,0), AMOUNT NUMBER(10,2), AT TIMESTAMP_TZ(9))"
    )
    opts = mirror.options(tmp_path)
    report = sync_table(backend.connect, backend.table("EMPTY"), opts)
    assert report.rows_unloaded == report.rows_loaded == 0 and report.files == 0
    types = synced_types(opts, backend.schema, "EMPTY")
    assert types == {"ID": "DECIMAL(38,0)", "AMOUNT": "DECIMAL(10,2)", "AT": "TIMESTAMP WITH TIME ZONE"}


@pytest.mark.parametrize("name", ["with space", "with.dot", 'with"quote', "Ünïcödé ✓"])
def test_awkward_names_sync_to_the_right_relation(
    mirror: Mirror, backend: Backend, sf: Any, tmp_path: Path, name: str
) -> None:
    table = backend.table(name)
    fetch(sf, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), LABEL VARCHAR)")
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (1, 'one'), (2, 'two')")
    assert TableRef.from_key(table.key, table.database) == table
    opts = mirror.options(tmp_path)
    report = sync_table(backend.connect, table, opts)
    assert [t for s, t in mirror_tables(opts) if s == backend.schema] == [name]
    assert report.rows_loaded == 2


# -- refusals Snowflake gives without any fault injected ----------------------------------------------------


def test_missing_table_is_a_permanent_error_naming_it(mirror: Mirror, backend: Backend, tmp_path: Path) -> None:
    opts = mirror.options(tmp_path)
    with pytest.raises(TableNotFoundError) as error:
        sync_table(backend.connect, backend.table("NO_SUCH_TABLE"), opts)
    assert "NO_SUCH_TABLE" in str(error.value)
    assert mirror_tables(opts) == []


def test_an_unmappable_column_is_refused_naming_it(mirror: Mirror, backend: Backend, tmp_path: Path) -> None:
    backend.sql(f"CREATE OR REPLACE TABLE {backend.fq}.EMBEDDINGS (ID NUMBER(38,0), EMBEDDING VECTOR(FLOAT, 3))")
    opts = mirror.options(tmp_path)
    with pytest.raises(UnsupportedTypeError) as error:
        sync_table(backend.connect, backend.table("EMBEDDINGS"), opts)
    assert "'EMBEDDING' (VECTOR(FLOAT, 3))" in str(error.value)
    assert mirror_tables(opts) == []


# -- incremental syncs --------------------------------------------------------------------------------------

MERGE = TableOptions("incremental", "UPDATED_AT", ("ID",))
APPEND = TableOptions("incremental", "UPDATED_AT", ())


@pytest.fixture
def orders(backend: Backend, sf: Any) -> TableRef:
    """A fresh ORDERS table (1,000 rows, a key, a cursor with ties) in the scratch schema."""
    return create_orders(sf, backend.table(f"ORDERS_{uuid.uuid4().hex[:6].upper()}"))


def test_merge_by_key_equals_the_source(
    mirror: Mirror, backend: Backend, sf: Any, orders: TableRef, tmp_path: Path
) -> None:
    opts = mirror.options(tmp_path)
    configure(opts, orders, MERGE)
    first = sync_table(backend.connect, orders, opts)
    assert first.strategy == "full" and "first incremental" in first.strategy_reason
    assert mark_of(opts, orders) == "2024-01-01 01:39:00.000000"
    fetch(sf, f"UPDATE {orders.snowflake_sql} SET STATUS = 'paid', UPDATED_AT = '2024-02-01 00:00:00' WHERE ID < 5")
    fetch(sf, f"INSERT INTO {orders.snowflake_sql} VALUES (5000, 1.5, 'new', '2024-02-01 00:00:00')")
    second = sync_table(backend.connect, orders, opts)
    assert second.strategy == "incremental"
    # The boundary minute (10 rows at the old mark) comes again, plus the 5 updates and the 1 insert.
    assert second.rows_unloaded == 16 and second.rows_updated == 15 and second.rows_total == 1001
    assert target_rows(opts, orders) == source_rows(sf, orders)
    assert mark_of(opts, orders) == "2024-02-01 00:00:00.000000"


def test_append_without_key_keeps_ties_and_adds_no_duplicates(
    mirror: Mirror, backend: Backend, sf: Any, orders: TableRef, tmp_path: Path
) -> None:
    opts = mirror.options(tmp_path)
    configure(opts, orders, APPEND)
    sync_table(backend.connect, orders, opts)
    mark = mark_of(opts, orders)
    # A row arrives late with exactly the high-water mark: a `>` rule would lose it for ever.
    fetch(sf, f"INSERT INTO {orders.snowflake_sql} VALUES (7000, 9.99, 'late', '{mark}')")
    fetch(sf, f"INSERT INTO {orders.snowflake_sql} VALUES (7001, 1.00, 'later', '2030-01-01 00:00:00')")
    report = sync_table(backend.connect, orders, opts)
    assert report.strategy == "incremental" and report.rows_total == 1002
    assert target_rows(opts, orders) == source_rows(sf, orders)  # nothing lost, nothing twice
    unchanged = sync_table(backend.connect, orders, opts)
    assert unchanged.rows_unloaded == 1 and target_rows(opts, orders) == source_rows(sf, orders)


def test_new_column_is_added_and_widened_type_widened(
    mirror: Mirror, backend: Backend, sf: Any, orders: TableRef, tmp_path: Path
) -> None:
    opts = mirror.options(tmp_path)
    configure(opts, orders, MERGE)
    sync_table(backend.connect, orders, opts)
    fetch(sf, f"ALTER TABLE {orders.snowflake_sql} ADD COLUMN NOTE VARCHAR(50)")
    fetch(sf, f"ALTER TABLE {orders.snowflake_sql} ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(18,2)")
    fetch(sf, f"INSERT INTO {orders.snowflake_sql} VALUES (8000, 12345678901.25, 'new', '2025-06-01 00:00:00', 'hi')")
    report = sync_table(backend.connect, orders, opts)
    assert report.strategy == "incremental"
    assert report.schema_changes == ["widened AMOUNT DECIMAL(10,2) -> DECIMAL(18,2)", "added NOTE VARCHAR"]
    rows = {r[0]: r for r in synced_rows(opts, orders.duckdb_sql)}
    assert rows[8000][4] == "hi" and rows[1][4] is None  # old rows NULL
    assert str(rows[8000][1]) == "12345678901.25"
    assert target_rows(opts, orders) == source_rows(sf, orders)


def test_incompatible_change_fails_until_a_full_sync(
    mirror: Mirror, backend: Backend, sf: Any, orders: TableRef, tmp_path: Path
) -> None:
    opts = mirror.options(tmp_path)
    configure(opts, orders, MERGE)
    sync_table(backend.connect, orders, opts)
    sync_table(backend.connect, orders, opts)  # an incremental one, so the next would be too
    before = target_rows(opts, orders)
    fetch(
        sf,
        f"CREATE OR REPLACE TABLE {orders.snowflake_sql} (ID NUMBER(38,0) NOT NULL, AMOUNT VARCHAR(20), "
        "STATUS VARCHAR(20), UPDATED_AT TIMESTAMP_NTZ(9), PRIMARY KEY (ID))",
    )
    fetch(sf, f"INSERT INTO {orders.snowflake_sql} VALUES (1, 'one', 'x', '2030-01-01 00:00:00')")
    with pytest.raises(PermanentError, match="Run a full sync"):
        sync_table(backend.connect, orders, opts)
    assert target_rows(opts, orders) == before
    full = sync_table(backend.connect, orders, opts, strategy="full")
    assert full.rows_total == 1 and target_rows(opts, orders) == source_rows(sf, orders)
    fetch(sf, f"ALTER TABLE {orders.snowflake_sql} DROP COLUMN STATUS")
    with pytest.raises(PermanentError, match="gone from Snowflake"):
        sync_table(backend.connect, orders, opts)


@pytest.mark.parametrize("cursor_type", ["TIMESTAMP_TZ(9)", "TIMESTAMP_LTZ(9)", "DATE"])
def test_incremental_marks_of_every_temporal_type_are_read_back_with_an_explicit_format(
    mirror: Mirror, backend: Backend, sf: Any, tmp_path: Path, cursor_type: str
) -> None:
    table = backend.table(f"EVENTS_{uuid.uuid4().hex[:6].upper()}")
    fetch(sf, f"CREATE TABLE {table.snowflake_sql} (ID NUMBER(38,0) NOT NULL, AT {cursor_type}, PRIMARY KEY (ID))")
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (1, '2024-01-01'), (2, '2024-01-02'), (3, '2024-01-03')")
    opts = mirror.options(tmp_path)
    configure(opts, table, TableOptions(strategy="incremental", cursor_column="AT", primary_key=("ID",)))
    assert sync_table(backend.connect, table, opts).rows_unloaded == 3
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (4, '2024-01-04')")
    second = sync_table(backend.connect, table, opts)
    # Only the row at the old mark (2024-01-03) and the new one: the literal was read as the same instant.
    assert second.strategy == "incremental" and second.rows_unloaded == 2
    assert target_rows(opts, table) == source_rows(sf, table)


def test_each_sync_of_a_lake_is_a_snapshot_to_query_later(mirror: Mirror, backend: Backend, tmp_path: Path) -> None:
    """Time travel: the first sync's snapshot id still answers with the first sync's rows after a second sync."""
    table = backend.table("GROWING")
    backend.sql(f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0))")
    backend.sql(f"INSERT INTO {table.snowflake_sql} SELECT SEQ8() FROM TABLE(GENERATOR(ROWCOUNT => 100))")
    opts = mirror.options(tmp_path)
    first = sync_table(backend.connect, table, opts)
    backend.sql(f"INSERT INTO {table.snowflake_sql} SELECT SEQ8() FROM TABLE(GENERATOR(ROWCOUNT => 50))")
    second = sync_table(backend.connect, table, opts)
    assert (first.rows_total, second.rows_total) == (100, 150)
    if opts.mirror.has_published_copy:
        assert first.snapshot_id is None and second.snapshot_id is None  # a DuckDB file keeps no history
        return
    assert first.snapshot_id is not None and second.snapshot_id is not None
    assert second.snapshot_id > first.snapshot_id
    with opts.mirror.session("time travel", read_only=True, wait=10) as con:
        at = f"SELECT count(*) FROM {table.duckdb_sql} AT (VERSION => {first.snapshot_id})"
        assert con.execute(at).fetchone() == (100,)
        assert con.execute(f"SELECT count(*) FROM {table.duckdb_sql}").fetchone() == (150,)


# -- hardened and unusual accounts ---------------------------------------------------------------------------


def test_collated_text_syncs_as_varchar(mirror: Mirror, backend: Backend, sf: Any, tmp_path: Path) -> None:
    table = backend.table("COLLATED")
    fetch(sf, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), NAME VARCHAR COLLATE 'en-ci')")
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (1, 'Ärger'), (2, 'ärger'), (3, NULL)")
    assert "COLLATE 'en-ci'" in {r[0]: r[1] for r in fetch(sf, f"DESC TABLE {table.snowflake_sql}")}["NAME"]
    opts = mirror.options(tmp_path)
    sync_table(backend.connect, table, opts)
    assert target_rows(opts, table) == source_rows(sf, table)


def test_the_parameters_the_sync_asks_about_answer_in_the_shape_it_reads(sf: Any) -> None:
    """After a refused unload the sync asks SHOW PARAMETERS ... IN USER (sync/controls.py); after a timeout,
    IN SESSION and IN WAREHOUSE: key, value and level, by name."""
    for statement in (
        "SHOW PARAMETERS LIKE 'PREVENT_UNLOAD_TO_INTERNAL_STAGES' IN USER",
        "SHOW PARAMETERS LIKE 'STATEMENT_TIMEOUT_IN_SECONDS' IN SESSION",
    ):
        cur = sf.cursor()
        cur.execute(statement)
        names = [d[0].lower() for d in cur.description]
        (row,) = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        assert {"key", "value", "level"} <= set(row) and row["value"] != "", statement
    version = fetch(sf, "SELECT CURRENT_VERSION()")[0][0]
    assert all(part.isdigit() for part in str(version).split("."))  # what SQLAlchemy clients parse on connect


def test_get_from_an_external_stage_is_refused_and_the_sync_never_unloads_there(
    backend: Backend, sf: Any, tmp_path: Path
) -> None:
    stage = f"{backend.fq}.EXTERNAL_EXPORTS"
    fetch(sf, f"CREATE OR REPLACE STAGE {stage} URL = 's3://sync-project-contract-no-such-bucket/exports/'")
    with pytest.raises(ProgrammingError) as refused:
        fetch(sf, f"GET '@{stage}/' 'file://{tmp_path}/'")
    assert refused.value.errno == 91003
    with pytest.raises(PermanentError, match="an external stage"):
        sync_table(backend.connect, backend.table("data"), options(tmp_path, stage=stage))
