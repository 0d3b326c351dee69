"""`SnowflakeMirrorComponent`: a mirror of Snowflake tables in DuckDB, declared in a `defs.yaml`.

    type: sync_project.SnowflakeMirrorComponent
    attributes:
      database: "{{ env('SNOWFLAKE_DATABASE', 'KEBOOLA_33') }}"
      duckdb_path: .local/sync.duckdb
      owners: ["team:data-platform"]

Every attribute left out keeps the project's setting (its environment variable, see
`sync_project/README.md`), so one `defs.yaml` serves the demo, CI and an account. Paths are relative to
the project's root. `dg scaffold defs sync_project.SnowflakeMirrorComponent another_mirror` writes a second
mirror with its own name, DuckDB file and Snowflake database; its definitions are prefixed with that name
(see `scope.py`), so it loads beside the first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from dagster.components.scaffold.scaffold import NoParams
from pydantic import Field

from sync_project.assets import SYNC_BATCH_SIZE, SYNC_WORKERS
from sync_project.declared_tables import DeclaredTable
from sync_project.mirror_definitions import MirrorShape, mirror_definitions
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.settings import Settings


class SnowflakeMirrorScaffolder(dg.Scaffolder[NoParams]):
    """Writes a `defs.yaml` for a new mirror named after its folder: its own DuckDB file beside the first
    mirror's, the Snowflake database from SNOWFLAKE_DATABASE until you name another."""

    def scaffold(self, request: dg.ScaffoldRequest[NoParams]) -> None:
        name = request.target_path.name
        dg.scaffold_component(
            request,
            {
                "name": name,
                "database": "{{ env('SNOWFLAKE_DATABASE', 'KEBOOLA_33') }}",
                "duckdb_path": f".local/{name}/sync.duckdb",
                "download_dir": f".local/{name}/downloads",
            },
        )


