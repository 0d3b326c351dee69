"""A sync run in the CLI's own process (`rebuild`): its lines on stderr, and stopped as Ctrl-C stops a command.

Imported only by the commands that run one: Dagster's import costs every other command time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from dagster import LoggerDefinition

EXIT_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a command Ctrl-C stopped


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM (a service manager, `kill`) stops a sync the way Ctrl-C does: cancelled, cleaned up,
    exit 130. The previous handler comes back after."""
    previous = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _SyncLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        return f"{self.formatTime(record, '%H:%M:%S')} {meta.get('orig_message', record.getMessage())}"


def _sync_lines(_: Any) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SyncLineFormatter())
    # Dagster's events (step start, failure with its stack trace, ...) are the run page's; the CLI says the outcome.
    handler.addFilter(lambda r: (getattr(r, "dagster_meta", None) or {}).get("dagster_event") is None)
    lines = logging.Logger("sync_project.sync_lines", logging.INFO)
    lines.addHandler(handler)
    return lines


sync_lines_logger = LoggerDefinition(
    _sync_lines,
    description="The sync's own lines (phases, rows) on stderr; not Dagster's event log, which the run has.",
)
