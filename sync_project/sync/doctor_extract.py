"""The doctor's `extract` line: which way out of Snowflake each registered table would take now, and why."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from sync_project.sync.catalog import RunFigures, TableStats
from sync_project.sync.controls import unload_prevented
from sync_project.sync.errors import SyncError
from sync_project.sync.options import SyncOptions
from sync_project.sync.paths import choose_path
from sync_project.sync.state import Extract, Fact, read_sync_state
from sync_project.sync.tables import TableRef


def table_sizes(conn: Any, tables: list[TableRef]) -> dict[TableRef, TableStats | None] | None:
    """Each registered table's figures as Snowflake reports them; None if they could not be read."""
    figures = RunFigures(tables)  # one query per schema, as a run reads them
    try:
        return {table: figures.of(conn, table) for table in tables}
    except SyncError:
        return None


def _table_extracts(options: SyncOptions, tables: list[TableRef]) -> dict[TableRef, Extract]:
    """The tables whose own options set their way out of Snowflake (`register --extract`), from the mirror."""
    if options.mirror.is_empty():
        return {}
    try:
        with options.mirror.session("reading the tables' options", read_only=True, wait=5.0) as con:
            states = {table: read_sync_state(con, table).options.extract for table in tables}
    except (SyncError, duckdb.Error):
        return {}  # the mirror's own line says what is wrong with it
    return {table: extract for table, extract in states.items() if extract is not None}


def extract_paths(conn: Any, sizes: dict[TableRef, TableStats | None] | None, options: SyncOptions) -> str:
    """Which way out of Snowflake each registered table would take now, and why (paths.py)."""
    if sizes is None:
        raise SyncError("the tables' sizes could not be read from INFORMATION_SCHEMA")
    prevented = unload_prevented(conn)
    refused = Fact(f"an administrator runs: {prevented.fix}", dt.datetime.now(dt.UTC)) if prevented else None
    own = _table_extracts(options, list(sizes))
    taken = [
        (table.key, *choose_path(own.get(table, options.extract), stats, options.results_max_bytes, refused))
        for table, stats in sizes.items()
    ]
    if not taken:
        return f"extract {options.extract}; no table is registered yet"
    shown = "; ".join(f"{key}: {path} ({why})" for key, path, why in taken[:20])
    more = f"; and {len(taken) - 20} more" if len(taken) > 20 else ""
    counts = {p: sum(1 for _, path, _ in taken if path == p) for p in ("unload", "results")}
    return f"extract {options.extract}: {counts['unload']} by unload, {counts['results']} by result set. {shown}{more}"
