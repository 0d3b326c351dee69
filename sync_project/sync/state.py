"""Per-table sync options and high-water marks, kept in the DuckDB file itself.

They live in a small internal schema (`_sync`) and are written in the same
transaction as the data, so a crash can never move the cursor without the rows
or the rows without the cursor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

from sync_project.sync.catalog import Column
from sync_project.sync.duckdb_access import is_lake
from sync_project.sync.errors import PermanentError
from sync_project.sync.tables import TableRef

STATE_SCHEMA = "_sync"
Strategy = Literal["full", "incremental"]

# Snowflake types a cursor may have: ordered, and sent back to Snowflake as a typed literal.
CURSOR_TYPES = ("NUMBER", "DECIMAL", "NUMERIC", "INT", "DATE", "TIMESTAMP")

_COLUMNS = """
    strategy VARCHAR NOT NULL,
    cursor_column VARCHAR,
    primary_key VARCHAR,
    high_water_mark VARCHAR,
    rows BIGINT,
    synced_at TIMESTAMPTZ,
    columns VARCHAR  -- JSON object: column name to DuckDB type, as the last sync left the table
"""
# The file keys the table by table_id; DuckLake has no keys, so there a row is replaced by delete + insert.
_CREATE_SCHEMA = f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}"
_CREATE_TABLE = f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.tables ("
_FILE_TABLE = _CREATE_TABLE + f"table_id VARCHAR PRIMARY KEY, {_COLUMNS})"
_LAKE_TABLE = _CREATE_TABLE + f"table_id VARCHAR NOT NULL, {_COLUMNS})"


@dataclass(frozen=True)
class TableOptions:
    """How a table is synced: set at registration, changeable later."""

    strategy: Strategy = "full"
    cursor_column: str | None = None
    primary_key: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncState:
    options: TableOptions = field(default_factory=TableOptions)
    high_water_mark: str | None = None  # text of the cursor's largest synced value
    rows: int | None = None
    columns: dict[str, str] | None = None  # as the last sync left the DuckDB table


def schema_statements(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The state's DDL, one statement each: on a lake, writers that create the schema and the table at once
    conflict on each separately, so each is retried on its own (see `load._create_schemas`)."""
    return [_CREATE_SCHEMA, _LAKE_TABLE if is_lake(con) else _FILE_TABLE]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in schema_statements(con):
        con.execute(statement)


def _upsert(con: duckdb.DuckDBPyConnection, insert: str, on_conflict: str, values: list[Any]) -> None:
    """Write the table's row: ON CONFLICT where the state table has its key, delete + insert on a lake."""
    if is_lake(con):
        con.execute(f"DELETE FROM {STATE_SCHEMA}.tables WHERE table_id = ?", [values[0]])
        con.execute(insert, values)
    else:
        con.execute(f"{insert} ON CONFLICT (table_id) DO UPDATE SET {on_conflict}", values)


def _has_state(con: duckdb.DuckDBPyConnection) -> bool:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = 'tables'",
        [STATE_SCHEMA],
    ).fetchone()
    return bool(exists and exists[0])


def synced_from_another_database(con: duckdb.DuckDBPyConnection, table: TableRef) -> str | None:
    """The database the mirror's table was last synced from, if not `table.database`: the same key (SCHEMA.TABLE)
    synced while SNOWFLAKE_DATABASE named another database. Keys do not carry the database, so a changed setting
    would otherwise re-point every table silently."""
    if not _has_state(con):
        return None
    row = con.execute(
        f"SELECT table_id FROM {STATE_SCHEMA}.tables WHERE table_id <> ? AND ends_with(table_id, ?) "
        "AND synced_at IS NOT NULL ORDER BY synced_at DESC LIMIT 1",
        [str(table), f".{table.key}"],
    ).fetchone()
    return str(row[0])[: -len(table.key) - 1] if row else None


