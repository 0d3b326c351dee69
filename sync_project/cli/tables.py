"""Table chores: list a schema, register and deregister tables, their status."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from sync_project.metadata import human_bytes
from sync_project.settings import Settings

if TYPE_CHECKING:
    from sync_project.sync.pipeline import Connect

from sync_project.cli.common import (
    cli_instance,
    main,
    not_registered,
    print_table,
    registered_table,
    reports_errors,
    snowflake_connect,
    table_from_key,
    to_stderr,
)
from sync_project.cli.syncs import launch_syncs


@main.command()
@click.argument("schema")
@click.option("--like", default=None, help="Snowflake LIKE pattern on the table name (% and _).")
@click.option("--json", "as_json", is_flag=True, help="Exact figures as JSON.")
@reports_errors
def tables(schema: str, like: str | None, as_json: bool) -> None:
    """List a schema's tables: rows, bytes, last altered, registered, last synced."""
    from sync_project.registry import discover

    settings = Settings.from_env()
    connect = snowflake_connect(settings)
    listings = discover(cli_instance(), connect, settings.snowflake_database, schema, like)
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
        [[cell for i, cell in enumerate(item.cells()) if i != 1] for item in listings],  # no kind column
    )


def _explain_empty_listing(connect: Connect, database: str, schema: str, like: str | None) -> None:
    """Nothing listed: say why. A schema that is not there exits 1 with the closest one; no match, a hint."""
    from sync_project.sync.tables import quote_identifier

    with connect() as conn:
        schemas = [str(r[1]) for r in conn.cursor().execute(f"SHOW SCHEMAS IN DATABASE {quote_identifier(database)}")]
    if schema not in schemas:
        from sync_project.partitions import closest_key

        close = closest_key(schema, [s for s in schemas if s.upper() != "INFORMATION_SCHEMA"])
        hint = f"did you mean {close}? (names are case-sensitive here, as Snowflake stores them)" if close else ""
        raise click.ClickException(f"{database} has no schema {schema} that this role can see; {hint}".rstrip("; "))
    if like:
        click.echo(f"no table of {schema} matches LIKE {like!r} (% is any text, _ one character)", err=True)
    else:
        click.echo(f"{schema} has no tables or views this role can see", err=True)


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
    connect = snowflake_connect(settings)
    tables = [table_from_key(k, settings) for k in keys]
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
        cli_instance(),
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
    from sync_project.resources import duckdb_resource

    settings = Settings.from_env()
    instance = cli_instance()
    table = table_from_key(key, settings)
    keys = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    message = remove(instance, table, duckdb_resource(settings), drop)
    if table.key not in keys and "no DuckDB table" in message:
        raise not_registered(table.key, keys)  # nothing to do: most likely a typo
    click.echo(message)


@main.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Everything as JSON.")
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for a sync writing DuckDB.")
@reports_errors
def status(key: str | None, as_json: bool, wait: float) -> None:
    """Last run, last successful sync, check result, last error and DuckDB figures of registered tables.

    Exit code 1 when the next sync could not write the DuckDB file (SYNC_DUCKDB_PATH), naming why."""
    from sync_project.partitions import registered_tables
    from sync_project.registry import table_status

    settings = Settings.from_env()
    instance = cli_instance()
    tables = (
        [registered_table(key, settings, instance)] if key else registered_tables(instance, settings.snowflake_database)
    )
    reports = [
        table_status(instance, t, settings.duckdb_path, wait, settings.mirror_path, log=to_stderr, lake=settings.lake)
        for t in tables
    ]
    if as_json:
        click.echo(json.dumps(reports, indent=2, default=str))
    else:
        for report in reports:
            for line in status_lines(report):
                click.echo(line)
    if any(r["duckdb"]["problem"] for r in reports):  # the next sync would fail: say so to scripts too
        sys.exit(1)


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
    if duck.get("problem"):
        lines.append(f"  problem:      {duck['problem']}")
    return lines
