"""The names one mirror takes in a code location, so two mirrors can load side by side.

A mirror is an asset (partitions: its registered tables), its checks, jobs, schedules, sensors and two
resources. The first mirror keeps the names it always had (`snowflake_table`, `snowflake_tables`,
`sync_tables`, resources `snowflake` and `duckdb`), which the CLI, the README and old run history use.
Another mirror (a second `SnowflakeMirrorComponent`) prefixes every name with its own, so its asset is
`another_mirror/snowflake_table`, its job `another_mirror_sync_tables`, and its resources
`another_mirror_snowflake` and `another_mirror_duckdb`: Dagster refuses two definitions of one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from sync_project.resources import SnowflakeResource, SyncDuckDBResource

ASSET_NAME = "snowflake_table"
PARTITIONS_NAME = "snowflake_tables"
GROUP = "snowflake_mirror"
_PREFIX = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class MirrorScope:
    """One mirror's names: its asset key, its registry (dynamic partitions), its jobs and its resource keys."""

    prefix: str = ""  # "" for the first mirror; a lower-case name for any other
    partitions_def: dg.DynamicPartitionsDefinition = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.prefix and not _PREFIX.fullmatch(self.prefix):
            raise ValueError(
                f"{self.prefix!r} cannot name a mirror: use lower-case letters, digits and _, starting with a letter"
            )
        object.__setattr__(self, "partitions_def", dg.DynamicPartitionsDefinition(name=self.name(PARTITIONS_NAME)))

    def name(self, base: str) -> str:
        """A job's, sensor's, schedule's, resource's or registry's name in this mirror."""
        return f"{self.prefix}_{base}" if self.prefix else base

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.prefix, ASSET_NAME]) if self.prefix else dg.AssetKey(ASSET_NAME)

    @property
    def partitions_name(self) -> str:
        return self.name(PARTITIONS_NAME)

    @property
    def group(self) -> str:
        return self.name(GROUP)

    @property
    def snowflake_key(self) -> str:
        return self.name("snowflake")

    @property
    def duckdb_key(self) -> str:
        return self.name("duckdb")

    @property
    def resource_keys(self) -> set[str]:
        return {self.snowflake_key, self.duckdb_key}

    def snowflake(self, context: Any) -> SnowflakeResource:
        """This mirror's Snowflake resource, from an op's, asset's or sensor's context."""
        resource: SnowflakeResource = getattr(context.resources, self.snowflake_key)
        return resource

    def duckdb(self, context: Any) -> SyncDuckDBResource:
        """This mirror's DuckDB resource, from an op's, asset's or sensor's context."""
        resource: SyncDuckDBResource = getattr(context.resources, self.duckdb_key)
        return resource


FIRST_MIRROR = MirrorScope()
