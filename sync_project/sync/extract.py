"""Snowflake side of a sync: stage lifecycle, COPY INTO unload, LIST, GET, cleanup.

Everything here takes an open connector connection; nothing opens DuckDB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.catalog import Column
from sync_project.sync.errors import NotEnoughDiskError, TransientError, from_snowflake
from sync_project.sync.tables import TableRef, quote_identifier

# Stages and download folders the project creates carry this prefix and a UTC timestamp,
# so a cleanup job can recognise leftovers and their age.
STAGE_PREFIX = "SYNC_PROJECT_"


@dataclass(frozen=True)
class Attempt:
    """One try at syncing one table: its own stage, its own unload path, its own download folder."""

    table: TableRef
    stage: str  # fully qualified, quoted stage name
    path: str  # unload path inside the stage, ends with '/'
    local_dir: Path

    @classmethod
    def new(cls, table: TableRef, download_root: Path, now: dt.datetime | None = None) -> Attempt:
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
        token = secrets.token_hex(4)
        stage_name = f"{STAGE_PREFIX}{stamp}_{token}".upper()
        stage = f"{quote_identifier(table.database)}.{quote_identifier(table.schema)}.{quote_identifier(stage_name)}"
        local_dir = download_root / table.folder_name / f"{stamp}_{token}"
        return cls(table, stage, f"{stamp}_{token}/".lower(), local_dir)


@dataclass(frozen=True)
class UnloadResult:
    query_id: str
    rows_unloaded: int
    input_bytes: int
    output_bytes: int


@dataclass(frozen=True)
class StagedFile:
    name: str  # file name without folders
    size: int


def _execute(conn: Any, sql: str, what: str) -> Any:
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur
    except SnowflakeError as e:
        raise from_snowflake(e, what) from None


def create_stage(conn: Any, attempt: Attempt) -> None:
    # Same physical schema for every file: DESIGN.md, "Snowflake facts".
    _execute(conn, "ALTER SESSION SET ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = FALSE", "configuring the session")
    _execute(conn, f"CREATE TEMPORARY STAGE {attempt.stage}", f"creating a stage for {attempt.table}")


def unload_query(table: TableRef, columns: list[Column]) -> str:
    """The explicit projection: every column converted as the type map says and aliased by its exact name."""
    projection = ", ".join(c.unload_expression for c in columns)
    return f"SELECT {projection} FROM {table.snowflake_sql}"


def unload_to_stage(conn: Any, attempt: Attempt, columns: list[Column], max_file_size: int) -> UnloadResult:
    sql = (
        f"COPY INTO @{attempt.stage}/{attempt.path} FROM ({unload_query(attempt.table, columns)}) "
        f"FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE OVERWRITE = TRUE MAX_FILE_SIZE = {int(max_file_size)}"
    )
    cur = _execute(conn, sql, f"unloading {attempt.table}")
    names = [d[0].lower() for d in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    return UnloadResult(
        query_id=str(cur.sfqid),
        rows_unloaded=int(row["rows_unloaded"]),
        input_bytes=int(row["input_bytes"]),
        output_bytes=int(row["output_bytes"]),
    )


def list_staged_files(conn: Any, attempt: Attempt) -> list[StagedFile]:
    cur = _execute(conn, f"LIST @{attempt.stage}/{attempt.path}", f"listing unloaded files of {attempt.table}")
    return [StagedFile(name=str(r[0]).rsplit("/", 1)[-1], size=int(r[1])) for r in cur.fetchall()]


def check_free_space(folder: Path, needed: int, table: TableRef) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughDiskError(
            f"not enough disk to sync {table}: it needs about {needed:,} bytes in {folder} "
            f"(download plus DuckDB growth) but only {free:,} are free. Free some space or point "
            "SYNC_DOWNLOAD_DIR / SYNC_DUCKDB_PATH at a larger disk."
        )


def download_files(conn: Any, attempt: Attempt, expected: list[StagedFile], parallel: int) -> list[Path]:
    """GET the unloaded files; verify each arrived with the size LIST reported."""
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    target = attempt.local_dir.resolve().as_posix()
    cur = _execute(
        conn,
        f"GET @{attempt.stage}/{attempt.path} 'file://{target}/' PARALLEL = {int(parallel)}",
        f"downloading {attempt.table}",
    )
    failed = [r for r in cur.fetchall() if str(r[2]).upper() != "DOWNLOADED"]
    files: list[Path] = []
    for staged in expected:
        path = attempt.local_dir / staged.name
        if not path.is_file() or path.stat().st_size != staged.size:
            failed.append((staged.name, path.stat().st_size if path.is_file() else None, "MISSING", ""))
        files.append(path)
    if failed:
        raise TransientError(
            f"downloading {attempt.table}: {len(failed)} of {len(expected)} files did not arrive intact "
            f"(first: {failed[0][0]}); will be retried"
        )
    return files


def drop_stage(conn: Any, attempt: Attempt) -> None:
    _execute(conn, f"DROP STAGE IF EXISTS {attempt.stage}", f"dropping the stage of {attempt.table}")


def remove_local_files(attempt: Attempt) -> None:
    shutil.rmtree(attempt.local_dir, ignore_errors=True)
    # Drop the per-table folder too once it is empty.
    with contextlib.suppress(OSError):
        attempt.local_dir.parent.rmdir()
