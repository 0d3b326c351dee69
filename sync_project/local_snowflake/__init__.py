"""The embedded ("local") Snowflake used when no account is configured: demo, development, tests.

Run it with `sync-project local-snowflake`; start it from Python with
`LocalSnowflakeProcess`. It is a real HTTP server; nothing in the sync path
knows it is local.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_project.local_snowflake.account import LOCAL_ACCOUNT, LOCAL_PASSWORD, LOCAL_USER, LOCAL_WAREHOUSE

__all__ = [
    "LOCAL_ACCOUNT",
    "LOCAL_PASSWORD",
    "LOCAL_USER",
    "LOCAL_WAREHOUSE",
    "LocalSnowflakeProcess",
    "PortInUseError",
    "check_port_free",
    "connection_settings",
    "free_port",
]


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class PortInUseError(RuntimeError):
    """The port is taken: by the process named in the message, if the kernel says which."""


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> str:
    """Which process listens on `port`, from the kernel's socket table and /proc (Linux); else a plain guess."""
    inodes = _listening_inodes(port)
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"process {proc.name} ({command[:160]})"
    return "another process"


def check_port_free(host: str, port: int, what: str) -> None:
    """Fail at once, naming the holder, rather than start a server that cannot bind (or answer for another)."""
    with contextlib.closing(socket.socket()) as sock:
        # As the server will: SO_REUSEADDR, so a port in TIME_WAIT is free and only a listener counts.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUseError(
                f"port {port} on {host}, wanted for {what}, is in use by {port_holder(port)}. Is another demo "
                f"running? Stop it, or pick another port (LOCAL_SNOWFLAKE_PORT, or --ui-port for the UI)."
            ) from None


def connection_settings(host: str, port: int) -> dict[str, Any]:
    """Keyword arguments for `snowflake.connector.connect` that reach a local Snowflake."""
    return {
        "account": LOCAL_ACCOUNT,
        "user": LOCAL_USER,
        "password": LOCAL_PASSWORD,
        "warehouse": LOCAL_WAREHOUSE,
        "host": host,
        "port": port,
        "protocol": "http",
    }


@dataclass
class LocalSnowflakeProcess:
    """A local Snowflake in its own process (as the webserver and run processes would reach it)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    demo_rows: int | None = None
    log_file: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connection_settings(self) -> dict[str, Any]:
        return connection_settings(self.host, self.port)

    def start(self, timeout: float = 120.0) -> LocalSnowflakeProcess:
        check_port_free(self.host, self.port, "the embedded Snowflake")
        from sync_project.local_snowflake.environment import emulator_command, emulator_environment

        args = ["--data-dir", str(self.data_dir), "--host", self.host, "--port", str(self.port)]
        if self.demo_rows is not None:
            args += ["--demo-rows", str(self.demo_rows)]
        log = open(self.log_file or os.devnull, "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(
            emulator_command(*args), stdout=log, stderr=subprocess.STDOUT, env=emulator_environment()
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"local Snowflake exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_local/health", timeout=1) as r:  # noqa: S310
                    if json.loads(r.read()).get("ready"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"local Snowflake did not start on {self.base_url} within {timeout}s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> LocalSnowflakeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
