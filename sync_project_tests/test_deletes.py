"""Deletes reach incremental tables: rows deleted in Snowflake leave the mirror (or are marked) with the merge,
through both ways out of Snowflake, on a DuckDB file and on a DuckLake."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sync_project.checks import schema_evaluation
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.content import verify_content
from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror.lake import Lake
from sync_project.sync.options import SyncOptions
from sync_project.sync.pipeline import sync_table
from sync_project.sync.state import DELETED_AT, TableOptions
from sync_project.sync.tables import TableRef
from sync_project.sync.types import duckdb_type_name
from sync_project.sync_record import figures_of
from sync_project_tests.helpers import (
    configure,
    connector,
    fetch,
    lake_for,
    new_schema,
    options,
    orders_in_a_new_schema,
    sorted_rows,
    stage_leftovers,
)

DATABASE = "KEBOOLA_33"
MERGE = TableOptions("incremental", "UPDATED_AT", ("ID",))


@pytest.fixture
def table(sf: Any) -> TableRef:
    """A fresh ORDERS table (1,000 rows, key ID, cursor UPDATED_AT) in a schema of its own."""
    return orders_in_a_new_schema(sf, "DEL")


def source(sf: Any, table: TableRef) -> list[tuple[Any, ...]]:
    return sorted_rows(fetch(sf, f"SELECT ID, AMOUNT, STATUS, UPDATED_AT FROM {table.snowflake_sql}"))


def mirror_rows(opts: SyncOptions, table: TableRef, where: str = "") -> list[tuple[Any, ...]]:
    with opts.mirror.session("reading rows", read_only=True, wait=10) as con:
        rows = con.execute(f"SELECT ID, AMOUNT, STATUS, UPDATED_AT FROM {table.duckdb_sql} {where}").fetchall()
    return sorted_rows(rows)


def change_in_snowflake(sf: Any, table: TableRef) -> None:
    """Delete a scattered tenth of the rows, update a twentieth (their cursor moved), insert 50."""
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE MOD(ID, 10) = 3")
    fetch(
        sf,
        f"UPDATE {table.snowflake_sql} SET STATUS = 'updated', UPDATED_AT = '2025-01-01 00:00:00' "
        "WHERE MOD(ID, 20) = 7",
    )
    fetch(
        sf,
        f"INSERT INTO {table.snowflake_sql} SELECT 5000 + SEQ8(), 1.50, 'inserted', "
        "'2025-01-02 00:00:00'::TIMESTAMP_NTZ FROM TABLE(GENERATOR(ROWCOUNT => 50))",
    )


@pytest.mark.parametrize("extract", ["unload", "results"])
@pytest.mark.parametrize("target", ["file", "ducklake-sqlite", "ducklake-postgres"])
def test_an_incremental_sync_removes_the_rows_deleted_in_snowflake(
    local_snowflake: LocalSnowflakeProcess,
    sf: Any,
    table: TableRef,
    tmp_path: Path,
    target: str,
    extract: str,
    request: pytest.FixtureRequest,
) -> None:
    opts = options(tmp_path, lake=lake_for(target, tmp_path, request), extract=extract)
    configure(opts, table, MERGE)
    assert sync_table(connector(local_snowflake), table, opts).strategy == "full"
    change_in_snowflake(sf, table)

    report = sync_table(connector(local_snowflake), table, opts)

    assert report.strategy == "incremental" and report.path == extract
    # 50 updated, and the 9 rows left at the old mark, which the cursor (>=) reads again.
    assert report.rows_deleted == 100 and report.rows_updated == 59
    assert mirror_rows(opts, table) == source(sf, table)  # row for row: deleted, updated and inserted
    assert report.load is not None and report.load.committed is not None
    assert report.load.committed.rows == 950 == report.rows_total
    assert not stage_leftovers(sf)  # the keys' stage folder went with the rows'
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal  # the content check, on each target


@pytest.mark.parametrize("target", ["file", "ducklake-sqlite"])
def test_deletes_mark_keeps_the_rows_and_marks_them_and_nothing_else_changes(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path, target: str
) -> None:
    lake = Lake(str(tmp_path / "lake.sqlite"), str(tmp_path / "lake-data")) if target == "ducklake-sqlite" else None
    opts = options(tmp_path, lake=lake)
    configure(opts, table, dataclasses.replace(MERGE, deletes="mark"))
    sync_table(connector(local_snowflake), table, opts)
    before = mirror_rows(opts, table)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE MOD(ID, 10) = 3")

    report = sync_table(connector(local_snowflake), table, opts)

    assert report.rows_deleted == 100
    assert mirror_rows(opts, table) == before  # every row is still there, as it was
    assert mirror_rows(opts, table, f"WHERE {DELETED_AT} IS NULL") == source(sf, table)
    marked = mirror_rows(opts, table, f"WHERE {DELETED_AT} IS NOT NULL")
    assert sorted(int(r[0]) for r in marked) == [i for i in range(1000) if i % 10 == 3]
    # The checks read the rows Snowflake still holds, and the mark is the project's column, not a stray one.
    assert report.load is not None and report.load.committed is not None
    assert report.load.committed.rows == 900
    expected = {c.name: duckdb_type_name(c.duckdb_type) for c in report.columns}
    assert schema_evaluation(table, expected, report.load.committed).passed

    again = sync_table(connector(local_snowflake), table, opts)  # nothing new: nothing marked twice
    assert again.strategy == "incremental" and again.rows_deleted == 0
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (3, 9.99, 'back', '2025-03-01 00:00:00')")
    sync_table(connector(local_snowflake), table, opts)
    assert mirror_rows(opts, table, f"WHERE {DELETED_AT} IS NULL") == source(sf, table)  # the row came back live
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal  # over the live rows only


@pytest.mark.parametrize("extract", ["unload", "results"])
@pytest.mark.parametrize("mode", ["remove", "mark"])
def test_with_nothing_deleted_the_keys_aggregates_match_and_no_key_is_read(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path, extract: str, mode: str
) -> None:
    """Most syncs find nothing deleted: the keys' aggregates of the rows the read left, with the batch's, are the
    merged table's, so the sync reads no key. Rows marked deleted earlier are not live and do not count."""
    opts = options(tmp_path, extract=extract)
    configure(opts, table, dataclasses.replace(MERGE, deletes=mode))  # type: ignore[arg-type]
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE MOD(ID, 10) = 3")
    first = sync_table(connector(local_snowflake), table, opts)
    assert first.rows_deleted == 100 and first.keys is not None and "keys" in first.phase_seconds
    fetch(sf, f"UPDATE {table.snowflake_sql} SET STATUS = 'updated', UPDATED_AT = '2025-01-01' WHERE MOD(ID, 20) = 7")
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES (5000, 1.50, 'inserted', '2025-01-02 00:00:00')")

    report = sync_table(connector(local_snowflake), table, opts)

    assert report.key_check is not None and report.keys is None and "keys" not in report.phase_seconds
    assert [figures_of(r, opts.mirror)["keys_read"] for r in (first, report)] == [True, False]  # what the UI shows
    assert report.rows_deleted == 0 and report.rows_total == 901
    assert mirror_rows(opts, table, f"WHERE {DELETED_AT} IS NULL" if mode == "mark" else "") == source(sf, table)


