"""`sync-project`: the table chores Dagster has no verb for, and the local Snowflake.

Works against the same DAGSTER_HOME as the UI (default `.local/dagster`). Exit codes scripts can rely
on: 0 ok, 1 failure (the message says what to do), 2 usage.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sync_project.metadata import human_bytes
from sync_project.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

    from sync_project.sync.pipeline import Connect
    from sync_project.sync.tables import TableRef

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn the engine's errors into a message and exit code 1, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sync_project.sync.errors import SyncError

        try:
            return command(*args, **kwargs)
        except SyncError as e:
            raise click.ClickException(str(e)) from None

    return wrapper  # type: ignore[return-value]


def _instance() -> dg.DagsterInstance:
    import dagster as dg

    from sync_project.settings import dagster_home

    dagster_home()
    return dg.DagsterInstance.get()


def _connect(settings: Settings) -> Connect:
    from sync_project.resources import snowflake_resource

    resource = snowflake_resource(settings).process_config_and_initialize()
    return resource.get_connection  # type: ignore[no-any-return]


def _table(key: str, settings: Settings) -> TableRef:
    from sync_project.partitions import table_for_partition

    return table_for_partition(key, settings)


def to_stderr(message: str) -> None:
    """Progress for people (waiting, for instance), kept out of stdout, which scripts read."""
    click.echo(message, err=True)


def closest_key(key: str, keys: list[str]) -> str | None:
    """The registered key a mistyped one most likely meant: same letters in another case first."""
    import difflib

    by_case = {k.lower(): k for k in keys}
    if key.lower() in by_case:
        return by_case[key.lower()]
    found = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return found[0] if found else None


def not_registered(key: str, keys: list[str]) -> click.ClickException:
    close = closest_key(key, keys)
    hint = (
        f"did you mean {close}? (quoted names keep their case)"
        if close
        else f"`sync-project tables SCHEMA` lists a schema's tables; `sync-project register {key}` adds one"
    )
    return click.ClickException(f"{key} is not registered; {hint}")


def registered_table(key: str, settings: Settings, instance: dg.DagsterInstance) -> TableRef:
    """The table a key names, if it is registered; otherwise exit 1 with the closest registered key."""
    from sync_project.partitions import SNOWFLAKE_TABLES

    table = _table(key, settings)
    keys = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    if table.key not in keys:
        raise not_registered(table.key, keys)
    return table


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@click.group()
def main() -> None:
    """Mirror Snowflake tables into DuckDB; chores around the Dagster project."""


@main.command()
@click.argument("schema")
@click.option("--like", default=None, help="Snowflake LIKE pattern on the table name (% and _).")
@click.option("--json", "as_json", is_flag=True, help="Exact figures as JSON.")
@reports_errors
def tables(schema: str, like: str | None, as_json: bool) -> None:
    """List a schema's tables: rows, bytes, last altered, registered, last synced."""
    from sync_project.registry import discover

    settings = Settings.from_env()
    connect = _connect(settings)
    listings = discover(_instance(), connect, settings.snowflake_database, schema, like)
    if not listings:
        _explain_empty_listing(connect, settings.snowflake_database, schema, like)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "key": item.key,
                        "name": item.table.name,
                        "kind": item.table.kind,
                        "rows": item.table.rows,
                        "bytes": item.table.bytes,
                        "last_altered": item.table.last_altered.isoformat() if item.table.last_altered else None,
                        "registered": item.registered,
                        "last_synced": item.last_synced.isoformat() if item.last_synced else None,
                    }
                    for item in listings
                ],
                indent=2,
            )
        )
        return
    print_table(
        ["TABLE", "ROWS", "SIZE", "LAST ALTERED", "REGISTERED", "LAST SYNCED"],
        [
            [
                item.key,
                f"{item.table.rows:,}" if item.table.rows is not None else "-",
                human_bytes(item.table.bytes),
                item.table.last_altered.strftime("%Y-%m-%d %H:%M:%S") if item.table.last_altered else "-",
                "yes" if item.registered else "no",
                item.last_synced.strftime("%Y-%m-%d %H:%M:%S") if item.last_synced else "-",
            ]
            for item in listings
        ],
    )


