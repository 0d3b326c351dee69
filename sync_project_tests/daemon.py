"""Real Dagster processes for end-to-end tests: a daemon (and its code server) on a temporary DAGSTER_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sync_project.settings import project_root


@dataclass
class DagsterProcesses:
    home: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_daemon(self) -> None:
        log = open(self.home / "daemon.log", "ab")  # noqa: SIM115 - owned by the child
        command = [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-w",
            str(project_root() / "workspace.yaml"),
        ]
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)

    def start_webserver(self, port: int, timeout: float = 120) -> None:
        """dagster-webserver on 127.0.0.1:port; returns once it answers."""
        log = open(self.home / "webserver.log", "ab")  # noqa: SIM115 - owned by the child
        command = [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h", "127.0.0.1", "-p", str(port), "-w", str(project_root() / "workspace.yaml"),
        ]  # fmt: skip
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited: {(self.home / 'webserver.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("dagster-webserver did not answer")

    def dagster(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dagster", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

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
