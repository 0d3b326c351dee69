"""One machine's processes: the embedded Snowflake, the demo, a Celery worker of the team profile."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sync_project.cli.common import cli_instance, main, project_mirror, reports_errors
from sync_project.process import stop_dagster_processes_of
from sync_project.settings import LocalSnowflake, absolute_paths, dagster_home

if TYPE_CHECKING:
    import dagster as dg


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

    run_worker(worker_plan(project_mirror().duckdb, name, download_dir, concurrency))


@main.command("local-snowflake")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default LOCAL_SNOWFLAKE_PORT or 8765; 0 = free port).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Folder that keeps its state.")
@click.option("--demo-rows", type=click.IntRange(min=0), default=None, help="Create the demo tables first.")
def local_snowflake(host: str | None, port: int | None, data_dir: Path | None, demo_rows: int | None) -> None:
    """Run the embedded Snowflake in the foreground and print how to connect to it."""
    from sync_project.embedded_snowflake import LocalSnowflakeProcess, PortInUseError, connection_settings, free_port

    local = LocalSnowflake.from_env()
    host = host or local.host
    port = local.port if port is None else port
    server = LocalSnowflakeProcess(
        data_dir or local.data_dir, host, port or free_port(host), demo_rows, inherit_output=True
    )
    _stop_on_sigterm()
    try:
        server.start()
    except PortInUseError as e:
        raise click.ClickException(str(e)) from None
    click.echo("local Snowflake listening; connect with snowflake.connector.connect(**settings):")
    click.echo(json.dumps(connection_settings(host, server.port), indent=2))
    click.echo(f"data folder: {server.data_dir}")
    if server.demo_tables:
        click.echo(f"demo tables (rows): {server.demo_tables}")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def connect_info_lines(host: str, port: int) -> list[str]:
    """How to reach the demo's Snowflake from a notebook, the connector, or this project's account path."""
    from sync_project.demo_tables import DEMO_DATABASE
    from sync_project.embedded_snowflake import connection_settings

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


DEMO_PORTS = (
    "demo.json"  # in DAGSTER_HOME, while a demo runs: its Snowflake's port, for --connect-info in another shell
)


@contextlib.contextmanager
def _announced(path: Path, snowflake_port: int) -> Iterator[None]:
    path.write_text(json.dumps({"pid": os.getpid(), "snowflake_port": snowflake_port}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _running_demo_port(path: Path) -> int | None:
    """The port of the demo that wrote `path`, if that demo still runs."""
    try:
        note = json.loads(path.read_text())
        os.kill(int(note["pid"]), 0)
        return int(note["snowflake_port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


def _first_syncs(instance: dg.DagsterInstance) -> None:
    """Register the demo tables, sync each once in this process, publish the mirror for readers."""
    from sync_project.cli.in_process import sync_in_process
    from sync_project.demo_tables import DEMO_SCHEMA, DEMO_TABLES
    from sync_project.registry import register as register_tables
    from sync_project.sync.mirror import NothingToDo
    from sync_project.sync.tables import TableRef

    project = project_mirror()
    tables = [TableRef(project.database, DEMO_SCHEMA, name) for name in DEMO_TABLES]
    register_tables(instance, project.connect, tables)
    for table in tables:
        result = sync_in_process(project.definitions, instance, table.key)
        click.echo(f"synced {table}: {'ok' if result.success else 'FAILED (see the run in the UI)'}")
    duckdb = project.duckdb
    try:
        published = duckdb.mirror.publish(duckdb.published_storage_version)
    except NothingToDo as e:
        click.echo(str(e))
        return
    click.echo(f"published the mirror for readers: {published.published_path} (open it read-only)")


def _serve_ui(ui_port: int, snowflake_port: int) -> None:
    """`dg dev` in the foreground, stopped with its whole process group."""
    from sync_project.settings import LOCAL_SNOWFLAKE_PORT, project_root

    click.echo("for the README's commands, in another shell from the repository's root:")
    click.echo("  source .venv/bin/activate")
    click.echo(f"  export DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '$PWD/.local/dagster')}")
    click.echo(f"  export {LOCAL_SNOWFLAKE_PORT}={snowflake_port}")
    click.echo(f"Dagster UI on http://127.0.0.1:{ui_port} (Ctrl-C stops everything)")
    # The mirror and the demo's downstream assets (a Python asset, a dbt model), each its own code location.
    workspace = str(project_root() / "sync_project" / "downstream_demo" / "workspace.yaml")
    # `dg dev` with a workspace file is `dagster dev` (which 1.13 marks superseded), as the README's shell runs it.
    dg = str(Path(sys.executable).with_name("dg"))
    dagster = [dg, "dev", "-h", "127.0.0.1", "-p", str(ui_port), "-w", workspace]
    # Started in DAGSTER_HOME: from the repository's root, `dagster dev` warns on every start that the
    # dagster.yaml there (the template copied into DAGSTER_HOME) is not the instance's. Paths it inherits are
    # made absolute first, so a relative SYNC_DUCKDB_PATH still means what it meant here.
    ui = subprocess.Popen(dagster, start_new_session=True, cwd=dagster_home(), env=absolute_paths(os.environ))
    try:
        ui.wait()
    finally:
        _stop_group(ui)
        stop_dagster_processes_of(dagster_home())


@main.command()
@click.option("--rows", type=click.IntRange(min=0), default=None, help='Rows in the demo\'s "data" table.')
@click.option("--ui-port", type=int, default=3000, show_default=True)
@click.option(
    "--snowflake-port",
    type=int,
    default=None,
    help="The embedded Snowflake's port (default LOCAL_SNOWFLAKE_PORT or 8765).",
)
@click.option("--no-ui", is_flag=True, help="Stop after the first syncs instead of serving the UI.")
@click.option(
    "--connect-info", is_flag=True, help="Print how to connect to the running demo's Snowflake (or the configured one)."
)
@reports_errors
def demo(rows: int | None, ui_port: int, snowflake_port: int | None, no_ui: bool, connect_info: bool) -> None:
    """Embedded Snowflake with demo data, demo tables registered and synced once, then the Dagster UI.

    Ctrl-C or SIGTERM stops all of it. A second demo (or anything else on its ports) is refused at once.
    """
    import dataclasses

    from sync_project.demo_tables import DEFAULT_DEMO_ROWS
    from sync_project.embedded_snowflake import LocalSnowflakeProcess, PortInUseError, check_port_free
    from sync_project.settings import LOCAL_SNOWFLAKE_PORT, local_state_dir

    local = LocalSnowflake.from_env()
    if snowflake_port is not None:
        local = dataclasses.replace(local, port=snowflake_port)
    running = dagster_home() / DEMO_PORTS
    if connect_info:
        # The running demo's own port, whichever shell asks (it may have been started with --snowflake-port).
        port = _running_demo_port(running) if snowflake_port is None else None
        for line in connect_info_lines(local.host, port or local.port):
            click.echo(line)
        return
    try:
        check_port_free(local.host, local.port, "the embedded Snowflake")
        if not no_ui:
            check_port_free("127.0.0.1", ui_port, "the Dagster UI")
    except PortInUseError as e:
        raise click.ClickException(str(e)) from None
    _stop_on_sigterm()
    instance = cli_instance()
    snowflake = LocalSnowflakeProcess(
        data_dir=local.data_dir,
        host=local.host,
        port=local.port,
        demo_rows=DEFAULT_DEMO_ROWS if rows is None else rows,
        log_file=local_state_dir() / "local-snowflake.log",
    )
    click.echo(f"starting the local Snowflake on {snowflake.base_url} (log: {snowflake.log_file})")
    with contextlib.suppress(KeyboardInterrupt), snowflake, _announced(running, snowflake.port):
        os.environ[LOCAL_SNOWFLAKE_PORT] = str(snowflake.port)
        _first_syncs(instance)
        click.echo(f"the demo's Snowflake: {snowflake.base_url} (sync-project demo --connect-info says how to connect)")
        if not no_ui:
            _serve_ui(ui_port, snowflake.port)
    click.echo("stopped the Dagster UI and the local Snowflake")
