"""Getting at a DuckDB file: the project's lock, DuckDB's own lock, and saying so while waiting.

DuckDB allows one writing process per file, and a writer keeps out even read-only openers. The
project's processes take turns through a cross-process lock beside the working file, and record who
holds it, so that a wait can name the holder. A process outside the project (a notebook, a SQL
client) that opens the working file shows up as DuckDB's lock error, which names the PID and, when
the holder is a read-only reader, says so. Every wait is logged at once and every 30 s: who holds the
file, for how long so far, and when the waiter gives up.

Readers are not meant to open the working file at all: they open the published copy (publish.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import filelock

from sync_project.sync.errors import LockTimeoutError, PermanentError
from sync_project.sync.mirror.waiting import wanting
from sync_project.sync.setting_names import SYNC_DUCKDB_PATH, SYNC_LOCK_TIMEOUT_SECONDS, SYNC_PUBLISHED_PATH

Log = Callable[[str], None]

# Bounded memory whatever the table size: DuckDB spills past this instead of growing.
DUCKDB_MEMORY_LIMIT = "512MB"
WAIT_REPORT_SECONDS = 30.0
# New files are written in this storage version unless told otherwise: the oldest DuckDB 1.5 can write
# (v1.0.0, readable by DuckDB 0.10 and every later release), and it holds every type of the type map.
DEFAULT_STORAGE_VERSION = "v1.0.0"


def lock_path(duckdb_path: Path) -> Path:
    return duckdb_path.with_name(duckdb_path.name + ".lock")


def _holder_path(duckdb_path: Path) -> Path:
    return duckdb_path.with_name(duckdb_path.name + ".lock.holder")


def _program() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


@dataclass(frozen=True)
class Holder:
    """Who holds a file, as far as anyone can tell."""

    pid: int | None
    program: str
    access: str  # "read-only", "read-write", or "" when unknown
    purpose: str = ""
    since: float | None = None  # epoch seconds

    def describe(self, now: float | None = None) -> str:
        who = f"process {self.pid} ({self.program})" if self.pid else "another process"
        what = f" {self.purpose}" if self.purpose else ""
        how = f", {self.access}" if self.access else ""
        held = f", for {(now or time.time()) - self.since:.0f}s" if self.since else ""
        return f"{who}{what}{how}{held}"


def project_holder(duckdb_path: Path) -> Holder | None:
    """The project process holding the lock, from the note it leaves beside it (None if none is readable)."""
    try:
        note = json.loads(_holder_path(duckdb_path).read_text())
        holder = Holder(
            int(note["pid"]), str(note["program"]), "read-write", str(note["purpose"]), float(note["since"])
        )
        os.kill(int(note["pid"]), 0)  # a note left by a killed process names no one
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return holder


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
# DuckDB adds this when the holder has the file open read-only (so only writing is refused).
_HOLDER_READS_ONLY = "would be able to open this database in read-only mode"


def duckdb_holder(message: str, wanted_read_only: bool) -> Holder:
    """The holder DuckDB's lock error names; its access follows from what we asked and DuckDB's hint."""
    match = _LOCK_HOLDER.search(message)
    access = "read-only" if _HOLDER_READS_ONLY in message and not wanted_read_only else "read-write"
    if match:
        return Holder(int(match.group("pid")), Path(match.group("program")).name, access)
    return Holder(None, "another process", access)


def _until(deadline: float) -> str:
    return dt.datetime.fromtimestamp(time.time() + deadline - time.monotonic()).strftime("%H:%M:%S")


@dataclass
class Waited:
    """Seconds spent waiting for the file, so phase timings can tell waiting from working."""

    seconds: float = 0.0


def wait_for(
    attempt: Callable[[float], bool],
    holder: Callable[[], Holder | None],
    path: Path,
    timeout: float,
    what: str,
    log: Log,
) -> float:
    """Call `attempt(seconds)` until it succeeds, saying at once and every 30 s who holds `path`."""
    started = time.monotonic()
    deadline = started + timeout
    if attempt(0):
        return 0.0
    while True:
        remaining = deadline - time.monotonic()
        found = holder()
        held_by = found.describe() if found else "another process"
        if remaining <= 0:
            raise LockTimeoutError(
                f"{what}: {path} was held by {held_by} for longer than the {timeout:.0f}s allowed "
                f"({SYNC_LOCK_TIMEOUT_SECONDS})" + _advice(found)
            )
        log(
            f"{what}: waiting for {path}, held by {held_by}; waited {time.monotonic() - started:.0f}s, "
            f"giving up at {_until(deadline)} ({SYNC_LOCK_TIMEOUT_SECONDS}={timeout:.0f})"
        )
        if attempt(min(WAIT_REPORT_SECONDS, remaining)):
            return time.monotonic() - started


def _advice(holder: Holder | None) -> str:
    if holder is None or holder.purpose:
        return ""  # one of our own syncs or chores: it ends by itself
    if holder.access == "read-only":
        return (
            ". A read-only connection still keeps every writer out of a DuckDB file: close it, and open the "
            f"published copy ({SYNC_PUBLISHED_PATH}) instead, which no sync ever waits for"
        )
    return ". Close that connection (DuckDB allows one writing process per file); readers belong on the published copy"


@contextlib.contextmanager
def writer_lock(
    duckdb_path: Path, timeout: float, what: str = "", log: Log | None = None, waited: Waited | None = None
) -> Iterator[None]:
    """Hold the project's lock for `duckdb_path`; LockTimeoutError (transient) if it stays taken."""
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    # Not thread-local: a run's shared instance (sharing.py) may be closed, and the lock released, by another thread.
    lock = filelock.FileLock(str(lock_path(duckdb_path)), thread_local=False)

    with wanting(duckdb_path) as leave_note:  # a run that keeps the file open between loads makes way (waiting.py)

        def attempt(seconds: float) -> bool:
            try:
                lock.acquire(timeout=seconds)
            except filelock.Timeout:
                leave_note()
                return False
            return True

        took = wait_for(
            attempt, lambda: project_holder(duckdb_path), duckdb_path, timeout, what or "DuckDB access", log or quiet
        )
    if waited is not None:
        waited.seconds += took
    note = {"pid": os.getpid(), "program": _program(), "purpose": what, "since": time.time()}
    with contextlib.suppress(OSError):
        _holder_path(duckdb_path).write_text(json.dumps(note))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            _holder_path(duckdb_path).unlink()
        lock.release()