def _explain_empty_listing(connect: Connect, database: str, schema: str, like: str | None) -> None:
    """Nothing listed: say why. A schema that is not there exits 1 with the closest one; no match, a hint."""
    from sync_project.sync.tables import quote_identifier

    with connect() as conn:
        schemas = [str(r[1]) for r in conn.cursor().execute(f"SHOW SCHEMAS IN DATABASE {quote_identifier(database)}")]
    if schema not in schemas:
        close = closest_key(schema, [s for s in schemas if s.upper() != "INFORMATION_SCHEMA"])
        hint = f"did you mean {close}? (names are case-sensitive here, as Snowflake stores them)" if close else ""
        raise click.ClickException(f"{database} has no schema {schema} that this role can see; {hint}".rstrip("; "))
    if like:
        click.echo(f"no table of {schema} matches LIKE {like!r} (% is any text, _ one character)", err=True)
    else:
        click.echo(f"{schema} has no tables or views this role can see", err=True)


def launch_syncs(keys: list[str]) -> list[list[str]]:
    """Queue syncs of these registered tables through the instance's run queue (as the UI would), not inline:
    runs of up to 25 tables, each table still its own partition with its own checks."""
    from sync_project.automation import batch_tags, batches
    from sync_project.jobs import SYNC_JOB
    from sync_project.partitions import SNOWFLAKE_TABLES
    from sync_project.settings import project_root

    registered = list(_instance().get_dynamic_partitions(SNOWFLAKE_TABLES))
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
    settings = Settings.from_env()
    instance = _instance()
    registered = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    wanted = registered if everything else [registered_table(k, settings, instance).key for k in keys]
    if not wanted:
        raise click.ClickException("no table is registered yet: sync-project register SCHEMA.TABLE")
    for batch in launch_syncs(wanted):
        what = batch[0] if len(batch) == 1 else f"{len(batch)} tables, {batch[0]} .. {batch[-1]}"
        click.echo(f"queued a sync of {what} (see the Runs page)")


@main.command()
@click.argument("keys", nargs=-1)
@click.option("--schema", default=None, help="With --like: register the schema's matching tables.")
@click.option("--like", default=None, help="Snowflake LIKE pattern (% and _), with --schema.")
@click.option("--sync", "sync_now", is_flag=True, help="Queue a first sync of each newly registered table.")
@click.option(
    "--strategy", type=click.Choice(["full", "incremental"]), default=None, help="How to sync (default full)."
)
@click.option("--cursor", default=None, help="Incremental: the column whose growth marks new rows (exact name).")
@click.option("--primary-key", default=None, help="Incremental: key column(s), comma-separated (default: declared).")
@reports_errors
def register(
    keys: tuple[str, ...],
    schema: str | None,
    like: str | None,
    sync_now: bool,
    strategy: str | None,
    cursor: str | None,
    primary_key: str | None,
) -> None:
    """Register tables (SCHEMA.TABLE ...) as partitions, after DESC TABLE proves each one.

    A missing table, a view or an unsupported column type is refused with the reason, and then nothing is
    added. Registering a table twice is harmless; registering it with other options changes them.
    """
    from sync_project import registry
    from sync_project.sync.state import TableOptions

    if not keys and not (schema and like):
        raise click.UsageError("give SCHEMA.TABLE keys, or --schema and --like")
    settings = Settings.from_env()
    connect = _connect(settings)
    tables = [_table(k, settings) for k in keys]
    if schema and like:
        tables += registry.matching_tables(connect, settings.snowflake_database, schema, like)
    if not tables:
        raise click.ClickException(f"no table in {schema} matches {like!r}; nothing registered")
    options = None
    if strategy or cursor or primary_key:
        key_columns = tuple(k.strip() for k in (primary_key or "").split(",") if k.strip())
        options = TableOptions(
            "incremental" if (strategy or ("incremental" if cursor else "full")) == "incremental" else "full",
            cursor,
            key_columns,
        )
    done = registry.register(
        _instance(),
        connect,
        tables,
        options,
        settings.duckdb_path,
        settings.lock_timeout_seconds,
        log=to_stderr,
        lake=settings.lake,
    )
    new = done.new
    for key in done.new:
        click.echo(f"registered {key}" + (f" ({done.changed[key]})" if key in done.changed else ""))
    for key in done.existing:
        click.echo(
            f"{key} was registered already; options changed: {done.changed[key]}"
            if key in done.changed
            else f"{key} was registered already (options unchanged)"
        )
    if sync_now and new:
        for batch in launch_syncs(new):
            click.echo(f"queued a sync of {', '.join(batch)} (see the Runs page)")


