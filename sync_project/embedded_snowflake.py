"""The product's one door to the embedded Snowflake: where its environment is, how to start it, how to reach it.

The emulator (`sync_project/local_snowflake/`) is a distribution of its own, installed into its own
environment (`.local/snowflake-env`) and run as `python -m local_snowflake`; the product never imports it. It
starts the server as a process, waits for its health answer, creates the demo tables through the connector (plain
Snowflake SQL, as on a real account), and connects to it as to any Snowflake. Nothing in the sync path knows
it is local.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The account the emulator serves: its built-in user (a person with a password) and its one warehouse. The
# server says which account it serves in its health answer, and `LocalSnowflakeProcess.start` checks it.
LOCAL_ACCOUNT = "local"
LOCAL_USER = "local"
LOCAL_PASSWORD = "local"  # noqa: S105 - the built-in user's password on the emulator; not a secret
LOCAL_WAREHOUSE = "COMPUTE_WH"

DISTRIBUTION = Path(__file__).resolve().with_name("local_snowflake")  # its pyproject.toml, package and tests
SOURCE_ROOT = DISTRIBUTION.parents[1]  # the folder that holds sync_project/


class EmulatorEnvironmentError(RuntimeError):
    """The embedded Snowflake's environment could not be made (pip failed); the message says what pip said."""


def environment_dir() -> Path:
    return SOURCE_ROOT / ".local" / "snowflake-env"


def _stamp(env: Path) -> Path:
    digest = hashlib.sha1((DISTRIBUTION / "pyproject.toml").read_bytes()).hexdigest()[:12]  # noqa: S324 - a change marker
    return env / f".installed-{digest}"


def emulator_python() -> Path:
    """The environment's interpreter; builds the environment first if it is missing or its pyproject changed.

    The distribution is installed editable, so a change to its code needs no reinstall. One process builds
    it at a time (a file lock), so parallel tests and the Makefile never race.
    """
    from filelock import FileLock

    env = environment_dir()
    python = env / "bin" / "python"
    if _stamp(env).exists():
        return python
    env.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env) + ".lock"):
        if not _stamp(env).exists():
            _build(env, python)
    return python


def _build(env: Path, python: Path) -> None:
    print(f"setting up the embedded Snowflake's environment in {env} (once)", file=sys.stderr, flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for step in ([sys.executable, "-m", "venv", "--clear", str(env)], [*pip, "-e", f"{DISTRIBUTION}[test]"]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise EmulatorEnvironmentError(
                f"could not set up the embedded Snowflake's environment in {env}: `{' '.join(step[:4])} ...` "
                f"failed:\n{(done.stderr or done.stdout)[-2000:]}\nCheck that the package index is reachable, "
                "then run `make venv` again."
            )
    _stamp(env).touch()


def emulator_command(*args: str) -> list[str]:
    """The command line that runs the embedded Snowflake with these arguments (`--data-dir`, `--port`, ...).

    `-I`: its own environment only; neither PYTHONPATH nor the working folder can put sync_project in its reach.
    """
    return [str(emulator_python()), "-I", "-m", "local_snowflake", *args]


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


class EmulatorMismatchError(RuntimeError):
    """What answers on the port is not the embedded Snowflake this client knows (another server, or an old one)."""


@dataclass
class LocalSnowflakeProcess:
    """A local Snowflake in its own process (as the webserver and run processes would reach it).

    `demo_rows`: create the demo tables (sync_project/demo_tables.py) once it answers, through the connector.
    `log_file`: where its output goes (none kept without one); `inherit_output`: this process's own output
    instead (the foreground command).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    demo_rows: int | None = None
    log_file: Path | None = None
    inherit_output: bool = False
    demo_tables: dict[str, int] = field(default_factory=dict)  # rows per demo table, once created
    _process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (the bench reads its memory)."""
        return self._process.pid if self._process is not None else None

    def connection_settings(self) -> dict[str, Any]:
        return connection_settings(self.host, self.port)

    def start(self, timeout: float = 120.0) -> LocalSnowflakeProcess:
        check_port_free(self.host, self.port, "the embedded Snowflake")
        command = emulator_command("--data-dir", str(self.data_dir), "--host", self.host, "--port", str(self.port))
        with contextlib.ExitStack() as log:
            output = None if self.inherit_output else log.enter_context(open(self.log_file or os.devnull, "ab"))
            self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT if output else None)
        try:
            self._check_account(self._wait_for_health(timeout))
            if self.demo_rows is not None:
                self._create_demo_tables(self.demo_rows)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_health(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"local Snowflake exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/_local/health", timeout=1) as r:  # noqa: S310
                    health: dict[str, Any] = json.loads(r.read())
                    return health
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"local Snowflake did not start on {self.base_url} within {timeout}s")

    def _check_account(self, health: dict[str, Any]) -> None:
        expected = {"account": LOCAL_ACCOUNT, "user": LOCAL_USER, "warehouse": LOCAL_WAREHOUSE}
        served = {key: health.get(key) for key in expected}
        if served != expected:
            raise EmulatorMismatchError(
                f"the embedded Snowflake on {self.base_url} serves {served}, but this project connects as "
                f"{expected}: its environment is out of date. Run `make venv` (or delete .local/snowflake-env)."
            )

    def _create_demo_tables(self, rows: int) -> None:
        import snowflake.connector

        from sync_project.demo_tables import create_demo_tables

        with snowflake.connector.connect(**self.connection_settings()) as conn:
            self.demo_tables = create_demo_tables(conn.cursor(), rows)

    def wait(self) -> int:
        """Until the server stops (the foreground command); its exit code."""
        assert self._process is not None
        return self._process.wait()

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


if __name__ == "__main__":  # `make venv`: build the environment now, say where
    print(emulator_python())
