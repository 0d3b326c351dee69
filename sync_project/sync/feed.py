"""The unloaded files of a big table, downloaded a group at a time while the load reads the groups before.

A sync that downloaded every file before loading any would need the whole table as Parquet beside the DuckDB
file, and would pay for the download and the load one after the other. Here a thread GETs one group of files
while the load reads the group before it, and each group is deleted once read, so the download folder never
holds more than `GROUPS_ON_DISK` groups (a group is about a sixteenth of the table).

The load still runs in one transaction (`load.py`): the table appears whole and checked at COMMIT, or not at all.
What a failed try leaves is what a retry resumes from: the manifest lists each verified file, a retry reuses
those still here and GETs the rest again from the stage, which a transient failure keeps (`cleanup.py`).

What this relaxes of DESIGN.md's invariant 2 (no DuckDB connection while Snowflake works): the load's session
is open while this thread's GETs run. Readers of the published copy never wait for it; a sync of another
process waits for the file as it would for any load, for as long as this table takes to download and load.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_project.sync.attempt import Attempt, UnloadResult, verified_files
from sync_project.sync.stage import Download, fetch_files

GROUPS = 16  # a group is about a sixteenth of the table's files: two of them an eighth
GROUPS_ON_DISK = 2  # the group being read and the one arriving
# A group's GET names its files in a PATTERN, which must stay short enough to be sent (`stage._only_these`
# names none past 10,000 characters, and GET would then fetch the whole folder).
MAX_GROUP_FILES = 200
_DONE = object()


def streams(files: int, strategy: str) -> bool:
    """Whether a sync loads its files as they arrive: a full sync of more files than two groups would hold (an
    incremental one may read its batch twice, when its keys differ, so it downloads first)."""
    return strategy == "full" and files > GROUPS_ON_DISK


def bytes_held(folder: Path) -> int:
    """What the folder's Parquet files hold now. The load deletes the group it has read while this thread looks,
    so a file listed and gone before it is measured counts for nothing (it is not held any more)."""
    total = 0
    for path in folder.glob("*.parquet"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def in_groups(names: list[str]) -> list[list[str]]:
    size = min(max(1, math.ceil(len(names) / GROUPS)), MAX_GROUP_FILES)
    return [names[i : i + size] for i in range(0, len(names), size)]


@dataclass
class FileFeed:
    """The staged files in groups: `groups()` yields each group's local paths once they are here and verified,
    and deletes a group when the load asks for the next one."""

    conn: Any
    attempt: Attempt
    unload: UnloadResult
    query: str
    names: list[str]
    parallel: int
    download_seconds: float = 0.0  # the thread's GETs
    waited_seconds: float = 0.0  # the load's waits for a group
    peak_bytes: int = 0  # the most the download folder held at once
    fetched: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ready: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(GROUPS_ON_DISK)
        self._stop = threading.Event()
        self._bytes = 0
        self.waiting_for_room = threading.Event()  # set while the thread waits for the load to free a group

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The download thread, from before the load waits for the DuckDB file (its first groups arrive
        meanwhile) until the load is done or has failed; it then stops after the GET it is in."""
        worker = threading.Thread(target=self._download, name=f"feed {self.attempt.table}", daemon=True)
        worker.start()
        try:
            yield
        finally:
            self._stop.set()
            self._slots.release()  # a thread waiting for room sees the stop
            worker.join()

    def groups(self) -> Iterator[list[Path]]:
        """Each group once it is here (within `running`); the one before is deleted when the next is asked for."""
        while True:
            started = time.monotonic()
            item = self._ready.get()
            self.waited_seconds += time.monotonic() - started
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            self._consumed(item)

    def download(self) -> Download:
        """What the feed brought, as a download of every file would say it."""
        files = [self.attempt.local_dir / name for name in self.names]
        return Download(files, self.fetched, self.reused, self._bytes)

    def _download(self) -> None:
        try:
            verified = {n: s for n, s in verified_files(self.attempt, self.query).items() if n in self.names}
            self.reused = sorted(verified)
            for group in in_groups(self.names):
                if not self._slots.acquire(blocking=False):
                    self.waiting_for_room.set()
                    self._slots.acquire()
                    self.waiting_for_room.clear()
                if self._stop.is_set():
                    return
                wanted = [n for n in group if n not in verified]
                started = time.monotonic()
                fetch_files(self.conn, self.attempt, self.unload, self.query, wanted, verified, self.parallel)
                self.download_seconds += time.monotonic() - started
                self.fetched += wanted
                self._bytes += sum(verified[n] for n in group)
                # What the folder holds now, as the disk says: the most it holds is right after a group arrives.
                self.peak_bytes = max(self.peak_bytes, bytes_held(self.attempt.local_dir))
                self._ready.put([self.attempt.local_dir / n for n in group])
            self._ready.put(_DONE)
        except BaseException as error:  # the load raises it, and rolls back
            self._ready.put(error)

    def _consumed(self, group: list[Path]) -> None:
        for path in group:
            path.unlink(missing_ok=True)
        self._slots.release()
