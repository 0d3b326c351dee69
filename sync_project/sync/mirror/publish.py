"""The published copy: a snapshot of the working file that readers open and no sync ever waits for.

Syncs write the working file (SYNC_DUCKDB_PATH), which only the project opens, under its lock.
Readers open the published path (SYNC_PUBLISHED_PATH), a symlink to one complete snapshot file.
A publish copies the working file, quiescent under the lock and checkpointed, to a new snapshot
beside the others, proves the copy opens, and swaps the symlink in one rename.

Why a symlink to per-snapshot files and not a rename over one file: DuckDB finds a file's WAL by
name (`<file>.wal`). A reader that opened the published file read-write and wrote anything leaves a
WAL beside it; after a plain rename, the next reader of the new file would replay that WAL against
the wrong database and fail. DuckDB resolves the symlink first, so every snapshot has its own path
and every holder's WAL stays with its own snapshot. Each snapshot is a file of the published file's own name
in a folder of its own (`mirror.duckdb.snapshots/<stamp>/mirror.duckdb`): DuckDB names a file's catalog by
its resolved file name, so readers' queries that name the catalog (`mirror.SCHEMA.TABLE`) keep working
across publishes. A reader that has a snapshot open keeps reading
it, consistent, for as long as it likes; a new reader gets the latest. An old snapshot is removed
once no process holds it (DuckDB holds a POSIX lock on every file it has open), never before.

The copy is byte for byte, so the cost of a publish is one file copy. The working file is kept in
the storage version readers need (SYNC_PUBLISHED_STORAGE_VERSION); if it is in another one, the first
publish rewrites it once (ATTACH ... (STORAGE_VERSION ...), COPY FROM DATABASE).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror.access import Log, connect, open_duckdb, writer_lock
from sync_project.sync.setting_names import SYNC_PUBLISHED_STORAGE_VERSION
from sync_project.sync.state import STATE_SCHEMA
from sync_project.sync.tables import TableRef, quote_identifier, sql_string

SNAPSHOT_SUFFIX = ".duckdb"
REPLACED_GRACE_SECONDS = 60.0  # a replaced snapshot outlives the swap by this much, however idle
MANIFEST_TABLE = "published_tables"  # in each snapshot's state schema: every table and the sync it holds
PUBLICATION_TABLE = "publication"  # one row: when the snapshot was published


@dataclass(frozen=True)
class PublishedTable:
    relation: str  # "SCHEMA"."TABLE" as readers query it
    rows: int | None
    synced_at: str | None  # when the sync this copy holds committed (UTC, ISO 8601)


@dataclass
class PublishReport:
    """What a publish made: the snapshot readers now open, its tables, and what it cost."""

    published_path: Path  # the symlink readers open
    snapshot: Path  # the file it points at
    tables: list[PublishedTable] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    storage_version: str = ""
    rewrote_working_file: bool = False
    removed: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)  # old snapshots a reader holds; removed by a later publish

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("published_path", "snapshot", "tables")},
            "published_path": str(self.published_path),
            "snapshot": str(self.snapshot),
            "tables": [asdict(t) for t in self.tables],
        }


def published_default(working: Path) -> Path:
    """Where readers find the mirror unless SYNC_PUBLISHED_PATH says otherwise: beside the working file."""
    return working.with_name("mirror.duckdb")


def snapshot_folder(published: Path) -> Path:
    """Where the snapshots live: beside the published path, one folder."""
    return published.with_name(published.name + ".snapshots")


def current_snapshot(published: Path) -> Path | None:
    """The snapshot the published path points at now (None if nothing is published yet)."""
    if not published.is_symlink():
        return published if published.exists() else None
    return (published.parent / os.readlink(published)).resolve()


def _rewrite_in_version(working: Path, version: str, log: Log) -> None:
    """Rewrite the working file in another storage version (we hold the lock; only the project opens it)."""
    fresh = working.with_name(f".{working.name}.{secrets.token_hex(4)}.rewrite")
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {sql_string(working)} AS working (READ_ONLY)")
        con.execute(f"ATTACH {sql_string(fresh)} AS fresh (STORAGE_VERSION {sql_string(version)})")
        con.execute("COPY FROM DATABASE working TO fresh")
        con.execute("DETACH fresh")
        con.execute("DETACH working")
    except BaseException:
        with contextlib.suppress(OSError):
            fresh.unlink()
        raise
    finally:
        con.close()
    os.replace(fresh, working)
    log(f"rewrote {working} in DuckDB storage version {version}, which readers from DuckDB {version} on can open")


def _tables_of(con: duckdb.DuckDBPyConnection) -> list[PublishedTable]:
    """Every table readers will see, with the rows and commit time of the sync it holds."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal AND schema_name != ? "
        "ORDER BY schema_name, table_name",
        [STATE_SCHEMA],
    ).fetchall()
    progress: dict[str, tuple[Any, Any]] = {}
    has_state = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'tables'", [STATE_SCHEMA]
    ).fetchone()
    if has_state and has_state[0]:
        for table_id, rows, synced_at in con.execute(
            f"SELECT table_id, rows, synced_at FROM {STATE_SCHEMA}.tables"
        ).fetchall():
            # table_id is DATABASE.KEY (TableRef's text); the key is what the DuckDB relation is named after.
            progress[str(table_id).partition(".")[2]] = (rows, synced_at)
    found = []
    for schema, name in tables:
        rows, synced_at = progress.get(TableRef("-", schema, name).key, (None, None))
        found.append(
            PublishedTable(
                f"{quote_identifier(schema)}.{quote_identifier(name)}",
                int(rows) if rows is not None else None,
                synced_at.astimezone(dt.UTC).isoformat() if isinstance(synced_at, dt.datetime) else None,
            )
        )
    return found


