"""dbt models over the mirror: a `DagsterDbtTranslator` that maps dbt sources to synced tables' partitions.

Needs the `dbt` extra (`pip install 'sync_project[dbt]'`: dagster-dbt and dbt-duckdb). A dbt project reads the
mirror by attaching its published copy (read-only) under one database name, `mirror` by default; every source
in that database is a synced table, so the translator gives it the mirror's asset key, and gives each model that
reads such sources a dependency on exactly their partitions (`SCHEMA.TABLE`, the source's schema and
identifier as Snowflake stores them) and the automation condition `when_table_syncs`: the model is rebuilt once
after one of its tables syncs, never for another table's sync.

Known limit: Dagster keeps one dependency per upstream asset, so a model that reads several synced tables has one
dependency on the mirror's asset, mapped to all of their partitions (it runs after any of them syncs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from sync_project.downstream import when_table_syncs
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.sync.tables import TableRef

MIRROR_DATABASE = "mirror"  # the name the dbt project attaches the published copy as


class SnowflakeMirrorTranslator(DagsterDbtTranslator):
    """dbt sources in the mirror's database are partitions of the mirror's asset; models over them run when
    (and only when) one of their tables syncs."""

    def __init__(self, scope: MirrorScope = FIRST_MIRROR, mirror_database: str = MIRROR_DATABASE) -> None:
        # Many sources (tables) share one asset key, the mirror's: dagster-dbt refuses that unless told.
        super().__init__(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))
        self.scope, self.mirror_database = scope, mirror_database
        self._manifest: Mapping[str, Any] = {}

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        self._manifest = manifest  # the partition mapping needs every source a model reads
        return super().get_asset_spec(manifest, unique_id, project)

    def is_synced_table(self, props: Mapping[str, Any]) -> bool:
        return props.get("resource_type") == "source" and props.get("database") == self.mirror_database

    def partition_key(self, source: Mapping[str, Any]) -> str:
        """The synced table's partition: `SCHEMA.TABLE` as `sync-project status` lists it."""
        return TableRef("ANY", source["schema"], source.get("identifier") or source["name"]).key

    def synced_tables_read_by(self, props: Mapping[str, Any]) -> list[str]:
        sources = self._manifest.get("sources", {})
        upstream = [sources[u] for u in props.get("depends_on", {}).get("nodes", []) if u in sources]
        return sorted({self.partition_key(s) for s in upstream if self.is_synced_table(s)})

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if self.is_synced_table(dbt_resource_props):
            return self.scope.asset_key
        return super().get_asset_key(dbt_resource_props)

    def get_partition_mapping(
        self, dbt_resource_props: Mapping[str, Any], dbt_parent_resource_props: Mapping[str, Any]
    ) -> dg.PartitionMapping | None:
        if self.is_synced_table(dbt_parent_resource_props):
            return dg.SpecificPartitionsPartitionMapping(self.synced_tables_read_by(dbt_resource_props))
        return super().get_partition_mapping(dbt_resource_props, dbt_parent_resource_props)

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition[Any] | None:
        if self.synced_tables_read_by(dbt_resource_props):
            return when_table_syncs()
        return super().get_automation_condition(dbt_resource_props)
