"""The Snowflake half of a sync: the table's rows out of Snowflake into Parquet files in the attempt's folder,
by an unload through a stage (COPY INTO, then GET, resuming what a failed try left) or by the query's result
set (`results.py`), as `paths.py` picks. No DuckDB here (DESIGN.md invariant 2); a big table's files go to the
caller's load as they arrive (`feed.py`), which then runs while the stage is still there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from sync_project.sync.attempt import Attempt, downloaded_files, load_manifest, save_manifest
from sync_project.sync.cleanup import AttemptCleanup
from sync_project.sync.controls import UnloadPreventedError, row_access_policy
from sync_project.sync.disk import check_free_space, files_size, needed_space
from sync_project.sync.errors import TransientError
from sync_project.sync.feed import GROUPS_ON_DISK, FileFeed, in_groups, streams
from sync_project.sync.mirror.access import Log
from sync_project.sync.options import SyncOptions
from sync_project.sync.paths import choose_path
from sync_project.sync.report import SyncReport
from sync_project.sync.results import extract_to_files
from sync_project.sync.stage import (
    Download,
    clear_location,
    download_files,
    staged_names,
    unload_query,
    unload_to_stage,
)
from sync_project.sync.state import UNLOAD_PREVENTED, SyncState
from sync_project.sync.strategy import cursor_predicate


def move_rows(
    report: SyncReport,
    conn: Any,
    attempt: Attempt,
    cleanup: AttemptCleanup,
    options: SyncOptions,
    state: SyncState,
    log: Log,
    entering: Callable[[str], contextlib.AbstractContextManager[None]],
    load_as_they_arrive: Callable[[FileFeed], None] | None = None,
) -> None:
    """Out of Snowflake into the attempt's Parquet files, by the way `paths.py` picks; under `auto`, an unload
    the account refuses falls back to the result set in the same attempt. A full unload of more files than two
    groups goes to `load_as_they_arrive` as a feed instead, before the stage is removed."""
    where = incremental_where(report, state)
    prevented = state.unload_prevented
    extract = report.options.extract or options.extract  # the table's own setting, else the mirror's
    report.path, report.path_reason = choose_path(extract, report.source, options.results_max_bytes, prevented)
    if report.path == "unload":
        try:
            with cleanup.stage(conn), cleanup.keeping_on(TransientError):
                with entering("unload"):
                    query = _unload_or_resume(report, conn, attempt, options, where, log)
                with entering("download"):
                    feed = _download_or_feed(report, conn, attempt, options, query, log, bool(load_as_they_arrive))
                if feed is not None and load_as_they_arrive is not None:
                    load_as_they_arrive(feed)
        except UnloadPreventedError as refused:
            if extract != "auto":
                raise
            report.path, report.path_reason = "results", f"Snowflake refused the unload; to lift it, {refused.fix}"
            report.noted[UNLOAD_PREVENTED] = refused.fix
            log(f"{report.table}: {refused} Reading the result set instead, and so for a day, from this mirror")
        else:
            if prevented is not None:
                report.noted[UNLOAD_PREVENTED] = None  # the unload worked: the control has been lifted
    if report.path == "results":
        log(f"{report.table}: reading its result set: {report.path_reason}")
        with entering("result_set"):
            report.unload, report.download = extract_to_files(
                conn, attempt, report.columns, where, options.get_parallel
            )
    _note_row_access_policy(report, conn, where, log)


def incremental_where(report: SyncReport, state: SyncState) -> str | None:
    """The unload's WHERE on an incremental sync: the cursor from the last high-water mark on."""
    cursor = next((c for c in report.columns if c.name == report.options.cursor_column), None)
    if report.strategy != "incremental" or cursor is None or state.high_water_mark is None:
        return None
    return cursor_predicate(cursor, state.high_water_mark)


def _unload_or_resume(
    report: SyncReport, conn: Any, attempt: Attempt, options: SyncOptions, where: str | None, log: Log
) -> str:
    """Unload to the stage, or take up the attempt a failed try left (its unload, and maybe its download).
    Returns the unload's query, which the attempt's manifest is keyed by."""
    table = report.table
    query = unload_query(table, report.columns, where)
    unload = load_manifest(attempt, query)
    downloaded = downloaded_files(attempt, query) if unload is not None else None
    if unload is not None and downloaded is not None:
        report.resumed_unload = True
        report.download = Download(downloaded, [], [f.name for f in downloaded], files_size(downloaded))
        log(f"{table}: resuming attempt {attempt.name}: its unload and download are done")
    elif unload is not None and (not unload.rows_unloaded or staged_names(conn, attempt)):
        report.resumed_unload = True
        log(f"{table}: resuming attempt {attempt.name}: its unload is done already")
    else:
        clear_location(conn, attempt)
        unload = unload_to_stage(conn, attempt, report.columns, options.max_file_size, where)
        save_manifest(attempt, unload, query)
    report.unload = unload
    log(f"{table}: unloaded {unload.rows_unloaded:,} rows, {unload.output_bytes:,} bytes of Parquet")
    return query


def _note_row_access_policy(report: SyncReport, conn: Any, where: str | None, log: Log) -> None:
    """A row access policy shows the role fewer rows than the table's own count says it holds."""
    counted = report.source.rows if report.source is not None else None
    read = report.rows_unloaded
    if where is None and counted is not None and read < counted and (policy := row_access_policy(conn, report.table)):
        report.row_access_policy = policy
        log(f"{report.table}: the row access policy {policy} lets this role read {read:,} of {counted:,}")


def _download_or_feed(
    report: SyncReport, conn: Any, attempt: Attempt, options: SyncOptions, query: str, log: Log, feeding: bool
) -> FileFeed | None:
    """Download every file (or reuse those a failed try left), or, when `feeding` and the unload is big enough,
    return the feed that will download them a group at a time."""
    unload = report.unload
    if report.download is not None or unload is None:
        return None  # the attempt's files are all here already
    if not unload.rows_unloaded:  # a 0-row unload writes no file, and GET on nothing raises
        report.download = Download([], [], [], 0)
        return None
    staged = staged_names(conn, attempt)
    fed = feeding and unload.output_bytes >= options.feed_from_bytes and streams(len(staged), report.strategy)
    # Fed, the folder holds two groups of whole files at most; a file may pass MAX_FILE_SIZE by a little.
    per_file = max(options.max_file_size, unload.output_bytes // max(1, len(staged))) * 5 // 4
    at_once = GROUPS_ON_DISK * len(in_groups(staged)[0]) * per_file if fed else None
    for folder, needed in needed_space(options, unload, at_once).items():
        check_free_space(folder, needed, f"sync {report.table}", options.disk_reserve)
    if fed:
        return FileFeed(conn, attempt, unload, query, staged, options.get_parallel)
    download = download_files(conn, attempt, unload, query, staged, options.get_parallel)
    report.download = download
    log(
        f"{report.table}: downloaded {len(download.fetched)} file(s)"
        + (f", reused {len(download.reused)} from the failed try" if download.reused else "")
    )
    return None
