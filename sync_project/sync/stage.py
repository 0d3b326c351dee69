"""The Snowflake statements of a sync: the session's settings, COPY INTO a stage folder, LIST, GET verified by
what GET reports, REMOVE.

Everything here takes an open connector connection; nothing opens DuckDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.attempt import (
    USER_STAGE,
    Attempt,
    StagedFile,
    UnloadResult,
    save_manifest,
    verified_files,
)
from sync_project.sync.catalog import Column
from sync_project.sync.controls import TIMEOUT_ERRNO, UnloadPreventedError, statement_timed_out, unload_prevented
from sync_project.sync.disk import files_size
from sync_project.sync.errors import PermanentError, SyncError, TransientError, from_snowflake
from sync_project.sync.setting_names import SYNC_STAGE
from sync_project.sync.tables import TableRef

# Session settings the project relies on, whatever the account or user has set: exact quoted names (with
# QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE, "data" would mean DATA), and one logical Parquet schema for every file of
# an unload (DESIGN.md, "Snowflake facts"). Every connection the project opens asks for them at sign-in (the
# resource's `session_parameters`, no extra round trip); the sync sets them again on the connection it is given.
# Result chunks of at most 48 MB (the documented minimum; 160 by default) bound what a result-set sync holds:
# a chunk arriving, one being written (10,000,000 rows: `make bench`'s result-set line).
SESSION_PARAMETERS: dict[str, bool | int] = {
    "QUOTED_IDENTIFIERS_IGNORE_CASE": False,
    "ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION": False,
    "CLIENT_RESULT_CHUNK_SIZE": 48,
}
# Sign-in arguments of every connection the project makes. The connector probes six cloud metadata endpoints at
# each sign-in to report its platform (`platform_detection.py`; a boto3 client and up to 0.2 s each time): CPU a
# run of small tables pays once per worker, for telemetry the sync does not need. 0.0 skips the probes, keeping
# the checks of environment variables (the connector's documented `platform_detection_timeout_seconds`).
SIGN_IN_ARGUMENTS: dict[str, float] = {"platform_detection_timeout_seconds": 0.0}
SESSION_SETTINGS = " ".join(f"{name} = {str(value).upper()}" for name, value in SESSION_PARAMETERS.items())


# Snowflake's answers when a role may not use a stage: no privilege on it at all (it is invisible), or not enough.
_STAGE_PRIVILEGE_ERRNOS = {2003, 3001}


def execute(conn: Any, sql: str, what: str, on_stage: Attempt | None = None, **kwargs: Any) -> Any:
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
                f"{on_stage.table}: the stage {on_stage.stage} ({SYNC_STAGE}) cannot be used by this role: an "
                f"internal stage needs READ and WRITE on it, an external one USAGE. Grant them, or unset {SYNC_STAGE} "
                f"to unload through the user stage (@~), which needs no privilege. (Snowflake error {e.errno}: "
                f"{e.raw_msg})"
            ) from None
        if e.errno == TIMEOUT_ERRNO and on_stage is not None:
            raise statement_timed_out(conn, on_stage.table, what) from None
        raise from_snowflake(e, what) from None


def configure_session(conn: Any) -> None:
    """Set what the sync relies on, so an account's defaults cannot change how names or files come out."""
    execute(conn, f"ALTER SESSION SET {SESSION_SETTINGS}", "configuring the Snowflake session")


def staged_names(conn: Any, attempt: Attempt) -> list[str]:
    """The attempt's files in the stage (names only: LIST's sizes are of the encrypted objects)."""
    cur = execute(conn, f"LIST {attempt.location}", f"listing unloaded files of {attempt.table}", attempt)
    return sorted({str(r[0]).rsplit("/", 1)[-1] for r in cur.fetchall()})


def unload_query(table: TableRef, columns: list[Column], where: str | None = None) -> str:
    """The explicit projection: every column converted as the type map says and aliased by its exact name."""
    projection = ", ".join(c.unload_expression for c in columns)
    return f"SELECT {projection} FROM {table.snowflake_sql}" + (f" WHERE {where}" if where else "")


def clear_location(conn: Any, attempt: Attempt) -> None:
    """Remove the attempt's files from the stage: after the sync, and before an unload, because OVERWRITE
    replaces only files of the same name and an earlier try may have left others."""
    execute(conn, f"REMOVE {attempt.location}", f"clearing the stage folder of {attempt.table}", attempt)


def unload_to_stage(
    conn: Any, attempt: Attempt, columns: list[Column], max_file_size: int, where: str | None = None
) -> UnloadResult:
    return unload_query_to_stage(conn, attempt, unload_query(attempt.table, columns, where), max_file_size)


def require_internal_stage(conn: Any, attempt: Attempt) -> None:
    """A named stage must be internal: GET downloads only from internal stages (an external stage's files are
    fetched with the cloud's own tools), so an unload to an external one would be paid for and then stranded.
    DESC STAGE says where a stage's files live (STAGE_LOCATION's URL, empty for an internal stage)."""
    if attempt.stage == USER_STAGE:
        return
    cur = execute(conn, f"DESC STAGE {attempt.stage}", f"describing the stage of {attempt.table}", attempt)
    names = [d[0].lower() for d in cur.description]
    for row in cur.fetchall():
        found = dict(zip(names, row, strict=True))
        url = str(found.get("property_value") or "").strip()
        if str(found.get("property", "")).upper() == "URL" and url not in ("", "[]"):
            raise PermanentError(
                f"{attempt.table}: {SYNC_STAGE} names {attempt.stage}, an external stage ({url}). GET downloads only "
                "from internal stages, so the sync could unload there but never fetch the files; nothing was "
                f"unloaded. Name an internal stage (CREATE STAGE without URL), or unset {SYNC_STAGE} to unload "
                "through the user stage @~."
            )


