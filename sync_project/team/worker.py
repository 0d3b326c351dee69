"""A Celery worker for the team profile: runs the sync runs the daemon launches, on any machine.

The worker builds its Celery app from the instance's run launcher (DAGSTER_HOME's `dagster.yaml`), so it
listens on exactly the broker and queue the daemon sends to; there is no second copy of that configuration.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sync_project.settings import SYNC_DOWNLOAD_DIR
from sync_project.sync.errors import PermanentError

if TYPE_CHECKING:
    from sync_project.resources import SyncDuckDBResource

PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class WorkerPlan:
    name: str  # Celery's node name: name@host
    download_dir: Path
    concurrency: int


def worker_plan(
    duckdb: SyncDuckDBResource, name: str | None, download_dir: Path | None, concurrency: int
) -> WorkerPlan:
    """What a worker will do, or a PermanentError that says what to set.

    `duckdb` is the project's built resource, the one its runs will use: the worker checks the mirror they
    write, not a second reading of the environment.

    The mirror must be a DuckLake with a Postgres catalog: a DuckDB file (or a SQLite catalog) lives on one
    machine and takes one writer, so runs spread over workers would each write their own copy, or wait.
    Each worker downloads into its own folder so that two workers on one machine never reuse each other's
    half-downloaded files.
    """
    if not duckdb.mirror.shared_across_machines:
        raise PermanentError(
            "a Celery worker writes the mirror from its own machine, so the mirror must be a DuckLake with a "
            "PostgreSQL catalog: set SYNC_TARGET=ducklake, SYNC_DUCKLAKE_CATALOG=postgres:dbname=... host=... "
            "and SYNC_DUCKLAKE_DATA_PATH to storage every worker mounts (sync_project/team/README.md)"
        )
    name = name or f"sync-{os.getpid()}"
    return WorkerPlan(
        name=f"{name}@{socket.gethostname()}",
        download_dir=download_dir or Path(duckdb.download_dir) / name,
        concurrency=concurrency,
    )


def die_with_the_worker() -> None:
    """Ask Linux to SIGKILL this pool process when the worker above it dies.

    A worker killed alone (`kill -9` of its PID, the OOM killer) otherwise leaves its pool process running
    the table, while run monitoring resumes the same run on another worker: the table would sync twice.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the worker died before the request was in place
        os._exit(1)


def run_worker(plan: WorkerPlan) -> None:
    """Serve runs until stopped (SIGTERM finishes the run in hand first, as Celery's warm shutdown does)."""
    import dagster as dg
    from celery.signals import worker_process_init
    from dagster_celery.launcher import CeleryRunLauncher
    from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

    instance = dg.DagsterInstance.get()
    launcher = instance.run_launcher
    if not isinstance(launcher, CeleryRunLauncher):
        raise PermanentError(
            f"DAGSTER_HOME ({instance.root_directory}) launches runs with {type(launcher).__name__}, not Celery: "
            "copy sync_project/team/dagster.yaml there (sync_project/team/README.md)"
        )
    # Runs execute in the pool's child processes, which read their settings from this environment.
    os.environ[SYNC_DOWNLOAD_DIR] = str(plan.download_dir)
    plan.download_dir.mkdir(parents=True, exist_ok=True)
    worker_process_init.connect(lambda **_: die_with_the_worker(), weak=False)
    app = launcher.celery
    create_execute_job_task(app)
    create_resume_job_task(app)
    app.worker_main(
        [
            "worker",
            f"--hostname={plan.name}",
            f"--concurrency={plan.concurrency}",
            f"--queues={launcher.default_queue}",
            "--loglevel=INFO",
            # Mingle and gossip sync state between workers at start; runs need neither, and start-up is faster.
            "--without-mingle",
            "--without-gossip",
        ]
    )
