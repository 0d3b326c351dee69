"""Processes a test run left behind: anything still running whose command line or environment names the
session's temporary folder (every server a test starts keeps its data there: PostgreSQL, Redis, the embedded
Snowflake, Dagster's home for the webserver, daemon and workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from sync_project.process import other_processes


def processes_naming(folder: Path) -> dict[int, str]:
    """PID -> command line of every other live process whose command line or environment names `folder`."""
    needle = str(folder).encode()
    return {
        pid: cmdline.replace(b"\0", b" ").decode(errors="replace").strip()[:300]
        for pid, cmdline, environ in other_processes()
        if needle in cmdline or needle in environ
    }


def left_behind(folder: Path, grace: float = 15.0) -> dict[int, str]:
    """The processes still naming `folder` after `grace` seconds (a stopped server may take a moment to exit)."""
    deadline = time.monotonic() + grace
    while (found := processes_naming(folder)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def kill_all(pids: dict[int, str]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
