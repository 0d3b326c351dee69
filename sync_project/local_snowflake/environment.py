"""The embedded Snowflake's own Python environment, made on first use.

The emulator is fakesnow plus our patches. fakesnow pins its own DuckDB and needs pandas; the sync needs
neither. With both in one virtualenv, `snowflake.connector` imported pandas (and numpy) in every run
process (0.3 s of each run's start-up: `python -X importtime -c "import snowflake.connector"`), and the
DuckDB the mirror is written with had to be fakesnow's. So the server runs from `.local/snowflake-env`,
built from `requirements.txt` next to this file, and finds its own package through PYTHONPATH; nothing of the
sync path is installed there.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds sync_project/


class EmulatorEnvironmentError(RuntimeError):
    """The embedded Snowflake's environment could not be made (pip failed); the message says what pip said."""


def environment_dir() -> Path:
    return SOURCE_ROOT / ".local" / "snowflake-env"


def _stamp(env: Path) -> Path:
    digest = hashlib.sha1(REQUIREMENTS.read_bytes()).hexdigest()[:12]  # noqa: S324 - a change marker, not security
    return env / f".installed-{digest}"


def emulator_python() -> Path:
    """The environment's interpreter; builds the environment first if it is missing or its requirements changed.

    One process builds it at a time (a file lock), so parallel tests and the Makefile never race.
    """
    from filelock import FileLock

    env = environment_dir()
    python = env / "bin" / "python"
    if _stamp(env).exists():
        return python
    env.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env) + ".lock"):
        if _stamp(env).exists():
            return python
        print(f"setting up the embedded Snowflake's environment in {env} (once)", file=sys.stderr, flush=True)
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(env)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                raise EmulatorEnvironmentError(
                    f"could not set up the embedded Snowflake's environment in {env}: `{' '.join(step[:4])} ...` "
                    f"failed:\n{(done.stderr or done.stdout)[-2000:]}\nCheck that the package index is reachable, "
                    "then run `make venv` again."
                )
        _stamp(env).touch()
    return python


def emulator_command(*args: str) -> list[str]:
    """The command line that runs the embedded Snowflake with these arguments (`--data-dir`, `--port`, ...)."""
    return [str(emulator_python()), "-m", "sync_project.local_snowflake", *args]


def emulator_environment() -> dict[str, str]:
    """This process's environment, with our source first on PYTHONPATH (the emulator's env has no sync_project)."""
    path = os.environ.get("PYTHONPATH")
    return os.environ | {"PYTHONPATH": str(SOURCE_ROOT) + (os.pathsep + path if path else "")}


if __name__ == "__main__":
    print(emulator_python())
