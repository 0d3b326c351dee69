"""The chores a mirror's jobs run: discover, register, doctor, publish, clean up. Each is plain work on a run's
context and its mirror's resources (found by the mirror's `MirrorScope`); `jobs.py` wraps each in an op."""

import datetime as dt

import dagster as dg
from pydantic import Field

from sync_project import registry
from sync_project.metadata import text_table
from sync_project.resources import SnowflakeResource
from sync_project.scope import MirrorScope
from sync_project.sync.errors import PermanentError
from sync_project.sync.leftovers import remove_leftovers
from sync_project.sync.mirror import NothingToDo
from sync_project.sync.mirror.publish import PublishReport
from sync_project.sync.state import EXTRACTS, TableOptions
from sync_project.sync.tables import TableRef

LEFTOVER_HOURS = 24.0  # a live sync's folders are younger: a day-old one belongs to a killed or exhausted run


class DiscoverConfig(dg.Config):
    schema_name: str = Field(description="The Snowflake schema to list, as Snowflake stores its name")
    like: str | None = Field(default=None, description="A LIKE pattern on table names (% and _)")


def _database(snowflake: SnowflakeResource) -> str:
    if not snowflake.database:
        raise dg.Failure("the Snowflake resource has no database; set SNOWFLAKE_DATABASE", allow_retries=False)
    return snowflake.database


def discover_schema(context: dg.OpExecutionContext, config: DiscoverConfig, scope: MirrorScope) -> None:
    """List a schema's tables with rows, bytes, last altered, and whether each is registered and synced."""
    snowflake = scope.snowflake(context)
    listings = registry.discover(
        context.instance, snowflake.get_connection, _database(snowflake), config.schema_name, config.like, scope
    )
    rows = [item.cells() for item in listings]  # as the CLI prints them
    columns = ["table", "kind", "rows", "size", "last_altered", "registered", "last_synced"]
    context.add_output_metadata({"tables": text_table(columns, rows), "count": len(rows)}, output_name="result")


class RegisterConfig(dg.Config):
    schema_name: str = Field(description="The Snowflake schema of the tables, as Snowflake stores its name")
    tables: list[str] = Field(default_factory=list, description="Table names to register (or use like)")
    like: str | None = Field(default=None, description="Or: every table whose name matches this LIKE pattern")
    strategy: str = Field(default="full", description="full or incremental")
    cursor_column: str | None = Field(default=None, description="Incremental: the column whose growth marks new rows")
    primary_key: list[str] = Field(default_factory=list, description="Default: the declared primary key")
    extract: str | None = Field(
        default=None, description="auto, unload or results: the tables' way out of Snowflake; unset: the mirror's"
    )


def register_in_schema(context: dg.OpExecutionContext, config: RegisterConfig, scope: MirrorScope) -> None:
    """Register tables after DESC TABLE proves each one; a refused table adds nothing, and says why."""
    snowflake, duckdb = scope.snowflake(context), scope.duckdb(context)
    database = _database(snowflake)
    tables = [TableRef(database, config.schema_name, name) for name in config.tables]
    if config.like:
        tables += registry.matching_tables(snowflake.get_connection, database, config.schema_name, config.like)
    if not tables:
        raise dg.Failure("no tables given or matched; set `tables` or `like`", allow_retries=False)
    try:
        if config.strategy not in ("full", "incremental"):
            raise PermanentError(f"strategy must be full or incremental, not {config.strategy!r}")
        if config.extract not in (None, *EXTRACTS):
            raise PermanentError(f"extract must be one of {', '.join(EXTRACTS)} or unset, not {config.extract!r}")
        options = TableOptions(
            config.strategy,  # type: ignore[arg-type]
            config.cursor_column,
            tuple(config.primary_key),
            config.extract,  # type: ignore[arg-type]
        )
        done = registry.register(
            context.instance,
            snowflake.get_connection,
            tables,
            options,
            duckdb.mirror,
            log=context.log.info,
            scope=scope,
        )
    except PermanentError as e:
        raise dg.Failure(str(e), allow_retries=False) from None
    new, existing = done.new, done.existing
    context.log.info(f"registered {len(new)} table(s); {len(existing)} were registered already")
    for key, change in done.changed.items():
        context.log.info(f"{key}: options {change}")
    context.add_output_metadata(
        {
            "registered": dg.MetadataValue.json(new),
            "already_registered": dg.MetadataValue.json(existing),
            "options_changed": dg.MetadataValue.json(done.changed),
        },
        output_name="result",
    )


def check_setup(context: dg.OpExecutionContext, scope: MirrorScope) -> None:
    """The doctor's checks, as `sync-project doctor` runs them; the checklist is this run's metadata."""
    from sync_project.doctor import diagnose, report_lines, report_metadata

    report = diagnose(context.instance, scope.snowflake(context), scope.duckdb(context), scope)
    for line in report_lines(report):
        context.log.info(line)
    if not report.passed:
        failed = [
            f"{c.name}: {c.detail} (fix: {c.fix})" if c.fix else f"{c.name}: {c.detail}"
            for c in report.checks
            if c.status == "failed"
        ]
        raise dg.Failure(description="; ".join(failed), metadata=report_metadata(report), allow_retries=False)
    context.add_output_metadata(report_metadata(report), output_name="result")


