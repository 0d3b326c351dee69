"""The progress lines of a run of several tables, written to Dagster's event log together.

Every line a run logs is an event, and storing one is a write and a commit of the run's storage (about 6 to
12 ms each on the default SQLite storage, measured in a run of 25 small tables). A sync says about ten lines
per table, so for a run of small tables the event log, not the sync, set the pace. Lines that arrive within
`FLUSH_SECONDS` of each other become one event of several lines, in the order they were said; the UI shows
them at most that late. A run of one table (the UI's partition picker, `dagster asset materialize`) writes each
line at once: a person watching one big table sees each step as it happens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

FLUSH_SECONDS = 0.5


class RunLog:
    """A log callable that gathers lines and writes them as one message every `every` seconds, and on `flush`
    (with `every` 0, each line at once). Use it as a context manager: leaving writes what is left."""

    def __init__(self, write: Callable[[str], None], every: float = FLUSH_SECONDS) -> None:
        self._write, self._every = write, every
        self._lines: list[str] = []
        self._gather = threading.Lock()
        self._writing = threading.Lock()  # one write at a time, so messages keep the order of their lines
        self._timer: threading.Timer | None = None

    def __call__(self, line: str) -> None:
        if self._every <= 0:
            with self._writing:
                self._write(line)
            return
        with self._gather:
            self._lines.append(line)
            if self._timer is None:
                self._timer = threading.Timer(self._every, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the lines gathered so far as one message (nothing if there are none)."""
        with self._writing:
            with self._gather:
                lines, self._lines = self._lines, []
                timer, self._timer = self._timer, None
            if timer is not None and timer is not threading.current_thread():
                timer.cancel()
            if lines:
                self._write("\n".join(lines))

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.flush()