@main.command()
@click.argument("key")
@click.option("--drop", is_flag=True, help="Drop the DuckDB table too.")
@reports_errors
def deregister(key: str, drop: bool) -> None:
    """Remove a table from the registry; its DuckDB table stays unless --drop."""
    from sync_project.partitions import SNOWFLAKE_TABLES
    from sync_project.registry import deregister as remove

    settings = Settings.from_env()
    instance = _instance()
    table = _table(key, settings)
    keys = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    message = remove(
        instance, table, settings.duckdb_path, drop, settings.lock_timeout_seconds, to_stderr, lake=settings.lake
    )
    if table.key not in keys and "no DuckDB table" in message:
        raise not_registered(table.key, keys)  # nothing to do: most likely a typo
    click.echo(message)


@main.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Everything as JSON.")
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for a sync writing DuckDB.")
@reports_errors
def status(key: str | None, as_json: bool, wait: float) -> None:
    """Last run, last successful sync, check result, last error and DuckDB figures of registered tables."""
    from sync_project.partitions import registered_tables
    from sync_project.registry import table_status

    settings = Settings.from_env()
    instance = _instance()
    tables = [registered_table(key, settings, instance)] if key else registered_tables(instance, settings)
    reports = [
        table_status(instance, t, settings.duckdb_path, wait, settings.mirror_path, log=to_stderr, lake=settings.lake)
        for t in tables
    ]
    if as_json:
        click.echo(json.dumps(reports, indent=2, default=str))
        return
    for report in reports:
        for line in status_lines(report):
            click.echo(line)


def status_lines(report: dict[str, Any]) -> list[str]:
    """The human view of one table's status report."""
    lines = [report["table"] + ("" if report["registered"] else "  (not registered)")]
    options = report["options"]
    how = options["strategy"]
    if options["strategy"] == "incremental":
        key = ", ".join(options["primary_key"]) or "none (append)"
        how += f" on {options['cursor_column']}, key {key}, high-water mark {report['high_water_mark'] or '-'}"
    lines.append(f"  strategy:     {how}")
    run = report["last_run"]
    if run:
        took = f"{run['seconds']}s" if run["seconds"] is not None else "still going"
        started = run["started"] or "not started yet"
        lines.append(f"  last run:     {run['status']} {started} ({took}) {run['run_id']}")
    else:
        lines.append("  last run:     none")
    synced = report["last_successful_sync"]
    if synced:
        rows = f"{synced['rows']:,}" if synced["rows"] is not None else "?"
        lines.append(
            f"  last synced:  {synced['at']}, {synced['strategy']}: the table had {rows} rows after it; "
            f"it unloaded {human_bytes(synced['bytes'])} of Parquet"
        )
    else:
        lines.append("  last synced:  never")
    check = report["row_count_check"]
    if check:
        verdict = "passed" if check["passed"] else f"FAILED ({check['severity']})"
        lines.append(f"  row count:    {verdict} {check['description'] or ''}".rstrip())
    else:
        lines.append("  row count:    not checked")
    failed = report["last_failed_run"]
    if failed:
        lines.append(f"  last failure: {failed['started']} {failed['run_id']}: {failed['error']}")
    duck = report["duckdb"]
    lines.append(
        f"  duckdb:       {report['duckdb_relation']}, {duck['rows']:,} rows, {human_bytes(duck['bytes'])}"
        if duck["exists"]
        else "  duckdb:       no table"
    )
    if duck.get("read_from"):
        lines.append(f"  read from:    {duck['read_from']}")
    return lines


