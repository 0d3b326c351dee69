"""The synced-table asset: one dynamic partition per Snowflake table.

A thin shell: it parses the partition keys of the run, calls the engine (`sync/`), and turns each report
into that partition's materialization and check results. Retries cover transient failures only, and only the
tables still missing.
"""

from collections.abc import Generator, Iterator, Sequence
from typing import Literal

import dagster as dg
from pydantic import Field

from sync_project.checks import check_specs, evaluations_after_sync, evaluations_of_latest_sync
from sync_project.dagster_api import PARTITION_TAG
from sync_project.partitions import TABLES_TAG, not_registered_message, table_for_partition, tables_tag
from sync_project.run_log import FLUSH_SECONDS, RunLog
from sync_project.scope import ASSET_NAME, FIRST_MIRROR, MirrorScope
from sync_project.sync.cancel import Interrupted
from sync_project.sync.errors import PermanentError, SyncError
from sync_project.sync.mirror import Mirror
from sync_project.sync.pipeline import TableOutcome, sync_tables
from sync_project.sync.report import SyncReport
from sync_project.sync.tables import TableRef
from sync_project.sync_record import latest_sync_materialization, to_metadata

# A backfill or the nightly schedule syncs this many tables per run: one process start-up for all of them.
SYNC_BATCH_SIZE = 25
SYNC_WORKERS = 4  # tables of one run whose Snowflake work overlaps (COPY INTO and GET wait on Snowflake)
ASSET_DESCRIPTION = """A Snowflake table mirrored into DuckDB, exactly typed and swapped in atomically.

Each partition is one registered table (`SCHEMA.TABLE`). A sync unloads it through the user stage `@~` (or
SYNC_STAGE) as Parquet (`COPY INTO @stage` with an explicit, aliased projection), downloads the files with `GET`,
and loads them in one DuckDB transaction that replaces the old table only if the row count equals what Snowflake
unloaded. A failed sync leaves the previous table untouched. Types follow the type map: NUMBER stays exact
(BIGINT, or DECIMAL up to Snowflake's 38 digits), TIMESTAMP_TZ/LTZ become TIMESTAMPTZ, VARIANT/OBJECT/ARRAY
become JSON. A run from the UI syncs one table; backfills and the nightly schedule sync up to 25 per run, each
still its own partition with its own materialization and checks."""
INTERRUPTED = "interrupted"  # how a stopped sync's failure begins (the CLI exits 130 on it)

# Transient failures (network, Snowflake hiccups, a busy DuckDB file) get 3 more tries with backoff;
# permanent ones raise Failure(allow_retries=False) and stop at once.
SYNC_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def retry_note(retry_number: int) -> str:
    """What happens after a transient failure on try `retry_number + 1`."""
    tries = SYNC_RETRY_POLICY.max_retries + 1
    if retry_number < SYNC_RETRY_POLICY.max_retries:
        return f"try {retry_number + 1} of {tries}; will be retried"
    return f"try {tries} of {tries}; no retries left"


class SyncConfig(dg.Config):
    """Run config of one sync."""

    strategy: Literal["table", "full", "incremental"] = Field(
        default="table",
        description="`table`: the strategy the table was registered with; `full` forces a full sync.",
    )
    rebuild: bool = Field(default=False, description="Forget the table's sync state and rebuild it with a full sync.")


NO_TABLE_MESSAGE = (
    f'this run names no table: set the run tag {PARTITION_TAG} to the table\'s key (Launchpad > "Edit tags"), '
    f"e.g. {PARTITION_TAG}=WORKSPACE_833213390.data, or run `dagster job launch -j verify_synced_tables "
    f'-w workspace.yaml --tags \'{{"{PARTITION_TAG}": "SCHEMA.TABLE"}}\'`'
)


