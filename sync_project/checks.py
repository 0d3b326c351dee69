"""Checks on the synced tables, per partition so one table's failure never hides behind another's success.

They are the asset's own check specs, evaluated by the sync step right after each table's load (a run of
many tables records each table's results), and by the checks-only job against a table's latest sync.
"""

from typing import Any

import dagster as dg

from sync_project.scope import FIRST_MIRROR, MirrorScope
from sync_project.sync.catalog import table_stats
from sync_project.sync.content import ContentReport, needs_pinpointing, verify_content
from sync_project.sync.controls import row_access_policy
from sync_project.sync.errors import SyncError
from sync_project.sync.mirror import Mirror, MirrorTable
from sync_project.sync.mirror.access import Waited
from sync_project.sync.options import Connect
from sync_project.sync.report import SyncReport
from sync_project.sync.state import DELETED_AT
from sync_project.sync.tables import TableRef
from sync_project.sync.types import duckdb_type_name
from sync_project.sync_record import last_sync

ROW_COUNT_CHECK = "row_count_matches_snowflake"
SCHEMA_CHECK = "schema_matches_type_map"
CONTENT_CHECK = "content_matches_snowflake"

WAIT_METADATA = "wait_for_duckdb_seconds"
# Readers wait for a sync that is writing, but not for long.
READ_LOCK_TIMEOUT_SECONDS = 60.0


def _snowflake_rows(connect: Connect, table: TableRef, synced_rows: int) -> tuple[int | None, str | None]:
    """The source's current row count (None if Snowflake cannot say right now: the check still runs), and the
    table's row access policy when the count differs from what the sync left (one more query only then)."""
    try:
        with connect() as conn:
            figures = table_stats(conn, table)
            rows = figures.rows if figures else None
            policy = row_access_policy(conn, table) if rows is not None and rows != synced_rows else None
    except SyncError:
        return None, None
    return rows, policy


def check_specs(scope: MirrorScope) -> list[dg.AssetCheckSpec]:
    """The row-count check (blocking), the schema check and the content check of a mirror's asset, per table."""
    return [
        dg.AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=scope.asset_key,
            blocking=True,
            partitions_def=scope.partitions_def,
            description="DuckDB holds exactly the rows the latest sync of this table left there (a full sync: "
            "what Snowflake unloaded; an incremental one: what it kept plus what it merged). Warns if Snowflake's "
            "table has another count now.",
        ),
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=scope.asset_key,
            partitions_def=scope.partitions_def,
            description="Every column of the source is in DuckDB with the type the type map gives it.",
        ),
        dg.AssetCheckSpec(
            CONTENT_CHECK,
            asset=scope.asset_key,
            partitions_def=scope.partitions_def,
            description="The same aggregates of every column in Snowflake and in DuckDB (counts, min and max, exact "
            "sums, MD5 sums of text and binary), compared exactly: after each sync of a table registered with "
            "--verify content, and from `sync-project verify`. A difference after an incremental sync is a row "
            "changed without its cursor moving: a full sync mends it.",
        ),
    ]


def row_count_evaluation(
    table: TableRef,
    expected: int,
    state: MirrorTable,
    source_rows: int | None,
    waited: float = 0.0,
    asset_key: dg.AssetKey = FIRST_MIRROR.asset_key,
    row_access_policy: str | None = None,
) -> dg.AssetCheckEvaluation:
    # Text, not numbers: Dagster would plot every table's counts on one axis.
    metadata: dict[str, Any] = {
        "table": table.key,
        "duckdb_rows": f"{state.rows:,}",
        "rows_expected": f"{expected:,}",
        "snowflake_rows": f"{source_rows:,}" if source_rows is not None else "unknown",
        # Seconds the checks' read waited for the DuckDB file (another run's load held it).
        WAIT_METADATA: f"{waited:.2f}",
    }
    passed, severity, description = True, dg.AssetCheckSeverity.ERROR, None
    if not state.exists or state.rows != expected:
        passed, description = False, f"{table}: DuckDB holds {state.rows:,} rows, the last sync left {expected:,}"
    elif source_rows is not None and source_rows != expected and row_access_policy:
        # Syncing again would read the same rows: the policy decides what the sync's role sees, not time.
        metadata["row_access_policy"] = row_access_policy
        description = (
            f"{table}: copy is exact for what the sync's role may read: Snowflake counts {source_rows:,} rows, "
            f"of which the row access policy {row_access_policy} shows it {expected:,}"
        )
    elif source_rows is not None and source_rows != expected:
        passed, severity = False, dg.AssetCheckSeverity.WARN
        description = f"{table}: copy is exact, but Snowflake has {source_rows:,} rows; sync again"
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=ROW_COUNT_CHECK,
        passed=passed,
        severity=severity,
        description=description,
        metadata=metadata,
        partition=table.key,
        blocking=True,
    )


