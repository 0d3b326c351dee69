"""Real Dagster processes for end-to-end tests: a daemon (and its code server) on a temporary DAGSTER_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_project.settings import project_root

BIN = Path(sys.executable).parent  # the virtualenv's scripts


@dataclass
class DagsterProcesses:
    home: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    cwd: Path | None = None  # where the processes start (a baseline's code, which the folder puts first)

    def spawn(self, command: list[str], log_name: str | None = None, **env: str) -> subprocess.Popen[str]:
        """Start a process in its own group, stopped with the others; output to home/log_name, or a pipe."""
        return self.spawn_in(self.cwd, command, log_name, env)

    def spawn_in(
        self, cwd: Path | None, command: list[str], log_name: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """`spawn`, in another working directory (`dg` finds its project from there)."""
        env = env or {}
        out = open(self.home / log_name, "a") if log_name else subprocess.PIPE  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            command,
            env=self.env | env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_daemon(self, workspace: Path | None = None) -> None:
        """The daemon, on the project's workspace.yaml (the mirror) or another (the demo's adds its downstream)."""
        workspace = workspace or project_root() / "workspace.yaml"
        self.spawn([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], "daemon.log")

    def start_webserver(self, port: int) -> None:
        """dagster-webserver on 127.0.0.1:port; returns once it answers."""
        command = [
            str(BIN / "dagster-webserver"),
            "-h", "127.0.0.1", "-p", str(port), "-w", str(project_root() / "workspace.yaml"),
        ]  # fmt: skip
        self.wait_for_ui(self.spawn(command, "webserver.log"), port, "webserver.log")

    def wait_for_ui(self, process: subprocess.Popen[str], port: int, log_name: str, timeout: float = 240) -> None:
        """Return once a Dagster UI answers on 127.0.0.1:port; fail with the log's tail if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited: {(self.home / log_name).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"no Dagster UI on port {port}: {(self.home / log_name).read_text()[-3000:]}")

    def dagster(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "dagster", *args], timeout)

    def backfill_every_table(self) -> None:
        """`dagster job backfill` of the sync job over every registered table, as a user starts one."""
        launched = self.dagster(
            "job", "backfill", "-w", str(project_root() / "workspace.yaml"), "-j", "sync_tables", "--all", "all",
            "--noprompt",
        )  # fmt: skip
        assert launched.returncode == 0, launched.stdout + launched.stderr

    def run(self, command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command in this environment, to completion, its output captured."""
        return subprocess.run(command, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        """Stop every process group by PID, children (code servers, run workers) included."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


PARTITION_RUNS = """
query PartitionRuns($value: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $value}], pipelineName: "sync_tables"}) {
    ... on Runs { results { runId status } }
  }
}
"""


def graphql(port: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]  # type: ignore[no-any-return]
