"""Snowflake side of a sync: stage lifecycle, COPY INTO unload, LIST, GET, cleanup.

Everything here takes an open connector connection; nothing opens DuckDB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.catalog import Column
from sync_project.sync.errors import NotEnoughDiskError, TransientError, from_snowflake
from sync_project.sync.tables import TableRef, quote_identifier

# Stages and download folders the project creates carry this prefix and a UTC timestamp,
# so a cleanup job can recognise leftovers and their age.
STAGE_PREFIX = "SYNC_PROJECT_"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST = "unload.json"


@dataclass(frozen=True)
class Attempt:
    """One sync of one table: its own named stage, unload path and download folder.

    A retry of the same run (or a re-execution of it) gets the same attempt, so it can reuse what the
    failed try already unloaded and downloaded.
    """

    table: TableRef
    stage_name: str
    path: str  # unload path inside the stage, ends with '/'
    local_dir: Path

    @property
    def stage(self) -> str:
        """Fully qualified, quoted stage name."""
        return ".".join(quote_identifier(p) for p in (self.table.database, self.table.schema, self.stage_name))

    @property
    def manifest(self) -> Path:
        return self.local_dir / MANIFEST

    @classmethod
    def new(
        cls,
        table: TableRef,
        download_root: Path,
        attempt_id: str | None = None,
        started: dt.datetime | None = None,
    ) -> Attempt:
        stamp = (started or dt.datetime.now(dt.UTC)).strftime(STAMP_FORMAT)
        token = (
            hashlib.sha256(f"{attempt_id}\x00{table}".encode()).hexdigest()[:8] if attempt_id else secrets.token_hex(4)
        )
        return cls(
            table=table,
            stage_name=f"{STAGE_PREFIX}{stamp}_{token}".upper(),
            path=f"{stamp}_{token}/".lower(),
            local_dir=download_root / table.folder_name / f"{STAGE_PREFIX}{stamp}_{token}",
        )


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
    # A named stage (not a temporary one) outlives the session, so a retry can pick up its files.
    _execute(conn, f"CREATE STAGE IF NOT EXISTS {attempt.stage}", f"creating a stage for {attempt.table}")


def stage_exists(conn: Any, attempt: Attempt) -> bool:
    schema = f"{quote_identifier(attempt.table.database)}.{quote_identifier(attempt.table.schema)}"
    cur = _execute(conn, f"SHOW STAGES LIKE '{attempt.stage_name}' IN SCHEMA {schema}", "looking for a stage")
    names = [d[0].lower() for d in cur.description]
    return any(dict(zip(names, r, strict=True)).get("name") == attempt.stage_name for r in cur.fetchall())


def unload_query(table: TableRef, columns: list[Column], where: str | None = None) -> str:
    """The explicit projection: every column converted as the type map says and aliased by its exact name."""
    projection = ", ".join(c.unload_expression for c in columns)
    return f"SELECT {projection} FROM {table.snowflake_sql}" + (f" WHERE {where}" if where else "")


def unload_to_stage(
    conn: Any, attempt: Attempt, columns: list[Column], max_file_size: int, where: str | None = None
) -> UnloadResult:
    sql = (
        f"COPY INTO @{attempt.stage}/{attempt.path} FROM ({unload_query(attempt.table, columns, where)}) "
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


def save_manifest(attempt: Attempt, unload: UnloadResult, query: str, files: list[StagedFile] | None = None) -> None:
    """Remember a finished unload (and, once they are all here, its files), so a retry can skip them."""
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Any] = {"query": query, **asdict(unload)}
    if files is not None:
        saved["files"] = [asdict(f) for f in files]
    attempt.manifest.write_text(json.dumps(saved))


def _read_manifest(attempt: Attempt, query: str) -> dict[str, Any] | None:
    try:
        saved: dict[str, Any] = json.loads(attempt.manifest.read_text())
    except (OSError, ValueError):
        return None
    return saved if saved.pop("query", None) == query else None


def load_manifest(attempt: Attempt, query: str) -> UnloadResult | None:
    """The earlier unload of this attempt, if it was of the same query."""
    saved = _read_manifest(attempt, query)
    if saved is None:
        return None
    saved.pop("files", None)
    return UnloadResult(**saved)


def downloaded_files(attempt: Attempt, query: str) -> list[Path] | None:
    """Every file of this attempt's finished download of the same query, if an earlier try left them intact."""
    saved = _read_manifest(attempt, query)
    if saved is None or "files" not in saved:
        return None
    files = [StagedFile(**f) for f in saved["files"]]
    paths = [attempt.local_dir / f.name for f in files]
    intact = all(p.is_file() and p.stat().st_size == f.size for p, f in zip(paths, files, strict=True))
    return paths if intact else None