def publish_metadata(report: PublishReport) -> dict[str, dg.MetadataValue]:
    """What a publish holds (each table and the sync it comes from) and what it cost."""
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("relation", "string"),
            dg.TableColumn("rows", "int"),
            dg.TableColumn("synced_at", "string"),
        ]
    )
    records = [
        dg.TableRecord(
            {"relation": t.relation, "rows": t.rows if t.rows is not None else -1, "synced_at": t.synced_at or ""}
        )
        for t in report.tables
    ]
    return {
        "published_path": dg.MetadataValue.path(str(report.published_path)),
        "snapshot": dg.MetadataValue.path(str(report.snapshot)),
        "tables": dg.MetadataValue.table(records, schema),
        "table_count": dg.MetadataValue.int(len(report.tables)),
        "bytes": dg.MetadataValue.int(report.bytes),
        "seconds": dg.MetadataValue.float(report.seconds),
        "copy_seconds": dg.MetadataValue.float(report.copy_seconds),
        "storage_version": dg.MetadataValue.text(report.storage_version),
        "old_snapshots_removed": dg.MetadataValue.int(len(report.removed)),
        "old_snapshots_still_open": dg.MetadataValue.json(report.still_open),
    }


def publish_working_file(context: dg.OpExecutionContext, scope: MirrorScope) -> None:
    """Copy the working DuckDB file to a new snapshot and point the published path at it.

    Readers open the published path and are never blocked by syncs; a reader that has an older snapshot
    open keeps it, consistent, until it disconnects. See the run's metadata for the tables it holds.
    """
    duckdb = scope.duckdb(context)
    try:
        report = duckdb.mirror.publish(duckdb.published_storage_version, context.log.info)
    except NothingToDo as e:
        context.log.info(str(e))
        return
    except PermanentError as e:
        raise dg.Failure(str(e), allow_retries=False) from None
    context.add_output_metadata(publish_metadata(report), output_name="result")


class CleanupConfig(dg.Config):
    older_than_hours: float = Field(
        default=LEFTOVER_HOURS,
        description="Remove attempt folders older than this. Lower it only when no sync is running: a live "
        "sync's folders are younger than its run",
    )


def remove_old_stages_and_folders(context: dg.OpExecutionContext, config: CleanupConfig, scope: MirrorScope) -> None:
    """Remove attempt folders (in the sync's stage and in the download folder) left behind more than a day ago
    (`older_than_hours`).

    A sync removes its own on success and on a final failure; what is left is from killed processes or
    exhausted retries. Only the stage's `sync_project/` folder is looked at, and names carry a prefix and a
    timestamp, so nothing else is ever touched.
    """
    snowflake, duckdb = scope.snowflake(context), scope.duckdb(context)
    options = duckdb.sync_options()
    with snowflake.get_connection() as conn:
        age = dt.timedelta(hours=config.older_than_hours)
        leftovers = remove_leftovers(conn, options.stage, options.download_root, age, dt.datetime.now(dt.UTC))
    snapshots, still_open = duckdb.mirror.remove_old_snapshots()
    context.log.info(
        f"removed {len(leftovers.stage_folders)} stage folder(s), {len(leftovers.folders)} local folder(s), "
        f"{len(snapshots)} old published snapshot(s) ({len(still_open)} still open by readers)"
    )
    context.add_output_metadata(
        {
            "stage_folders_removed": dg.MetadataValue.json(leftovers.stage_folders),
            "folders_removed": dg.MetadataValue.json([str(f) for f in leftovers.folders]),
            "snapshots_removed": dg.MetadataValue.json(snapshots),
        },
        output_name="result",
    )


def maintain_the_lake(context: dg.OpExecutionContext, scope: MirrorScope) -> None:
    """On a DuckLake target: expire snapshots older than SYNC_DUCKLAKE_RETENTION_DAYS, merge small files, and
    delete the files no remaining snapshot reads. Every sync adds a snapshot and files; this keeps the lake
    from growing for ever while recent syncs stay queryable with AT (VERSION => id)."""
    duckdb = scope.duckdb(context)
    mirror = duckdb.mirror
    try:
        done = mirror.maintain(duckdb.ducklake_retention_days)
    except NothingToDo as e:
        context.log.info(str(e))
        return
    context.log.info(
        f"{mirror.describe()}: expired {done.snapshots_expired} snapshot(s) older than "
        f"{duckdb.ducklake_retention_days:g} day(s), merged {done.files_merged} file(s) into {done.files_written}, "
        f"deleted {done.files_deleted} file(s) and {done.orphans_deleted} orphan(s) in {done.seconds:.2f}s"
    )
    context.add_output_metadata(
        {
            "snapshots_expired": done.snapshots_expired,
            "files_merged": done.files_merged,
            "files_written": done.files_written,
            "files_deleted": done.files_deleted,
            "orphans_deleted": done.orphans_deleted,
        },
        output_name="result",
    )
