"""One sync of one table, start to finish: describe -> stage -> unload -> GET -> load -> cleanup.

Plain Python: takes a way to connect to Snowflake and a few settings, returns a
SyncReport. The Dagster asset is a thin shell around `sync_table`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_project.sync.attempt import Attempt
from sync_project.sync.cancel import Cancellation, Interrupted
from sync_project.sync.catalog import RunFigures, describe_table
from sync_project.sync.cleanup import AttemptCleanup
from sync_project.sync.content import compare_content, snowflake_content
from sync_project.sync.deletes import KeysDiffer, check_keys, deletes_certain, extract_keys
from sync_project.sync.errors import LockTimeoutError, PermanentError, SyncError
from sync_project.sync.feed import FileFeed
from sync_project.sync.load import LoadPlan, load_table
from sync_project.sync.mirror.access import Log, Waited
from sync_project.sync.moving import incremental_where, move_rows
from sync_project.sync.options import Connect, SyncOptions
from sync_project.sync.report import WAIT_PHASE, SyncReport
from sync_project.sync.run_states import RunStates
from sync_project.sync.sessions import SnowflakeSessions, session_for
from sync_project.sync.setting_names import SNOWFLAKE_DATABASE
from sync_project.sync.state import (
    Strategy,
    SyncState,
    validate_options,
)
from sync_project.sync.strategy import choose_strategy
from sync_project.sync.tables import TableRef


@contextlib.contextmanager
def _phase(report: SyncReport, name: str, log: Log) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        # A phase run twice (the load again, once every key is read) counts both times.
        report.phase_seconds[name] = round(report.phase_seconds.get(name, 0.0) + time.monotonic() - started, 3)
        log(f"{report.table}: {name} took {report.phase_seconds[name]:.2f}s")


@contextlib.contextmanager
def _step(report: SyncReport, name: str, log: Log, cancellation: Cancellation) -> Iterator[None]:
    """One timed phase that a cancellation stops: none starts once it is set, and a failure while it is set (the
    cancelled statement's error, the interrupted load's) is `Interrupted`, so nothing keeps its files for a retry."""
    cancellation.raise_if_set(report.table, f"before its {name}")
    try:
        with _phase(report, name, log):
            yield
    except Interrupted:
        raise
    except Exception:
        if cancellation.is_set:
            raise cancellation.interrupted(report.table, f"during its {name}") from None
        raise


def sync_table(
    connect: Connect,
    table: TableRef,
    options: SyncOptions,
    log: Log = lambda _: None,
    *,
    strategy: Strategy | None = None,
    rebuild: bool = False,
    attempt_id: str | None = None,
    attempt_started: dt.datetime | None = None,
    keep_for_retry: bool = False,
    cancellation: Cancellation | None = None,
    sessions: SnowflakeSessions | None = None,
    figures: RunFigures | None = None,
    states: RunStates | None = None,
) -> SyncReport:
    """Sync one table: describe, unload (or resume), download (or reuse), load. On any failure the previous
    table and its state are untouched.

    `attempt_id` ties retries of one run together: they reuse its stage and the files already downloaded
    (see `AttemptCleanup` for when they are kept). A set `cancellation` stops it with `Interrupted` (`cancel.py`).
    `sessions`, `figures` and `states`: what the tables of one run share (Snowflake sessions, one listing of
    figures per schema, one read of their states).
    """
    cancellation = cancellation or Cancellation()

    def entering(name: str) -> contextlib.AbstractContextManager[None]:
        return _step(report, name, log, cancellation)

    state_wait = Waited()
    state, target, elsewhere = (states or RunStates(options, [table])).of(table, log, state_wait)
    _refuse_what_cannot_sync(table, state, elsewhere, strategy, rebuild)
    effective, reason = choose_strategy(strategy, state, target, rebuild)
    report = SyncReport(table=table, strategy=effective, strategy_reason=reason, options=state.options)
    log(f"{table}: {effective} sync ({reason})")
    attempt = Attempt.new(table, options.download_root, attempt_id, attempt_started, options.stage)
    cleanup = AttemptCleanup(attempt, keep_for_retry)
    load = functools.partial(_load, report, options, state, log, cancellation)
    with cleanup.local_files():
        # Snowflake work first, with no DuckDB connection open (DESIGN.md invariant 2), but for a big table's
        # files, which are loaded as they arrive (feed.py).
        with session_for(connect, sessions, table, cancellation) as conn:
            with entering("describe"):
                _describe(report, conn, state, figures or RunFigures([table]))
            after_the_rows = functools.partial(
                _after_the_rows, report, conn, state, lambda: _read_every_key(report, conn, attempt, options), entering
            )
            feeding = functools.partial(_load_as_they_arrive, report, load, after_the_rows, cleanup, entering, log)
            move_rows(report, conn, attempt, cleanup, options, state, log, entering, feeding)
            if report.load is None:
                after_the_rows()
        if report.load is None:
            reconnect = functools.partial(session_for, connect, sessions, table, cancellation)
            _load_deleting(report, load, reconnect, attempt, options, cleanup, entering, log)
    _compare_content(report, log)
    _split_wait(report, state_wait.seconds)
    return report


def _refuse_what_cannot_sync(
    table: TableRef, state: SyncState, elsewhere: str | None, strategy: Strategy | None, rebuild: bool
) -> None:
    if elsewhere and not rebuild:
        raise PermanentError(
            f"{table.key} was last synced from database {elsewhere}, and {SNOWFLAKE_DATABASE} now names "
            f"{table.database}: set {SNOWFLAKE_DATABASE}={elsewhere} back, or run `sync-project rebuild {table.key}` "
            f"to mirror {table} in its place"
        )
    if (strategy or state.options.strategy) == "incremental" and not state.options.cursor_column:
        raise PermanentError(
            f"{table}: an incremental sync needs a cursor column; set it with "
            f"`sync-project register {table.key} --strategy incremental --cursor COLUMN`"
        )


def _after_the_rows(
    report: SyncReport,
    conn: Any,
    state: SyncState,
    read_every_key: Callable[[], None],
    entering: Callable[[str], contextlib.AbstractContextManager[None]],
) -> None:
    """Snowflake's other reads of the table, after its rows, never before (deletes.py says why): the keys'
    aggregates, for an incremental sync that removes deleted rows (and every key at once when some row is
    certainly gone); the content check's, for `verify: content`."""
    if report.strategy == "incremental" and report.options.detects_deletes:
        with entering("key check"):
            where = incremental_where(report, state)
            report.key_check = check_keys(conn, report.table, report.columns, report.options.primary_key, where)
        if deletes_certain(report.key_check, state.rows, report.rows_unloaded):
            with entering("keys"):
                read_every_key()
    if report.options.verify == "content":
        with entering("verify"):
            report.content_in_snowflake = snowflake_content(conn, report.table, report.columns)