def quiet(_: str) -> None:
    pass


def connect(
    duckdb_path: Path,
    read_only: bool,
    wait: float,
    what: str = "",
    log: Log | None = None,
    waited: Waited | None = None,
    storage_version: str = DEFAULT_STORAGE_VERSION,
) -> duckdb.DuckDBPyConnection:
    """Connect, waiting (bounded, and saying so) while a process outside the project holds DuckDB's lock."""
    opened: list[duckdb.DuckDBPyConnection] = []
    last_error = [""]
    # Only a new file takes the storage version; an existing one keeps its own.
    config: dict[str, str | bool | int | float | list[str]] = (
        {} if read_only else {"storage_compatibility_version": storage_version}
    )

    def attempt(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        delay = 0.1
        while True:
            try:
                opened.append(duckdb.connect(str(duckdb_path), read_only=read_only, config=config))
                return True
            except duckdb.IOException as e:
                if "Could not set lock" not in str(e):
                    raise PermanentError(
                        f"cannot open {duckdb_path} as a DuckDB database ({e}). The file is left untouched; "
                        f"move it aside or point {SYNC_DUCKDB_PATH} elsewhere."
                    ) from None
                last_error[0] = str(e)
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    took = wait_for(
        attempt,
        lambda: duckdb_holder(last_error[0], read_only),
        duckdb_path,
        wait,
        what or "opening the DuckDB file",
        log or quiet,
    )
    if waited is not None:
        waited.seconds += took
    return opened[0]


@contextlib.contextmanager
def open_duckdb(
    duckdb_path: Path,
    read_only: bool = False,
    wait: float = 60.0,
    what: str = "",
    log: Log | None = None,
    waited: Waited | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection with the settings every load and read wants.

    Call it under `writer_lock`, which orders this project's processes; `wait` covers processes
    outside the project (a DuckDB CLI, a notebook) that hold the file.
    """
    if read_only and not duckdb_path.exists():
        raise PermanentError(f"the DuckDB file {duckdb_path} does not exist yet; sync a table first")
    con = connect(duckdb_path, read_only, wait, what, log, waited)
    try:
        session_settings(con)
        yield con
    except duckdb.Error as e:
        corrupt = corrupt_file_error(duckdb_path, e)
        if corrupt is None:
            raise
        raise corrupt from None
    finally:
        con.close()


def corrupt_file_error(duckdb_path: Path, error: duckdb.Error) -> PermanentError | None:
    """What to say when `error` is DuckDB finding the file corrupt (None when it is not that)."""
    # DuckDB checks a block's checksum when it reads it; the open transaction rolls back, nothing is written.
    if "Corrupt database file" not in str(error):
        return None
    return PermanentError(
        f"the DuckDB file {duckdb_path} is corrupt ({error}). It is left untouched; restore it from a backup, "
        "or move it aside and sync the tables again."
    )


def session_settings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    # DuckDB's default, kept: with it off, a full sync of 10,000,000 rows loaded a group of files at a time
    # (feed.py) took a second more, at a higher peak RSS (the tests README, big tables).
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")  # TIMESTAMP -> TIMESTAMPTZ casts read the value as UTC


@contextlib.contextmanager
def duckdb_session(
    duckdb_path: Path,
    lock_timeout: float,
    what: str,
    read_only: bool = False,
    log: Log | None = None,
    waited: Waited | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The project's way into the DuckDB file: our lock, then a short connection, both bounded."""
    with contextlib.ExitStack() as opened:
        try:
            opened.enter_context(writer_lock(duckdb_path, lock_timeout, what, log, waited))
            con = opened.enter_context(open_duckdb(duckdb_path, read_only, lock_timeout, what, log, waited))
        except PermissionError as e:  # no retry makes a folder writable
            raise unwritable(duckdb_path, what, e) from None
        yield con


def unwritable(duckdb_path: Path, what: str, error: OSError) -> PermanentError:
    return PermanentError(
        f"{what}: cannot write beside the DuckDB file {duckdb_path} ({error.strerror}: {error.filename}). Point "
        f"{SYNC_DUCKDB_PATH} at a file in a folder this user can write, or give this user that folder"
    )


def ensure_writable_folder(duckdb_path: Path, what: str) -> None:
    """The DuckDB file's folder exists and this user may write there: checked before any Snowflake work, so a
    wrong SYNC_DUCKDB_PATH costs no unload."""
    try:
        duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError as e:
        raise unwritable(duckdb_path, what, e) from None
    if not os.access(duckdb_path.parent, os.W_OK):
        raise unwritable(duckdb_path, what, PermissionError(13, "Permission denied", str(duckdb_path.parent)))
