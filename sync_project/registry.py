"""The table registry's chores, shared by the `sync-project` CLI and the jobs in the UI.

Discover a schema's tables, register (after DESC TABLE proves each one),
deregister, and report status. The registry is the dynamic partitions of
`snowflake_tables`; history is Dagster's run and event storage.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from sync_project.metadata import human_bytes
from sync_project.partitions import add_tables
from sync_project.resources import SyncDuckDBResource
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.sync.catalog import TableStats, describe_table, list_tables
from sync_project.sync.errors import PermanentError, SyncError, TableNotFoundError
from sync_project.sync.mirror import Mirror
from sync_project.sync.mirror.access import Log
from sync_project.sync.options import Connect
from sync_project.sync.state import (
    Extract,
    TableOptions,
    Verify,
    validate_options,
    write_all_options,
)
from sync_project.sync.tables import TableRef
from sync_project.sync_record import last_sync

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Listing:
    table: TableStats
    key: str
    registered: bool
    last_synced: dt.datetime | None

    def cells(self) -> list[str]:
        """Text cells as people read them (the CLI's table, the discover job's metadata): key, kind, rows,
        size, last altered, registered, last synced; thousands separated, sizes in KiB/MiB, times to the second."""
        return [
            self.key,
            self.table.kind,
            f"{self.table.rows:,}" if self.table.rows is not None else "-",
            human_bytes(self.table.bytes),
            self.table.last_altered.strftime(TIME_FORMAT) if self.table.last_altered else "-",
            "yes" if self.registered else "no",
            self.last_synced.strftime(TIME_FORMAT) if self.last_synced else "-",
        ]


def discover(
    instance: dg.DagsterInstance,
    connect: Connect,
    database: str,
    schema: str,
    like: str | None = None,
    scope: MirrorScope = FIRST_MIRROR,
) -> list[Listing]:
    """A schema's tables with Snowflake's figures, and whether each is registered and when it last synced."""
    with connect() as conn:
        found = list_tables(conn, database, schema, like)
    registered = set(instance.get_dynamic_partitions(scope.partitions_name))
    listings = []
    for stats in found:
        table = TableRef(database, stats.schema, stats.name)
        synced = last_sync(instance, table.key, scope.asset_key) if table.key in registered else None
        listings.append(Listing(stats, table.key, table.key in registered, synced.at if synced else None))
    return listings


def matching_tables(connect: Connect, database: str, schema: str, like: str) -> list[TableRef]:
    with connect() as conn:
        return [TableRef(database, schema, t.name) for t in list_tables(conn, database, schema, like)]


@dataclass(frozen=True)
class Registration:
    new: list[str]  # keys registered now
    existing: list[str]  # keys that were registered already
    changed: dict[str, str]  # key -> how its options changed (new or existing)


def register(
    instance: dg.DagsterInstance,
    connect: Connect,
    tables: Iterable[TableRef],
    options: TableOptions | None = None,
    mirror: Mirror | None = None,
    log: Log = lambda _: None,
    scope: MirrorScope = FIRST_MIRROR,
    extract: Extract | None = None,
    verify: Verify | None = None,
) -> Registration:
    """Verify every table with DESC TABLE (exists, is a table, every type maps), then add them all.

    With `options` (strategy, cursor, key), each table's options are checked against its columns and kept
    in the DuckDB file; registering again with other options changes them, and says so. `extract` and `verify`,
    when given, set the tables' way out of Snowflake and what proves their syncs, and keep the rest. All or nothing:
    every refusal is named in one PermanentError, and then none is added.
    """
    tables = list(dict.fromkeys(tables))
    checked: list[tuple[TableRef, TableOptions | None]] = []
    refusals: list[str] = []
    with connect() as conn:
        for table in tables:
            try:
                columns = describe_table(conn, table)
                if options is not None:
                    checked.append((table, validate_options(table, columns, options)))
                elif extract is not None or verify is not None:
                    checked.append((table, None))
            except TableNotFoundError as e:
                refusals.append(str(e) + _did_you_mean(conn, table))
            except PermanentError as e:
                refusals.append(str(e))
    if refusals:
        raise PermanentError(
            f"nothing registered: {len(refusals)} of {len(tables)} table(s) refused: " + " | ".join(refusals)
        )
    changed: dict[str, str] = {}
    if checked:
        if mirror is None:
            raise ValueError("options need the mirror they are kept in")
        with mirror.session("saving sync options", log=log) as con:
            written = write_all_options(con, checked, extract, verify)
        changed = {table.key: f"{before} -> {after}" for table, (before, after) in written.items() if before != after}
    new = add_tables(instance, tables, scope.partitions_name)
    return Registration(new, [t.key for t in tables if t.key not in new], changed)


def _did_you_mean(conn: Any, table: TableRef) -> str:
    """The schema's table whose name differs only in case (a quoted name typed unquoted, or the reverse)."""
    try:
        names = [t.name for t in list_tables(conn, table.database, table.schema)]
    except SyncError:
        return ""
    same = [n for n in names if n.lower() == table.name.lower() and n != table.name]
    return f" Did you mean {TableRef(table.database, table.schema, same[0]).key}?" if same else ""


def deregister(instance: dg.DagsterInstance, table: TableRef, duckdb: SyncDuckDBResource, drop: bool) -> str:
    """Remove the partition; with `drop`, the DuckDB table too. Says what happened to the DuckDB table."""
    registered = table.key in instance.get_dynamic_partitions(FIRST_MIRROR.partitions_name)
    if registered:
        instance.delete_dynamic_partition(FIRST_MIRROR.partitions_name, table.key)
    prefix = f"deregistered {table.key}" if registered else f"{table.key} was not registered"
    state = duckdb.mirror.table(table, f"reading {table}")
    if not state.exists:
        return f"{prefix}; no DuckDB table {table.duckdb_relation} exists"
    if not drop:
        return f"{prefix}; the DuckDB table {table.duckdb_relation} ({state.rows:,} rows) is kept (--drop removes it)"
    duckdb.mirror.drop_table(table, f"dropping {table}")
    return f"{prefix}; dropped the DuckDB table {table.duckdb_relation} ({state.rows:,} rows)"