@pytest.mark.parametrize("inserted", [0, 2])
def test_deleted_rows_are_found_before_the_load_or_by_it(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path, inserted: int
) -> None:
    """Two rows deleted. With nothing inserted, the mirror held more rows than Snowflake's untaken and read rows
    together: every key is read at once and the load runs once. With as many inserted, the counts before the
    load cannot tell; the merged table's can: the load rolls back, every key is read, and it runs again."""
    opts = options(tmp_path)
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE ID IN (3, 4)")
    for i in range(inserted):
        fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES ({7000 + i}, 1.00, 'new', '2031-01-01 00:00:00')")
    said: list[str] = []

    report = sync_table(connector(local_snowflake), table, opts, said.append)

    assert report.rows_deleted == 2 and mirror_rows(opts, table) == source(sf, table)
    rolled_back = [line for line in said if "keys differ after the merge" in line]
    loads = [line for line in said if "in one transaction" in line]
    assert (len(rolled_back), len(loads)) == ((1, 2) if inserted else (0, 1))


def test_deletes_keep_leaves_deleted_rows_and_reads_no_keys(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path
) -> None:
    opts = options(tmp_path)
    configure(opts, table, dataclasses.replace(MERGE, deletes="keep"))
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE MOD(ID, 10) = 3")
    report = sync_table(connector(local_snowflake), table, opts)
    assert report.keys is None and report.rows_deleted == 0 and "keys" not in report.phase_seconds
    assert len(mirror_rows(opts, table)) == 1000


