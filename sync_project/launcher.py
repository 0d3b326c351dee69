"""Runs started from a warm process: the daemon forks each run from a server that has already imported Dagster
and the sync's libraries.

Dagster's `DefaultRunLauncher` asks the code server to start each run in a new `spawn` process, which imports
Dagster, the Snowflake connector, DuckDB and pyarrow again before the run can begin: 1.2 s of CPU on this
2-core machine (`python -c "import dagster, snowflake.connector, duckdb, pyarrow.parquet"`), longer when the
nightly schedule starts two runs at once. Python's
`multiprocessing` forkserver imports them once; each run is a fork of it that imports only this project's code,
so a code reload in the UI still reaches the next run. The run then executes as `dagster api execute_run` runs
it (the same Dagster function), and Terminate sends it SIGINT, which is what Dagster's code server does.

A run whose code location names another Python (`executable_path`) is launched as Dagster launches it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import dagster as dg

from sync_project.dagster_api import (
    CheckRunHealthResult,
    ExecuteRunArgs,
    LaunchRunContext,
    WorkerStatus,
    capture_interrupts,
    execute_run_in_this_process,
)

# Imported once by the server; a run's fork finds them loaded. Not this project: its code may change.
# `dagster._cli.api` is where a run executes (0.2 s more of imports); `pyarrow.compute` the result path's casts.
PRELOADED = (
    "dagster",
    "dagster._cli.api",
    "snowflake.connector",
    "duckdb",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.compute",
)
RUN_PID_TAG = "sync_project/run_pid"
RUN_HOST_TAG = "sync_project/run_host"

_server: multiprocessing.context.ForkServerContext | None = None
_server_lock = threading.Lock()


def _forkserver() -> multiprocessing.context.ForkServerContext:
    """The process's forkserver context, its preloads set before its first fork (it starts with that fork)."""
    global _server
    with _server_lock:
        if _server is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(PRELOADED))
            _server = context
        return _server


def _in_the_daemon() -> bool:
    return "daemon" in Path(sys.argv[0]).as_posix()


def _run_process_alive(pid: int) -> bool:
    """A live process of that PID that is a fork of a forkserver (a reused PID is another program's)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: the PID's existence is all there is to go on
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in (b"Z", b"X") and b"multiprocessing.forkserver" in command


def _warm_up() -> None:
    _forkserver()
    multiprocessing.forkserver.ensure_running()


def run_in_fork(serialized_args: str) -> None:
    """The run's process: what `dagster api execute_run` does with the same arguments."""
    with capture_interrupts():
        args = dg.deserialize_value(serialized_args, ExecuteRunArgs)
        with dg.DagsterInstance.from_ref(args.instance_ref) as instance:  # type: ignore[arg-type]
            execute_run_in_this_process(args.run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


class WarmRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher, except that a run of this Python starts as a fork of a warm server."""

    def __init__(self, inst_data: Any = None) -> None:
        super().__init__(inst_data=inst_data)
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        if _in_the_daemon():
            # The daemon launches the runs: its server starts now, in the background, so that the first run
            # (the nightly schedule's, often) does not wait for its imports. Other processes (the UI, the CLI,
            # which may only terminate runs) start none.
            threading.Thread(target=_warm_up, name="forkserver-warm-up", daemon=True).start()

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None or os.path.realpath(origin.executable_path) != os.path.realpath(sys.executable):
            super().launch_run(context)
            return
        self._forget_finished()
        args = ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref())
        process = _forkserver().Process(
            target=run_in_fork, args=(dg.serialize_value(args),), name=f"dagster-run-{run.run_id[:8]}"
        )
        process.start()
        self._processes[run.run_id] = process
        self._run_ids.add(run.run_id)
        self._instance.add_run_tags(run.run_id, {RUN_PID_TAG: str(process.pid), RUN_HOST_TAG: socket.gethostname()})

    def _forget_finished(self) -> None:
        for run_id, process in list(self._processes.items()):
            if not process.is_alive():
                process.close()
                del self._processes[run_id]

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """Whether the run's process still runs, for run monitoring: a process killed outright (SIGKILL, the OOM
        killer) never reports its end, and without this its run would stay STARTED for good."""
        pid, host = run.tags.get(RUN_PID_TAG), run.tags.get(RUN_HOST_TAG)
        if pid is None or host != socket.gethostname():
            # Dagster's launcher started it (another Python), or another host did: nothing here can tell.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not a run process of this host's warm launcher")
        if _run_process_alive(int(pid)):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run's process (pid {pid}) ended without reporting the run's end: it was killed (SIGKILL, the "
            "OOM killer) or crashed. Tables it had not loaded keep their previous DuckDB table; sync them again",
        )

    def terminate(self, run_id: str) -> bool:
        """SIGINT to the run's process (any process on this host may ask), as the code server would send."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or RUN_PID_TAG not in run.tags:
            return bool(super().terminate(run_id))  # type: ignore[no-untyped-call]
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        if run.tags.get(RUN_HOST_TAG) != socket.gethostname():
            self._instance.report_engine_event(
                f"Run {run_id} runs on {run.tags.get(RUN_HOST_TAG)}; terminate it from there.", run, cls=type(self)
            )
            return False
        try:
            os.kill(int(run.tags[RUN_PID_TAG]), signal.SIGINT)
        except ProcessLookupError:
            return False
        return True


class WarmQueuedRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator, which in the daemon also creates the run launcher at once. Dagster
    creates the launcher at the first launch, so the warm launcher's server would start then, and that run
    would wait for its imports; the daemon asks for the coordinator in its first second."""

    def register_instance(self, instance: dg.DagsterInstance) -> None:
        super().register_instance(instance)
        if _in_the_daemon():
            instance.run_launcher  # noqa: B018 (created for its side effect: a warm launcher starts its server)