def _run_family(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[str]:
    """This run and the failed runs it re-executes: partitions they materialized need no second sync."""
    family = {run.run_id}
    parent = run.parent_run_id
    while parent:
        record = instance.get_run_record_by_id(parent)
        if record is None:
            break
        if record.dagster_run.status == dg.DagsterRunStatus.FAILURE:
            family.add(parent)
        parent = record.dagster_run.parent_run_id
    return family


def already_synced(
    instance: dg.DagsterInstance, run: dg.DagsterRun, keys: list[str], asset_key: dg.AssetKey = FIRST_MIRROR.asset_key
) -> set[str]:
    """Keys a previous try of this step, or the failed run this one re-executes, already synced."""
    family = _run_family(instance, run)
    done = set()
    for key in keys:
        found = latest_sync_materialization(instance, key, asset_key)
        if found is not None and found[1].run_id in family:
            done.add(key)
    return done


def build_sync_asset(
    scope: MirrorScope = FIRST_MIRROR,
    *,
    kinds: Sequence[str] = ("snowflake", "duckdb"),
    owners: Sequence[str] = (),
    group: str | None = None,
    batch_size: int = SYNC_BATCH_SIZE,
    workers: int = SYNC_WORKERS,
) -> dg.AssetsDefinition:
    """A mirror's asset: one partition per registered table, its checks (row count, schema, content), its
    resources by the mirror's keys."""

    @dg.multi_asset(
        name=scope.name(ASSET_NAME),
        outs={
            ASSET_NAME: dg.AssetOut(
                key=scope.asset_key,
                is_required=False,
                group_name=group or scope.group,
                kinds=set(kinds),
                owners=list(owners),
                description=ASSET_DESCRIPTION,
            )
        },
        partitions_def=scope.partitions_def,
        check_specs=check_specs(scope),
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(batch_size),
        retry_policy=SYNC_RETRY_POLICY,
        required_resource_keys=scope.resource_keys,
    )
    def snowflake_table(
        context: dg.AssetExecutionContext, config: SyncConfig
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
        """Sync the run's tables (one, or a batch of a backfill or the nightly schedule), each recorded as its own
        partition: its materialization, its checks, or its failure (named in the step's failure; a retry or a
        re-execution syncs only the tables still missing). Snowflake work of several tables overlaps, and so do
        their loads, on one DuckDB instance."""
        yield from _sync_the_run(context, config, scope, workers)

    return snowflake_table


def _sync_the_run(
    context: dg.AssetExecutionContext, config: SyncConfig, scope: MirrorScope, workers: int
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    if not (context.has_partition_key or context.has_partition_key_range):
        raise dg.Failure(NO_TABLE_MESSAGE, allow_retries=False)
    _fail_unless_registered(context, scope.partitions_name)
    snowflake, duckdb = scope.snowflake(context), scope.duckdb(context)
    asset_key = scope.asset_key
    syncing = asset_key in context.selected_asset_keys
    tables, failures = _tables_of_the_run(context, snowflake.sync_database, syncing, asset_key)
    options = duckdb.sync_options()
    mirror = options.mirror  # one mirror for the run: the sync loads into it, the checks read it
    if not syncing:  # the checks-only job: check each table against its latest sync
        for table in tables:
            yield from evaluations_of_latest_sync(context.instance, table, snowflake.get_connection, mirror, asset_key)
        _fail_if_any(failures, transient=False, retry_number=context.retry_number)
        return
    # Retries and re-executions of one run share an attempt, so they can resume its stages and files.
    root_run_id = context.run.root_run_id or context.run.run_id
    root = context.instance.get_run_record_by_id(root_run_id)
    # A run of several tables writes its lines together (run_log.py); a run of one, each as it comes.
    with RunLog(context.log.info, every=FLUSH_SECONDS if len(tables) > 1 else 0.0) as say:
        outcomes = sync_tables(
            snowflake.get_connection,
            tables,
            options,
            workers if len(tables) > 1 else 1,
            log=say,
            strategy=None if config.strategy == "table" else config.strategy,
            rebuild=config.rebuild,
            attempt_id=root_run_id,
            attempt_started=root.create_timestamp if root else None,
            keep_for_retry=context.retry_number < SYNC_RETRY_POLICY.max_retries,
        )
        transient = yield from _recorded_outcomes(context, outcomes, tables, mirror, failures, asset_key, say)
    _fail_if_any(failures, transient, context.retry_number)


def _recorded_outcomes(
    context: dg.AssetExecutionContext,
    outcomes: Iterator[TableOutcome],
    tables: list[TableRef],
    mirror: Mirror,
    failures: dict[str, str],
    asset_key: dg.AssetKey,
    say: RunLog,
) -> Generator[dg.AssetMaterialization | dg.AssetCheckEvaluation, None, bool]:
    """Each table's events as its sync ends, its failure noted in `failures`; whether any failure was transient."""
    transient = False
    try:
        for outcome in outcomes:
            if outcome.report is None:
                error = outcome.error
                transient = transient or not isinstance(error, PermanentError | Interrupted)
                failures[outcome.table.key] = (
                    str(error) if isinstance(error, SyncError) else f"{type(error).__name__}: {error}"
                )
                say.flush()  # the table's lines before its error
                context.log.error(f"{outcome.table}: {failures[outcome.table.key]}")
                continue
            yield from _recorded(context, outcome.report, mirror, failures, asset_key, say)
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
        # Dagster would retry an interrupt under the retry policy; a person who pressed Ctrl-C (or terminated
        # the run) wants it stopped. The engine has cancelled what was in flight and cleaned up after it.
        raise dg.Failure(
            description=f"{INTERRUPTED}: the sync of {', '.join(t.key for t in tables)} was stopped (Ctrl-C, "
            "SIGTERM or Terminate); tables not yet loaded keep their previous DuckDB table; not retried",
            allow_retries=False,
        ) from None
    return transient


snowflake_table = build_sync_asset()  # the first mirror's asset, as the tests and the README name it


def _tables_of_the_run(
    context: dg.AssetExecutionContext, database: str, syncing: bool, asset_key: dg.AssetKey
) -> tuple[list[TableRef], dict[str, str]]:
    """The run's tables still to do (an earlier try of the run may have synced some), and the keys that name
    no table. Tags the run with its tables if whoever launched it did not."""
    keys = list(context.partition_keys)
    if TABLES_TAG not in context.run.tags:  # launched from the UI's partition picker or `dagster job launch`
        context.instance.add_run_tags(context.run.run_id, tables_tag(keys))
    skipped = already_synced(context.instance, context.run, keys, asset_key) if syncing else set()
    if skipped:
        context.log.info(f"{len(skipped)} table(s) were synced by an earlier try of this run: {sorted(skipped)}")
    failures: dict[str, str] = {}
    tables = []
    for key in keys:
        if key in skipped:
            continue
        try:
            tables.append(table_for_partition(key, database))
        except PermanentError as e:
            failures[key] = str(e)
    return tables, failures


def _fail_unless_registered(context: dg.AssetExecutionContext, registry: str) -> None:
    """A run of a key nobody registered (`dagster job launch` takes any tag) fails at once saying which key was
    meant, instead of with Dagster's error from deep inside `partition_keys`."""
    registered = list(context.instance.get_dynamic_partitions(registry))
    named = (
        [context.partition_key]
        if context.has_partition_key
        else [context.partition_key_range.start, context.partition_key_range.end]
    )
    unknown = [key for key in named if key not in registered]
    if unknown:
        raise dg.Failure(
            "; ".join(not_registered_message(key, registered) for key in unknown)
            + ". `sync-project sync KEY` checks the key before it queues a run.",
            allow_retries=False,
        )


def _recorded(
    context: dg.AssetExecutionContext,
    report: SyncReport,
    mirror: Mirror,
    failures: dict[str, str],
    asset_key: dg.AssetKey,
    say: RunLog,
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """One synced table's partition: its materialization, then its checks (a failed blocking one fails it)."""
    table = report.table
    checked = evaluations_after_sync(report, mirror, asset_key)  # read now, reported after the materialization
    say(
        f"{table}: {report.strategy} sync, {report.rows_loaded:,} rows in {report.total_seconds:.2f}s "
        f"({report.rows_per_second:,.0f} rows/s); table now has {report.rows_total:,} rows"
        + (f"; schema: {', '.join(report.schema_changes)}" if report.schema_changes else "")
    )
    yield dg.AssetMaterialization(asset_key=asset_key, partition=table.key, metadata=to_metadata(report, mirror))
    for evaluation in checked:
        yield evaluation
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failures[table.key] = str(evaluation.description)


def _fail_if_any(failures: dict[str, str], transient: bool, retry_number: int) -> None:
    """Fail the step naming each failed table; retried only if some failure was transient."""
    if not failures:
        return
    listed = "; ".join(f"{key}: {message}" for key, message in sorted(failures.items()))
    note = f"; {retry_note(retry_number)}" if transient else ""
    prefix = "" if len(failures) == 1 else f"{len(failures)} table(s) failed: "
    raise dg.Failure(
        description=f"{prefix}{listed}{note}",
        metadata={"failed_tables": dg.MetadataValue.json(failures)},
        allow_retries=transient,
    )