@main.command()
@click.argument("key")
@reports_errors
def rebuild(key: str) -> None:
    """Forget a table's sync state and rebuild it with a full sync, now, in this process.

    The old DuckDB table stays readable until the rebuilt one replaces it in one transaction.
    """
    import dagster as dg

    from sync_project.definitions import build_definitions
    from sync_project.jobs import SYNC_JOB, in_process_run_tags

    settings = Settings.from_env()
    instance = _instance()
    table = registered_table(key, settings, instance)
    result = (
        build_definitions(settings)
        .resolve_job_def(SYNC_JOB)
        .execute_in_process(
            tags=in_process_run_tags(table.key),
            run_config={"ops": {"snowflake_table": {"config": {"rebuild": True}}}},
            instance=instance,
            raise_on_error=False,
        )
    )
    if not result.success:
        failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        reason = (
            failures[-1].step_failure_data.error.message.strip()
            if failures and failures[-1].step_failure_data and failures[-1].step_failure_data.error
            else "see the run"
        )
        raise click.ClickException(f"rebuild of {table.key} failed (run {result.run_id}): {reason}")
    from sync_project.history import sync_figures

    (materialization,) = result.asset_materializations_for_node("snowflake_table")
    rows = sync_figures(materialization)["rows_total"]
    click.echo(f"rebuilt {table.key}: {rows:,} rows (run {result.run_id})")


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
    settings = Settings.from_env()
    table = _table(key, settings)
    keys = list(_instance().get_dynamic_partitions(SNOWFLAKE_TABLES))
    sys.stdout.flush()
    try:
        result = write_sample(
            settings.duckdb_path,
            table,
            output or sys.stdout.buffer,
            rows=random_rows if random_rows is not None else (first if first is not None else 10),
            mode="random" if random_rows is not None else "first",
            fmt=fmt,  # type: ignore[arg-type]
            lock_timeout=wait,
            published=settings.mirror_path,
            log=to_stderr,
            seed=seed,
            lake=settings.lake,
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
    from sync_project.sync.publish import publish as publish_mirror

    settings = Settings.from_env()
    report = publish_mirror(
        settings.duckdb_path,
        settings.mirror_path,
        storage_version=settings.published_storage_version,
        lock_timeout=settings.lock_timeout_seconds,
        log=to_stderr,
    )
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
    from sync_project.resources import build_resources

    settings = Settings.from_env()
    resources = build_resources(settings)
    snowflake = resources["snowflake"].process_config_and_initialize()
    try:
        instance = _instance()
    except Exception:  # the report says what is wrong with it
        instance = None
    report = diagnose(instance, snowflake, resources["duckdb"])
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report_lines(report):
            click.echo(line)
    sys.exit(0 if report.passed else 1)


@main.command()
@click.option("--name", default=None, help="This worker's name (default sync-<pid>); Celery adds @host.")
@click.option(
    "--download-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Its own download folder (default SYNC_DOWNLOAD_DIR/<name>).",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=1, help="Runs at a time (default 1).")
@reports_errors
def worker(name: str | None, download_dir: Path | None, concurrency: int) -> None:
    """Run a Celery worker of the team profile: it executes the sync runs the daemon launches."""
    from sync_project.team.worker import run_worker, worker_plan

    run_worker(worker_plan(Settings.from_env(), name, download_dir, concurrency))


@main.command("local-snowflake")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default LOCAL_SNOWFLAKE_PORT or 8765; 0 = free port).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Folder that keeps its state.")
@click.option("--demo-rows", type=click.IntRange(min=0), default=None, help="Create the demo tables first.")
def local_snowflake(host: str | None, port: int | None, data_dir: Path | None, demo_rows: int | None) -> None:
    """Run the embedded Snowflake in the foreground and print how to connect to it."""
    from sync_project.local_snowflake import PortInUseError, check_port_free, connection_settings, free_port
    from sync_project.local_snowflake.environment import emulator_command, emulator_environment

    settings = Settings.from_env()
    host = host or settings.local_host
    port = settings.local_port if port is None else port
    port = port or free_port(host)
    data_dir = data_dir or settings.local_data_dir
    try:
        check_port_free(host, port, "the embedded Snowflake")
    except PortInUseError as e:
        raise click.ClickException(str(e)) from None
    click.echo("local Snowflake listening; connect with snowflake.connector.connect(**settings):")
    click.echo(json.dumps(connection_settings(host, port), indent=2))
    click.echo(f"data folder: {data_dir}")
    args = ["--data-dir", str(data_dir), "--host", host, "--port", str(port)]
    if demo_rows is not None:
        args += ["--demo-rows", str(demo_rows)]
    command = emulator_command(*args)
    sys.stdout.flush()
    os.execve(command[0], command, emulator_environment())  # noqa: S606 - the server in its own environment, this PID


def connect_info_lines(host: str, port: int) -> list[str]:
    """How to reach the demo's Snowflake from a notebook, the connector, or this project's account path."""
    from sync_project.local_snowflake import connection_settings
    from sync_project.local_snowflake.demo import DEMO_DATABASE

    settings = connection_settings(host, port) | {"database": DEMO_DATABASE}
    return [
        f"the demo's Snowflake (the embedded one) answers on http://{host}:{port}; from Python:",
        "  import snowflake.connector",
        f"  conn = snowflake.connector.connect(**{json.dumps(settings)})",
        "or through this project's account code path:",
        f"  export SNOWFLAKE_ACCOUNT=local SNOWFLAKE_HOST={host} SNOWFLAKE_PORT={port} SNOWFLAKE_PROTOCOL=http \\",
        f"         SNOWFLAKE_USER={settings['user']} SNOWFLAKE_PASSWORD={settings['password']} "
        f"SNOWFLAKE_WAREHOUSE={settings['warehouse']} SNOWFLAKE_DATABASE={DEMO_DATABASE}",
    ]


