"""Table chores: list a schema, register and deregister tables, their status."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sync_project.sync.options import Connect
    from sync_project.sync.state import Deletes, Extract, TableOptions, Verify

from sync_project.cli.common import (
    cli_instance,
    main,
    not_registered,
    print_table,
    project_mirror,
    registered_table,
    reports_errors,
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

    project = project_mirror()
    connect = project.connect
    listings = discover(cli_instance(), connect, project.database, schema, like)
    if not listings:
        _explain_empty_listing(connect, project.database, schema, like)
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
    from sync_project.sync.catalog import list_schemas

    with connect() as conn:
        schemas = list_schemas(conn, database)
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
@click.option(
    "--extract",
    type=click.Choice(["auto", "unload", "results"]),
    default=None,
    help="The way out of Snowflake for these tables: a stage unload, the result set, or auto by size "
    "(default: the mirror's SYNC_EXTRACT). Given alone, it keeps the tables' other options.",
)
@click.option(
    "--deletes",
    type=click.Choice(["remove", "keep", "mark"]),
    default=None,
    help="Incremental with a key: rows deleted in Snowflake are removed from DuckDB (default), kept, or kept and "
    "marked with _sync_deleted_at. Give it with the incremental options.",
)
@click.option(
    "--verify",
    type=click.Choice(["counts", "content"]),
    default=None,
    help="What proves each sync: row counts (default), or also the content check (one aggregate query in "
    "Snowflake per sync). Given alone, it keeps the tables' other options.",
)
@reports_errors
def register(
    keys: tuple[str, ...],
    schema: str | None,
    like: str | None,
    sync_now: bool,
    strategy: str | None,
    cursor: str | None,
    primary_key: str | None,
    extract: Extract | None,
    deletes: Deletes | None,
    verify: Verify | None,
) -> None:
    """Register tables (SCHEMA.TABLE ...) as partitions, after DESC TABLE proves each one.

    A missing table, a view or an unsupported column type is refused with the reason, and then nothing is
    added. Registering a table twice is harmless; registering it with other options changes them.
    """
    from sync_project import registry

    if not keys and not (schema and like):
        raise click.UsageError("give SCHEMA.TABLE keys, or --schema and --like")
    project = project_mirror()
    connect = project.connect
    tables = [project.table(k) for k in keys]
    if schema and like:
        tables += registry.matching_tables(connect, project.database, schema, like)
    if not tables:
        raise click.ClickException(f"no table in {schema} matches {like!r}; nothing registered")
    options = _options_given(strategy, cursor, primary_key, deletes)
    done = registry.register(
        cli_instance(),
        connect,
        tables,
        options,
        project.mirror,
        log=to_stderr,
        extract=extract,
        verify=verify,
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


def _options_given(
    strategy: str | None, cursor: str | None, primary_key: str | None, deletes: Deletes | None
) -> TableOptions | None:
    """The options `register` was given, or None to keep the tables' own (--extract or --verify alone)."""
    from sync_project.sync.state import TableOptions

    if deletes and not (strategy == "incremental" or cursor):
        raise click.UsageError("--deletes applies to incremental syncs: give it with --strategy incremental --cursor")
    if not (strategy or cursor or primary_key):
        return None
    key_columns = tuple(k.strip() for k in (primary_key or "").split(",") if k.strip())
    return TableOptions(
        "incremental" if (strategy or ("incremental" if cursor else "full")) == "incremental" else "full",
        cursor,
        key_columns,
        deletes=deletes,
    )


@main.command()
@click.argument("key")
@click.option("--drop", is_flag=True, help="Drop the DuckDB table too.")
@reports_errors
def deregister(key: str, drop: bool) -> None:
    """Remove a table from the registry; its DuckDB table stays unless --drop."""
    from sync_project.partitions import SNOWFLAKE_TABLES
    from sync_project.registry import deregister as remove

    project = project_mirror()
    instance = cli_instance()
    table = project.table(key)
    keys = list(instance.get_dynamic_partitions(SNOWFLAKE_TABLES))
    message = remove(instance, table, project.duckdb, drop)
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
    from sync_project.status import table_status

    project = project_mirror()
    instance = cli_instance()
    tables = [registered_table(key, project, instance)] if key else registered_tables(instance, project.database)
    mirror = project.mirror
    reports = [table_status(instance, t, mirror, wait, log=to_stderr) for t in tables]
    if as_json:
        click.echo(json.dumps([r.as_json() for r in reports], indent=2, default=str))
    else:
        for report in reports:
            for line in report.lines():
                click.echo(line)
    if any(r.problem for r in reports):  # the next sync would fail: say so to scripts too
        sys.exit(1)
