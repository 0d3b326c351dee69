"""What `sync-project status` knows of a table, typed, with its two renderings: lines for people, JSON for
scripts. It comes from Dagster's storage (runs, the latest sync, the check) and one brief read of the mirror."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import dagster as dg

from sync_project.checks import ROW_COUNT_CHECK
from sync_project.dagster_api import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_TAG,
    latest_check_evaluation,
)
from sync_project.metadata import human_bytes
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.sync.mirror import Mirror, TableFacts
from sync_project.sync.mirror.access import Log
from sync_project.sync.state import DELETED_AT
from sync_project.sync.tables import TableRef
from sync_project.sync_record import SYNC_ASSET_KEY, LastSync, last_sync


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str
    started: str | None  # UTC, ISO 8601; None until the run starts
    seconds: float | None  # None while it runs
    error: str | None = None  # what its last step failure said (a failed run)

    @classmethod
    def of(cls, record: dg.RunRecord, error: str | None = None) -> RunSummary:
        start, end = record.start_time, record.end_time
        return cls(
            record.dagster_run.run_id,
            record.dagster_run.status.value,
            dt.datetime.fromtimestamp(start, dt.UTC).isoformat() if start else None,
            round(end - start, 2) if start and end else None,
            error,
        )

    def as_json(self) -> dict[str, Any]:
        found = {"run_id": self.run_id, "status": self.status, "started": self.started, "seconds": self.seconds}
        return found | ({"error": self.error} if self.error is not None else {})


@dataclass(frozen=True)
class CheckSummary:
    passed: bool
    severity: str | None  # a failure's; a passed check's stored ERROR would read as one in scripts
    description: str | None


@dataclass(frozen=True)
class TableStatus:
    table: TableRef
    registered: bool
    last_run: RunSummary | None
    last_sync: LastSync | None
    row_count_check: CheckSummary | None
    last_failure: RunSummary | None
    mirror: TableFacts
    problem: str | None  # why the next sync could not write the mirror

    def as_json(self) -> dict[str, Any]:
        facts = self.mirror
        return {
            "table": self.table.key,
            "snowflake_table": str(self.table),
            "duckdb_relation": self.table.duckdb_relation,
            "registered": self.registered,
            "options": facts.state.options.as_dict(),
            "high_water_mark": facts.state.high_water_mark,
            "deletes": self.deletes(),
            "unload_prevented": facts.state.unload_prevented.value if facts.state.unload_prevented else None,
            "last_run": self.last_run.as_json() if self.last_run else None,
            "last_successful_sync": self.last_sync.summary() if self.last_sync else None,
            "row_count_check": self.row_count_check.__dict__ if self.row_count_check else None,
            "last_failed_run": self.last_failure.as_json() if self.last_failure else None,
            "duckdb": {
                "exists": facts.table.exists,
                "rows": facts.table.rows if facts.table.exists else None,
                "bytes": facts.bytes,
                "read_from": facts.read_from,
                "problem": self.problem,
            },
        }

    def lines(self) -> list[str]:
        """The human view."""
        state = self.mirror.state
        how = str(state.options)
        if state.options.strategy == "incremental":
            how += f", high-water mark {state.high_water_mark or '-'}"
        lines = [self.table.key + ("" if self.registered else "  (not registered)"), f"  strategy:     {how}"]
        if run := self.last_run:
            took = f"{run.seconds}s" if run.seconds is not None else "still going"
            lines.append(f"  last run:     {run.status} {run.started or 'not started yet'} ({took}) {run.run_id}")
        else:
            lines.append("  last run:     none")
        if synced := self.last_sync:
            rows = f"{synced.record.rows:,}" if synced.record.rows is not None else "?"
            moved = (
                f"read its result set into {human_bytes(synced.record.bytes)} of Parquet"
                if synced.record.figures.get("extract") == "results"
                else f"unloaded {human_bytes(synced.record.bytes)} of Parquet"
            )
            lines.append(
                f"  last synced:  {synced.at.isoformat()}, {synced.record.strategy}: the table had {rows} rows after "
                f"it; it {moved}"
            )
        else:
            lines.append("  last synced:  never")
        lines.append(f"  deletes:      {self.deletes()}")
        if check := self.row_count_check:
            verdict = "passed" if check.passed else f"FAILED ({check.severity})"
            lines.append(f"  row count:    {verdict} {check.description or ''}".rstrip())
        else:
            lines.append("  row count:    not checked")
        if failed := self.last_failure:
            lines.append(f"  last failure: {failed.started} {failed.run_id}: {failed.error}")
        return lines + self._mirror_lines()

    def deletes(self) -> str:
        """What happens to a row deleted in Snowflake, and what the last sync did with such rows."""
        options = self.mirror.state.options
        if options.strategy == "full":
            return "each full sync copies the table whole, so deleted rows go with the next sync"
        if not options.primary_key:
            return (
                "not detected: an incremental table without a key cannot tell a deleted row from an unchanged one; "
                "register it again with --primary-key COLUMN (and its incremental options), or sync it full"
            )
        if options.deletes_mode == "keep":
            return "kept (deletes keep): rows deleted in Snowflake stay in DuckDB"
        done = "removed" if options.deletes_mode == "remove" else "marked"
        how = done if done == "removed" else f"{done} in {DELETED_AT}"
        last = self.last_sync.record.figures.get("rows_deleted") if self.last_sync else None
        return f"{how} at each incremental sync" + (
            f"; the last sync {done} {last:,} row(s)" if last is not None else ""
        )

    def _mirror_lines(self) -> list[str]:
        found, facts = self.mirror.table, self.mirror
        relation = self.table.duckdb_relation
        lines = [
            f"  duckdb:       {relation}, {found.rows:,} rows, {human_bytes(facts.bytes)}"
            if found.exists
            else "  duckdb:       no table"
        ]
        if facts.read_from:
            lines.append(f"  read from:    {facts.read_from}")
        if prevented := facts.state.unload_prevented:
            lines.append(
                f"  extract:      Snowflake refused unloads to internal stages at {prevented.noted_at:%Y-%m-%d %H:%M} "
                f"UTC; with extract auto, tables are read through their result sets (to lift it, {prevented.value})"
            )
        if self.problem:
            lines.append(f"  problem:      {self.problem}")
        return lines


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """What the run's last step failure said."""
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if failures and failures[-1].dagster_event and failures[-1].dagster_event.step_failure_data:
        error_info = failures[-1].dagster_event.step_failure_data.error
        return error_info.message.strip() if error_info else None
    return None


