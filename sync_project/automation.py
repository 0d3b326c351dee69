"""Schedules and sensors: keep DuckDB fresh without anyone clicking.

Defaults (see sync_project/README.md, "Automatic syncs"): the nightly schedule runs; the change sensor and the
auto-registration sensor are off until switched on in the UI's Automation page,
because on a real account each tick of the change sensor runs an
INFORMATION_SCHEMA query, which wakes a warehouse.
"""

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import dagster as dg

from sync_project.assets import SYNC_BATCH_SIZE
from sync_project.dagster_api import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_TAG
from sync_project.jobs import CLEANUP_JOB, SYNC_JOB, VERIFY_JOB
from sync_project.partitions import registered_tables, tables_tag
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.settings import Settings
from sync_project.sync.catalog import TableStats, describe_table, list_tables, matches_like
from sync_project.sync.errors import PermanentError, SyncError
from sync_project.sync.options import Connect
from sync_project.sync.tables import TableRef
from sync_project.sync_record import last_sync

SYNC_SCHEDULE = "nightly_sync"
CLEANUP_SCHEDULE = "daily_cleanup"
VERIFY_SCHEDULE = "weekly_verify"
CHANGE_SENSOR = "snowflake_change_sensor"
AUTO_REGISTER_SENSOR = "auto_register_tables"


