"""The engine's full sync of one table in a process of its own, as the benches time it: its seconds and phases,
its own peak RSS, and the most its download folder and DuckDB file held together."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.tables import TableRef

# A process's own peak RSS, as the kernel counts it (VmHWM, KiB). Not `getrusage(RUSAGE_SELF).ru_maxrss`: on Linux
# a child starts with its parent's figure (kept across fork and exec), so a child of a bench, which has synced
# ten million rows itself, would report the bench's peak whenever its own was lower.
PEAK_RSS_KIB = "int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])"

# The engine's sync, alone in a process, so its peak RSS is its own.
ENGINE = """
import contextlib, json, sys, time
from pathlib import Path
import snowflake.connector
from sync_project.sync.mirror import FileMirror
from sync_project.sync.mirror.publish import published_default
from sync_project.sync.options import SyncOptions
from sync_project.sync.pipeline import sync_table
from sync_project.sync.stage import SESSION_PARAMETERS, SIGN_IN_ARGUMENTS
from sync_project.sync.tables import TableRef
settings, database, schema, name, mirror, downloads, file_size, parallel, feed_from = json.loads(sys.argv[1])

@contextlib.contextmanager
def connect():
    conn = snowflake.connector.connect(
        **settings, database=database, session_parameters=dict(SESSION_PARAMETERS), **SIGN_IN_ARGUMENTS
    )
    try:
        yield conn
    finally:
        conn.close()

options = SyncOptions(
    mirror=FileMirror(Path(mirror), published_default(Path(mirror)), 600.0), download_root=Path(downloads),
    max_file_size=file_size, get_parallel=parallel, feed_from_bytes=feed_from,
)
report = sync_table(connect, TableRef(database, schema, name), options)
figures = {"seconds": report.total_seconds, "phases": report.phase_seconds, "files": report.files,
           "bytes_downloaded": report.bytes_downloaded, "download_peak_bytes": report.download_peak_bytes,
           "rows": report.rows_total, "peak_rss_kib": %s}
print("FIGURES", json.dumps(figures))
"""


def _bytes_under(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            for folder, _, files in os.walk(path):
                total += sum(
                    os.path.getsize(os.path.join(folder, f)) for f in files if os.path.exists(os.path.join(folder, f))
                )
    return total


@contextlib.contextmanager
def sampling(paths: list[Path], peak: list[int]) -> Iterator[None]:
    """The most `paths` held together while the block ran, into `peak[0]`."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], _bytes_under(paths))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def engine_sync(
    process: LocalSnowflakeProcess, table: TableRef, work: Path, file_size: int, parallel: int, feed_from: int
) -> dict[str, Any]:
    mirror, downloads = work / "engine.duckdb", work / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    arguments = [process.connection_settings(), table.database, table.schema, table.name, str(mirror),
                 str(downloads), file_size, parallel, feed_from]  # fmt: skip
    peak = [0]
    with sampling([downloads, mirror, mirror.with_name(mirror.name + ".wal")], peak):
        done = subprocess.run(
            [sys.executable, "-c", ENGINE % PEAK_RSS_KIB, json.dumps(arguments)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    figures: dict[str, Any] = json.loads(done.stdout.rsplit("FIGURES", 1)[1])
    figures["peak_disk_bytes"] = peak[0]
    for path in (mirror, mirror.with_name(mirror.name + ".wal")):
        path.unlink(missing_ok=True)
    return figures