_VERSION_TAGS: dict[str, str] = {}


def version_tag(storage_version: str) -> str:
    """The tag DuckDB gives a file written in `storage_version` (v1.1.0 is written as v1.0.0+, say)."""
    if storage_version not in _VERSION_TAGS:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            con = duckdb.connect()
            try:
                probe = sql_string(Path(folder) / "probe.duckdb")
                con.execute(f"ATTACH {probe} AS probe (STORAGE_VERSION {sql_string(storage_version)})")
                row = con.execute(
                    "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'probe'"
                ).fetchone()
            except duckdb.Error as e:
                raise PermanentError(
                    f"{SYNC_PUBLISHED_STORAGE_VERSION}={storage_version!r} is not a storage version this DuckDB "
                    f"({duckdb.__version__}) can write ({e}); use one like v1.0.0"
                ) from None
            finally:
                con.close()
        _VERSION_TAGS[storage_version] = str(row[0]) if row else storage_version
    return _VERSION_TAGS[storage_version]


def _file_tag(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal LIMIT 1").fetchone()
    return str(row[0]) if row and row[0] else ""


def publish(
    working: Path,
    published: Path,
    *,
    storage_version: str,
    lock_timeout: float,
    log: Log = lambda _: None,
) -> PublishReport:
    """Make the working file's current state the published copy; returns what it holds and what it cost."""
    started = time.monotonic()
    if not working.exists():
        raise PermanentError(f"nothing to publish: the working file {working} does not exist yet; sync a table first")
    folder = snapshot_folder(published)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    snapshot = folder / f"{stamp}-{secrets.token_hex(2)}" / published.name
    snapshot.parent.mkdir()
    partial = snapshot.with_name(snapshot.name + ".partial")
    report = PublishReport(published, snapshot, storage_version=storage_version)
    with writer_lock(working, lock_timeout, "publishing the mirror", log):
        with open_duckdb(working, wait=lock_timeout, what="publishing the mirror", log=log) as con:
            current = _file_tag(con)
            report.tables = _tables_of(con)
        if current != version_tag(storage_version):
            _rewrite_in_version(working, storage_version, log)
            report.rewrote_working_file = True
        # A checkpoint folds the WAL into the file, so the file alone is the whole database.
        with contextlib.closing(connect(working, False, lock_timeout, "publishing the mirror", log)) as con:
            con.execute("CHECKPOINT")
        if working.with_name(working.name + ".wal").exists():
            raise PermanentError(f"{working} still has a WAL after a checkpoint; not publishing a partial copy")
        copying = time.monotonic()
        shutil.copyfile(working, partial)
        report.copy_seconds = round(time.monotonic() - copying, 3)
    _prove_and_stamp(partial, report)
    os.replace(partial, snapshot)
    _point_at(published, snapshot)
    report.bytes = snapshot.stat().st_size
    report.removed, report.still_open = remove_old_snapshots(published)
    report.seconds = round(time.monotonic() - started, 3)
    log(
        f"published {len(report.tables)} table(s) to {published} ({report.bytes:,} bytes) in {report.seconds:.2f}s"
        + (f"; {len(report.still_open)} older snapshot(s) still open by readers" if report.still_open else "")
    )
    return report


def _prove_and_stamp(partial: Path, report: PublishReport) -> None:
    """Open the copy (not yet visible to anyone) and record in it what it holds, for readers and status."""
    try:
        con = duckdb.connect(str(partial))
        try:
            _drop_indexes(con)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
            con.execute(
                f"CREATE OR REPLACE TABLE {STATE_SCHEMA}.{PUBLICATION_TABLE} "
                "(published_at TIMESTAMPTZ, tables INTEGER, storage_version VARCHAR)"
            )
            con.execute(
                f"INSERT INTO {STATE_SCHEMA}.{PUBLICATION_TABLE} VALUES (?, ?, ?)",
                [dt.datetime.now(dt.UTC), len(report.tables), report.storage_version],
            )
            con.execute(
                f"CREATE OR REPLACE TABLE {STATE_SCHEMA}.{MANIFEST_TABLE} "
                "(relation VARCHAR, rows BIGINT, synced_at TIMESTAMPTZ)"
            )
            if report.tables:
                con.executemany(
                    f"INSERT INTO {STATE_SCHEMA}.{MANIFEST_TABLE} VALUES (?, ?, ?)",
                    [[t.relation, t.rows, t.synced_at] for t in report.tables],
                )
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _drop_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Readers need no keys, and DuckDB 1.0 cannot read an ART index a newer DuckDB wrote, even in the v1.0.0 format
    (checked: "Failed to deserialize ... field id: 103"); so tables with one are rewritten without it."""
    keyed = con.execute(
        "SELECT DISTINCT schema_name, table_name FROM duckdb_constraints() "
        "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY') "
        "UNION SELECT schema_name, table_name FROM duckdb_indexes()"
    ).fetchall()
    for schema, table in keyed:
        relation = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM {relation}")


def _point_at(published: Path, snapshot: Path) -> None:
    link = published.with_name(f".{published.name}.{secrets.token_hex(4)}.link")
    link.symlink_to(os.path.relpath(snapshot, published.parent))
    os.replace(link, published)  # one rename: a reader resolves either the old snapshot or the new one


def in_use(path: Path) -> bool:
    """Does any other process hold `path` open through DuckDB? DuckDB keeps a POSIX lock on each open file.

    POSIX locks are per process: this process's own connections do not count, so never call this on a
    file this process has open.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def remove_old_snapshots(published: Path, grace_seconds: float = REPLACED_GRACE_SECONDS) -> tuple[list[str], list[str]]:
    """Remove every snapshot but the current one that no process holds; name the ones kept for a reader.

    A snapshot replaced less than `grace_seconds` ago is kept too: a reader that resolved the symlink just
    before the swap may not have opened the file yet, and DuckDB resolves and opens in two steps.
    """
    current = current_snapshot(published)
    folder = snapshot_folder(published)
    # Folders sort by publish time; snapshots of the earlier layout (files directly in the folder) come first.
    snapshots = sorted(folder.glob(f"*{SNAPSHOT_SUFFIX}")) + sorted(folder.glob(f"*/{published.name}"))
    removed, still_open = [], []
    now = time.time()
    for older, newer in itertools.pairwise(snapshots):
        if current is not None and older.resolve() == current:
            continue
        if now - newer.stat().st_mtime < grace_seconds:
            continue
        name = snapshot_name(older, published)
        if in_use(older):
            still_open.append(name)
            continue
        for path in (older.with_name(older.name + ".wal"), older):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if older.parent != folder:
            with contextlib.suppress(OSError):  # a reader's leftover beside it keeps the folder; harmless
                older.parent.rmdir()
        removed.append(name)
    return removed, still_open


def snapshot_name(snapshot: Path, published: Path) -> str:
    """How a snapshot is named to people: its folder (its publish time), or the file of the earlier layout."""
    return snapshot.parent.name if snapshot.parent != snapshot_folder(published) else snapshot.name
