"""Processes a test run left behind: anything still running whose command line or environment names the
session's temporary folder (every server a test starts keeps its data there: PostgreSQL, Redis, the embedded
Snowflake, Dagster's home for the webserver, daemon and workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def processes_naming(folder: Path) -> dict[int, str]:
    """PID -> command line of every other live process whose command line or environment names `folder`."""
    needle = str(folder).encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if cmdline and (needle in cmdline or needle in environ):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    return found


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