def test_deletes_need_a_key_and_say_how_to_give_one(sf: Any, local_snowflake: LocalSnowflakeProcess) -> None:
    schema = new_schema(sf, "DEL")
    fetch(sf, f"CREATE TABLE {DATABASE}.{schema}.EVENTS (AT TIMESTAMP_NTZ, NOTE VARCHAR)")
    table = TableRef(DATABASE, schema, "EVENTS")
    from sync_project.sync.catalog import describe_table
    from sync_project.sync.state import validate_options

    with connector(local_snowflake)() as conn:
        columns = describe_table(conn, table)
    wanted = TableOptions("incremental", "AT", (), deletes="mark")
    with pytest.raises(PermanentError, match=r"needs the table's key.*--primary-key COLUMN"):
        validate_options(table, columns, wanted)
    unkeyed = validate_options(table, columns, TableOptions("incremental", "AT"))
    assert not unkeyed.detects_deletes and unkeyed.deletes_mode == "keep"


def test_a_million_rows_deleted_updated_inserted_and_silently_changed(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    """Issue 31's case: 10% deleted (scattered), 5% updated with the cursor, 5% inserted, 1% changed without the
    cursor. The incremental sync makes the mirror equal to Snowflake row for row but for that 1%, which the
    content check names by column; a full sync mends it."""
    import pyarrow as pa

    schema = new_schema(sf, "DEL")
    table = TableRef(DATABASE, schema, "ORDERS")
    fetch(
        sf,
        f"CREATE TABLE {table.snowflake_sql} (ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(12,2), STATUS VARCHAR, "
        "UPDATED_AT TIMESTAMP_NTZ(9), PRIMARY KEY (ID))",
    )
    fetch(
        sf,
        f"INSERT INTO {table.snowflake_sql} SELECT SEQ8(), SEQ8() / 100, 'new', "
        "DATEADD(second, SEQ8(), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) FROM TABLE(GENERATOR(ROWCOUNT => 1000000))",
    )
    opts = options(tmp_path)
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE MOD(ID, 10) = 3")
    fetch(
        sf,
        f"UPDATE {table.snowflake_sql} SET STATUS = 'updated', UPDATED_AT = '2030-01-01 00:00:00' "
        "WHERE MOD(ID, 20) = 7",
    )
    fetch(
        sf,
        f"INSERT INTO {table.snowflake_sql} SELECT 2000000 + SEQ8(), 1.00, 'inserted', "
        "'2030-01-02 00:00:00'::TIMESTAMP_NTZ FROM TABLE(GENERATOR(ROWCOUNT => 50000))",
    )
    fetch(sf, f"UPDATE {table.snowflake_sql} SET AMOUNT = AMOUNT + 1 WHERE MOD(ID, 100) = 42")  # cursor unmoved

    report = sync_table(connector(local_snowflake), table, opts)

    assert report.strategy == "incremental" and report.rows_deleted == 100_000
    # Snowflake's rows as the connector's plain cursor gives them: a reading independent of the sync's own.
    columns = list(zip(*fetch(sf, f"SELECT ID, AMOUNT, STATUS, UPDATED_AT FROM {table.snowflake_sql}"), strict=True))
    snowflake_rows = pa.table(  # noqa: F841 (read by DuckDB's replacement scan below)
        {
            "ID": pa.array(columns[0], pa.decimal128(38, 0)),
            "AMOUNT": pa.array(columns[1], pa.decimal128(12, 2)),
            "STATUS": pa.array(columns[2], pa.string()),
            "UPDATED_AT": pa.array(columns[3], pa.timestamp("us")),
        }
    )
    with opts.mirror.session("comparing", read_only=True, wait=10) as con:
        con.execute("CREATE TEMP TABLE sf AS SELECT * FROM snowflake_rows")
        mirror = f"(SELECT ID, AMOUNT, STATUS, UPDATED_AT FROM {table.duckdb_sql})"
        differing = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE ID % 100 = 42) FROM ({mirror} EXCEPT ALL SELECT * FROM sf)"
        ).fetchone()
        missing = con.execute(f"SELECT count(*) FROM (SELECT * FROM sf EXCEPT ALL {mirror})").fetchone()
    assert report.rows_total == 950_000
    assert differing == (10_000, 10_000)  # only the silent 1% differ (none of them was deleted)
    assert missing == (10_000,)
    verdict = verify_content(connector(local_snowflake), opts.mirror, table)
    assert verdict.differing_columns == ["AMOUNT"]

    sync_table(connector(local_snowflake), table, opts, strategy="full")
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal


