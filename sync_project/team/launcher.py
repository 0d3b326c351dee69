"""Dagster's Celery run launcher, told how to notice a worker that died mid-run.

dagster-celery's `CeleryRunLauncher` judges a run by its task's state in the results backend. A worker that
is killed (SIGKILL, the OOM killer, a lost machine) never reports again, so its task stays STARTED and the
daemon's run monitoring would wait for it forever. Celery workers answer `ping` on the broker while a task
runs in their pool, so the launcher asks: a STARTED task whose worker has not answered for
`LOST_AFTER_SECONDS`, while other workers do, is reported FAILED, and run monitoring resumes the run on
another worker.

dagster-celery 0.29.27's own `resume_run` calls its resume task with the launch task's keyword
(`execute_job_args_packed`) and fails with a TypeError, so no Celery run could ever be resumed; the
launcher here sends `resume_job_args_packed`, the name the task takes.

A resumed run waits in the broker's queue (PENDING) until a worker is free; Dagster's launcher calls that
UNKNOWN, which run monitoring would resume again and again. It counts as running here, for up to
`queued_timeout_seconds`.
"""

from __future__ import annotations

import time
from typing import Any

from dagster import DagsterRun, Field, IntSource
from dagster_celery.config import TASK_RESUME_JOB_NAME
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_resume_job_task

from sync_project.dagster_api import CheckRunHealthResult, ResumeRunArgs, ResumeRunContext, WorkerStatus, pack_value

LOST_AFTER_SECONDS = 15.0  # three monitoring polls: one missed ping on a loaded machine is not a lost worker
PING_TIMEOUT_SECONDS = 2.0
PING_CACHE_SECONDS = 2.0  # one broadcast answers every run checked in one monitoring pass
DEFAULT_QUEUED_TIMEOUT_SECONDS = 3600


class SyncCeleryRunLauncher(CeleryRunLauncher):
    """Runs as Celery tasks; a run whose worker stopped answering is reported failed (and then resumed)."""

    def __init__(self, *args: Any, queued_timeout_seconds: int = DEFAULT_QUEUED_TIMEOUT_SECONDS, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.queued_timeout_seconds = queued_timeout_seconds
        self._answered: tuple[float, set[str] | None] = (0.0, None)
        self._missing_since: dict[str, float] = {}
        self._pending_since: dict[str, float] = {}

    @classmethod
    def config_type(cls) -> Any:
        inherited = super().config_type()
        assert isinstance(inherited, dict)
        return {
            **inherited,
            "queued_timeout_seconds": Field(
                IntSource,
                is_required=False,
                default_value=DEFAULT_QUEUED_TIMEOUT_SECONDS,
                description="How long a launched or resumed run may wait in the broker's queue for a free worker "
                "before run monitoring treats it as lost.",
            ),
        }

    def resume_run(self, context: ResumeRunContext) -> None:
        run = context.dagster_run
        if run.job_code_origin is None:
            raise ValueError(f"run {run.run_id} has no code origin to resume it from")
        args = ResumeRunArgs(
            job_origin=run.job_code_origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        task = create_resume_job_task(self.celery)
        signature = task.si(resume_job_args_packed=pack_value(args))
        self._launch_celery_task_run(run=run, task_signature=signature, routing_key=TASK_RESUME_JOB_NAME)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        task_id = run.tags[DAGSTER_CELERY_TASK_ID_TAG]
        result = self.celery.AsyncResult(task_id)
        state, info = result.state, result.info
        now = time.monotonic()
        if state == "PENDING":
            since = self._pending_since.setdefault(task_id, now)
            if now - since < self.queued_timeout_seconds:
                return CheckRunHealthResult(WorkerStatus.RUNNING, "waiting in the broker's queue for a free worker")
            return CheckRunHealthResult(
                WorkerStatus.UNKNOWN, f"no worker took the run's task in {self.queued_timeout_seconds} s"
            )
        self._pending_since.pop(task_id, None)
        if state == "STARTED" and isinstance(info, dict) and isinstance(info.get("hostname"), str):
            return self._started_on(info["hostname"], now)
        return super().check_run_worker_health(run)

    def _started_on(self, hostname: str, now: float) -> CheckRunHealthResult:
        answered = self._answering_workers(now)
        if not answered or hostname in answered:
            # No answer at all is the broker (down, or workers still reconnecting after its restart), not
            # this worker; and with no worker up, nobody could resume the run anyway. Resuming a run that
            # still runs would sync its tables twice, so "can't tell" counts as running.
            self._missing_since.pop(hostname, None)
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        since = self._missing_since.setdefault(hostname, now)
        if now - since < LOST_AFTER_SECONDS:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"Celery worker {hostname} missed a ping")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Celery worker {hostname} has not answered a ping for {now - since:.0f} s: it stopped mid-run",
        )

    def _answering_workers(self, now: float) -> set[str] | None:
        """Hostnames of the workers that answer a ping, or None if the broker cannot be reached."""
        asked_at, answered = self._answered
        if answered is not None and now - asked_at < PING_CACHE_SECONDS:
            return answered
        try:
            replies = self.celery.control.ping(timeout=PING_TIMEOUT_SECONDS)
        except Exception:  # any broker error means "can't tell", never "worker lost"
            return None
        answered = {name for reply in replies for name in reply}
        self._answered = (time.monotonic(), answered)
        return answered