def schema_evaluation(
    table: TableRef, expected: dict[str, str], state: MirrorTable, asset_key: dg.AssetKey = FIRST_MIRROR.asset_key
) -> dg.AssetCheckEvaluation:
    actual = {name: duckdb_type_name(t) for name, t in state.columns.items()}
    problems = [
        f"{name}: expected {want}, found {actual.get(name, 'nothing')}"
        for name, want in expected.items()
        if actual.get(name) != want
    ] + [f"{name}: not in the source" for name in actual if name not in expected and name != DELETED_AT]
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=SCHEMA_CHECK,
        passed=not problems,
        description="; ".join(problems) if problems else None,
        metadata={"table": table.key, "columns": f"{len(expected):,}", "mismatches": f"{len(problems):,}"},
        partition=table.key,
    )


def evaluations(
    table: TableRef,
    rows_total: int,
    columns: dict[str, str],
    source_rows: int | None,
    mirror: Mirror,
    asset_key: dg.AssetKey = FIRST_MIRROR.asset_key,
    row_access_policy: str | None = None,
    committed: MirrorTable | None = None,
) -> list[dg.AssetCheckEvaluation]:
    """Both checks of a table, against what the mirror holds now (one read of it, or the read a load made right
    after its COMMIT) and Snowflake's row count."""
    waited = Waited()
    state = committed or mirror.table(table, f"checking {table}", READ_LOCK_TIMEOUT_SECONDS, waited)
    return [
        row_count_evaluation(table, rows_total, state, source_rows, waited.seconds, asset_key, row_access_policy),
        schema_evaluation(table, columns, state, asset_key),
    ]


def content_evaluation(
    report: ContentReport, asset_key: dg.AssetKey = FIRST_MIRROR.asset_key
) -> dg.AssetCheckEvaluation:
    """The content check's verdict; a warning, as the copy follows the table's strategy: the fix is a full sync."""
    table = report.table
    fix = f"; a full sync mends it (sync-project rebuild {table.key})" if not report.equal else ""
    if needs_pinpointing(report):
        fix += f"; `sync-project verify {table.key}` names which of those text columns differ"
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=CONTENT_CHECK,
        passed=report.equal,
        severity=dg.AssetCheckSeverity.WARN,
        description=report.summary() + fix,
        metadata={
            "table": table.key,
            "aggregates": report.aggregates,
            "differing_columns": dg.MetadataValue.json(report.differing_columns),
        },
        partition=table.key,
    )


def evaluations_after_sync(
    report: SyncReport, mirror: Mirror, asset_key: dg.AssetKey = FIRST_MIRROR.asset_key
) -> list[dg.AssetCheckEvaluation]:
    """Both checks right after a sync. Snowflake's count is the one the sync read before its unload: a second
    query per table would cost a connection each in a run of many tables, and the change sensor watches for
    later changes. The mirror's side is what the load read after its COMMIT."""
    columns = {c.name: duckdb_type_name(c.duckdb_type) for c in report.columns}
    source_rows = report.source.rows if report.source is not None else None
    committed = report.load.committed if report.load else None
    checked = evaluations(
        report.table, report.rows_total, columns, source_rows, mirror, asset_key, report.row_access_policy, committed
    )
    return checked + ([content_evaluation(report.content, asset_key)] if report.content is not None else [])


def evaluations_of_latest_sync(
    instance: dg.DagsterInstance,
    table: TableRef,
    connect: Connect,
    mirror: Mirror,
    asset_key: dg.AssetKey = FIRST_MIRROR.asset_key,
) -> list[dg.AssetCheckEvaluation]:
    """The checks against the table's latest sync (the verify job), the content check against Snowflake now, or
    failures if it never synced."""
    synced = last_sync(instance, table.key, asset_key)
    if synced is None:
        return [
            dg.AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=name,
                passed=False,
                description=f"{table} has not been synced yet",
                partition=table.key,
            )
            for name in (ROW_COUNT_CHECK, SCHEMA_CHECK, CONTENT_CHECK)
        ]
    rows = synced.record.rows if synced.record.rows is not None else -1
    source_rows, policy = _snowflake_rows(connect, table, rows)
    checked = evaluations(table, rows, synced.record.columns, source_rows, mirror, asset_key, policy)
    return [*checked, _content_now(table, connect, mirror, asset_key)]


def _content_now(table: TableRef, connect: Connect, mirror: Mirror, asset_key: dg.AssetKey) -> dg.AssetCheckEvaluation:
    """The content check against Snowflake now (the verify job, `sync-project verify`); what stopped it, if anything,
    is its failure."""
    try:
        return content_evaluation(verify_content(connect, mirror, table), asset_key)
    except SyncError as e:
        return dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=CONTENT_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{table}: the content could not be compared: {e}",
            partition=table.key,
        )