def runs_of(instance: dg.DagsterInstance, key: str, limit: int = 20) -> list[dg.RunRecord]:
    """The latest runs that synced a table, newest first: its own runs (one partition) and the runs of many
    tables whose partition range covers it (`sync --all`, the nightly schedule, the change sensor, backfills)."""
    from sync_project.jobs import SYNC_JOB  # jobs.py imports the registry, which the CLI imports with this

    own = instance.get_run_records(dg.RunsFilter(tags={PARTITION_TAG: key}), limit=limit)
    order = {k: i for i, k in enumerate(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))}

    def covers(run: dg.DagsterRun) -> bool:
        start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
        return start in order and end in order and key in order and order[start] <= order[key] <= order[end]

    ranges = [r for r in instance.get_run_records(dg.RunsFilter(job_name=SYNC_JOB), limit=200) if covers(r.dagster_run)]
    runs = sorted(
        {r.dagster_run.run_id: r for r in [*own, *ranges]}.values(), key=lambda r: -r.create_timestamp.timestamp()
    )
    return [r for r in runs if SYNC_ASSET_KEY in (r.dagster_run.asset_selection or {SYNC_ASSET_KEY})][:limit]


def _last_failure(instance: dg.DagsterInstance, table: TableRef, runs: list[dg.RunRecord]) -> RunSummary | None:
    """The table's latest failed run: a run of many tables fails when any of them does, so it is this table's
    failure if it ran this table alone or its error names it."""
    for run in (r for r in runs if r.dagster_run.status == dg.DagsterRunStatus.FAILURE):
        error = _failure_message(instance, run.dagster_run.run_id)
        if PARTITION_TAG in run.dagster_run.tags or (error and table.key in error):
            return RunSummary.of(run, error)
    return None


def table_status(
    instance: dg.DagsterInstance, table: TableRef, mirror: Mirror, wait: float | None = None, log: Log = lambda _: None
) -> TableStatus:
    """Everything `sync-project status` shows for a table, from Dagster's storage and the mirror only."""
    runs = runs_of(instance, table.key)
    evaluation = latest_check_evaluation(instance, dg.AssetCheckKey(SYNC_ASSET_KEY, ROW_COUNT_CHECK), table.key)
    return TableStatus(
        table=table,
        registered=table.key in instance.get_dynamic_partitions(SNOWFLAKE_TABLES),
        last_run=RunSummary.of(runs[0]) if runs else None,
        last_sync=last_sync(instance, table.key),
        row_count_check=CheckSummary(
            evaluation.passed, None if evaluation.passed else evaluation.severity.value, evaluation.description
        )
        if evaluation
        else None,
        last_failure=_last_failure(instance, table, runs),
        mirror=mirror.facts(table, f"reading {table}", log, wait),
        problem=mirror.writable_problem(f"syncing {table.key}"),
    )
