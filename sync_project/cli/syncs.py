"""Syncs and the mirror: queue syncs, rebuild a table, sample it, publish, doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from sync_project.cli.common import (
    cli_instance,
    main,
    not_registered,
    project_mirror,
    registered_table,
    reports_errors,
    to_stderr,
)
from sync_project.metadata import human_bytes


def launch_syncs(keys: list[str]) -> list[list[str]]:
    """Queue syncs of these registered tables through the instance's run queue (as the UI would), not inline:
    runs of up to 25 tables, each table still its own partition with its own checks."""
    from sync_project.automation import batch_tags, batches
    from sync_project.jobs import SYNC_JOB
    from sync_project.partitions import SNOWFLAKE_TABLES
    from sync_project.settings import project_root

    registered = list(cli_instance().get_dynamic_partitions(SNOWFLAKE_TABLES))
    queued = []
    for batch in batches(registered, set(keys)):
        done = subprocess.run(
            [sys.executable, "-m", "dagster", "job", "launch", "-j", SYNC_JOB,
             "-w", str(project_root() / "workspace.yaml"), "--tags", json.dumps(batch_tags(batch))],
            env=os.environ, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise click.ClickException(f"could not queue a sync of {', '.join(batch)}: {done.stderr.strip()[-500:]}")
        queued.append(batch)
    return queued


@main.command()
@click.argument("keys", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every registered table.")
@reports_errors
def sync(keys: tuple[str, ...], everything: bool) -> None:
    """Queue syncs of registered tables (KEYS, or --all) in runs of up to 25 tables for the daemon.

    What `dagster job backfill` cannot do: it launches one run (one process start-up) per table.
    """
    from sync_project.partitions import SNOWFLAKE_TABLES

    if not keys and not everything:
        raise click.UsageError("give SCHEMA.TABLE keys, or --all")
    instance = cli_instance()
    registered = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    wanted = registered if everything else [registered_table(k, project_mirror(), instance).key for k in keys]
    if not wanted:
        raise click.ClickException("no table is registered yet: sync-project register SCHEMA.TABLE")
    for batch in launch_syncs(wanted):
        what = batch[0] if len(batch) == 1 else f"{len(batch)} tables, {batch[0]} .. {batch[-1]}"
        click.echo(f"queued a sync of {what} (see the Runs page)")


@main.command()
@click.argument("key")
@reports_errors
def rebuild(key: str) -> None:
    """Forget a table's sync state and rebuild it with a full sync, now, in this process.

    The old DuckDB table stays readable until the rebuilt one replaces it in one transaction.
    """
    import dagster as dg

    from sync_project.assets import INTERRUPTED
    from sync_project.cli.in_process import EXIT_INTERRUPTED, sigterm_as_ctrl_c, sync_in_process

    project = project_mirror()
    instance = cli_instance()
    table = registered_table(key, project, instance)
    with sigterm_as_ctrl_c():
        result = sync_in_process(project.definitions, instance, table.key, rebuild=True)
    if not result.success:
        failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        reason = (
            failures[-1].step_failure_data.error.message.strip()
            if failures and failures[-1].step_failure_data and failures[-1].step_failure_data.error
            else "see the run"
        ).removeprefix("dagster._core.definitions.events.Failure: ")
        if reason.startswith(INTERRUPTED):
            to_stderr(f"rebuild of {table.key} {reason} (run {result.run_id})")
            sys.exit(EXIT_INTERRUPTED)
        raise click.ClickException(f"rebuild of {table.key} failed (run {result.run_id}): {reason}")
    from sync_project.sync_record import SyncRecord

    (materialization,) = result.asset_materializations_for_node("snowflake_table")
    rows = SyncRecord.from_materialization(materialization).rows
    click.echo(f"rebuilt {table.key}: {rows or 0:,} rows (run {result.run_id})")


@main.command()
@click.argument("keys", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Verify every registered table.")
@reports_errors
def verify(keys: tuple[str, ...], everything: bool) -> None:
    """Check tables now, without syncing them: the content check compares the aggregates of every column in
    Snowflake and in DuckDB (one aggregate query in Snowflake per table), beside the row-count and schema checks.
    Each table is a run of the verify job (its verdicts are its checks in the UI); names the columns that differ,
    and exits 1 if any table differs."""
    import dagster as dg

    from sync_project.checks import CONTENT_CHECK
    from sync_project.cli.in_process import verify_in_process
    from sync_project.partitions import SNOWFLAKE_TABLES

    project = project_mirror()
    instance = cli_instance()
    if not keys and not everything:
        raise click.UsageError("give SCHEMA.TABLE keys, or --all")
    registered = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    wanted = registered if everything else [registered_table(k, project, instance).key for k in keys]
    differing = []
    for key in wanted:
        result = verify_in_process(project.definitions, instance, key)
        checked = result.get_asset_check_evaluations()
        content = [c for c in checked if c.check_name == CONTENT_CHECK]
        if not content:
            raise click.ClickException(f"verifying {key} failed (run {result.run_id}); see the run")
        click.echo(str(content[0].description))
        if not all(c.passed for c in checked if c.severity == dg.AssetCheckSeverity.ERROR) or not content[0].passed:
            differing.append(key)
    if differing:
        raise click.ClickException(
            f"{len(differing)} of {len(wanted)} table(s) differ from Snowflake: {', '.join(differing)}; a full sync "
            "mends each (sync-project rebuild KEY)"
        )


@main.command()
@click.argument("key")
@click.option("--first", "first", type=click.IntRange(min=0), default=None, help="The first N rows (default 10).")
@click.option("--random", "random_rows", type=click.IntRange(min=0), default=None, help="N random rows (uniform).")
@click.option("--seed", type=int, default=None, help="With --random: the same seed draws the same rows.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "parquet"]), default="json", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="File to write (default stdout).")
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for a sync writing DuckDB.")
@reports_errors
def sample(
    key: str, first: int | None, random_rows: int | None, seed: int | None, fmt: str, output: Path | None, wait: float
) -> None:
    """Rows of a synced table as JSON lines, CSV or Parquet (DuckDB types intact), streamed to a file."""
    from sync_project.partitions import SNOWFLAKE_TABLES
    from sync_project.sync.errors import PermanentError
    from sync_project.sync.sample import write_sample

    if first is not None and random_rows is not None:
        raise click.UsageError("choose --first or --random, not both")
    if fmt == "parquet" and output is None:
        raise click.UsageError("Parquet needs --output FILE")
    project = project_mirror()
    table = project.table(key)
    keys = list(cli_instance().get_dynamic_partitions(SNOWFLAKE_TABLES))
    sys.stdout.flush()
    try:
        result = write_sample(
            project.mirror,
            table,
            output or sys.stdout.buffer,
            rows=random_rows if random_rows is not None else (first if first is not None else 10),
            mode="random" if random_rows is not None else "first",
            fmt=fmt,  # type: ignore[arg-type]
            wait=wait,
            log=to_stderr,
            seed=seed,
        )
    except PermanentError as e:
        if table.key not in keys:
            raise not_registered(table.key, keys) from None
        raise click.ClickException(str(e)) from None
    sys.stdout.flush()
    if table.key not in keys:
        # A deregistered table whose DuckDB table was kept: it can still be read.
        click.echo(
            f"note: {table.key} is not registered; this is the DuckDB table kept when it was deregistered", err=True
        )
    if output is not None:
        click.echo(f"wrote {result.rows:,} rows to {output} (read from {result.source})", err=True)
    elif "published" in result.source:
        click.echo(f"read from {result.source}", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="What was published, as JSON.")
@reports_errors
def publish(as_json: bool) -> None:
    """Publish the mirror now: a new snapshot of the working file behind SYNC_PUBLISHED_PATH.

    Readers that have the previous snapshot open keep it until they disconnect; new readers get this one.
    The publish_after_syncs sensor does this after syncs; this is for an immediate one.
    """
    from sync_project.sync.mirror import NothingToDo

    duckdb = project_mirror().duckdb
    try:
        report = duckdb.mirror.publish(duckdb.published_storage_version, log=to_stderr)
    except NothingToDo as e:
        click.echo(str(e), err=True)
        return
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(
        f"published {len(report.tables)} table(s) to {report.published_path} ({human_bytes(report.bytes)}, "
        f"storage version {report.storage_version}) in {report.seconds:.2f}s"
    )
    if report.still_open:
        click.echo(f"{len(report.still_open)} older snapshot(s) stay until their readers disconnect")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The checks as JSON, for scripts.")
def doctor(as_json: bool) -> None:
    """Check that a sync will work from here: sign-in, warehouse, database, stage, tables, local side.

    One line per check, each failed one with its fix; exit code 0 only when every check passed. Touches
    nothing it does not clean up, and prints no secret.
    """
    from sync_project.doctor import diagnose, report_lines

    project = project_mirror()
    snowflake = project.snowflake.resolved()
    try:
        instance = cli_instance()
    except Exception:  # the report says what is wrong with it
        instance = None
    report = diagnose(instance, snowflake, project.duckdb)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report_lines(report):
            click.echo(line)
    sys.exit(0 if report.passed else 1)