def list_staged_files(conn: Any, attempt: Attempt) -> list[StagedFile]:
    cur = _execute(conn, f"LIST @{attempt.stage}/{attempt.path}", f"listing unloaded files of {attempt.table}")
    return [StagedFile(name=str(r[0]).rsplit("/", 1)[-1], size=int(r[1])) for r in cur.fetchall()]


def check_free_space(folder: Path, needed: int, table: TableRef, reserve: int = 0) -> None:
    """Refuse before downloading when the files (plus the space to leave free) would not fit."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + reserve:
        kept = f" and {reserve:,} bytes kept free (SYNC_DISK_RESERVE_BYTES)" if reserve else ""
        raise NotEnoughDiskError(
            f"not enough disk to sync {table}: it needs about {needed:,} bytes in {folder} "
            f"(download plus DuckDB growth){kept} but only {free:,} are free. Free some space or point "
            "SYNC_DOWNLOAD_DIR / SYNC_DUCKDB_PATH at a larger disk."
        )


@dataclass(frozen=True)
class Download:
    files: list[Path]  # every file of the unload, in the attempt's folder
    fetched: list[str]  # names downloaded now
    reused: list[str]  # names a previous try had already downloaded intact


def download_files(conn: Any, attempt: Attempt, expected: list[StagedFile], parallel: int) -> Download:
    """GET the unloaded files that are not already here intact; verify each has the size LIST reported."""
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    intact = {
        f.name
        for f in expected
        if (attempt.local_dir / f.name).is_file() and (attempt.local_dir / f.name).stat().st_size == f.size
    }
    missing = [f.name for f in expected if f.name not in intact]
    failed: list[str] = []
    if missing:
        target = attempt.local_dir.resolve().as_posix()
        pattern = "|".join(re.escape(name) for name in missing)
        cur = _execute(
            conn,
            f"GET @{attempt.stage}/{attempt.path} 'file://{target}/' PARALLEL = {int(parallel)} "
            f"PATTERN = '.*({pattern})'",
            f"downloading {attempt.table}",
        )
        failed = [str(r[0]) for r in cur.fetchall() if str(r[2]).upper() != "DOWNLOADED"]
    for staged in expected:
        path = attempt.local_dir / staged.name
        if (not path.is_file() or path.stat().st_size != staged.size) and staged.name not in failed:
            failed.append(staged.name)
    if failed:
        raise TransientError(
            f"downloading {attempt.table}: {len(failed)} of {len(expected)} files did not arrive intact "
            f"(first: {failed[0]}); will be retried, keeping the files that did"
        )
    return Download([attempt.local_dir / f.name for f in expected], missing, sorted(intact))


def drop_stage(conn: Any, attempt: Attempt) -> None:
    _execute(conn, f"DROP STAGE IF EXISTS {attempt.stage}", f"dropping the stage of {attempt.table}")


def remove_local_files(attempt: Attempt) -> None:
    shutil.rmtree(attempt.local_dir, ignore_errors=True)
    # Drop the per-table folder too once it is empty.
    with contextlib.suppress(OSError):
        attempt.local_dir.parent.rmdir()


def parse_stamp(name: str) -> dt.datetime | None:
    """When a stage or folder the project made was created (from its name), or None if it is not ours."""
    match = re.match(rf"{STAGE_PREFIX}(\d{{8}}T\d{{6}}Z)_", name, re.IGNORECASE)
    if not match:
        return None
    return dt.datetime.strptime(match.group(1).upper(), STAMP_FORMAT).replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Leftovers:
    stages: list[str]
    folders: list[Path]


def remove_leftovers(
    conn: Any, schemas: list[tuple[str, str]], download_root: Path, older_than: dt.timedelta, now: dt.datetime
) -> Leftovers:
    """Drop stages and download folders this project made (by name) longer ago than `older_than`.

    A live sync's stage and folder are younger than that, so they are left alone.
    """
    cutoff = now - older_than
    dropped: list[str] = []
    for database, schema in sorted(set(schemas)):
        scope = f"{quote_identifier(database)}.{quote_identifier(schema)}"
        cur = _execute(conn, f"SHOW STAGES LIKE '{STAGE_PREFIX}%' IN SCHEMA {scope}", f"listing stages of {scope}")
        names = [d[0].lower() for d in cur.description]
        for row in cur.fetchall():
            name = str(dict(zip(names, row, strict=True))["name"])
            stamp = parse_stamp(name)
            if stamp is not None and stamp < cutoff:
                _execute(conn, f"DROP STAGE IF EXISTS {scope}.{quote_identifier(name)}", f"dropping {name}")
                dropped.append(f"{database}.{schema}.{name}")
    removed: list[Path] = []
    for folder in sorted(download_root.glob(f"*/{STAGE_PREFIX}*")) if download_root.exists() else []:
        stamp = parse_stamp(folder.name)
        if folder.is_dir() and stamp is not None and stamp < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return Leftovers(dropped, removed)
