"""DuckDB side of a sync: one transaction, atomic replace, checked row count.

Connections are short: opened only after Snowflake's work is done, under the
project's lock (mirror/access.py), which a second sync waits on (bounded, and
saying who it waits for) rather than failing with "Could not set lock on file".
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from sync_project.sync.batch import files_source
from sync_project.sync.cancel import Cancellation
from sync_project.sync.catalog import Column
from sync_project.sync.content import mirror_content
from sync_project.sync.deletes import (
    KeyCheck,
    KeySet,
    add_mark_column,
    apply_deletes,
    batch_keys,
    ensure_no_key_gone,
)
from sync_project.sync.errors import PermanentError, RowCountMismatchError, TransientError
from sync_project.sync.mirror import Mirror, MirrorTable, live_rows
from sync_project.sync.mirror.access import Log, Waited, quiet
from sync_project.sync.state import DELETED_AT, STATE_DDL, Deletes, Strategy, create_each, write_facts, write_sync_state
from sync_project.sync.tables import TableRef, quote_identifier
from sync_project.sync.types import duckdb_type_name, widens

PREVIEW_ROWS = 10


@dataclass(frozen=True)
class LoadPlan:
    """What the load does with the unloaded rows."""

    strategy: Strategy = "full"  # full: replace the table; incremental: merge (with a key) or append
    cursor_column: str | None = None
    primary_key: tuple[str, ...] = ()
    previous_mark: str | None = None
    facts: tuple[tuple[str, str | None], ...] = ()  # noted (None: forgotten) in the same transaction
    keys: KeySet | None = None  # every key Snowflake holds, read after the rows: what is not there is deleted
    key_check: KeyCheck | None = None  # without keys: their aggregates, which the merged table must match
    deletes: Deletes = "keep"  # with keys: remove the deleted rows, or mark them
    content: bool = False  # read the content check's aggregates of the committed table (verify: content)


@dataclass(frozen=True)
class LoadResult:
    rows_loaded: int  # rows read from the files, always == rows_unloaded
    rows_total: int  # rows in the DuckDB table afterwards
    rows_updated: int  # existing rows replaced by newer versions (incremental)
    high_water_mark: str | None
    schema_changes: list[str]
    duckdb_bytes: int
    preview_columns: list[str]
    preview_rows: list[tuple[Any, ...]]
    waited_seconds: float = 0.0  # for the project's lock or another process's, before loading began
    snapshot_id: int | None = None  # on a lake: the snapshot this load committed (query it AT (VERSION => id))
    # The table as a read after COMMIT found it, in the load's own turn on the file: the checks' read (of what
    # was committed, not the transaction's own figures), which a session of its own would pay for again,
    # waiting behind the run's other loads.
    committed: MirrorTable | None = None
    rows_deleted: int = 0  # rows removed (or newly marked) because Snowflake no longer holds their key
    content: list[Any] | None = None  # the content check's aggregates of the committed table, if asked for


def _check_name_collision(con: duckdb.DuckDBPyConnection, table: TableRef) -> None:
    """DuckDB names are case-insensitive; Snowflake's quoted ones are not. Refuse to let two tables share one."""
    row = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?) "
        "AND NOT (schema_name = ? AND table_name = ?)",
        [table.duckdb_schema, table.duckdb_table, table.duckdb_schema, table.duckdb_table],
    ).fetchone()
    if row:
        raise PermanentError(
            f"table {table} would land on DuckDB relation {table.duckdb_relation}, but {row[0]}.{row[1]} "
            "already exists there and DuckDB names ignore case. Deregister one of the two tables."
        )


def _columns_of(con: duckdb.DuckDBPyConnection, table: TableRef) -> dict[str, str]:
    """The table's columns (name -> DuckDB type), empty if it does not exist. DESCRIBE looks the one table up
    where `table_columns` scans the catalog's every column (3 ms at 40 tables, growing with them, twice per load);
    it resolves names ignoring case, which is exact here because `_check_name_collision` passed."""
    try:
        described = con.execute(f"DESCRIBE {table.duckdb_sql}").fetchall()
    except duckdb.CatalogException:
        return {}
    return {str(row[0]): str(row[1]) for row in described}


def _check_files_present(table: TableRef, files: list[Path]) -> None:
    """A downloaded file gone before the load (a tmp cleaner, a full disk, a person): say which, and retry from a
    fresh attempt, rather than fail on DuckDB's bare "No files found"."""
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise TransientError(
            f"loading {table}: {len(missing)} downloaded file(s) vanished from {files[0].parent} before the load "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); the previous table is kept, and a "
            "fresh attempt downloads everything again"
        )


