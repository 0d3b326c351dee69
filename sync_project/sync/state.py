"""Per-table sync options and high-water marks, kept in the DuckDB file itself.

They live in a small internal schema (`_sync`) and are written in the same
transaction as the data, so a crash can never move the cursor without the rows
or the rows without the cursor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

from sync_project.sync.catalog import Column
from sync_project.sync.errors import PermanentError
from sync_project.sync.tables import TableRef

STATE_SCHEMA = "_sync"
Strategy = Literal["full", "incremental"]
# The way out of Snowflake: a stage unload, the result set, or auto (paths.py chooses).
Extract = Literal["auto", "unload", "results"]
EXTRACTS: tuple[Extract, ...] = ("auto", "unload", "results")
# What an incremental sync with a key does with rows gone from Snowflake (deletes.py): remove them, keep them, or
# keep them marked with the time the sync found them gone (DELETED_AT).
Deletes = Literal["remove", "keep", "mark"]
DELETES: tuple[Deletes, ...] = ("remove", "keep", "mark")
DELETED_AT = "_sync_deleted_at"
# What proves a sync: the row counts (always), or also the content check's aggregates (content.py).
Verify = Literal["counts", "content"]
VERIFIES: tuple[Verify, ...] = ("counts", "content")

# Snowflake types a cursor may have: ordered, and sent back to Snowflake as a typed literal.
CURSOR_TYPES = ("NUMBER", "DECIMAL", "NUMERIC", "INT", "DATE", "TIMESTAMP")

_COLUMNS = """
    strategy VARCHAR NOT NULL,
    cursor_column VARCHAR,
    primary_key VARCHAR,
    high_water_mark VARCHAR,
    rows BIGINT,
    synced_at TIMESTAMPTZ,
    columns VARCHAR,  -- JSON object: column name to DuckDB type, as the last sync left the table
    extract VARCHAR,  -- the table's way out of Snowflake (auto, unload, results); NULL: the mirror's setting
    deletes VARCHAR,  -- remove, keep or mark; NULL: remove for a table with a key
    verify VARCHAR  -- counts or content; NULL: counts