def read_sync_state(con: duckdb.DuckDBPyConnection, table: TableRef) -> SyncState:
    """The table's options and progress; defaults if none were ever written (works read-only too)."""
    if not _has_state(con):
        return SyncState()
    row = con.execute(
        f"SELECT strategy, cursor_column, primary_key, high_water_mark, rows, columns FROM {STATE_SCHEMA}.tables "
        "WHERE table_id = ?",
        [str(table)],
    ).fetchone()
    if row is None:
        return SyncState()
    options = TableOptions(row[0], row[1], tuple(json.loads(row[2])) if row[2] else ())
    return SyncState(options, row[3], row[4], json.loads(row[5]) if row[5] else None)


def write_options(con: duckdb.DuckDBPyConnection, table: TableRef, options: TableOptions) -> None:
    """Set a table's options; a changed cursor column forgets the old high-water mark."""
    ensure_schema(con)
    current = read_sync_state(con, table)
    keep_mark = current.options.cursor_column == options.cursor_column
    _upsert(
        con,
        f"INSERT INTO {STATE_SCHEMA}.tables VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
        "strategy = excluded.strategy, cursor_column = excluded.cursor_column, "
        "primary_key = excluded.primary_key, high_water_mark = excluded.high_water_mark",
        [
            str(table),
            options.strategy,
            options.cursor_column,
            json.dumps(list(options.primary_key)),
            current.high_water_mark if keep_mark else None,
            current.rows,
        ],
    )


def write_sync_state(
    con: duckdb.DuckDBPyConnection, table: TableRef, mark: str | None, rows: int, columns: dict[str, str]
) -> None:
    """Record the new high-water mark, row count and table shape (inside the load's transaction)."""
    ensure_schema(con)
    current = read_sync_state(con, table).options
    _upsert(
        con,
        f"INSERT INTO {STATE_SCHEMA}.tables VALUES (?, ?, ?, ?, ?, ?, now(), ?)",
        "high_water_mark = excluded.high_water_mark, rows = excluded.rows, synced_at = excluded.synced_at, "
        "columns = excluded.columns",
        [
            str(table),
            current.strategy,
            current.cursor_column,
            json.dumps(list(current.primary_key)),
            mark,
            rows,
            json.dumps(columns),
        ],
    )
    # The mirror's table now comes from this database: forget the same key's state from another one.
    con.execute(
        f"DELETE FROM {STATE_SCHEMA}.tables WHERE table_id <> ? AND ends_with(table_id, ?)",
        [str(table), f".{table.key}"],
    )


def validate_options(table: TableRef, columns: list[Column], options: TableOptions) -> TableOptions:
    """Check the cursor and key against the table's columns; default the key to the declared primary key."""
    by_name = {c.name: c for c in columns}
    if options.strategy == "full":
        return options
    if not options.cursor_column:
        raise PermanentError(f"{table}: an incremental sync needs a cursor column (--cursor COLUMN)")
    cursor = by_name.get(options.cursor_column)
    if cursor is None:
        raise PermanentError(
            f"{table}: cursor column {options.cursor_column!r} is not a column of the table "
            f"(columns: {', '.join(sorted(by_name))[:300]})"
        )
    if not cursor.snowflake_type.upper().startswith(CURSOR_TYPES):
        raise PermanentError(
            f"{table}: cursor column {cursor.name!r} has type {cursor.snowflake_type}; a cursor must be a "
            "number, date or timestamp"
        )
    key = options.primary_key or tuple(c.name for c in columns if c.primary_key)
    missing = [k for k in key if k not in by_name]
    if missing:
        raise PermanentError(f"{table}: primary key column(s) {missing} are not columns of the table")
    return TableOptions("incremental", cursor.name, tuple(key))


def describe_options(options: TableOptions) -> dict[str, Any]:
    return {
        "strategy": options.strategy,
        "cursor_column": options.cursor_column,
        "primary_key": list(options.primary_key),
    }