def _mark_expression(column: str, duckdb_type: str) -> str:
    """Text of the largest cursor value, in a form Snowflake parses back as a typed literal."""
    col = quote_identifier(column)
    name = duckdb_type_name(duckdb_type)
    if name == "TIMESTAMP WITH TIME ZONE":
        return f"strftime(max({col}), '%Y-%m-%d %H:%M:%S.%f+00:00')"
    if name.startswith("TIMESTAMP"):
        return f"strftime(max({col}), '%Y-%m-%d %H:%M:%S.%f')"
    return f"CAST(max({col}) AS VARCHAR)"


def _evolve_schema(con: duckdb.DuckDBPyConnection, table: TableRef, columns: list[Column]) -> list[str]:
    """Bring the target up to the source's columns: add new ones, widen widened ones, refuse the rest."""
    target = _columns_of(con, table)
    source = {c.name: c for c in columns}
    dropped = [name for name in target if name not in source and name != DELETED_AT]  # the mark is ours
    if dropped:
        raise PermanentError(
            f"{table}: column(s) {dropped} are gone from Snowflake; an incremental sync cannot drop them. "
            "Run a full sync (run config strategy: full), which rebuilds the schema from the source."
        )
    changes: list[str] = []
    for column in columns:
        current = target.get(column.name)
        if current is None:
            con.execute(
                f"ALTER TABLE {table.duckdb_sql} ADD COLUMN {quote_identifier(column.name)} {column.duckdb_type}"
            )
            changes.append(f"added {column.name} {column.duckdb_type}")
        elif duckdb_type_name(current) != duckdb_type_name(column.duckdb_type):
            if not widens(current, column.duckdb_type):
                raise PermanentError(
                    f"{table}: column {column.name!r} changed from {current} to {column.duckdb_type} "
                    f"(Snowflake {column.snowflake_type}), which would lose values. Run a full sync "
                    "(run config strategy: full), which rebuilds the schema from the source."
                )
            con.execute(
                f"ALTER TABLE {table.duckdb_sql} ALTER COLUMN {quote_identifier(column.name)} TYPE {column.duckdb_type}"
            )
            changes.append(f"widened {column.name} {current} -> {column.duckdb_type}")
    return changes


def _merge(con: duckdb.DuckDBPyConnection, table: TableRef, plan: LoadPlan, cursor_type: str | None) -> int:
    """Apply the batch to the live table inside the transaction; returns how many rows it replaced."""
    if plan.primary_key:
        match = " AND ".join(f"t.{quote_identifier(k)} = b.{quote_identifier(k)}" for k in plan.primary_key)
        replaced = con.execute(f"DELETE FROM {table.duckdb_sql} AS t USING __batch AS b WHERE {match}").fetchone()
    elif plan.previous_mark is not None and plan.cursor_column and cursor_type:
        # No key: the batch holds every source row at the old mark again (cursor >= mark), so replace that slice.
        replaced = con.execute(
            f"DELETE FROM {table.duckdb_sql} WHERE {quote_identifier(plan.cursor_column)} = CAST(? AS {cursor_type})",
            [plan.previous_mark],
        ).fetchone()
    else:
        replaced = (0,)
    con.execute(f"INSERT INTO {table.duckdb_sql} BY NAME SELECT * FROM __batch")
    return int(replaced[0]) if replaced else 0


