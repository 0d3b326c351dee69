"""The local Snowflake, driven only through snowflake-connector-python over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import snowflake.connector
from snowflake.connector.errors import DatabaseError, OperationalError, ProgrammingError

from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA, type_table_rows
from sync_project.embedded_snowflake import (
    LOCAL_ACCOUNT,
    LOCAL_USER,
    LOCAL_WAREHOUSE,
    EmulatorMismatchError,
    LocalSnowflakeProcess,
)
from sync_project_tests.conftest import DEMO_ROWS
from sync_project_tests.emulator_controls import fault_state, inject_fault, release_faults

FQ = f"{DEMO_DATABASE}.{DEMO_SCHEMA}"

# Every column of the type tables, projected as the sync unloads it (see DESIGN.md).
ALL_TYPES_PROJECTION = ", ".join(
    f'"{c}" AS "{c}"'
    for c in [
        "ID", "NUM_38_0", "NUM_18_0", "NUM_12_2", "NUM_38_10", "INT_COL", "FLOAT_COL", "DOUBLE_COL",
        "VARCHAR_COL", "CHAR_COL", "TEXT_COL", "STRING_COL", "BINARY_COL", "BOOL_COL", "DATE_COL",
        "TIME_COL",
    ]
) + ', DATE_PART(EPOCH_MICROSECOND, "TS_NTZ") AS "TS_NTZ"'  # fmt: skip
SEMI_PROJECTION = (
    '"ID" AS "ID", DATE_PART(EPOCH_MICROSECOND, "TS_TZ") AS "TS_TZ", '
    'DATE_PART(EPOCH_MICROSECOND, "TS_LTZ") AS "TS_LTZ", TO_JSON("VARIANT_COL") AS "VARIANT_COL", '
    'TO_JSON("OBJECT_COL") AS "OBJECT_COL", TO_JSON("ARRAY_COL") AS "ARRAY_COL", '
    'ST_ASWKT("GEOGRAPHY_COL") AS "GEOGRAPHY_COL", ST_ASWKT("GEOMETRY_COL") AS "GEOMETRY_COL"'
)


def fetch(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(sql)
    return list(cur.fetchall())


def new_stage(conn: Any) -> str:
    name = f"{FQ}.T_{uuid.uuid4().hex[:10].upper()}"
    fetch(conn, f"CREATE TEMPORARY STAGE {name}")
    return name


def unload(conn: Any, stage: str, query: str, options: str = "") -> dict[str, int]:
    fetch(conn, "ALTER SESSION SET ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = FALSE")
    cur = conn.cursor()
    cur.execute(
        f"COPY INTO @{stage}/run/ FROM ({query}) FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE OVERWRITE = TRUE "
        + options
    )
    names = [d.name for d in cur.description]
    row = cur.fetchone()
    return dict(zip(names, row, strict=True))


def get_files(conn: Any, stage: str, target: Path, parallel: int = 4) -> list[tuple[Any, ...]]:
    return fetch(conn, f"GET @{stage}/run/ 'file://{target}/' PARALLEL = {parallel}")


def normalise(value: Any) -> Any:
    """Python values from the connector and from Parquet, made comparable."""
    if isinstance(value, bytearray | bytes):
        return bytes(value)
    if isinstance(value, str):
        try:
            return json.loads(value) if value[:1] in "{[" else value
        except ValueError:
            return value
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, Decimal) and value == value.to_integral_value() and value.as_tuple().exponent == 0:
        return int(value)  # Snowflake writes every NUMBER(p,0) as a Parquet decimal
    return value


def rows_from_parquet(folder: Path) -> list[tuple[Any, ...]]:
    table = pq.read_table(sorted(folder.glob("*.parquet")))
    rows = list(zip(*[c.to_pylist() for c in table.columns], strict=True))
    return sorted((tuple(normalise(v) for v in r) for r in rows), key=lambda r: r[0])


def rows_from_query(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    return sorted((tuple(normalise(v) for v in r) for r in fetch(conn, sql)), key=lambda r: r[0])


@pytest.mark.parametrize(
    ("table", "projection"), [("ALL_TYPES", ALL_TYPES_PROJECTION), ("SEMI_STRUCTURED", SEMI_PROJECTION)]
)
def test_unload_then_get_round_trips_every_type(
    snowflake_conn: Any, download_dir: Path, table: str, projection: str
) -> None:
    stage = new_stage(snowflake_conn)
    query = f"SELECT {projection} FROM {FQ}.{table}"
    result = unload(snowflake_conn, stage, query)
    assert result["rows_unloaded"] == type_table_rows(DEMO_ROWS)
    assert result["output_bytes"] > 0 and result["input_bytes"] > 0
    downloaded = get_files(snowflake_conn, stage, download_dir)
    assert {r[2] for r in downloaded} == {"DOWNLOADED"}
    assert all(r[0].startswith("data_") and r[0].endswith(".snappy.parquet") for r in downloaded)
    assert rows_from_parquet(download_dir) == rows_from_query(snowflake_conn, query)


def test_extreme_values_survive_unload(snowflake_conn: Any, download_dir: Path) -> None:
    stage = new_stage(snowflake_conn)
    unload(snowflake_conn, stage, f"SELECT {ALL_TYPES_PROJECTION} FROM {FQ}.ALL_TYPES WHERE ID < 3")
    get_files(snowflake_conn, stage, download_dir)
    table = pq.read_table(sorted(download_dir.glob("*.parquet"))).sort_by("ID")
    rows = table.to_pylist()
    assert rows[0]["NUM_38_0"] == Decimal("9" * 38)
    assert rows[1]["NUM_38_0"] == Decimal("-" + "9" * 38)  # not -Decimal(): context precision is 28
    assert rows[0]["NUM_38_10"] == Decimal("9999999999999999999999999999.9999999999")
    assert rows[0]["VARCHAR_COL"] == "Příliš žluťoučký kůň 🐎"
    assert rows[0]["TEXT_COL"] == "line one\nline two\n\ttabbed"
    assert rows[0]["BINARY_COL"] == b"\x00\xff\x10"
    assert all(v is None for k, v in rows[2].items() if k != "ID")
    assert str(table.schema.field("NUM_38_0").type) == "decimal128(38, 0)"


def test_timestamp_tz_columns_are_refused_like_snowflake(snowflake_conn: Any) -> None:
    stage = new_stage(snowflake_conn)
    with pytest.raises(ProgrammingError) as error:
        unload(snowflake_conn, stage, f'SELECT "TS_TZ" FROM {FQ}.SEMI_STRUCTURED')
    assert error.value.errno == 100171


def test_small_max_file_size_splits_into_many_files(snowflake_conn: Any, download_dir: Path) -> None:
    stage = new_stage(snowflake_conn)
    query = f'SELECT "id" AS "id", "name" AS "name", "amount" AS "amount" FROM {FQ}."data"'
    result = unload(snowflake_conn, stage, query, "MAX_FILE_SIZE = 20000")
    listed = fetch(snowflake_conn, f"LIST @{stage}/run/")
    assert len(listed) >= 3  # DuckDB cuts files at 2,048-row chunks, so the cap is approximate
    assert sum(r[1] for r in listed) == result["output_bytes"]
    get_files(snowflake_conn, stage, download_dir)
    assert len(list(download_dir.glob("data_*_*_*.snappy.parquet"))) == len(listed)
    assert rows_from_parquet(download_dir) == rows_from_query(snowflake_conn, query)


def test_zero_row_unload_writes_no_file_and_get_raises(snowflake_conn: Any, download_dir: Path) -> None:
    stage = new_stage(snowflake_conn)
    cur = snowflake_conn.cursor()
    cur.execute(
        f'COPY INTO @{stage}/run/ FROM (SELECT "id" AS "id" FROM {FQ}."data" WHERE "id" < 0) '
        "FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE"
    )
    assert cur.fetchone() is None  # no result row for an unload of nothing
    assert fetch(snowflake_conn, f"LIST @{stage}") == []
    with pytest.raises(ProgrammingError):
        get_files(snowflake_conn, stage, download_dir)


def test_remove_and_drop_stage(snowflake_conn: Any) -> None:
    stage = new_stage(snowflake_conn)
    unload(snowflake_conn, stage, f'SELECT "id" AS "id" FROM {FQ}."data"')
    removed = fetch(snowflake_conn, f"REMOVE @{stage}/run/")
    assert removed and {r[1] for r in removed} == {"removed"}
    assert fetch(snowflake_conn, f"LIST @{stage}") == []
    fetch(snowflake_conn, f"DROP STAGE {stage}")
    with pytest.raises(ProgrammingError):
        fetch(snowflake_conn, f"LIST @{stage}")
    fetch(snowflake_conn, f"DROP STAGE IF EXISTS {stage}")


def test_temporary_stage_ends_with_its_session(local_snowflake: LocalSnowflakeProcess) -> None:
    with snowflake.connector.connect(**local_snowflake.connection_settings()) as first:
        stage = new_stage(first)
    with snowflake.connector.connect(**local_snowflake.connection_settings()) as second:
        with pytest.raises(ProgrammingError):
            fetch(second, f"LIST @{stage}")
        fetch(second, f"CREATE STAGE {stage}")  # a named one persists across sessions
    with snowflake.connector.connect(**local_snowflake.connection_settings()) as third:
        assert fetch(third, f"LIST @{stage}") == []
        fetch(third, f"DROP STAGE {stage}")


def test_desc_table_prints_declared_types(snowflake_conn: Any) -> None:
    rows = fetch(snowflake_conn, f"DESC TABLE {FQ}.ALL_TYPES")
    types = {r[0]: r[1] for r in rows}
    assert types["NUM_38_0"] == "NUMBER(38,0)"
    assert types["INT_COL"] == "NUMBER(38,0)"
    assert types["NUM_12_2"] == "NUMBER(12,2)"
    assert types["CHAR_COL"] == "VARCHAR(3)"
    assert types["BINARY_COL"] == "BINARY(16)"
    assert types["TIME_COL"] == "TIME(9)"
    assert len(rows) == 17
    assert [r[5] for r in rows if r[0] == "ID"] == ["Y"]  # primary key
    semi = {r[0]: r[1] for r in fetch(snowflake_conn, f"DESC TABLE {FQ}.SEMI_STRUCTURED")}
    assert semi["TS_LTZ"] == "TIMESTAMP_LTZ(9)" and semi["GEOGRAPHY_COL"] == "GEOGRAPHY"
    lower = fetch(snowflake_conn, f'DESC TABLE {FQ}."data"')
    assert lower[0][:2] == ("id", "NUMBER(38,0)")
    with pytest.raises(ProgrammingError) as missing:
        fetch(snowflake_conn, f"DESC TABLE {FQ}.NO_SUCH_TABLE")
    assert "does not exist" in str(missing.value)


def test_table_statistics_follow_the_data(snowflake_conn: Any) -> None:
    name = f"STATS_{uuid.uuid4().hex[:8].upper()}"
    fetch(snowflake_conn, f"CREATE TABLE {FQ}.{name} (ID NUMBER(38,0), NOTE VARCHAR)")

    def figures() -> tuple[int, int, dt.datetime]:
        shown = [r for r in fetch(snowflake_conn, f"SHOW TABLES LIKE '{name}' IN SCHEMA {FQ}") if r[1] == name]
        info = fetch(
            snowflake_conn,
            f"SELECT ROW_COUNT, BYTES, LAST_ALTERED FROM {DEMO_DATABASE}.INFORMATION_SCHEMA.TABLES "
            f"WHERE TABLE_SCHEMA = '{DEMO_SCHEMA}' AND TABLE_NAME = '{name}'",
        )
        assert len(shown) == 1 and len(info) == 1
        assert (shown[0][7], shown[0][8]) == (info[0][0], info[0][1])
        return info[0][0], info[0][1], info[0][2]

    rows0, bytes0, altered0 = figures()
    assert rows0 == 0 and altered0.year > 2000
    time.sleep(0.01)
    fetch(snowflake_conn, f"INSERT INTO {FQ}.{name} SELECT SEQ8(), 'x' FROM TABLE(GENERATOR(ROWCOUNT => 250))")
    rows1, bytes1, altered1 = figures()
    assert rows1 == 250 and bytes1 > bytes0 and altered1 > altered0
    fetch(snowflake_conn, f"DELETE FROM {FQ}.{name} WHERE ID < 50")
    rows2, bytes2, altered2 = figures()
    assert rows2 == 200 and bytes2 < bytes1 and altered2 > altered1


def test_get_fault_fails_once_then_succeeds(
    snowflake_conn: Any, local_snowflake: LocalSnowflakeProcess, download_dir: Path
) -> None:
    stage = new_stage(snowflake_conn)
    unload(snowflake_conn, stage, f'SELECT "id" AS "id" FROM {FQ}."data"')
    inject_fault(local_snowflake.base_url, "get", mode="sql_error", count=1)
    with pytest.raises(DatabaseError):
        get_files(snowflake_conn, stage, download_dir)
    assert list(download_dir.iterdir()) == []
    assert fault_state(local_snowflake.base_url)["fired"] == ["get"]
    assert {r[2] for r in get_files(snowflake_conn, stage, download_dir)} == {"DOWNLOADED"}


def test_partial_get_reports_the_lost_file(
    snowflake_conn: Any, local_snowflake: LocalSnowflakeProcess, download_dir: Path
) -> None:
    stage = new_stage(snowflake_conn)
    unload(
        snowflake_conn,
        stage,
        f'SELECT "id" AS "id", "name" AS "name" FROM {FQ}."data"',
        "MAX_FILE_SIZE = 20000",
    )
    files = fetch(snowflake_conn, f"LIST @{stage}/run/")
    inject_fault(local_snowflake.base_url, "download", mode="truncate")
    # The connector raises for a file it could not fetch (253002, as it does against a real stage's storage);
    # the other files arrive whole.
    with pytest.raises(OperationalError, match="IncompleteRead") as error:
        get_files(snowflake_conn, stage, download_dir)
    assert error.value.errno == 253002
    arrived = sorted(p.name for p in download_dir.glob("*.parquet"))
    assert len(files) > 1 and len(arrived) == len(files) - 1


def test_login_fault_and_stall(local_snowflake: LocalSnowflakeProcess) -> None:
    inject_fault(local_snowflake.base_url, "login", mode="sql_error", errno=390100, message="Incorrect user")
    with pytest.raises(DatabaseError):
        snowflake.connector.connect(**local_snowflake.connection_settings())
    # A held query answers only once released: in order, the fault fired, the query still waited, then it answered.
    with (
        snowflake.connector.connect(**local_snowflake.connection_settings()) as conn,
        ThreadPoolExecutor(1) as pool,
    ):
        inject_fault(local_snowflake.base_url, "query", mode="hold", seconds=120)
        answer = pool.submit(fetch, conn, "SELECT 1")
        while "query" not in fault_state(local_snowflake.base_url)["fired"]:
            assert not answer.done(), answer.result()
            time.sleep(0.05)
        assert not answer.done()  # held: nothing can answer it before the release
        release_faults(local_snowflake.base_url)
        assert answer.result(timeout=60) == [(1,)]


def test_state_persists_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = LocalSnowflakeProcess(data_dir=data)
    with first, snowflake.connector.connect(**first.connection_settings()) as conn:
        fetch(conn, "CREATE DATABASE IF NOT EXISTS KEEP")
        fetch(conn, "CREATE SCHEMA IF NOT EXISTS KEEP.S")
        fetch(conn, "CREATE TABLE KEEP.S.T (N NUMBER(38,0), NOTE VARCHAR(5))")
        fetch(conn, "INSERT INTO KEEP.S.T VALUES (12345678901234567890123456789012345678, 'kept')")
    second = LocalSnowflakeProcess(data_dir=data)
    with second, snowflake.connector.connect(**second.connection_settings()) as conn:
        assert fetch(conn, "SELECT N, NOTE FROM KEEP.S.T") == [(12345678901234567890123456789012345678, "kept")]
        assert [r[1] for r in fetch(conn, "DESC TABLE KEEP.S.T")] == ["NUMBER(38,0)", "VARCHAR(5)"]
        shown = fetch(conn, "SHOW TABLES IN SCHEMA KEEP.S")
        assert shown[0][7] == 1


def test_the_client_knows_the_account_the_server_serves_and_refuses_another(
    local_snowflake: LocalSnowflakeProcess,
) -> None:
    """The product's constants and the emulator's account live in two distributions; the health answer ties
    them, and a server that serves another account (an old environment) is refused by name."""
    with urllib.request.urlopen(f"{local_snowflake.base_url}/_local/health", timeout=10) as answer:  # noqa: S310
        health = json.loads(answer.read())
    assert {k: health[k] for k in ("account", "user", "warehouse")} == {
        "account": LOCAL_ACCOUNT,
        "user": LOCAL_USER,
        "warehouse": LOCAL_WAREHOUSE,
    }
    with pytest.raises(EmulatorMismatchError, match=r"serves \{'account': 'other'.*make venv"):
        local_snowflake._check_account(health | {"account": "other"})


def test_a_sqlalchemy_client_connects_and_reads_a_table(local_snowflake: LocalSnowflakeProcess) -> None:
    """snowflake-sqlalchemy (what dlt and other SQLAlchemy-based tools use) asks CURRENT_VERSION() on connect;
    a user pointing such a tool at the demo's Snowflake gets through, and reads what the connector reads."""
    import sqlalchemy as sa
    from snowflake.sqlalchemy import URL

    settings = local_snowflake.connection_settings()
    url = URL(
        account=settings["account"], user=settings["user"], password=settings["password"],
        database=DEMO_DATABASE, schema=DEMO_SCHEMA, warehouse=settings["warehouse"],
    )  # fmt: skip
    endpoint = {key: settings[key] for key in ("host", "port", "protocol")}
    engine = sa.create_engine(url, connect_args=endpoint)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text('SELECT count(*) FROM "data"')).scalar() == DEMO_ROWS
            version, region, client = conn.execute(
                sa.text("SELECT CURRENT_VERSION(), CURRENT_REGION(), CURRENT_CLIENT()")
            ).one()
            assert [int(part) for part in version.split(".")] and region.startswith("GCP_") and client
            # Snowflake holds 38 digits in NUMBER(38,0); fakesnow alone made the cast a 64-bit integer.
            wide = conn.execute(sa.text("SELECT '99999999999999999999999999999999999999'::NUMBER(38,0)")).scalar()
            assert wide == 10**38 - 1
    finally:
        engine.dispose()
