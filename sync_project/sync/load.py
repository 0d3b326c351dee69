"""DuckDB side of a sync: writer lock, one transaction, atomic replace.

DuckDB allows one writing process per file, and a writer blocks even read-only
openers. So connections are short: opened only after Snowflake's work is done,
under a cross-process lock that a second sync waits on (bounded) rather than
failing with "Could not set lock on file".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import filelock

from sync_project.sync.catalog import Column
from sync_project.sync.errors import LockTimeoutError, PermanentError, RowCountMismatchError
from sync_project.sync.tables import TableRef, quote_identifier

# Bounded memory whatever the table size: DuckDB spills past this instead of growing.
DUCKDB_MEMORY_LIMIT = "512MB"
PREVIEW_ROWS = 10


def lock_path(duckdb_path: Path) -> Path:
    return duckdb_path.with_name(duckdb_path.name + ".lock")


@contextlib.contextmanager
def writer_lock(duckdb_path: Path, timeout: float, waiting: str = "") -> Iterator[None]:
    """Hold the cross-process lock for `duckdb_path`; LockTimeoutError (transient) if it stays taken."""
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path(duckdb_path)), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockTimeoutError(
            f"{waiting or 'DuckDB access'}: another process held {duckdb_path} for more than {timeout:.0f}s "
            "(see SYNC_LOCK_TIMEOUT_SECONDS); will be retried"
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def open_duckdb(duckdb_path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection with the settings every load and read wants."""
    if read_only and not duckdb_path.exists():
        raise PermanentError(f"the DuckDB file {duckdb_path} does not exist yet; sync a table first")
    try:
        con = duckdb.connect(str(duckdb_path), read_only=read_only)
    except duckdb.IOException as e:
        raise PermanentError(
            f"cannot open {duckdb_path} as a DuckDB database ({e}). The file is left untouched; "
            "move it aside or point SYNC_DUCKDB_PATH elsewhere."
        ) from None
    try:
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET TimeZone = 'UTC'")  # TIMESTAMP -> TIMESTAMPTZ casts read the value as UTC
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class LoadResult:
    rows_loaded: int
    duckdb_bytes: int
    preview_columns: list[str]
    preview_rows: list[tuple[Any, ...]]


def _casts(columns: list[Column]) -> str:
    return ", ".join(
        f"CAST({quote_identifier(c.name)} AS {c.duckdb_type}) AS {quote_identifier(c.name)}" for c in columns
    )


def _check_name_collision(con: duckdb.DuckDBPyConnection, table: TableRef) -> None:
    """DuckDB names are case-insensitive; Snowflake's quoted ones are not. Refuse to let two tables share one."""
    row = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?) "
        "AND NOT (schema_name = ? AND table_name = ?)",
        [table.duckdb_schema, table.duckdb_table, table.duckdb_schema, table.duckdb_table],
    ).fetchone()
    if row:
        raise PermanentError(
            f"table {table} would land on DuckDB relation {table.duckdb_relation}, but {row[0]}.{row[1]} "
            "already exists there and DuckDB names ignore case. Deregister one of the two tables."
        )


def load_full(
    duckdb_path: Path,
    table: TableRef,
    columns: list[Column],
    files: list[Path],
    rows_unloaded: int,
    lock_timeout: float,
) -> LoadResult:
    """Build the new table and swap it in, in one transaction, only if its row count equals `rows_unloaded`.

    Any error rolls back: the previous table stays exactly as it was.
    """
    with (
        writer_lock(duckdb_path, lock_timeout, f"loading {table}"),
        open_duckdb(duckdb_path) as con,
    ):
        con.execute("BEGIN TRANSACTION")
        try:
            _check_name_collision(con, table)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.duckdb_schema)}")
            if files:
                file_list = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
                con.execute(
                    f"CREATE OR REPLACE TABLE {table.duckdb_sql} AS "
                    f"SELECT {_casts(columns)} FROM read_parquet({file_list})"
                )
            else:
                # 0 rows unloaded means no file: an empty table with the right schema.
                definition = ", ".join(f"{quote_identifier(c.name)} {c.duckdb_type}" for c in columns)
                con.execute(f"CREATE OR REPLACE TABLE {table.duckdb_sql} ({definition})")
            counted = con.execute(f"SELECT count(*) FROM {table.duckdb_sql}").fetchone()
            rows_loaded = int(counted[0]) if counted else -1
            if rows_loaded != rows_unloaded:
                raise RowCountMismatchError(
                    f"loading {table}: DuckDB holds {rows_loaded:,} rows but Snowflake unloaded "
                    f"{rows_unloaded:,}; the previous table is kept and the sync will be retried"
                )
            preview = con.execute(f"SELECT * FROM {table.duckdb_sql} LIMIT {PREVIEW_ROWS}")
            preview_columns = [d[0] for d in preview.description]
            preview_rows = preview.fetchall()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return LoadResult(rows_loaded, os.path.getsize(duckdb_path), preview_columns, preview_rows)


@dataclass(frozen=True)
class TableState:
    """What DuckDB holds for a table right now (for checks and status)."""

    exists: bool
    rows: int
    columns: dict[str, str]  # name -> DuckDB type


def read_table_state(duckdb_path: Path, table: TableRef, lock_timeout: float) -> TableState:
    """Rows and column types of the synced table; waits briefly for a writer rather than failing."""
    if not duckdb_path.exists():
        return TableState(False, 0, {})
    with writer_lock(duckdb_path, lock_timeout, f"reading {table}"), open_duckdb(duckdb_path, read_only=True) as con:
        columns = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index",
                [table.duckdb_schema, table.duckdb_table],
            ).fetchall()
        )
        if not columns:
            return TableState(False, 0, {})
        counted = con.execute(f"SELECT count(*) FROM {table.duckdb_sql}").fetchone()
        return TableState(True, int(counted[0]) if counted else 0, columns)
