"""What every `sync-project` command shares: the group, error reporting, the instance, table keys."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    import dagster as dg

    from sync_project.resources import SnowflakeResource, SyncDuckDBResource
    from sync_project.sync.mirror import Mirror
    from sync_project.sync.options import Connect
    from sync_project.sync.tables import TableRef

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn the engine's errors, and the connector's own (Snowflake unreachable, a refused sign-in), into a
    message and exit code 1, without a traceback; the message says what to check, as the doctor does."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sync_project.sync.errors import SyncError, from_snowflake

        try:
            return command(*args, **kwargs)
        except SyncError as e:
            raise click.ClickException(str(e)) from None
        except Exception as e:
            from snowflake.connector.errors import Error as SnowflakeError

            if not isinstance(e, SnowflakeError):
                raise
            said = from_snowflake(e, "reaching Snowflake")
            raise click.ClickException(f"{said}. `sync-project doctor` checks every setting.") from None

    return wrapper  # type: ignore[return-value]


def cli_instance() -> dg.DagsterInstance:
    import dagster as dg

    from sync_project.settings import dagster_home

    dagster_home()
    return dg.DagsterInstance.get()


@dataclass(frozen=True)
class ProjectMirror:
    """The first mirror as the project's definitions build it (its `defs.yaml` over the environment): the CLI
    takes the database, the connection and the mirror from these resources, as the jobs and sensors do, so a
    value set in one place reaches every consumer."""

    definitions: dg.Definitions
    snowflake: SnowflakeResource
    duckdb: SyncDuckDBResource

    @property
    def database(self) -> str:
        return self.snowflake.sync_database

    @property
    def mirror(self) -> Mirror:
        return self.duckdb.mirror

    @property
    def connect(self) -> Connect:
        resource = self.snowflake.resolved()  # EnvVar credentials are read here
        return resource.get_connection  # type: ignore[no-any-return]

    def table(self, key: str) -> TableRef:
        from sync_project.partitions import table_for_partition

        return table_for_partition(key, self.database)


def project_mirror() -> ProjectMirror:
    """Loaded afresh on each call: a command (or a test) sees the environment and `defs.yaml` of that moment."""
    from sync_project.definitions import load_definitions
    from sync_project.scope import FIRST_MIRROR

    definitions = load_definitions()
    resources = definitions.resources or {}
    if FIRST_MIRROR.snowflake_key not in resources or FIRST_MIRROR.duckdb_key not in resources:
        raise click.ClickException(
            "sync_project/defs/ declares no first mirror (a SnowflakeMirrorComponent without a name), which the "
            "CLI manages: declare one, or drive another mirror from the UI and dg"
        )
    return ProjectMirror(definitions, resources[FIRST_MIRROR.snowflake_key], resources[FIRST_MIRROR.duckdb_key])


def to_stderr(message: str) -> None:
    """Progress for people (waiting, for instance), kept out of stdout, which scripts read."""
    click.echo(message, err=True)


def not_registered(key: str, keys: list[str]) -> click.ClickException:
    from sync_project.partitions import not_registered_message

    return click.ClickException(not_registered_message(key, keys))


def registered_table(key: str, project: ProjectMirror, instance: dg.DagsterInstance) -> TableRef:
    """The table a key names, if it is registered; otherwise exit 1 with the closest registered key."""
    from sync_project.partitions import SNOWFLAKE_TABLES

    table = project.table(key)
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
