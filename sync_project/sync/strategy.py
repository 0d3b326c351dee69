"""Which strategy a sync uses, and the unload's WHERE on an incremental one."""

from __future__ import annotations

from sync_project.sync.catalog import Column
from sync_project.sync.state import Strategy, SyncState
from sync_project.sync.tables import quote_identifier, sql_string


def choose_strategy(
    requested: Strategy | None, state: SyncState, target: dict[str, str], rebuild: bool
) -> tuple[Strategy, str]:
    """Which strategy this run uses, and why (said in logs and metadata)."""
    wanted = requested or state.options.strategy
    if rebuild:
        return "full", "rebuild requested: full sync, state reset"
    if wanted == "full":
        return "full", "full sync requested" if requested == "full" else "table is configured for full syncs"
    if state.columns is None and state.high_water_mark is None:
        return "full", "first incremental sync of this table is a full one"
    if not target:
        return "full", "target table is missing in DuckDB: rebuilding it with a full sync"
    if state.columns is not None and state.columns != target:
        return "full", "target table's columns differ from what the last sync left: rebuilding with a full sync"
    if state.high_water_mark is None:
        return "full", "first incremental sync of this table is a full one"
    return "incremental", f"rows with {state.options.cursor_column} >= {state.high_water_mark}"


# Explicit formats for the high-water mark, so the account's TIMESTAMP_INPUT_FORMAT / DATE_INPUT_FORMAT never
# decide how it is read back (DESIGN.md, "Snowflake facts").
_LITERAL_FORMATS = {
    "TIMESTAMP": ("TO_TIMESTAMP_NTZ", "YYYY-MM-DD HH24:MI:SS.FF6"),
    "TIMESTAMPTZ": ("TO_TIMESTAMP_TZ", "YYYY-MM-DD HH24:MI:SS.FF6TZH:TZM"),
    "DATE": ("TO_DATE", "YYYY-MM-DD"),
}


def cursor_predicate(column: Column, mark: str) -> str:
    # A typed literal, never the clock: the mark is the largest value the last sync loaded.
    literal = sql_string(mark)
    converted = _LITERAL_FORMATS.get(column.duckdb_type)
    if converted:
        function, fmt = converted
        value = f"{function}({literal}, '{fmt}')"
        if column.snowflake_type.upper().startswith("TIMESTAMP_LTZ"):
            value = f"{value}::TIMESTAMP_LTZ"
    else:
        value = f"CAST({literal} AS {column.snowflake_type})"
    return f"{quote_identifier(column.name)} >= {value}"
