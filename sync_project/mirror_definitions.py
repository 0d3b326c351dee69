"""One mirror's Definitions, made by a factory: its asset and checks, jobs, schedules, sensors and resources.

The `SnowflakeMirrorComponent` (component.py) and the tests both build a mirror here, so there is one
recipe; the `MirrorScope` names keep a second mirror from colliding with the first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from sync_project import ignore_known_warnings
from sync_project.assets import SYNC_BATCH_SIZE, SYNC_WORKERS, build_sync_asset
from sync_project.automation import (
    build_auto_register_sensor,
    build_change_sensor,
    build_cleanup_schedule,
    build_sync_schedule,
    build_verify_schedule,
)
from sync_project.declared_tables import DeclaredTable, build_declared_tables_sensor
from sync_project.jobs import build_jobs
from sync_project.publishing import build_publish_sensor
from sync_project.resources import duckdb_resource, snowflake_resource
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.settings import Settings


@dataclass(frozen=True)
class MirrorShape:
    """How a mirror shows and runs in Dagster, beside where it reads and writes (its settings)."""

    batch_size: int = SYNC_BATCH_SIZE  # tables per run of a backfill, the nightly schedule, the change sensor
    workers: int = SYNC_WORKERS  # tables of one run whose Snowflake work overlaps
    owners: Sequence[str] = ()
    group: str | None = None  # default: the scope's (snowflake_mirror)
    kinds: Sequence[str] = ()  # beyond snowflake and the target's
    change_sensor_running: bool = False
    auto_register_running: bool = False
    publish_sensor_running: bool = True
    tables: Sequence[DeclaredTable] = ()  # registered as code, beside the runtime registry


def _status(running: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def mirror_definitions(
    settings: Settings, scope: MirrorScope = FIRST_MIRROR, shape: MirrorShape = MirrorShape()
) -> dg.Definitions:
    """A mirror: kinds `snowflake` and its target's (`duckdb` or `ducklake`) so the catalog's search by kind finds
    it, and code references that let the UI link the asset to the function that syncs a table."""
    with warnings.catch_warnings():
        ignore_known_warnings()
        return _definitions(settings, scope, shape)


def _definitions(settings: Settings, scope: MirrorScope, shape: MirrorShape) -> dg.Definitions:
    asset = build_sync_asset(
        scope,
        kinds=["snowflake", settings.target, *shape.kinds],
        owners=shape.owners,
        group=shape.group,
        batch_size=shape.batch_size,
        workers=shape.workers,
    )
    return dg.Definitions(
        assets=dg.with_source_code_references([asset]),
        jobs=build_jobs(scope, shape.batch_size).all(),
        schedules=[
            build_sync_schedule(settings, scope, shape.batch_size),
            build_cleanup_schedule(settings, scope),
            build_verify_schedule(settings, scope, shape.batch_size),
        ],
        sensors=[
            *([build_declared_tables_sensor(scope, shape.tables)] if shape.tables else []),
            build_change_sensor(settings, scope, shape.batch_size, _status(shape.change_sensor_running)),
            build_auto_register_sensor(settings, scope, _status(shape.auto_register_running)),
            build_publish_sensor(settings, scope, _status(shape.publish_sensor_running)),
        ],
        resources={scope.snowflake_key: snowflake_resource(settings), scope.duckdb_key: duckdb_resource(settings)},
    )
