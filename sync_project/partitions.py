"""The registry of synced tables: one dynamic partition per Snowflake table.

Partition key `SCHEMA.TABLE`, each part exactly as Snowflake stores it (see
`sync.tables`); the database comes from settings (SNOWFLAKE_DATABASE).
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from sync_project.scope import FIRST_MIRROR
from sync_project.sync.tables import TableRef

SNOWFLAKE_TABLES = FIRST_MIRROR.partitions_name  # the first mirror's registry, which the CLI manages
snowflake_tables_partitions = FIRST_MIRROR.partitions_def
TABLES_TAG = "tables"


def _table_name(key: str) -> str:
    """The key's table part (the database is not shown); a malformed key as it is, for the run to refuse."""
    try:
        return TableRef.from_key(key, "ANY").name
    except ValueError:  # InvalidTableNameError; the sync names it properly
        return key[:60]


def tables_tag(batch: list[str]) -> dict[str, str]:
    """A short tag naming a run's table(s) by table name, which the runs list shows in full (it cuts the long
    partition keys in the middle, so every run of one schema read alike)."""
    names = [_table_name(key) for key in batch]
    return {TABLES_TAG: names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)})"}


def closest_key(key: str, keys: list[str]) -> str | None:
    """The registered key a mistyped one most likely meant: same letters in another case first."""
    import difflib

    by_case = {k.lower(): k for k in keys}
    if key.lower() in by_case:
        return by_case[key.lower()]
    found = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return found[0] if found else None


def not_registered_message(key: str, keys: list[str]) -> str:
    close = closest_key(key, keys)
    hint = (
        f"did you mean {close}? (quoted names keep their case)"
        if close
        else f"`sync-project tables SCHEMA` lists a schema's tables; `sync-project register {key}` adds one"
    )
    return f"{key} is not registered; {hint}"


def table_for_partition(partition_key: str, database: str) -> TableRef:
    """The table a partition key names in `database` (the Snowflake resource's, at run time);
    InvalidTableNameError (permanent) for a hostile or malformed key."""
    return TableRef.from_key(partition_key, database)


def registered_tables(instance: dg.DagsterInstance, database: str, registry: str = SNOWFLAKE_TABLES) -> list[TableRef]:
    return [table_for_partition(k, database) for k in instance.get_dynamic_partitions(registry)]


def add_tables(instance: dg.DagsterInstance, tables: Iterable[TableRef], registry: str = SNOWFLAKE_TABLES) -> list[str]:
    """Register tables (idempotent) in a mirror's registry; returns the keys that were new."""
    existing = set(instance.get_dynamic_partitions(registry))
    new = [t.key for t in tables if t.key not in existing]
    if new:
        instance.add_dynamic_partitions(registry, new)
    return new
