"""Deletes reach incremental tables: rows gone from Snowflake leave the mirror (or are marked) with the merge.

An incremental sync reads only rows whose cursor moved, so a deleted row never arrives. With a key, the sync also
reads the key columns of the whole table, through the same way out of Snowflake as the rows (a stage or the
result set), and in the load's own transaction removes (or marks) every row whose key Snowflake no longer has:
readers see the merge and the deletes together or neither.

Most syncs find nothing deleted, and reading every key costs more than the sync of a few changed rows. So the
sync first reads only aggregates of the keys (`KeyCheck`: the row count, and each key column's exact sum where
it has one) over the rows its incremental read did not take. In the load, those plus
the same aggregates of the batch must equal the merged table's: the merged table is exactly the rows left and
the batch unless a row it holds is gone (or a row was changed since the read: then too, it checks). When they
differ, the load rolls back (`KeysDiffer`: nothing was committed), every key is read, and the load runs again
with them. A row whose cursor did not move is the one thing an incremental read misses; if one arrived late, the
aggregates differ and every key is read, the content check's business beyond that.

The keys are read after the rows. Snowflake reads each statement at its own moment, so a row inserted between
the two statements is in the keys but not in the batch (it arrives next time), and a row deleted between them is
in the batch but not in the keys (removed now, as it should be). Read the other way round, a row inserted between
them would be loaded and then removed as deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from sync_project.sync.attempt import Attempt
from sync_project.sync.batch import files_source
from sync_project.sync.catalog import Column
from sync_project.sync.content import (
    ROW_COUNT,
    ColumnDifference,
    Probe,
    column_probes,
    differences,
    relation_aggregates,
    snowflake_content as snowflake_aggregates,
)
from sync_project.sync.errors import RowCountMismatchError
from sync_project.sync.results import extract_to_files
from sync_project.sync.stage import clear_location, download_files, staged_names, unload_query, unload_to_stage
from sync_project.sync.state import DELETED_AT, Deletes
from sync_project.sync.tables import TableRef, quote_identifier


@dataclass(frozen=True)
class KeySet:
    """The keys Snowflake holds, as Parquet files, and how many it said there were."""

    files: tuple[Path, ...]
    rows: int
    columns: tuple[Column, ...]


# The row count is the proof; a key's exact sum, where it has one (numbers up to 18 digits, timestamps), keeps a
# row that arrived late from hiding a deleted one. Bounds and counts per column would cost a scan of the key in
# DuckDB for nothing more (0.15 s at 10,000,000 rows).
_EXACT_SUMS = ("sum", "sum of epoch microseconds")


@dataclass(frozen=True)
class KeyCheck:
    """Aggregates of the keys the incremental read did not take, in Snowflake, read after the rows."""

    probes: tuple[Probe, ...]
    untaken: tuple[Any, ...]


class KeysDiffer(Exception):
    """The merged mirror's keys differ from Snowflake's: raised in the load's transaction, which rolls back, so
    the sync reads every key and loads again. Never leaves the engine."""

    def __init__(self, table: TableRef, found: list[ColumnDifference]) -> None:
        self.differences = found
        super().__init__(f"{table}: keys differ after the merge ({'; '.join(str(d) for d in found[:2])})")


def check_keys(conn: Any, table: TableRef, columns: list[Column], key: tuple[str, ...], read: str | None) -> KeyCheck:
    """One aggregate query over the key columns of the rows `read` (the incremental read's WHERE) did not take."""
    by_name = {c.name: c for c in columns}
    taken = read or "TRUE"
    rows = Probe(ROW_COUNT.column, ROW_COUNT.aggregate, f"COUNT(*) - COUNT_IF({taken})", ROW_COUNT.mirror)
    sums = [p for p in column_probes([by_name[k] for k in key], untaken=taken) if p.aggregate in _EXACT_SUMS]
    probes = [rows, *sums]
    return KeyCheck(tuple(probes), tuple(snowflake_aggregates(conn, table, [], probes)))


def deletes_certain(check: KeyCheck, rows_before: int | None, rows_read: int) -> bool:
    """Whether rows are gone for certain, before any load: the mirror held `rows_before` live rows; Snowflake
    still has `untaken` of the rows the read left, and the read took `rows_read`. A row of the mirror that is in
    neither was deleted (or changed since the read: reading every key is then harmless). Then every key is read
    at once, not after a load that would only find the difference and roll back."""
    untaken = int(check.untaken[0] or 0)
    return rows_before is not None and rows_before > untaken + rows_read


def batch_keys(con: duckdb.DuckDBPyConnection, check: KeyCheck) -> list[Any]:
    """The same aggregates over the load's batch, before the merge."""
    return relation_aggregates(con, "__batch", list(check.probes), marked=False)


def _combined(untaken: Any, batch: Any) -> Any:
    """The untaken rows' aggregate and the batch's together: the key check's are counts and exact sums, which add
    (None: a sum over no row)."""
    if untaken is None or batch is None:
        return batch if untaken is None else untaken
    return untaken + batch


def ensure_no_key_gone(
    con: duckdb.DuckDBPyConnection, table: TableRef, check: KeyCheck, batch: list[Any], marked: bool
) -> None:
    """Inside the load's transaction, after the merge: the live rows' key aggregates are the untaken rows' and the
    batch's together, or `KeysDiffer`."""
    probes = list(check.probes)
    expected = [_combined(u, b) for u, b in zip(check.untaken, batch, strict=True)]
    found = differences(probes, expected, relation_aggregates(con, table.duckdb_sql, probes, marked))
    if found:
        raise KeysDiffer(table, found)


def keys_attempt(attempt: Attempt) -> Attempt:
    """Where the keys go: a folder inside the attempt's download folder (removed with it), and a stage folder
    beside the attempt's (the cleanup job knows its name), never inside it, where GET of the rows would take it."""
    return dataclasses.replace(attempt, name=f"{attempt.name}_KEYS", local_dir=attempt.local_dir / "keys")


def extract_keys(
    conn: Any,
    attempt: Attempt,
    columns: list[Column],
    key: tuple[str, ...],
    path: str,
    max_file_size: int,
    parallel: int,
) -> KeySet:
    """Every key of the table, the whole table's (no cursor), by `path`: "unload" or "results"."""
    by_name = {c.name: c for c in columns}
    key_columns = [by_name[k] for k in key]
    keys = keys_attempt(attempt)
    # Never resumed: a retry's keys are read afresh, so no file of an earlier try (same names, an older snapshot)
    # can stand in for them.
    shutil.rmtree(keys.local_dir, ignore_errors=True)
    if path == "results":
        unloaded, download = extract_to_files(conn, keys, key_columns, None, parallel)
        return KeySet(tuple(download.files), unloaded.rows_unloaded, tuple(key_columns))
    try:
        clear_location(conn, keys)
        unloaded = unload_to_stage(conn, keys, key_columns, max_file_size)
        files: list[Path] = []
        if unloaded.rows_unloaded:
            query = unload_query(keys.table, key_columns)
            files = download_files(conn, keys, unloaded, query, staged_names(conn, keys), parallel).files
        return KeySet(tuple(files), unloaded.rows_unloaded, tuple(key_columns))
    finally:
        with contextlib.suppress(Exception):  # best effort; the cleanup job removes leftovers
            clear_location(conn, keys)


def add_mark_column(con: duckdb.DuckDBPyConnection, table: TableRef, columns: dict[str, str]) -> None:
    """`deletes: mark`'s column, added before the merge: DuckDB refuses to commit a transaction that altered a
    table after changing its rows."""
    if DELETED_AT not in columns:
        con.execute(
            f"ALTER TABLE {table.duckdb_sql} ADD COLUMN {quote_identifier(DELETED_AT)} TIMESTAMP WITH TIME ZONE"
        )


def apply_deletes(con: duckdb.DuckDBPyConnection, table: TableRef, keys: KeySet, mode: Deletes) -> int:
    """Inside the load's transaction, after the merge: remove (or mark) the rows whose key Snowflake no longer
    holds. Returns how many rows were removed or newly marked. The keys' count is checked like the rows'."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE __keys AS {files_source(keys.columns, keys.files)}")
    counted = con.execute("SELECT count(*) FROM __keys").fetchone()
    if (int(counted[0]) if counted else -1) != keys.rows:
        raise RowCountMismatchError(
            f"loading {table}: DuckDB read {counted[0] if counted else 0:,} keys but Snowflake returned {keys.rows:,}; "
            "the previous table is kept, and a fresh attempt reads everything again"
        )
    gone = (
        "NOT EXISTS (SELECT 1 FROM __keys AS k WHERE "
        + " AND ".join(f"k.{quote_identifier(c.name)} = t.{quote_identifier(c.name)}" for c in keys.columns)
        + ")"
    )
    if mode == "mark":
        marked = quote_identifier(DELETED_AT)
        changed = con.execute(
            f"UPDATE {table.duckdb_sql} AS t SET {marked} = now() WHERE {marked} IS NULL AND {gone}"
        ).fetchone()
    else:
        changed = con.execute(f"DELETE FROM {table.duckdb_sql} AS t WHERE {gone}").fetchone()
    con.execute("DROP TABLE __keys")
    return int(changed[0]) if changed else 0
