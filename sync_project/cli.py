"""`sync-project`: the table chores Dagster has no verb for, and the local Snowflake.

Exit codes scripts can rely on: 0 ok, 1 failure, 2 usage (click's own).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from sync_project.settings import Settings


@click.group()
def main() -> None:
    """Mirror Snowflake tables into DuckDB; chores around the Dagster project."""


@main.command("local-snowflake")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default LOCAL_SNOWFLAKE_PORT or 8765; 0 = free port).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Folder that keeps its state.")
@click.option("--demo-rows", type=click.IntRange(min=0), default=None, help="Create the demo tables first.")
def local_snowflake(host: str | None, port: int | None, data_dir: Path | None, demo_rows: int | None) -> None:
    """Run the embedded Snowflake in the foreground and print how to connect to it."""
    from sync_project.local_snowflake import connection_settings, free_port, serve

    settings = Settings.from_env()
    host = host or settings.local_host
    port = settings.local_port if port is None else port
    port = port or free_port(host)
    data_dir = data_dir or settings.local_data_dir
    click.echo("local Snowflake listening; connect with snowflake.connector.connect(**settings):")
    click.echo(json.dumps(connection_settings(host, port), indent=2))
    click.echo(f"data folder: {data_dir}", err=False)
    serve(data_dir, host, port, demo_rows)


@main.command()
@click.option("--rows", type=click.IntRange(min=0), default=None, help='Rows in the demo\'s "data" table.')
@click.option("--ui-port", type=int, default=3000, show_default=True)
@click.option("--no-ui", is_flag=True, help="Stop after the first syncs instead of serving the UI.")
def demo(rows: int | None, ui_port: int, no_ui: bool) -> None:
    """Embedded Snowflake with demo data, demo tables registered and synced once, then the Dagster UI."""
    import dataclasses
    import os
    import shutil
    import subprocess
    import sys

    import dagster as dg

    from sync_project.definitions import build_definitions
    from sync_project.jobs import SYNC_JOB
    from sync_project.local_snowflake import LocalSnowflakeProcess
    from sync_project.local_snowflake.demo import DEFAULT_DEMO_ROWS, DEMO_SCHEMA, DEMO_TABLES
    from sync_project.partitions import register_tables
    from sync_project.resources import snowflake_resource
    from sync_project.settings import LOCAL_SNOWFLAKE_PORT, local_state_dir, project_root
    from sync_project.sync.tables import TableRef

    settings = Settings.from_env()
    state = local_state_dir()
    dagster_home = state / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(project_root() / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    snowflake = LocalSnowflakeProcess(
        data_dir=settings.local_data_dir,
        host=settings.local_host,
        port=settings.local_port,
        demo_rows=DEFAULT_DEMO_ROWS if rows is None else rows,
        log_file=state / "local-snowflake.log",
    )
    click.echo(f"starting the local Snowflake on {snowflake.base_url} (log: {snowflake.log_file})")
    with snowflake:
        os.environ[LOCAL_SNOWFLAKE_PORT] = str(snowflake.port)
        settings = dataclasses.replace(settings, local_port=snowflake.port)
        definitions = build_definitions(settings)
        instance = dg.DagsterInstance.get()
        tables = [TableRef(settings.snowflake_database, DEMO_SCHEMA, name) for name in DEMO_TABLES]
        register_tables(instance, snowflake_resource(settings).get_connection, tables)
        for table in tables:
            result = definitions.get_job_def(SYNC_JOB).execute_in_process(
                tags={"dagster/partition": table.key}, instance=instance, raise_on_error=False
            )
            click.echo(f"synced {table}: {'ok' if result.success else 'FAILED (see the run in the UI)'}")
        if no_ui:
            return
        click.echo(f"Dagster UI on http://127.0.0.1:{ui_port} (Ctrl-C stops everything)")
        dagster = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(ui_port)]
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run([*dagster, "-w", str(project_root() / "workspace.yaml")], check=False)


if __name__ == "__main__":
    main()