def _read_every_key(report: SyncReport, conn: Any, attempt: Attempt, options: SyncOptions) -> None:
    report.keys = extract_keys(
        conn, attempt, report.columns, report.options.primary_key, report.path,
        options.max_file_size, options.get_parallel,
    )  # fmt: skip


def _load_as_they_arrive(
    report: SyncReport,
    load: Callable[..., None],
    after_the_rows: Callable[[], None],
    cleanup: AttemptCleanup,
    entering: Callable[[str], contextlib.AbstractContextManager[None]],
    log: Log,
    feed: FileFeed,
) -> None:
    """A full sync's load, reading each group of files as the feed brings it. Snowflake's other reads of the
    table come first, while the session is free. The load's waits for files count as the download's."""
    after_the_rows()
    try:
        with feed.running(), cleanup.keeping_on(LockTimeoutError), entering("load"):
            load(feed.groups(), len(feed.names))
    finally:
        report.download = feed.download()
        report.download_peak_bytes = feed.peak_bytes
        waited = min(feed.waited_seconds, report.phase_seconds.get("load", 0.0))
        report.phase_seconds["download"] = round(report.phase_seconds.get("download", 0.0) + waited, 3)
        report.phase_seconds["load"] = round(report.phase_seconds.get("load", 0.0) - waited, 3)
    log(
        f"{report.table}: downloaded {len(feed.fetched)} file(s) as the load read them"
        + (f", reused {len(feed.reused)} from the failed try" if feed.reused else "")
        + f" (their GETs took {feed.download_seconds:.2f}s); the folder held {feed.peak_bytes:,} bytes at most, "
        + f"of {report.bytes_downloaded:,}"
    )


def _load_deleting(
    report: SyncReport,
    load: Callable[[], None],
    reconnect: Callable[[], contextlib.AbstractContextManager[Any]],
    attempt: Attempt,
    options: SyncOptions,
    cleanup: AttemptCleanup,
    entering: Callable[[str], contextlib.AbstractContextManager[None]],
    log: Log,
) -> None:
    """The load; if the merged table's keys differ from Snowflake's (it rolled back), every key is read, with
    no DuckDB connection open, and the load runs again with them."""
    try:
        with cleanup.keeping_on(LockTimeoutError), entering("load"):
            load()
    except KeysDiffer as differ:
        log(f"{differ}; reading every key")
        with reconnect() as conn, entering("keys"):
            _read_every_key(report, conn, attempt, options)
        with cleanup.keeping_on(LockTimeoutError), entering("load"):
            load()