def unload_query_to_stage(conn: Any, attempt: Attempt, query: str, max_file_size: int) -> UnloadResult:
    """COPY INTO the attempt's stage folder as Parquet, with the column names of the query's projection."""
    require_internal_stage(conn, attempt)
    sql = (
        f"COPY INTO {attempt.location} FROM ({query}) "
        f"FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE OVERWRITE = TRUE MAX_FILE_SIZE = {int(max_file_size)}"
    )
    try:
        cur = execute(conn, sql, f"unloading {attempt.table}", attempt)
    except PermanentError as refused:
        # Snowflake's refusal of an unload does not say why in a form to rely on; ask about the one control
        # that refuses every unload, and name its fix.
        if prevented := unload_prevented(conn):
            raise UnloadPreventedError(prevented, str(attempt.table)) from refused
        raise
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


# A GET statement names the files it wants only when a retry needs some of them: on a first try the attempt's
# folder holds exactly its own files, and listing tens of thousands of names would make a huge statement.
_MAX_PATTERN = 10_000


def _only_these(missing: list[str], named: bool) -> str:
    """The PATTERN naming `missing`, when `named` (a retry, or a group of a feed) and it fits in a statement."""
    if not named:
        return ""
    pattern = "|".join(re.escape(name) for name in missing).replace("'", "\\'")
    return f" PATTERN = '.*({pattern})'" if len(pattern) <= _MAX_PATTERN else ""


_URL = re.compile(r"https?://\S+?(?=['\")\s]|$)")


def _without_urls(message: str) -> str:
    """GET's messages quote presigned URLs, which grant access to the file for an hour: never pass one on."""
    return _URL.sub("<presigned URL>", message)[:300]


class StorageRefusedError(PermanentError):
    """The stage's cloud storage answered 403 to GET: a proxy, TLS inspection or a VPC endpoint policy between
    this machine and the storage refuses the presigned URLs. Retrying does not change the path."""

    fix = (
        "let this machine reach the stage's cloud storage over HTTPS without a proxy rewriting or refusing "
        "presigned URLs (SELECT SYSTEM$ALLOWLIST() lists the hosts; a VPC endpoint policy must allow the bucket)"
    )


def _download_failure(attempt: Attempt, failed: list[str], total: int, problems: dict[str, str]) -> SyncError:
    """What went wrong with the files GET did not bring: refused (403, permanent), an expired presigned URL or a
    file cut short (transient: a new GET gets new URLs and another go), with GET's own words for the first."""
    first = failed[0]
    said = problems.get(first, "missing from GET's answer")
    head = f"downloading {attempt.table}: {len(failed)} of {total} files did not arrive intact"
    if any(re.search(r"\b403\b|Forbidden|AccessDenied", problems.get(n, "")) for n in failed):
        return StorageRefusedError(f"{head}: the storage refused them (first: {first}: {said}); not retried")
    if any(re.search(r"\b400\b|ExpiredToken|expired", problems.get(n, ""), re.I) for n in failed):
        kind = "their presigned URLs had expired (a slow network, or this machine's clock far off)"
    elif any(re.search(r"IncompleteRead|Connection broken|short", problems.get(n, ""), re.I) for n in failed):
        kind = "the connection broke mid-file"
    else:
        kind = "GET did not bring them whole"
    return TransientError(f"{head}: {kind} (first: {first}: {said}); the files that did are kept for the next try")


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
    verified = {name: size for name, size in verified_files(attempt, query).items() if name in expected}
    reused = sorted(verified)
    missing = [name for name in expected if name not in verified]
    fetch_files(conn, attempt, unload, query, missing, verified, parallel, named=bool(reused))
    save_manifest(attempt, unload, query, [StagedFile(n, verified[n]) for n in sorted(verified)], complete=True)
    files = [attempt.local_dir / name for name in expected]
    return Download(files, missing, reused, files_size(files))


def fetch_files(
    conn: Any,
    attempt: Attempt,
    unload: UnloadResult,
    query: str,
    wanted: list[str],
    verified: dict[str, int],
    parallel: int,
    named: bool = True,
) -> None:
    """GET these files of the attempt's stage (by name when `named`; else the folder holds only them), add each
    that arrived whole to `verified` (name -> size) and record it in the manifest; raise for the rest."""
    if not wanted:
        return
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    problems: dict[str, str] = {}  # file -> what GET said went wrong with it
    target = attempt.local_dir.resolve().as_posix().replace("'", "\\'")
    cur = execute(
        conn,
        f"GET {attempt.location} 'file://{target}/' PARALLEL = {int(parallel)}{_only_these(wanted, named)}",
        f"downloading {attempt.table}",
        attempt,
        # Report each file's outcome rather than raising on the first broken one, so the others count.
        _raise_put_get_error=False,
    )
    for file, size, status, *message in cur.fetchall():
        name = str(file).replace("\\", "/").rsplit("/", 1)[-1]
        path = attempt.local_dir / name
        if str(status).upper() == "DOWNLOADED" and path.is_file() and path.stat().st_size == int(size):
            verified[name] = int(size)
        elif name in wanted:
            problems[name] = _without_urls(str(message[0]) if message and message[0] else str(status))
    save_manifest(attempt, unload, query, [StagedFile(n, verified[n]) for n in sorted(verified)])
    failed = [name for name in wanted if name not in verified]
    if failed:
        raise _download_failure(attempt, failed, len(wanted), problems)
