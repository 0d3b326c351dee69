"""When an attempt's files go: the cleanup rule of a sync, in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sync_project.sync.attempt import Attempt, remove_local_files
from sync_project.sync.stage import clear_location


class AttemptCleanup:
    """The cleanup rule, stated once: an attempt's stage folder and downloaded files go when the sync ends,
    unless a retry can resume from them (`keep_for_retry`, and a failure `keeping_on` names: a transient
    one of the Snowflake work, whose unload and files are still good, or a load that only waited too long
    for the DuckDB file). Any other failure starts the next try afresh."""

    def __init__(self, attempt: Attempt, keep_for_retry: bool) -> None:
        self.attempt, self.keep_for_retry, self.keep = attempt, keep_for_retry, False

    @contextlib.contextmanager
    def keeping_on(self, *resumable: type[BaseException]) -> Iterator[None]:
        try:
            yield
        except resumable:
            self.keep = self.keep_for_retry
            raise

    @contextlib.contextmanager
    def stage(self, conn: Any) -> Iterator[None]:
        try:
            yield
        finally:
            if not self.keep:
                with contextlib.suppress(Exception):  # best effort; the cleanup job removes leftovers
                    clear_location(conn, self.attempt)

    @contextlib.contextmanager
    def local_files(self) -> Iterator[None]:
        try:
            yield
        finally:
            if not self.keep:
                remove_local_files(self.attempt)
