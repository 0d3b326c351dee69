"""The doctor's Dagster side: the target as the resources describe it, the registered tables, the instance.

The checks themselves are the engine's (`sync/doctor.py`); `sync-project doctor` and the `doctor` job
both come through `diagnose`, so the terminal and the UI see the same lines.
"""

from __future__ import annotations

import os

import dagster as dg

from sync_project.embedded_snowflake import LOCAL_ACCOUNT
from sync_project.metadata import text_table
from sync_project.resources import SnowflakeResource, SyncDuckDBResource
from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.settings import DAGSTER_HOME
from sync_project.sync.doctor import Check, DoctorReport, Target, run_doctor
from sync_project.sync.errors import InvalidTableNameError
from sync_project.sync.tables import TableRef


def target_of(snowflake: SnowflakeResource, duckdb: SyncDuckDBResource) -> Target:
    endpoint = f"{snowflake.protocol or 'https'}://{snowflake.host}:{snowflake.port or 443}" if snowflake.host else ""
    where = (
        f"the embedded Snowflake at {endpoint}"
        if snowflake.account == LOCAL_ACCOUNT
        else f"account {snowflake.account}" + (f" via {endpoint}" if endpoint else "")
    )
    return Target(
        snowflake=where,
        user=snowflake.user,
        role=snowflake.role,
        warehouse=snowflake.warehouse,
        database=snowflake.database or "",
        auth_mode=snowflake.auth_mode,
        stage=duckdb.stage,
    )


def _registered(instance: dg.DagsterInstance | None, database: str, registry: str) -> tuple[Check, list[TableRef]]:
    home = os.environ.get(DAGSTER_HOME, "(DAGSTER_HOME unset)")
    if instance is None:
        return Check("dagster instance", "failed", f"no Dagster instance at {home}", "set DAGSTER_HOME"), []
    try:
        keys = instance.get_dynamic_partitions(registry)
        runs = instance.get_runs_count()
    except Exception as e:  # any storage failure is the finding itself
        return Check(
            "dagster instance",
            "failed",
            f"the instance at {home} cannot be read: {type(e).__name__}: {str(e)[:300]}",
            "check DAGSTER_HOME and the storage in its dagster.yaml (is the database up?)",
        ), []
    tables, malformed = [], []
    for key in keys:
        try:
            tables.append(TableRef.from_key(key, database))
        except InvalidTableNameError:
            malformed.append(key)
    storage = type(instance.run_storage).__name__
    detail = f"{home} ({storage}): {len(tables)} registered table(s), {runs} run(s) in the history"
    if malformed:
        return Check(
            "dagster instance",
            "failed",
            detail + f"; {len(malformed)} partition key(s) are not SCHEMA.TABLE: {', '.join(map(repr, malformed))}",
            "remove them: sync-project deregister KEY",
        ), tables
    return Check("dagster instance", "passed", detail), tables


def diagnose(
    instance: dg.DagsterInstance | None,
    snowflake: SnowflakeResource,
    duckdb: SyncDuckDBResource,
    scope: MirrorScope = FIRST_MIRROR,
) -> DoctorReport:
    instance_check, tables = _registered(instance, snowflake.database or "", scope.partitions_name)
    report = run_doctor(snowflake.connect, target_of(snowflake, duckdb), tables, duckdb.sync_options())
    report.checks.append(instance_check)
    return report


def report_lines(report: DoctorReport) -> list[str]:
    """The checklist for people: one line per check, its fix under a failed one."""
    mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}
    lines = []
    for check in report.checks:
        lines.append(f"[{mark[check.status]}] {check.name}: {check.detail}")
        if check.status == "failed" and check.fix:
            lines.append(f"       fix: {check.fix}")
    failed = sum(1 for c in report.checks if c.status == "failed")
    lines.append("every check passed" if report.passed else f"{failed} check(s) failed")
    return lines


def report_metadata(report: DoctorReport) -> dict[str, dg.MetadataValue]:
    rows = [[c.name, c.status, c.detail, c.fix] for c in report.checks]
    return {
        "checks": text_table(["check", "status", "detail", "fix"], rows),
        "passed": dg.MetadataValue.bool(report.passed),
        "report": dg.MetadataValue.json(report.as_dict()),
    }
