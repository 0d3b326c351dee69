"""The publish sensor: publish the working file for readers once a burst of syncs ends (and every
SYNC_PUBLISH_MINUTES during one), never for nothing new."""

import json
import time
from dataclasses import dataclass

import dagster as dg

from sync_project.jobs import PUBLISH_JOB, SYNC_JOB
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.settings import Settings

PUBLISH_SENSOR = "publish_after_syncs"
PUBLISH_SENSOR_SECONDS = 30


@dataclass(frozen=True)
class PublishDecision:
    publish: bool
    reason: str
    run_key: str = ""


def plan_publish(
    latest_sync: int | None,
    published_through: int,
    syncs_in_flight: int,
    last_request: float | None,
    now: float,
    minutes: float,
) -> PublishDecision:
    """Publish once a burst of syncs ends, or every `minutes` while it goes on; never for nothing new.

    `latest_sync` is the storage id of the newest sync materialization, `published_through` the one the last
    requested publish covered; the run key is the newest id, so a re-evaluated tick never doubles a publish.
    `last_request` is None until the sensor has seen a burst: the `minutes` count from that first sight, so a
    sensor turned on (or a fresh instance) during a burst does not publish at its first tick.
    """
    if latest_sync is None or latest_sync <= published_through:
        return PublishDecision(False, "no sync since the last publish")
    run_key = f"publish-through-{latest_sync}"
    if syncs_in_flight == 0:
        return PublishDecision(True, "the syncs have finished", run_key)
    due = (now if last_request is None else last_request) + minutes * 60
    if now >= due:
        return PublishDecision(
            True, f"{syncs_in_flight} sync run(s) still going; {minutes:g} minutes have passed", run_key
        )
    return PublishDecision(
        False, f"{syncs_in_flight} sync run(s) still going; publishing when they finish or in {due - now:.0f}s"
    )


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_publish_sensor(
    settings: Settings,
    scope: MirrorScope = FIRST_MIRROR,
    status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=scope.name(PUBLISH_SENSOR),
        job_name=scope.name(PUBLISH_JOB),
        minimum_interval_seconds=PUBLISH_SENSOR_SECONDS,
        default_status=status,
        required_resource_keys={scope.duckdb_key},
    )
    def publish_after_syncs(
        context: dg.SensorEvaluationContext, **_invoked_with: object
    ) -> dg.SensorResult | dg.SkipReason:
        """Publish the mirror for readers after syncs: when a burst ends, and every SYNC_PUBLISH_MINUTES during one.

        A backfill of 200 tables publishes a few times, not 200; each publish is one file copy.
        """
        if not scope.duckdb(context).mirror.has_published_copy:  # the resource's target, as the publish job's
            return dg.SkipReason("the target is a DuckLake: readers attach it read-only and never wait for syncs")
        cursor = json.loads(context.cursor) if context.cursor else {}
        last_request = float(cursor["at"]) if "at" in cursor else None
        latest = context.instance.fetch_materializations(scope.asset_key, limit=1).records
        in_flight = context.instance.get_runs_count(dg.RunsFilter(job_name=scope.name(SYNC_JOB), statuses=IN_FLIGHT))
        now = time.time()
        decision = plan_publish(
            latest[0].storage_id if latest else None,
            int(cursor.get("through", 0)),
            in_flight,
            last_request,
            now,
            settings.publish_minutes,
        )
        if not decision.publish:
            if last_request is None and in_flight:  # the burst's clock starts at the first sight of it
                return dg.SensorResult(skip_reason=decision.reason, cursor=json.dumps(cursor | {"at": now}))
            return dg.SkipReason(decision.reason)
        through = latest[0].storage_id
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=decision.run_key, tags={"publish_reason": decision.reason})],
            cursor=json.dumps({"through": through, "at": now}),
        )

    return publish_after_syncs