def _stop_group(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """Stop a process and everything it started (its own session): SIGTERM, then SIGKILL after `grace` s."""
    import signal

    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _stop_on_sigterm() -> None:
    """Ctrl-C and SIGTERM both stop the demo, and its children never inherit an ignored SIGINT or SIGTERM
    (a backgrounded `make demo` starts with SIGINT ignored, and Dagster copies that to SIGTERM)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)


@main.command()
@click.option("--rows", type=click.IntRange(min=0), default=None, help='Rows in the demo\'s "data" table.')
@click.option("--ui-port", type=int, default=3000, show_default=True)
@click.option("--no-ui", is_flag=True, help="Stop after the first syncs instead of serving the UI.")
@click.option("--connect-info", is_flag=True, help="Print how to connect to the demo's Snowflake, and exit.")
@reports_errors
def demo(rows: int | None, ui_port: int, no_ui: bool, connect_info: bool) -> None:
    """Embedded Snowflake with demo data, demo tables registered and synced once, then the Dagster UI.

    Ctrl-C or SIGTERM stops all of it. A second demo (or anything else on its ports) is refused at once.
    """
    import dataclasses

    from sync_project.definitions import build_definitions
    from sync_project.jobs import SYNC_JOB, in_process_run_tags
    from sync_project.local_snowflake import LocalSnowflakeProcess, PortInUseError, check_port_free
    from sync_project.local_snowflake.demo import DEFAULT_DEMO_ROWS, DEMO_SCHEMA, DEMO_TABLES
    from sync_project.registry import register as register_tables
    from sync_project.settings import LOCAL_SNOWFLAKE_PORT, local_state_dir, project_root
    from sync_project.sync.publish import publish as publish_mirror
    from sync_project.sync.tables import TableRef

    settings = Settings.from_env()
    if connect_info:
        for line in connect_info_lines(settings.local_host, settings.local_port):
            click.echo(line)
        return
    try:
        check_port_free(settings.local_host, settings.local_port, "the embedded Snowflake")
        if not no_ui:
            check_port_free("127.0.0.1", ui_port, "the Dagster UI")
    except PortInUseError as e:
        raise click.ClickException(str(e)) from None
    _stop_on_sigterm()
    instance = _instance()
    snowflake = LocalSnowflakeProcess(
        data_dir=settings.local_data_dir,
        host=settings.local_host,
        port=settings.local_port,
        demo_rows=DEFAULT_DEMO_ROWS if rows is None else rows,
        log_file=local_state_dir() / "local-snowflake.log",
    )
    click.echo(f"starting the local Snowflake on {snowflake.base_url} (log: {snowflake.log_file})")
    workspace = str(project_root() / "workspace.yaml")
    with contextlib.suppress(KeyboardInterrupt), snowflake:
        os.environ[LOCAL_SNOWFLAKE_PORT] = str(snowflake.port)
        settings = dataclasses.replace(settings, local_port=snowflake.port)
        tables = [TableRef(settings.snowflake_database, DEMO_SCHEMA, name) for name in DEMO_TABLES]
        register_tables(instance, _connect(settings), tables)
        definitions = build_definitions(settings)
        for table in tables:
            result = definitions.resolve_job_def(SYNC_JOB).execute_in_process(
                tags=in_process_run_tags(table.key), instance=instance, raise_on_error=False
            )
            click.echo(f"synced {table}: {'ok' if result.success else 'FAILED (see the run in the UI)'}")
        published = publish_mirror(
            settings.duckdb_path,
            settings.mirror_path,
            storage_version=settings.published_storage_version,
            lock_timeout=settings.lock_timeout_seconds,
        )
        click.echo(f"published the mirror for readers: {published.published_path} (open it read-only)")
        click.echo(f"the demo's Snowflake: {snowflake.base_url} (sync-project demo --connect-info says how to connect)")
        if no_ui:
            return
        click.echo("for the README's commands, in another shell from the repository's root:")
        click.echo("  source .venv/bin/activate")
        click.echo(f"  export DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '$PWD/.local/dagster')}")
        click.echo(f"Dagster UI on http://127.0.0.1:{ui_port} (Ctrl-C stops everything)")
        dagster = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(ui_port), "-w", workspace]
        ui = subprocess.Popen(dagster, start_new_session=True)
        try:
            ui.wait()
        finally:
            _stop_group(ui)
    click.echo("stopped the Dagster UI and the local Snowflake")


if __name__ == "__main__":
    main()
