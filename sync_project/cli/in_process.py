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

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult, LoggerDefinition

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


# Dagster's note on every sync: the checks are reported per partition (AssetCheckEvaluation), which it does not
# count as the step's check outputs. The run page still shows it; the CLI's lines leave it out.
_CHECK_OUTPUTS_NOTE = "did not yield or return expected outputs"


def _is_sync_line(record: logging.LogRecord) -> bool:
    meta = getattr(record, "dagster_meta", None) or {}
    # Dagster's events (step start, failure with its stack trace, ...) are the run page's; the CLI says the outcome.
    return meta.get("dagster_event") is None and _CHECK_OUTPUTS_NOTE not in str(meta.get("orig_message", ""))


def _sync_lines(_: Any) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SyncLineFormatter())
    handler.addFilter(_is_sync_line)
    lines = logging.Logger("sync_project.sync_lines", logging.INFO)
    lines.addHandler(handler)
    return lines


sync_lines_logger = LoggerDefinition(
    _sync_lines,
    description="The sync's own lines (phases, rows) on stderr; not Dagster's event log, which the run has.",
)


def sync_in_process(
    definitions: Definitions, instance: DagsterInstance, key: str, *, rebuild: bool = False
) -> ExecuteInProcessResult:
    """One table's sync as a run of the first mirror's sync job, in this process (the demo's first syncs,
    `rebuild`): listed under the job in the UI like any other run, its own lines on stderr."""
    from sync_project.jobs import SYNC_JOB, in_process_run_tags

    run_config: dict[str, Any] = {"loggers": {"sync_lines": {}}}
    if rebuild:
        run_config["ops"] = {"snowflake_table": {"config": {"rebuild": True}}}
    return (
        definitions.resolve_job_def(SYNC_JOB)
        .with_logger_defs({"sync_lines": sync_lines_logger})
        .execute_in_process(
            tags=in_process_run_tags(key), run_config=run_config, instance=instance, raise_on_error=False
        )
    )


def verify_in_process(definitions: Definitions, instance: DagsterInstance, key: str) -> ExecuteInProcessResult:
    """One table's checks as a run of the first mirror's verify job, in this process (`sync-project verify`):
    its row-count and schema checks against the latest sync, and its content check against Snowflake now."""
    from sync_project.jobs import VERIFY_JOB, in_process_run_tags

    return (
        definitions.resolve_job_def(VERIFY_JOB)
        .with_logger_defs({"sync_lines": sync_lines_logger})
        .execute_in_process(
            tags=in_process_run_tags(key),
            run_config={"loggers": {"sync_lines": {}}},
            instance=instance,
            raise_on_error=False,
        )
    )
