"""Snowflake side of a sync: COPY INTO a stage folder, LIST, GET verified by what GET reports, cleanup.

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
from sync_project.sync.errors import NotEnoughDiskError, PermanentError, TransientError, from_snowflake
from sync_project.sync.tables import TableRef

# Attempt folders the project creates (in the stage and locally) carry this prefix and a UTC timestamp,
# so a cleanup job can recognise leftovers and their age.
STAGE_PREFIX = "SYNC_PROJECT_"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST = "unload.json"
# Every attempt unloads below this folder of the stage, so the project's files never mix with anything else there.
STAGE_FOLDER = "sync_project/"
USER_STAGE = "~"  # the user stage: every user has one and needs no privilege for it
# Session settings the sync relies on, whatever the account or user has set: exact quoted names, and one logical
# Parquet schema for every file of an unload (DESIGN.md, "Snowflake facts").
SESSION_SETTINGS = "QUOTED_IDENTIFIERS_IGNORE_CASE = FALSE ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = FALSE"


def validate_stage(stage: str) -> str:
    """`~` (the user stage) or a stage name as SQL writes it (`DB.SCHEMA.STAGE`, parts maybe double-quoted)."""
    stage = stage.strip().removeprefix("@")
    if stage == USER_STAGE:
        return stage
    if not stage or any(c in stage for c in "'/\\") or any(c.isspace() or not c.isprintable() for c in stage):
        raise PermanentError(
            f"SYNC_STAGE={stage!r} is not a stage name: give it as SQL names it (MYDB.SYNC.MIRROR_STAGE, parts in "
            'double quotes if they need them) without @, quotes or a path, or unset it to use the user stage "~"'
        )
    return stage


@dataclass(frozen=True)
class Attempt:
    """One sync of one table: its own folder in the stage and its own download folder.

    A retry of the same run (or a re-execution of it) gets the same attempt, so it can reuse what the
    failed try already unloaded and downloaded.
    """

    table: TableRef
    name: str  # SYNC_PROJECT_<stamp>_<token>
    stage: str  # "~" or a stage name as SQL writes it
    local_dir: Path

    @property
    def path(self) -> str:
        """The attempt's folder inside the stage, ending with '/'."""
        return f"{STAGE_FOLDER}{self.name}/"

    @property
    def location(self) -> str:
        """The stage location as a single-quoted SQL string, which any path characters need (Snowflake's docs)."""
        return f"'@{self.stage}/{self.path}'"

    @property
    def manifest(self) -> Path:
        """Where the attempt records its unload and the files it verified: what a retry resumes from."""
        return self.local_dir / MANIFEST

    @classmethod
    def new(
        cls,
        table: TableRef,
        download_root: Path,
        attempt_id: str | None = None,
        started: dt.datetime | None = None,
        stage: str = USER_STAGE,
    ) -> Attempt:
        stamp = (started or dt.datetime.now(dt.UTC)).strftime(STAMP_FORMAT)
        token = (
            hashlib.sha256(f"{attempt_id}\x00{table}".encode()).hexdigest()[:8] if attempt_id else secrets.token_hex(4)
        )
        name = f"{STAGE_PREFIX}{stamp}_{token}"
        return cls(
            table=table, name=name, stage=validate_stage(stage), local_dir=download_root / table.folder_name / name
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
    size: int  # as GET reported it: the decrypted file's size (never LIST's, which is the stored, encrypted size)


# Snowflake's answers when a role may not use a stage: no privilege on it at all (it is invisible), or not enough.
_STAGE_PRIVILEGE_ERRNOS = {2003, 3001}


def _execute(conn: Any, sql: str, what: str, on_stage: Attempt | None = None, **kwargs: Any) -> Any:
    """Run one statement; a failure becomes a transient or permanent error saying `what` failed.

    With `on_stage`, a stage the role cannot use (SYNC_STAGE) fails permanently, naming it and the privilege.
    """
    try:
        cur = conn.cursor()
        cur.execute(sql, **kwargs)
        return cur
    except SnowflakeError as e:
        if on_stage is not None and on_stage.stage != USER_STAGE and e.errno in _STAGE_PRIVILEGE_ERRNOS:
            raise PermanentError(
                f"{on_stage.table}: the stage {on_stage.stage} (SYNC_STAGE) cannot be used by this role: an "
                "internal stage needs READ and WRITE on it, an external one USAGE. Grant them, or unset SYNC_STAGE "
                f"to unload through the user stage (@~), which needs no privilege. (Snowflake error {e.errno}: "
                f"{e.raw_msg})"
            ) from None
        raise from_snowflake(e, what) from None


def configure_session(conn: Any) -> None:
    """Set what the sync relies on, so an account's defaults cannot change how names or files come out."""
    _execute(conn, f"ALTER SESSION SET {SESSION_SETTINGS}", "configuring the Snowflake session")


def staged_names(conn: Any, attempt: Attempt) -> list[str]:
    """The attempt's files in the stage (names only: LIST's sizes are of the encrypted objects)."""
    cur = _execute(conn, f"LIST {attempt.location}", f"listing unloaded files of {attempt.table}", attempt)
    return sorted({str(r[0]).rsplit("/", 1)[-1] for r in cur.fetchall()})


def unload_query(table: TableRef, columns: list[Column], where: str | None = None) -> str:
    """The explicit projection: every column converted as the type map says and aliased by its exact name."""
    projection = ", ".join(c.unload_expression for c in columns)
    return f"SELECT {projection} FROM {table.snowflake_sql}" + (f" WHERE {where}" if where else "")


def clear_location(conn: Any, attempt: Attempt) -> None:
    """Remove the attempt's files from the stage: after the sync, and before an unload, because OVERWRITE
    replaces only files of the same name and an earlier try may have left others."""
    _execute(conn, f"REMOVE {attempt.location}", f"clearing the stage folder of {attempt.table}", attempt)


def unload_to_stage(
    conn: Any, attempt: Attempt, columns: list[Column], max_file_size: int, where: str | None = None
) -> UnloadResult:
    return unload_query_to_stage(conn, attempt, unload_query(attempt.table, columns, where), max_file_size)


def unload_query_to_stage(conn: Any, attempt: Attempt, query: str, max_file_size: int) -> UnloadResult:
    """COPY INTO the attempt's stage folder as Parquet, with the column names of the query's projection."""
    sql = (
        f"COPY INTO {attempt.location} FROM ({query}) "
        f"FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE OVERWRITE = TRUE MAX_FILE_SIZE = {int(max_file_size)}"
    )
    cur = _execute(conn, sql, f"unloading {attempt.table}", attempt)
    found = cur.fetchone()
    if found is None:  # an unload that wrote nothing may answer with no row at all
        return UnloadResult(query_id=str(cur.sfqid), rows_unloaded=0, input_bytes=0, output_bytes=0)
    names = [d[0].lower() for d in cur.description]
    row = dict(zip(names, found, strict=True))
    return UnloadResult(
        query_id=str(cur.sfqid),
        rows_unloaded=int(row["rows_unloaded"]),
        input_bytes=int(row["input_bytes"]),
        output_bytes=int(row["output_bytes"]),
    )


def save_manifest(
    attempt: Attempt, unload: UnloadResult, query: str, verified: list[StagedFile] | None = None, complete: bool = False
) -> None:
    """Remember a finished unload and the files GET has delivered and verified so far, so a retry can skip them."""
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Any] = {"query": query, **asdict(unload), "complete": complete}
    saved["files"] = [asdict(f) for f in verified or []]
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
    return UnloadResult(**{k: saved[k] for k in ("query_id", "rows_unloaded", "input_bytes", "output_bytes")})


