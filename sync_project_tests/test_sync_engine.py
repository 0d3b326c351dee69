"""The engine (sync/) end to end against the local Snowflake: real connector, real DuckDB files."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import filelock
import pytest
import snowflake.connector

from sync_project.local_snowflake import LocalSnowflakeProcess
from sync_project.local_snowflake.faults import fault_state, inject_fault
from sync_project.sync import extract
from sync_project.sync.errors import LockTimeoutError, PermanentError, TableNotFoundError, TransientError
from sync_project.sync.load import lock_path
from sync_project.sync.pipeline import sync_table
from sync_project.sync.tables import TableRef
from sync_project_tests.helpers import (
    FQ,
    connector,
    demo_table,
    duckdb_rows,
    duckdb_types,
    fetch,
    options,
    snowflake_settings,
    sorted_rows,
    stage_leftovers,
)
from sync_project_tests.reliability import observe


@pytest.fixture
def sf(local_snowflake: LocalSnowflakeProcess) -> Any:
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        yield conn


def source_rows(conn: Any, table: TableRef) -> list[tuple[Any, ...]]:
    """The source as Snowflake returns it; `comparable` turns TZ values into UTC instants and JSON into values."""
    return fetch(conn, f"SELECT * FROM {table.snowflake_sql}")


@pytest.mark.parametrize("name", ["ALL_TYPES", "SEMI_STRUCTURED", "data"])
def test_demo_tables_sync_exactly(local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, name: str) -> None:
    table = demo_table(name)
    report = sync_table(connector(local_snowflake), table, options(tmp_path))
    assert report.rows_loaded == report.rows_unloaded > 0
    assert set(report.phase_seconds) == {"describe", "unload", "download", "load"}
    assert sorted_rows(duckdb_rows(tmp_path / "sync.duckdb", table.duckdb_sql)) == sorted_rows(source_rows(sf, table))
    assert list((tmp_path / "downloads").iterdir()) == []
    assert stage_leftovers(sf) == []


def test_types_land_as_the_type_map_says(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    for name in ("ALL_TYPES", "SEMI_STRUCTURED"):
        sync_table(connector(local_snowflake), demo_table(name), options(tmp_path))
    types = duckdb_types(tmp_path / "sync.duckdb", "WORKSPACE_833213390", "ALL_TYPES")
    assert types["NUM_38_0"] == "HUGEINT"
    assert types["NUM_18_0"] == "BIGINT"
    assert types["NUM_12_2"] == "DECIMAL(12,2)"
    assert types["NUM_38_10"] == "DECIMAL(38,10)"
    assert types["FLOAT_COL"] == "DOUBLE"
    assert types["VARCHAR_COL"] == types["CHAR_COL"] == "VARCHAR"
    assert types["BINARY_COL"] == "BLOB"
    assert types["TIME_COL"] == "TIME"
    assert types["TS_NTZ"] == "TIMESTAMP"
    semi = duckdb_types(tmp_path / "sync.duckdb", "WORKSPACE_833213390", "SEMI_STRUCTURED")
    assert semi["TS_TZ"] == semi["TS_LTZ"] == "TIMESTAMP WITH TIME ZONE"
    assert semi["VARIANT_COL"] == semi["OBJECT_COL"] == semi["ARRAY_COL"] == "JSON"
    assert semi["GEOGRAPHY_COL"] == semi["GEOMETRY_COL"] == "VARCHAR"
    extremes = dict(
        (r[0], r[1:]) for r in duckdb_rows(tmp_path / "sync.duckdb", '"WORKSPACE_833213390"."ALL_TYPES" WHERE ID < 3')
    )
    assert extremes[0][0] == int("9" * 38) and extremes[1][0] == -int("9" * 38)
    assert extremes[0][3] == Decimal("9999999999999999999999999999.9999999999")
    assert all(v is None for v in extremes[2])


def test_many_files_load_completely(local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path) -> None:
    table = demo_table("data")
    report = sync_table(connector(local_snowflake), table, options(tmp_path, max_file_size=20_000))
    assert report.files > 2
    assert report.rows_loaded == len(source_rows(sf, table))


def test_empty_table_syncs_to_empty_table_with_schema(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    name = f"EMPTY_{uuid.uuid4().hex[:6].upper()}"
    fetch(sf, f"CREATE TABLE {FQ}.{name} (ID NUMBER(38,0), AMOUNT NUMBER(10,2), AT TIMESTAMP_TZ(9))")
    report = sync_table(connector(local_snowflake), demo_table(name), options(tmp_path))
    assert report.rows_unloaded == report.rows_loaded == 0 and report.files == 0
    types = duckdb_types(tmp_path / "sync.duckdb", "WORKSPACE_833213390", name)
    assert types == {"ID": "HUGEINT", "AMOUNT": "DECIMAL(10,2)", "AT": "TIMESTAMP WITH TIME ZONE"}


@pytest.mark.parametrize("name", ["data", "with space", "with.dot", 'with"quote', "Ünïcödé ✓"])
def test_awkward_names_sync_to_the_right_relation(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, name: str
) -> None:
    table = demo_table(name)
    if name != "data":
        fetch(sf, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), LABEL VARCHAR)")
        fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (1, 'one'), (2, 'two')")
    assert TableRef.from_key(table.key, table.database) == table
    report = sync_table(connector(local_snowflake), table, options(tmp_path))
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        found = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'WORKSPACE_833213390'"
        ).fetchall()
    assert found == [(name,)]
    assert report.rows_loaded == len(source_rows(sf, table))


def test_missing_table_is_a_permanent_error_naming_it(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    with pytest.raises(TableNotFoundError) as error:
        sync_table(connector(local_snowflake), demo_table("NO_SUCH_TABLE"), options(tmp_path))
    assert "NO_SUCH_TABLE" in str(error.value)
    assert not (tmp_path / "sync.duckdb").exists()


@pytest.mark.parametrize(
    "key", ["WORKSPACE_833213390.../x", "WORKSPACE_833213390.a\x00b", "WORKSPACE_833213390.tab\tle", "../x", "x"]
)
def test_hostile_keys_are_refused_before_any_sql(key: str) -> None:
    with pytest.raises(PermanentError):
        TableRef.from_key(key, "KEBOOLA_33")


def _snapshot(path: Path) -> list[tuple[Any, ...]]:
    return sorted_rows(duckdb_rows(path, '"WORKSPACE_833213390"."data"'))


@pytest.fixture
def synced_once(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> list[tuple[Any, ...]]:
    sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path))
    return _snapshot(tmp_path / "sync.duckdb")


GIVING_UP = {
    "desc_table": "Snowflake fails DESC TABLE on the last try (retries used up)",
    "unload": "Snowflake fails the unload on the last try (retries used up)",
    "get": "Snowflake fails GET on the last try (retries used up)",
}


@pytest.mark.parametrize("kind", list(GIVING_UP))
def test_snowflake_failure_leaves_previous_table_and_nothing_behind(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, synced_once: list[Any], kind: str
) -> None:
    inject_fault(local_snowflake.base_url, kind)
    with pytest.raises(TransientError) as error:
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path))
    phase = {"desc_table": "describing", "unload": "unloading", "get": "downloading"}[kind]
    assert f"{phase} KEBOOLA_33.WORKSPACE_833213390.data" in str(error.value)
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []
    assert stage_leftovers(sf) == []
    observe(
        "Fault",
        GIVING_UP[kind],
        "the sync failed with an error naming the table and the phase",
        f"previous {len(synced_once):,} rows intact; its stage dropped; download folder empty",
    )


def test_load_failure_inside_the_transaction_rolls_back(
    local_snowflake: LocalSnowflakeProcess,
    sf: Any,
    tmp_path: Path,
    synced_once: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_download = extract.download_files

    def lose_one_file(*args: Any, **kwargs: Any) -> extract.Download:
        download = real_download(*args, **kwargs)
        return extract.Download(download.files[1:], download.fetched, download.reused)

    monkeypatch.setattr(extract, "download_files", lose_one_file)
    with pytest.raises(TransientError, match="Snowflake unloaded"):
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path, max_file_size=20_000))
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []
    assert stage_leftovers(sf) == []
    observe(
        "Fault",
        "A downloaded file goes missing before the load",
        "the load counted fewer rows than Snowflake unloaded and rolled back (a retryable error)",
        f"previous {len(synced_once):,} rows intact; stage dropped; download folder empty",
    )


def test_lock_held_too_long_fails_retryably_and_keeps_table(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced_once: list[Any]
) -> None:
    with filelock.FileLock(str(lock_path(tmp_path / "sync.duckdb"))), pytest.raises(LockTimeoutError):
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path, lock_timeout=0.5))
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_retry_after_a_busy_duckdb_file_reuses_the_downloaded_files(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, synced_once: list[Any]
) -> None:
    writer = filelock.FileLock(str(lock_path(tmp_path / "sync.duckdb")))

    def busy_once_downloaded(message: str) -> None:
        if "download took" in message:
            writer.acquire()  # someone else's load starts just as ours would

    first = options(tmp_path, lock_timeout=0.5, max_file_size=20_000)
    started = dt.datetime.now(dt.UTC)  # with the id, what ties a run's tries to one attempt (as Dagster passes)
    with pytest.raises(LockTimeoutError):
        sync_table(connector(local_snowflake), demo_table("data"), first, busy_once_downloaded,
                   attempt_id="run-1", attempt_started=started, keep_for_retry=True)  # fmt: skip
    writer.release()
    kept = sorted(p.name for p in (tmp_path / "downloads").rglob("*.parquet"))
    assert len(kept) > 1
    for kind in ("unload", "get", "list"):
        inject_fault(local_snowflake.base_url, kind)  # tripwires: the retry needs none of these
    retry = sync_table(
        connector(local_snowflake), demo_table("data"), first, attempt_id="run-1", attempt_started=started
    )
    assert fault_state(local_snowflake.base_url)["fired"] == []
    assert retry.resumed_unload and retry.files_reused == retry.files == len(kept)
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []


def test_not_enough_disk_fails_before_download(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="not enough disk") as error:
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path, disk_reserve=10**18))
    assert "1,000,000,000,000,000,000 bytes kept free (SYNC_DISK_RESERVE_BYTES)" in str(error.value)
    assert list((tmp_path / "downloads").iterdir()) == []