@pytest.mark.parametrize("moment", ["after the rows", "before the keys"])
def test_a_row_inserted_between_the_rows_and_the_keys_is_never_taken_for_deleted(
    local_snowflake: LocalSnowflakeProcess,
    sf: Any,
    table: TableRef,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moment: str,
) -> None:
    """Snowflake reads each statement at its own moment: a row inserted after the sync read the rows is in its
    later reads (the keys' aggregates, every key) and not in the batch. Read rows first, it is simply not loaded
    yet (the next sync brings it); read the other way round, it would be loaded and removed as deleted. One row
    really deleted beforehand is removed either way."""
    from sync_project.sync import deletes, moving
    from sync_project.sync.results import extract_to_files

    opts = options(tmp_path, extract="results")
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE ID = 3")
    reads: list[str] = []

    def reading(insert_after: bool) -> Any:
        def read(conn: Any, attempt: Any, *args: Any, **kwargs: Any) -> Any:
            reads.append(attempt.name)
            insert = f"INSERT INTO {table.snowflake_sql} VALUES (7777, 1.00, 'late', '2031-01-01 00:00:00')"
            if not insert_after:
                fetch(sf, insert)
            found = extract_to_files(conn, attempt, *args, **kwargs)
            if insert_after:
                fetch(sf, insert)
            return found

        return read

    monkeypatch.setattr(moving, "extract_to_files", reading(moment == "after the rows"))
    if moment == "before the keys":
        monkeypatch.setattr(moving, "extract_to_files", extract_to_files)
        monkeypatch.setattr(deletes, "extract_to_files", reading(False))
    report = sync_table(connector(local_snowflake), table, opts)
    assert report.keys is not None and report.key_check is not None  # the keys' aggregates differed
    assert report.rows_deleted == 1
    assert 7777 not in [row[0] for row in mirror_rows(opts, table)]
    monkeypatch.undo()
    later = sync_table(connector(local_snowflake), table, opts)
    assert later.rows_deleted == 0 and mirror_rows(opts, table) == source(sf, table)  # the late row arrived


@pytest.mark.parametrize("path", ["unload", "results"])
def test_a_retry_reads_the_keys_afresh(
    local_snowflake: LocalSnowflakeProcess, sf: Any, table: TableRef, tmp_path: Path, path: str
) -> None:
    """A retry shares its attempt (and download folder) with the failed try; the keys of that try, an older
    snapshot under the same file names, must not stand in for the table's keys now."""
    from sync_project.sync.attempt import Attempt
    from sync_project.sync.catalog import describe_table
    from sync_project.sync.deletes import extract_keys

    attempt = Attempt.new(table, tmp_path / "downloads", attempt_id="run-1")
    with connector(local_snowflake)() as conn:
        columns = describe_table(conn, table)
        first = extract_keys(conn, attempt, columns, ("ID",), path, 64 * 1024 * 1024, 4)
        fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE MOD(ID, 10) = 3")
        again = extract_keys(conn, attempt, columns, ("ID",), path, 64 * 1024 * 1024, 4)
    assert (first.rows, again.rows) == (1000, 900)
    files = ", ".join(f"'{f}'" for f in again.files)
    import duckdb

    assert duckdb.sql(f"SELECT count(*) FROM read_parquet([{files}])").fetchall() == [(900,)]