def _intact(attempt: Attempt, saved: dict[str, Any]) -> dict[str, int]:
    """Files a manifest lists as verified (name -> the size GET reported) that are still here at that size."""
    files = [StagedFile(**f) for f in saved.get("files", [])]
    return {
        f.name: f.size
        for f in files
        if (attempt.local_dir / f.name).is_file() and (attempt.local_dir / f.name).stat().st_size == f.size
    }


def verified_files(attempt: Attempt, query: str) -> dict[str, int]:
    """Files an earlier try of the same query downloaded and verified that are still here intact."""
    return _intact(attempt, _read_manifest(attempt, query) or {})


def downloaded_files(attempt: Attempt, query: str) -> list[Path] | None:
    """Every file of this attempt's finished download of the same query, if an earlier try left them intact."""
    saved = _read_manifest(attempt, query)
    if saved is None or not saved.get("complete"):
        return None
    intact = _intact(attempt, saved)
    if len(intact) != len(saved["files"]):
        return None
    return [attempt.local_dir / name for name in sorted(intact)]


def check_free_space(folder: Path, needed: int, purpose: str, reserve: int = 0) -> None:
    """Refuse before downloading when the files (plus the space to leave free) would not fit."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + reserve:
        kept = f" and {reserve:,} bytes kept free (SYNC_DISK_RESERVE_BYTES)" if reserve else ""
        raise NotEnoughDiskError(
            f"not enough disk to {purpose}: it needs about {needed:,} bytes in {folder} "
            f"(download plus DuckDB growth){kept} but only {free:,} are free. Free some space or point "
            "SYNC_DOWNLOAD_DIR / SYNC_DUCKDB_PATH at a larger disk."
        )


@dataclass(frozen=True)
class Download:
    files: list[Path]  # every file of the unload, in the attempt's folder
    fetched: list[str]  # names downloaded now
    reused: list[str]  # names a previous try had already downloaded and verified
    bytes: int = 0  # of all the files, on disk


def download_files(
    conn: Any, attempt: Attempt, unload: UnloadResult, query: str, expected: list[str], parallel: int
) -> Download:
    """GET the unloaded files not already here; verify each by the status and size GET reports for it.

    Verified files are recorded as they arrive, so a retry after a broken download fetches only the rest.
    """
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    verified = {name: size for name, size in verified_files(attempt, query).items() if name in expected}
    reused = sorted(verified)
    missing = [name for name in expected if name not in verified]
    if missing:
        target = attempt.local_dir.resolve().as_posix().replace("'", "\\'")
        pattern = "|".join(re.escape(name) for name in missing).replace("'", "\\'")
        cur = _execute(
            conn,
            f"GET {attempt.location} 'file://{target}/' PARALLEL = {int(parallel)} PATTERN = '.*({pattern})'",
            f"downloading {attempt.table}",
            attempt,
            # Report each file's outcome rather than raising on the first broken one, so the others count.
            _raise_put_get_error=False,
        )
        for file, size, status, *_ in cur.fetchall():
            name = str(file).replace("\\", "/").rsplit("/", 1)[-1]
            path = attempt.local_dir / name
            if str(status).upper() == "DOWNLOADED" and path.is_file() and path.stat().st_size == int(size):
                verified[name] = int(size)
        save_manifest(attempt, unload, query, [StagedFile(n, verified[n]) for n in sorted(verified)])
    failed = [name for name in expected if name not in verified]
    if failed:
        raise TransientError(
            f"downloading {attempt.table}: {len(failed)} of {len(expected)} files did not arrive intact "
            f"(first: {failed[0]}); the files that did are kept for the next try"
        )
    save_manifest(attempt, unload, query, [StagedFile(n, verified[n]) for n in sorted(verified)], complete=True)
    files = [attempt.local_dir / name for name in expected]
    return Download(files, missing, reused, files_size(files))


def files_size(files: list[Path]) -> int:
    """Bytes on disk of downloaded files."""
    return sum(f.stat().st_size for f in files)


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
    stage_folders: list[str]  # attempt folders removed from the stage
    folders: list[Path]  # local download folders removed


_ATTEMPT_IN_NAME = re.compile(rf"(?:^|/){re.escape(STAGE_FOLDER)}({STAGE_PREFIX}[^/]+)/", re.IGNORECASE)


def remove_leftovers(
    conn: Any, stage: str, download_root: Path, older_than: dt.timedelta, now: dt.datetime
) -> Leftovers:
    """Remove attempt folders (in the stage and locally) this project made longer ago than `older_than`.

    A live sync's folders are younger than that, so they are left alone; nothing outside the project's
    `sync_project/` folder of the stage is touched.
    """
    cutoff = now - older_than
    stage = validate_stage(stage)
    location = f"'@{stage}/{STAGE_FOLDER}'"
    cur = _execute(conn, f"LIST {location}", f"listing {location}")
    attempts = sorted({m.group(1) for r in cur.fetchall() if (m := _ATTEMPT_IN_NAME.search(str(r[0])))})
    removed_stage: list[str] = []
    for name in attempts:
        stamp = parse_stamp(name)
        if stamp is not None and stamp < cutoff:
            target = f"'@{stage}/{STAGE_FOLDER}{name}/'"
            _execute(conn, f"REMOVE {target}", f"removing {target}")
            removed_stage.append(f"@{stage}/{STAGE_FOLDER}{name}/")
    removed: list[Path] = []
    for folder in sorted(download_root.glob(f"*/{STAGE_PREFIX}*")) if download_root.exists() else []:
        stamp = parse_stamp(folder.name)
        if folder.is_dir() and stamp is not None and stamp < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return Leftovers(removed_stage, removed)