def _compare_content(report: SyncReport, log: Log) -> None:
    """The content check's two halves, Snowflake's and the committed table's, compared (`verify: content`)."""
    if report.content_in_snowflake is not None and report.load and report.load.content is not None:
        report.content = compare_content(report.table, report.columns, report.content_in_snowflake, report.load.content)
        log(report.content.summary())


def _describe(report: SyncReport, conn: Any, state: SyncState, figures: RunFigures) -> None:
    """Snowflake's figures, then the columns (the figures say whether it is a view: one round trip fewer). A
    table the figures do not show gets DESC's own answer: not found, or a view, or no figures."""
    with contextlib.suppress(SyncError):
        report.source = figures.of(conn, report.table)
    report.columns = describe_table(conn, report.table, report.source)
    report.options = validate_options(report.table, report.columns, state.options)


def _load(
    report: SyncReport,
    options: SyncOptions,
    state: SyncState,
    log: Log,
    cancellation: Cancellation,
    groups: Iterable[list[Path]] | None = None,
    count: int | None = None,
) -> None:
    """The load, of every downloaded file at once, or of `groups` as they arrive."""
    plan = LoadPlan(
        strategy=report.strategy,
        cursor_column=report.options.cursor_column,
        primary_key=report.options.primary_key,
        previous_mark=state.high_water_mark if report.strategy == "incremental" else None,
        facts=tuple(report.noted.items()),
        keys=report.keys,
        key_check=report.key_check,
        deletes=report.options.deletes_mode,
        content=report.content_in_snowflake is not None,
    )
    report.load = load_table(
        options.mirror,
        report.table,
        report.columns,
        groups if groups is not None else [report.download.files if report.download else []],
        report.rows_unloaded,
        plan,
        log,
        cancellation=cancellation,
        count=count if count is not None else report.files,
    )


def _split_wait(report: SyncReport, before: float) -> None:
    """Waiting for the DuckDB file is not loading: its own phase (the state read's wait and the load's), so
    rows/s measure the load."""
    waited = report.load.waited_seconds if report.load else 0.0
    if waited or before:
        report.phase_seconds[WAIT_PHASE] = round(before + waited, 3)
        report.phase_seconds["load"] = round(max(report.phase_seconds["load"] - waited, 0.0), 3)


@dataclass(frozen=True)
class TableOutcome:
    """One table of a many-table sync: its report, or the error that stopped it (never both)."""

    table: TableRef
    report: SyncReport | None = None
    error: Exception | None = None


def sync_tables(
    connect: Connect,
    tables: list[TableRef],
    options: SyncOptions,
    workers: int,
    log: Log = lambda _: None,
    **per_table: Any,
) -> Iterator[TableOutcome]:
    """Sync several tables, yielding each outcome as it completes; one table's failure stops no other.

    Up to `workers` tables are in flight at once: their Snowflake work (DESC, COPY INTO, GET) mostly waits on
    Snowflake and overlaps, and their DuckDB loads overlap too, each in its own transaction on the run's one
    instance of the file (`sharing.py`), so one big load holds up no small one. They share
    Snowflake sessions, one listing of figures per schema, and the mirror's opening while loads follow each
    other closely: what a small table cannot afford to pay each time.

    An interrupt (KeyboardInterrupt, SIGTERM made one, Dagster's termination) arrives in the thread iterating
    this: it cancels every table in flight (`cancel.py`), starts no other, waits for their cleanup, and goes on.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    cancellation = Cancellation()
    sessions, figures, states = SnowflakeSessions(connect), RunFigures(tables), RunStates(options, tables)
    sharing = options.mirror.sharing()
    sharing.__enter__()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sync")
    try:
        futures = {
            pool.submit(
                sync_table, connect, t, options, log,
                cancellation=cancellation, sessions=sessions, figures=figures, states=states, **per_table,
            ): t
            for t in tables
        }  # fmt: skip
        for future in as_completed(futures):
            table = futures[future]
            try:
                yield TableOutcome(table, report=future.result())
            except Exception as e:  # each table's failure is its own outcome, reported with its table
                yield TableOutcome(table, error=e)
    except BaseException as stop:
        # An interrupt, or the consumer stopped reading (GeneratorExit): nothing still running is wanted.
        why = "the caller stopped reading" if isinstance(stop, GeneratorExit) else "interrupted"
        log(f"{why}: cancelling the syncs still running of {len(tables)} table(s)")
        cancellation.cancel(log)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        sessions.close()
        sharing.__exit__(None, None, None)
