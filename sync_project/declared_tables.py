"""Tables registered as code: the `tables` of a mirror's `defs.yaml`, beside the runtime registry.

A sensor of the mirror registers them as `sync-project register` would (DESC TABLE proves each; its options are
checked against its columns and kept in the mirror): every declared table missing from the registry, and all of
them again whenever the declaration changes, so an edited strategy or key reaches the mirror. Tables registered at
run time (the CLI, the register job, auto-registration) are never removed by it: the declaration adds, it does
not own the registry.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import dagster as dg
from pydantic import BaseModel, Field

from sync_project import registry
from sync_project.scope import MirrorScope
from sync_project.sync.errors import PermanentError
from sync_project.sync.state import TableOptions
from sync_project.sync.tables import TableRef

DECLARED_TABLES_SENSOR = "register_declared_tables"


class DeclaredTable(BaseModel):
    """One table of `tables:` in defs.yaml."""

    key: str = Field(description="SCHEMA.TABLE as Snowflake stores the names (quote a part with a dot)")
    strategy: Literal["full", "incremental"] = "full"
    cursor_column: str | None = Field(default=None, description="incremental: the column whose growth marks new rows")
    primary_key: list[str] = Field(default_factory=list, description="incremental: default the declared key")
    extract: Literal["auto", "unload", "results"] | None = Field(
        default=None, description="this table's way out of Snowflake; unset: the component's `extract`"
    )
    deletes: Literal["remove", "keep", "mark"] | None = Field(
        default=None,
        description="incremental with a key: rows deleted in Snowflake are removed (unset: remove), kept, or marked "
        "with _sync_deleted_at",
    )
    verify: Literal["counts", "content"] | None = Field(
        default=None, description="what proves each sync: row counts (unset), or also the content check"
    )

    @property
    def options(self) -> TableOptions:
        return TableOptions(
            self.strategy, self.cursor_column, tuple(self.primary_key), self.extract, self.deletes, self.verify
        )


def declaration_stamp(tables: Sequence[DeclaredTable]) -> str:
    """Changes whenever the declaration does (a table, a strategy, a key)."""
    text = json.dumps([t.model_dump() for t in tables], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_declared_tables_sensor(scope: MirrorScope, tables: Sequence[DeclaredTable]) -> dg.SensorDefinition:
    declared = list(tables)
    stamp = declaration_stamp(declared)

    @dg.sensor(
        name=scope.name(DECLARED_TABLES_SENSOR),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys=scope.resource_keys,
        description=f"Registers the {len(declared)} table(s) the mirror's defs.yaml declares.",
    )
    def register_declared_tables(
        context: dg.SensorEvaluationContext, **_invoked_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Register the tables of defs.yaml that are not registered yet, and all of them once the declaration
        changes; a table Snowflake refuses is named, and asked again next tick."""
        snowflake, duckdb = scope.snowflake(context), scope.duckdb(context)
        registered = set(context.instance.get_dynamic_partitions(scope.partitions_name))
        wanted = declared if context.cursor != stamp else [t for t in declared if t.key not in registered]
        if not wanted:
            return dg.SkipReason(f"the {len(declared)} declared table(s) are registered")
        by_options: dict[TableOptions, list[TableRef]] = defaultdict(list)
        for table in wanted:
            by_options[table.options].append(TableRef.from_key(table.key, snowflake.sync_database))
        try:
            for options, refs in by_options.items():
                done = registry.register(
                    context.instance, snowflake.get_connection, refs, options, duckdb.mirror, context.log.info, scope
                )
                context.log.info(f"registered {done.new or 'nothing new'}; options changed: {done.changed or 'none'}")
        except PermanentError as e:
            return dg.SkipReason(f"not registered, asked again next tick: {e}")
        return dg.SensorResult(cursor=stamp)

    return register_declared_tables