def load_table(
    mirror: Mirror,
    table: TableRef,
    columns: list[Column],
    files: Iterable[list[Path]],
    rows_unloaded: int,
    plan: LoadPlan | None = None,
    log: Log | None = None,
    cancellation: Cancellation | None = None,
    count: int | None = None,
) -> LoadResult:
    """Load the unloaded rows in one transaction, checked against `rows_unloaded`, with the sync state.

    `files` comes in groups, read one after another into the same transaction: all of them at once, or as
    they arrive (`feed.py`; `count` says how many files there are in all).
    Full: build the new table and swap it in. Incremental: merge by key (or append, replacing the rows at
    the old high-water mark) after adding or widening columns. Data, high-water mark and row count commit
    together; any error rolls back and the previous table and state stay exactly as they were.
    """
    plan, say = plan or LoadPlan(), log or quiet
    waited = Waited()
    with mirror.session(f"loading {table}", log=say, waited=waited) as con:
        # Made before the load's transaction, so another writer's creation of them cannot fail it.
        create_each(con, (f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(table.duckdb_schema)}", *STATE_DDL))
        commit = f"sync_project: {table} {uuid.uuid4()}"  # finds this load's snapshot among concurrent ones
        with _transaction(con, table):
            # Said once the file is ours and the transaction open: what waited before this line waited for the
            # file, and nothing after it is visible to anyone until COMMIT.
            say(f"{table}: loading {count or 0} file(s), {rows_unloaded:,} rows, in one transaction")
            # Interruptible up to COMMIT, never during it: an interrupted sync must not have replaced the table.
            with cancellation.duckdb(con) if cancellation else contextlib.nullcontext():
                rows_loaded, rows_total, replaced, mark, changes, deleted = _load_in_transaction(
                    con, table, columns, files, rows_unloaded, plan
                )
            say(f"{table}: {rows_loaded:,} rows loaded, as many as Snowflake unloaded; committing")
            preview = con.execute(f"SELECT * FROM {table.duckdb_sql} LIMIT {PREVIEW_ROWS}")
            preview_columns, preview_rows = [d[0] for d in preview.description], preview.fetchall()
            mirror.label_commit(con, commit)
        snapshot_id = mirror.committed_snapshot(con, commit)
        stored_bytes = mirror.bytes_after_load(con, table)
        shape = _columns_of(con, table)
        committed = MirrorTable(True, live_rows(con, table, shape), shape)
        content = mirror_content(con, table, columns, DELETED_AT in shape) if plan.content else None
    return LoadResult(
        rows_loaded,
        rows_total,
        replaced,
        mark,
        changes,
        stored_bytes,
        preview_columns,
        preview_rows,
        round(waited.seconds, 3),
        snapshot_id,
        committed,
        deleted,
        content,
    )


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection, table: TableRef) -> Iterator[None]:
    """BEGIN ... COMMIT; any error rolls back, and a lake's commit conflict says what it is (transient)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException as error:
        with contextlib.suppress(duckdb.Error):  # a COMMIT that failed has already ended the transaction
            con.execute("ROLLBACK")
        if isinstance(error, duckdb.TransactionException) and "conflict" in str(error).lower():
            raise TransientError(
                f"loading {table}: another writer committed a conflicting change to the same table at the "
                f"same time ({str(error).splitlines()[-1]}); nothing of this load was kept, and a fresh "
                "attempt loads it again (transient)"
            ) from None
        raise


def _load_in_transaction(
    con: duckdb.DuckDBPyConnection,
    table: TableRef,
    columns: list[Column],
    files: Iterable[list[Path]],
    rows_unloaded: int,
    plan: LoadPlan,
) -> tuple[int, int, int, str | None, list[str], int]:
    """Build the batch, check its count, merge or swap it in, remove what Snowflake deleted, record the state:
    rows loaded, rows in the table, rows replaced, the new high-water mark, the schema changes, rows deleted."""
    _check_name_collision(con, table)
    cursor = next((c for c in columns if c.name == plan.cursor_column), None)
    incremental = plan.strategy == "incremental" and bool(_columns_of(con, table))
    batch = "__batch" if incremental else table.duckdb_sql
    groups = iter(files)
    first = next(groups, [])
    _check_files_present(table, first)
    con.execute(f"CREATE OR REPLACE {'TEMP ' if incremental else ''}TABLE {batch} AS {files_source(columns, first)}")
    for group in groups:
        _check_files_present(table, group)
        con.execute(f"INSERT INTO {batch} {files_source(columns, group)}")
    counted = con.execute(f"SELECT count(*) FROM {batch}").fetchone()
    rows_loaded = int(counted[0]) if counted else -1
    if rows_loaded != rows_unloaded:
        raise RowCountMismatchError(
            f"loading {table}: DuckDB read {rows_loaded:,} rows but Snowflake unloaded "
            f"{rows_unloaded:,}; the previous table is kept, and a fresh attempt reads everything again"
        )
    mark = plan.previous_mark if incremental else None
    if cursor is not None and rows_loaded:
        found = con.execute(f"SELECT {_mark_expression(cursor.name, cursor.duckdb_type)} FROM {batch}").fetchone()
        mark = str(found[0]) if found and found[0] is not None else mark
    changes: list[str] = []
    replaced = deleted = 0
    if incremental:
        changes = _evolve_schema(con, table, columns)
        if plan.keys is not None and plan.deletes == "mark":
            add_mark_column(con, table, _columns_of(con, table))
        check = plan.key_check if plan.keys is None else None
        keys_in_batch = batch_keys(con, check) if check else []
        replaced = _merge(con, table, plan, cursor.duckdb_type if cursor else None)
        con.execute("DROP TABLE __batch")
        if plan.keys is not None:
            deleted = apply_deletes(con, table, plan.keys, plan.deletes)
        elif check is not None:
            ensure_no_key_gone(con, table, check, keys_in_batch, DELETED_AT in _columns_of(con, table))
    shape = _columns_of(con, table)
    rows_total = live_rows(con, table, shape)
    write_sync_state(con, table, mark, rows_total, shape)
    write_facts(con, dict(plan.facts))
    return rows_loaded, rows_total, replaced, mark, changes, deleted