def batches(registered: list[str], wanted: set[str], size: int = SYNC_BATCH_SIZE) -> list[list[str]]:
    """The wanted keys as runs of at most `size`, each a contiguous stretch of the registration order (a run of
    several tables is a partition range, and Dagster orders dynamic partitions as they were added). A stretch
    longer than `size` is cut into runs of equal length, give or take one: the runs start together, and the
    longest one decides when the last table is synced (60 tables: 20, 20, 20 rather than 25, 25, 10)."""
    stretches: list[list[str]] = [[]]
    for key in registered:
        if key in wanted:
            stretches[-1].append(key)
        elif stretches[-1]:
            stretches.append([])
    found: list[list[str]] = []
    for stretch in filter(None, stretches):
        runs = -(-len(stretch) // size)
        cuts = [len(stretch) * n // runs for n in range(runs + 1)]
        found.extend(stretch[start:end] for start, end in itertools.pairwise(cuts))
    return found


def batch_tags(batch: list[str]) -> dict[str, str]:
    """Run tags for one batch: a single partition, or the range from its first key to its last; and its tables."""
    if len(batch) == 1:
        partitions = {PARTITION_TAG: batch[0]}
    else:
        partitions = {ASSET_PARTITION_RANGE_START_TAG: batch[0], ASSET_PARTITION_RANGE_END_TAG: batch[-1]}
    return partitions | tables_tag(batch)


def batch_run_request(batch: list[str], run_key: str, tags: dict[str, str] | None = None) -> dg.RunRequest:
    """One run for a batch: a one-table batch is an ordinary partition run, a longer one a partition range."""
    if len(batch) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=batch[0], tags=tables_tag(batch) | (tags or {}))
    return dg.RunRequest(run_key=run_key, tags=batch_tags(batch) | (tags or {}))


def batch_request(batch: list[str], tick: str) -> dg.RunRequest:
    """One run for a batch; the run key names its tables and the tick, so a re-evaluated tick never doubles it."""
    return batch_run_request(batch, f"{batch[0]}@{tick}" if len(batch) == 1 else f"{batch[0]}..{batch[-1]}@{tick}")


# The sensors read their mirror's resources from `context.resources` (their keys depend on the mirror). A
# direct call (`sensor(context)`, as the tests make) also passes each required resource as a keyword named by its
# key, which the daemon never does: `**_invoked_with` takes those.


def build_sync_schedule(
    settings: Settings, scope: MirrorScope = FIRST_MIRROR, batch_size: int = SYNC_BATCH_SIZE
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=scope.name(SYNC_SCHEDULE),
        job_name=scope.name(SYNC_JOB),
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=_default_status(settings),
    )
    def nightly_sync(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        """A full sync of every registered table: runs of up to 25 tables each, every table its own partition
        with its own materialization and checks (SYNC_SCHEDULE_CRON, SYNC_SCHEDULE_TIMEZONE)."""
        return every_table_in_batches(context, scope, batch_size)

    return nightly_sync


@dataclass(frozen=True)
class ChangeDecision:
    """The change sensor's verdict on one table, logged for every table it looked at."""

    key: str
    sync: bool
    reason: str  # what moved (or why not), as the sensor's log and the run's tag say it
    run_key: str = ""  # one per state of Snowflake's figures, so a table that did not move is not synced twice


def plan_change_syncs(
    instance: dg.DagsterInstance,
    connect: Connect,
    tables: list[TableRef],
    asset_key: dg.AssetKey = FIRST_MIRROR.asset_key,
) -> list[ChangeDecision]:
    """For each table: sync it if Snowflake's rows, bytes or LAST_ALTERED moved since its last sync.

    One INFORMATION_SCHEMA query per schema; what a sync saw is in its materialization metadata.
    """
    by_schema: dict[tuple[str, str], list[TableRef]] = defaultdict(list)
    for table in tables:
        by_schema[(table.database, table.schema)].append(table)
    decisions: list[ChangeDecision] = []
    with connect() as conn:
        for (database, schema), members in sorted(by_schema.items()):
            current = {t.name: t for t in list_tables(conn, database, schema)}
            for table in members:
                stats = current.get(table.name)
                if stats is None:
                    decisions.append(ChangeDecision(table.key, False, "not found in Snowflake (dropped or renamed?)"))
                    continue
                now = stats.stamp
                run_key = f"{table.key}:{now[0]}:{now[1]}:{now[2]}"
                seen = last_sync(instance, table.key, asset_key)
                if seen is None:
                    decisions.append(ChangeDecision(table.key, True, "never synced", run_key))
                    continue
                before = seen.record.snowflake
                if now == before:
                    decisions.append(ChangeDecision(table.key, False, "unchanged since its last sync"))
                    continue
                changes = [
                    f"{label} {old} -> {new}"
                    for label, old, new in zip(("rows", "bytes", "last_altered"), before, now, strict=True)
                    if old != new
                ]
                figures = seen.record.figures
                if "rows_deleted" in figures:  # what its last sync did with rows gone from Snowflake
                    changes.append(f"its last sync: {figures['rows_deleted']:,} deleted row(s), {figures['deletes']}")
                decisions.append(ChangeDecision(table.key, True, "; ".join(changes), run_key))
    return decisions


def build_change_sensor(
    settings: Settings,
    scope: MirrorScope = FIRST_MIRROR,
    batch_size: int = SYNC_BATCH_SIZE,
    status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=scope.name(CHANGE_SENSOR),
        job_name=scope.name(SYNC_JOB),
        minimum_interval_seconds=settings.change_sensor_seconds,
        default_status=status,
        required_resource_keys={scope.snowflake_key},
    )
    def snowflake_change_sensor(
        context: dg.SensorEvaluationContext, **_invoked_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Sync a registered table when Snowflake's rows, bytes or LAST_ALTERED moved since its last sync."""
        snowflake = scope.snowflake(context)
        tables = registered_tables(context.instance, snowflake.sync_database, scope.partitions_name)
        if not tables:
            return dg.SkipReason("no tables are registered yet")
        try:
            decisions = plan_change_syncs(context.instance, snowflake.get_connection, tables, scope.asset_key)
        except SyncError as e:
            return dg.SkipReason(f"could not read Snowflake's figures: {e}")
        wanted = [d for d in decisions if d.sync]
        for decision in decisions:
            context.log.info(f"{decision.key}: {'sync' if decision.sync else 'skip'} ({decision.reason})")
        if not wanted:
            return dg.SkipReason(
                f"checked {len(decisions)} table(s); none changed: "
                + "; ".join(f"{d.key}: {d.reason}" for d in decisions[:20])
            )
        # Changed tables next to each other in registration order share a run (up to 25): one process start-up.
        by_key = {d.key: d for d in wanted}
        registered = list(context.instance.get_dynamic_partitions(scope.partitions_name))
        requests = []
        for batch in batches(registered, set(by_key), batch_size):
            members = [by_key[key] for key in batch]
            run_key = members[0].run_key if len(members) == 1 else "|".join(m.run_key for m in members)
            reason = "; ".join(f"{m.key}: {m.reason}" for m in members) if len(members) > 1 else members[0].reason
            requests.append(batch_run_request(batch, run_key, {"sync_reason": reason[:200]}))
        return dg.SensorResult(run_requests=requests)

    return snowflake_change_sensor


def build_auto_register_sensor(
    settings: Settings,
    scope: MirrorScope = FIRST_MIRROR,
    status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=scope.name(AUTO_REGISTER_SENSOR),
        minimum_interval_seconds=max(settings.change_sensor_seconds, 60),
        default_status=status,
        required_resource_keys={scope.snowflake_key},
    )
    def auto_register_tables(
        context: dg.SensorEvaluationContext, **_invoked_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Register new tables of SYNC_AUTO_REGISTER_SCHEMA matching SYNC_AUTO_REGISTER_LIKE.

        Each is verified with DESC TABLE like a manual registration; refused ones are reported once
        (until they change). Vanished tables are deregistered only with SYNC_AUTO_DEREGISTER=true.
        """
        schema = settings.auto_register_schema
        if not schema:
            return dg.SkipReason("set SYNC_AUTO_REGISTER_SCHEMA (and SYNC_AUTO_REGISTER_LIKE) to use this sensor")
        snowflake = scope.snowflake(context)
        database = snowflake.sync_database  # the resource's, as the sync's: an override there moves both
        registered = {
            t.key
            for t in registered_tables(context.instance, database, scope.partitions_name)
            if (t.database, t.schema) == (database, schema) and matches_like(t.name, settings.auto_register_like)
        }
        with snowflake.get_connection() as conn:
            listing = list_tables(conn, database, schema, settings.auto_register_like)
            listed = [(TableRef(database, schema, stats.name), stats) for stats in listing]
            added, refused = _tables_to_register(conn, context, listed, registered)
        present = {table.key for table, _ in listed}
        vanished = sorted(key for key in registered if key not in present)
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if added:
            requests.append(scope.partitions_def.build_add_request(added))
        if vanished and settings.auto_deregister:
            requests.append(scope.partitions_def.build_delete_request(vanished))
        context.log.info(
            f"registered {added or 'nothing'}; refused {sorted(refused) or 'nothing'}; vanished {vanished or 'nothing'}"
            + (" (kept: SYNC_AUTO_DEREGISTER is off)" if vanished and not settings.auto_deregister else "")
        )
        return dg.SensorResult(dynamic_partitions_requests=requests, cursor=json.dumps(refused, sort_keys=True))

    return auto_register_tables


def _tables_to_register(
    conn: Any, context: dg.SensorEvaluationContext, listed: list[tuple[TableRef, TableStats]], registered: set[str]
) -> tuple[list[str], dict[str, str]]:
    """The listed tables to register (DESC TABLE accepts them), and those refused: key -> LAST_ALTERED when refused,
    so a refused table is asked again only once it changes (the cursor keeps them)."""
    refused_before: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    added: list[str] = []
    refused: dict[str, str] = {}
    for table, stats in listed:
        stamp = stats.stamp.last_altered
        if table.key in registered:
            continue
        if refused_before.get(table.key) == stamp:
            refused[table.key] = stamp
            continue
        try:
            describe_table(conn, table)
        except PermanentError as e:
            context.log.warning(f"not registering {table.key}: {e}")
            refused[table.key] = stamp
            continue
        added.append(table.key)
    return added, refused


def every_table_in_batches(
    context: dg.ScheduleEvaluationContext, scope: MirrorScope, batch_size: int, run_key_prefix: str = ""
) -> list[dg.RunRequest] | dg.SkipReason:
    """A schedule's runs over every registered table: contiguous ranges in registration order, as Dagster orders
    dynamic partitions; the run key names the range and the tick, so a re-evaluated tick never doubles a run."""
    keys = list(context.instance.get_dynamic_partitions(scope.partitions_name))
    if not keys:
        return dg.SkipReason("no tables are registered yet: sync-project register SCHEMA.TABLE")
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "manual"
    return [batch_request(batch, run_key_prefix + tick) for batch in batches(keys, set(keys), batch_size)]


def _default_status(settings: Settings) -> dg.DefaultScheduleStatus:
    """SYNC_SCHEDULES: whether a schedule ticks before anyone starts it in the UI (the UI's choice then wins)."""
    return dg.DefaultScheduleStatus.RUNNING if settings.schedules_running else dg.DefaultScheduleStatus.STOPPED


def build_verify_schedule(
    settings: Settings, scope: MirrorScope = FIRST_MIRROR, batch_size: int = SYNC_BATCH_SIZE
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=scope.name(VERIFY_SCHEDULE),
        job_name=scope.name(VERIFY_JOB),
        cron_schedule=settings.verify_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def weekly_verify(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        """The content check of every registered table, beside its row-count and schema checks, in runs of up to
        25 (SYNC_VERIFY_CRON, Sundays at 04:00). Stopped until turned on: each table costs a scan of its columns
        in Snowflake (one aggregate query), which a warehouse bills like any query."""
        return every_table_in_batches(context, scope, batch_size, "verify-")

    return weekly_verify


def build_cleanup_schedule(settings: Settings, scope: MirrorScope = FIRST_MIRROR) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=scope.name(CLEANUP_SCHEDULE),
        job_name=scope.name(CLEANUP_JOB),
        cron_schedule=settings.cleanup_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=_default_status(settings),
        description="Daily: remove what failed syncs left behind (SYNC_CLEANUP_CRON, SYNC_SCHEDULE_TIMEZONE).",
    )