"""
# No key: DuckLake has none, so a file and a lake keep the same table and a row is replaced by delete + insert.
# (Files made before this carry a PRIMARY KEY on table_id, which the same statements satisfy.)
STATE_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.tables (table_id VARCHAR NOT NULL, {_COLUMNS})",
    f"ALTER TABLE {STATE_SCHEMA}.tables ADD COLUMN IF NOT EXISTS extract VARCHAR",  # files made before it
    f"ALTER TABLE {STATE_SCHEMA}.tables ADD COLUMN IF NOT EXISTS deletes VARCHAR",
    f"ALTER TABLE {STATE_SCHEMA}.tables ADD COLUMN IF NOT EXISTS verify VARCHAR",
    # What a sync learned about the account, for the next ones (one row per name).
    f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.facts (name VARCHAR NOT NULL, value VARCHAR, noted_at TIMESTAMPTZ)",
)
# The account refused an unload to an internal stage (PREVENT_UNLOAD_TO_INTERNAL_STAGES); the value is the fix.
UNLOAD_PREVENTED = "unload_prevented"


@dataclass(frozen=True)
class TableOptions:
    """How a table is synced: set at registration, changeable later."""

    strategy: Strategy = "full"
    cursor_column: str | None = None
    primary_key: tuple[str, ...] = ()
    extract: Extract | None = None  # None: the mirror's setting (SYNC_EXTRACT, the component's `extract`)
    deletes: Deletes | None = None  # None: remove, for an incremental table with a key
    verify: Verify | None = None  # None: counts

    @property
    def detects_deletes(self) -> bool:
        """Whether an incremental sync learns which rows Snowflake no longer holds: it needs their key."""
        return self.strategy == "incremental" and bool(self.primary_key) and self.deletes_mode != "keep"

    @property
    def deletes_mode(self) -> Deletes:
        return self.deletes or ("remove" if self.primary_key else "keep")

    def __str__(self) -> str:
        """As people read them: `full`, or `incremental on UPDATED_AT, key ID`, and `extract results` if set."""
        how = (
            "full"
            if self.strategy == "full"
            else f"incremental on {self.cursor_column}, key {', '.join(self.primary_key) or 'none (append)'}"
        )
        return (
            how
            + (f", extract {self.extract}" if self.extract else "")
            + (f", deletes {self.deletes}" if self.deletes else "")
            + (f", verify {self.verify}" if self.verify else "")
        )

    def as_dict(self) -> dict[str, Any]:
        """As scripts read them (`status --json`)."""
        return {
            "strategy": self.strategy,
            "cursor_column": self.cursor_column,
            "primary_key": list(self.primary_key),
            "extract": self.extract,
            "deletes": self.deletes_mode if self.strategy == "incremental" else None,
            "verify": self.verify or "counts",
        }


@dataclass(frozen=True)
class Fact:
    value: str
    noted_at: dt.datetime


@dataclass(frozen=True)
class SyncState:
    options: TableOptions = field(default_factory=TableOptions)
    high_water_mark: str | None = None  # text of the cursor's largest synced value
    rows: int | None = None
    columns: dict[str, str] | None = None  # as the last sync left the DuckDB table
    unload_prevented: Fact | None = None  # the account refused unloads when a sync last tried


def read_fact(con: duckdb.DuckDBPyConnection, name: str) -> Fact | None:
    """The newest note of `name`, if the mirror has one (works read-only too)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = 'facts'",
        [STATE_SCHEMA],
    ).fetchone()
    if not (exists and exists[0]):
        return None
    row = con.execute(
        f"SELECT value, noted_at FROM {STATE_SCHEMA}.facts WHERE name = ? ORDER BY noted_at DESC LIMIT 1", [name]
    ).fetchone()
    return Fact(str(row[0]), row[1]) if row else None


def write_facts(con: duckdb.DuckDBPyConnection, facts: dict[str, str | None]) -> None:
    """Note (or, with None, forget) what a sync learned, inside the load's transaction."""
    for name, value in facts.items():
        con.execute(f"DELETE FROM {STATE_SCHEMA}.facts WHERE name = ?", [name])
        if value is not None:
            con.execute(f"INSERT INTO {STATE_SCHEMA}.facts VALUES (?, ?, now())", [name, value])


_CREATE_RETRIES = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)


def create_each(con: duckdb.DuckDBPyConnection, statements: tuple[str, ...] = STATE_DDL) -> None:
    """Run `CREATE ... IF NOT EXISTS` statements (the state's by default) outside a transaction, each in a commit
    of its own: writers that start at once on a lake each create them, and DuckLake refuses every commit but the
    first that creates one schema (or table); the loads of one run on the DuckDB file's one instance meet the
    same conflict in DuckDB's catalog. A statement that lost met another writer's creation of the one object, and
    finds it once that writer has committed, which may take a moment longer than an immediate retry waits."""
    for statement in statements:
        for pause in (*_CREATE_RETRIES, None):
            try:
                con.execute(statement)
                break
            except duckdb.TransactionException:
                if pause is None:
                    raise
                time.sleep(pause)  # another writer is creating it; once committed, it exists