@dg.scaffold_with(SnowflakeMirrorScaffolder)
class SnowflakeMirrorComponent(dg.Component, dg.Model, dg.Resolvable):
    """Mirror Snowflake tables into DuckDB (or a DuckLake): one partition per registered table, synced through
    a stage as Parquet, loaded atomically, checked against Snowflake's row count.

    Builds the `snowflake_table` asset and its two checks, the sync, verify, register, discover, doctor,
    publish and cleanup jobs, the nightly and cleanup schedules, the change, auto-registration and publish
    sensors, and the `snowflake` and `duckdb` resources they share.
    """

    name: str | None = Field(
        default=None,
        description="Leave unset for the first mirror (asset snowflake_table, job sync_tables). Another mirror "
        "needs a name, which prefixes its asset key and every job, sensor, schedule and resource",
    )
    database: str | None = Field(default=None, description="The Snowflake database partition keys name tables in")
    target: Literal["duckdb", "ducklake"] | None = Field(
        default=None, description="duckdb (one DuckDB file and its published copy) or ducklake"
    )
    duckdb_path: str | None = Field(default=None, description="The working DuckDB file (target duckdb)")
    published_path: str | None = Field(default=None, description="What readers open; default mirror.duckdb beside it")
    download_dir: str | None = Field(default=None, description="Where GET puts unloaded files")
    ducklake_catalog: str | None = Field(default=None, description="The lake's catalog: a SQLite file or postgres:...")
    ducklake_data_path: str | None = Field(
        default=None, description="The lake's Parquet files: a folder, or s3://bucket/prefix/"
    )
    ducklake_retention_days: float | None = Field(
        default=None, ge=0, description="Lake snapshots younger than this stay queryable (time travel)"
    )
    stage: str | None = Field(default=None, description="Where unloads go: ~ (the user's stage) or a stage's name")
    extract: Literal["auto", "unload", "results"] | None = Field(
        default=None,
        description="The way out of Snowflake: unload (COPY INTO a stage, GET), results (the query's result set), "
        "or auto (the result set for small tables and wherever unloads are prevented)",
    )
    results_max_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Under extract auto, tables up to this size (Snowflake's BYTES) read the result set",
    )
    max_file_size: int | None = Field(default=None, ge=1, description="The unload's MAX_FILE_SIZE, in bytes")
    feed_from_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Full unloads this big are loaded as their files arrive, the download folder bounded",
    )
    get_parallel: int | None = Field(default=None, ge=1, le=99, description="GET's PARALLEL: files at a time")
    lock_timeout_seconds: float | None = Field(
        default=None, ge=0, description="How long a load waits for the DuckDB file before it fails, retryable"
    )
    disk_reserve_bytes: int | None = Field(
        default=None, ge=0, description="Free space a sync must leave on each disk it writes"
    )
    published_storage_version: str | None = Field(
        default=None, description="The DuckDB storage version the published copy is written in (its oldest reader)"
    )
    schedule_cron: str | None = Field(default=None, description="When the nightly sync of every table runs")
    schedule_timezone: str | None = Field(default=None, description="The time zone of both schedules")
    cleanup_cron: str | None = Field(default=None, description="When the cleanup of what failed syncs left runs")
    verify_cron: str | None = Field(
        default=None, description="When the content check of every table runs (a scan of each in Snowflake)"
    )
    schedules_running: bool | None = Field(default=None, description="Whether the schedules tick before started")
    change_sensor_running: bool = Field(default=False, description="Sync tables whose Snowflake figures moved")
    change_sensor_seconds: int | None = Field(default=None, description="Seconds between the change sensor's ticks")
    auto_register_running: bool = Field(default=False, description="Register new tables of auto_register_schema")
    auto_register_schema: str | None = Field(default=None, description="The schema auto-registration watches")
    auto_register_like: str | None = Field(default=None, description="A LIKE pattern on its table names")
    auto_deregister: bool | None = Field(
        default=None, description="Deregister a table of that schema that Snowflake no longer has"
    )
    publish_sensor_running: bool = Field(default=True, description="Publish the working file after syncs")
    publish_minutes: float | None = Field(default=None, description="During a burst of syncs, publish this often")
    batch_size: int = Field(default=SYNC_BATCH_SIZE, ge=1, description="Tables per run of a backfill or schedule")
    workers: int = Field(default=SYNC_WORKERS, ge=1, description="Tables of one run whose Snowflake work overlaps")
    owners: list[str] = Field(default_factory=list, description="The asset's owners: team:NAME or an e-mail")
    group: str | None = Field(default=None, description="The asset's group; default snowflake_mirror")
    kinds: list[str] = Field(default_factory=list, description="Kinds beside snowflake and duckdb or ducklake")
    tables: list[DeclaredTable] = Field(
        default_factory=list,
        description="Tables registered as code (key, strategy, cursor_column, primary_key), beside those "
        "registered at run time; a sensor registers them",
    )

    @property
    def scope(self) -> MirrorScope:
        return MirrorScope(self.name) if self.name else FIRST_MIRROR

    def settings(self, root: Path) -> Settings:
        """The project's settings with this component's attributes over them (relative paths from `root`)."""

        def path(value: str) -> Path:
            return root / value

        given: dict[str, Any] = {
            "snowflake_database": self.database,
            "target": self.target,
            "duckdb_path": path(self.duckdb_path) if self.duckdb_path else None,
            "published_path": path(self.published_path) if self.published_path else None,
            "download_dir": path(self.download_dir) if self.download_dir else None,
            "ducklake_catalog": self.ducklake_catalog,
            "ducklake_data_path": self.ducklake_data_path,
            "ducklake_retention_days": self.ducklake_retention_days,
            "stage": self.stage,
            "extract": self.extract,
            "results_max_bytes": self.results_max_bytes,
            "max_file_size": self.max_file_size,
            "feed_from_bytes": self.feed_from_bytes,
            "get_parallel": self.get_parallel,
            "lock_timeout_seconds": self.lock_timeout_seconds,
            "disk_reserve_bytes": self.disk_reserve_bytes,
            "published_storage_version": self.published_storage_version,
            "schedule_cron": self.schedule_cron,
            "schedule_timezone": self.schedule_timezone,
            "cleanup_cron": self.cleanup_cron,
            "verify_cron": self.verify_cron,
            "schedules_running": self.schedules_running,
            "change_sensor_seconds": self.change_sensor_seconds,
            "auto_register_schema": self.auto_register_schema,
            "auto_register_like": self.auto_register_like,
            "auto_deregister": self.auto_deregister,
            "publish_minutes": self.publish_minutes,
        }
        return dataclasses.replace(Settings.from_env(), **{k: v for k, v in given.items() if v is not None})

    @property
    def shape(self) -> MirrorShape:
        return MirrorShape(
            batch_size=self.batch_size,
            workers=self.workers,
            owners=tuple(self.owners),
            group=self.group,
            kinds=tuple(self.kinds),
            change_sensor_running=self.change_sensor_running,
            auto_register_running=self.auto_register_running,
            publish_sensor_running=self.publish_sensor_running,
            tables=tuple(self.tables),
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return mirror_definitions(self.settings(context.project_root), self.scope, self.shape)