def _replace_row(con: duckdb.DuckDBPyConnection, table: TableRef, changes: dict[str, Any]) -> None:
    """Write the table's row: the current one (or an empty one) with `changes`, replacing it whole."""
    names = ["strategy", "cursor_column", "primary_key", "high_water_mark", "rows", "synced_at", "columns"]
    names += ["extract", "deletes", "verify"]
    found = con.execute(f"SELECT {', '.join(names)} FROM {STATE_SCHEMA}.tables WHERE table_id = ?", [str(table)])
    current = found.fetchone()
    row = dict(zip(names, current or ("full", *[None] * (len(names) - 1)), strict=True)) | changes
    con.execute(f"DELETE FROM {STATE_SCHEMA}.tables WHERE table_id = ?", [str(table)])
    con.execute(
        f"INSERT INTO {STATE_SCHEMA}.tables (table_id, {', '.join(names)}) VALUES (?, {', '.join('?' * len(names))})",
        [str(table), *(row[n] for n in names)],
    )


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
    prevented = read_fact(con, UNLOAD_PREVENTED)
    # Every column by name: a file from before `extract` has no such column until its next write (read-only here).
    found = con.execute(f"SELECT * FROM {STATE_SCHEMA}.tables WHERE table_id = ?", [str(table)])
    names = [d[0] for d in found.description or []]
    values = found.fetchone()
    if values is None:
        return SyncState(unload_prevented=prevented)
    row = dict(zip(names, values, strict=True))
    key = tuple(json.loads(row["primary_key"])) if row["primary_key"] else ()
    options = TableOptions(
        row["strategy"], row["cursor_column"], key, row.get("extract"), row.get("deletes"), row.get("verify")
    )
    columns = json.loads(row["columns"]) if row["columns"] else None
    return SyncState(options, row["high_water_mark"], row["rows"], columns, prevented)


def _option_changes(before: TableOptions, options: TableOptions) -> dict[str, Any]:
    """A table's new options as state columns; a changed cursor column forgets the old high-water mark."""
    changes: dict[str, Any] = {
        "strategy": options.strategy,
        "cursor_column": options.cursor_column,
        "primary_key": json.dumps(list(options.primary_key)),
        "extract": options.extract,
        "deletes": options.deletes,
        "verify": options.verify,
    }
    if before.cursor_column != options.cursor_column:
        changes["high_water_mark"] = None
    return changes


def write_all_options(
    con: duckdb.DuckDBPyConnection,
    tables: list[tuple[TableRef, TableOptions | None]],
    extract: Extract | None = None,
    verify: Verify | None = None,
) -> dict[TableRef, tuple[TableOptions, TableOptions]]:
    """Set several tables' options in one transaction (all or none); returns each table's options before and
    after. `None` keeps a table's options; `extract` and `verify`, when given, are set over them."""
    create_each(con)
    changed: dict[TableRef, tuple[TableOptions, TableOptions]] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table, options in tables:
            before = read_sync_state(con, table).options
            after = options if options is not None else before
            after = dataclasses.replace(after, extract=extract) if extract is not None else after
            after = dataclasses.replace(after, verify=verify) if verify is not None else after
            _replace_row(con, table, _option_changes(before, after))
            changed[table] = (before, after)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a COMMIT that failed has ended the transaction already
            con.execute("ROLLBACK")
        raise
    return changed


def write_sync_state(
    con: duckdb.DuckDBPyConnection, table: TableRef, mark: str | None, rows: int, columns: dict[str, str]
) -> None:
    """Record the new high-water mark, row count and table shape (inside the load's transaction, after
    `create_each` made the state's tables). An UPDATE, or an INSERT for a table never synced: two statements,
    where reading the row and writing it whole took four in every load."""
    progress = [mark, rows, json.dumps(columns)]
    updated = con.execute(
        f"UPDATE {STATE_SCHEMA}.tables SET high_water_mark = ?, rows = ?, columns = ?, synced_at = now() "
        "WHERE table_id = ?",
        [*progress, str(table)],
    ).fetchone()
    if not (updated and updated[0]):
        con.execute(
            f"INSERT INTO {STATE_SCHEMA}.tables (table_id, strategy, high_water_mark, rows, columns, synced_at) "
            "VALUES (?, ?, ?, ?, ?, now())",
            [str(table), TableOptions().strategy, *progress],
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
    if options.deletes in ("remove", "mark") and not key:
        raise PermanentError(
            f"{table}: deletes: {options.deletes} needs the table's key, and it has none: give it with "
            "--primary-key COLUMN (Snowflake's PRIMARY KEY is used when declared), or set --deletes keep"
        )
    return TableOptions("incremental", cursor.name, tuple(key), options.extract, options.deletes, options.verify)
