"""Exposure: the demo's UI listens on loopback only; credentials have no place in the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sync_project.embedded_snowflake import free_port
from sync_project.settings import project_root
from sync_project_tests.daemon import BIN, DagsterProcesses
from sync_project_tests.reliability import observe

CREDENTIALS = (
    "SNOWFLAKE_PASSWORD",
    "SNOWFLAKE_TOKEN",
    "SNOWFLAKE_PRIVATE_KEY",
    "SNOWFLAKE_PRIVATE_KEY_PATH",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
)


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port`, from the kernel's own tables."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_make_demo_serves_the_ui_on_loopback_only(dagster_processes: DagsterProcesses, tmp_path: Path) -> None:
    ui_port = free_port("127.0.0.1")
    demo = dagster_processes.spawn(
        [str(BIN / "sync-project"), "demo", "--rows", "1000", "--ui-port", str(ui_port)],
        "demo.log",
        LOCAL_SNOWFLAKE_PORT=str(free_port("127.0.0.1")),  # its own embedded Snowflake, as `make demo` starts
        LOCAL_SNOWFLAKE_DATA_DIR=str(tmp_path / "snowflake"),
    )
    dagster_processes.wait_for_ui(demo, ui_port, "demo.log")
    addresses = listening_addresses(ui_port)
    log = dagster_processes.home / "demo.log"
    output = log.read_text()
    synced = [line for line in output.splitlines() if line.startswith("synced ")]
    assert len(synced) == 3 and all(line.endswith(": ok") for line in synced), output[-3000:]
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1 and nothing else (no 0.0.0.0, no ::)
    observe(
        "Exposure",
        "`make demo` (sync-project demo) serves the Dagster UI",
        f"the demo synced its {len(synced)} tables and the UI answered on 127.0.0.1",
        "the kernel's socket table shows the UI port listening on 127.0.0.1 only, not on 0.0.0.0 or ::",
    )


def test_credentials_have_no_place_in_the_repository() -> None:
    root = project_root()
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=root, check=False).returncode == 0
    assert ignored, ".env must be ignored by git"
    example = dict(
        line.split("=", 1)
        for line in (root / ".env.example").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert all(example.get(name) == "" for name in CREDENTIALS), "list credential names in .env.example, no values"
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    assert ".env" not in tracked
    readme = (root / "README.md").read_text()
    assert "--read-only" in readme and "SSO" in readme
    observe(
        "Exposure",
        "Where credentials come from",
        "`.env` (which `dagster dev` would read) is ignored by git and not tracked",
        f".env.example names all {len(CREDENTIALS)} credential variables with empty values; the README explains "
        "`dagster-webserver --read-only` for viewers and an SSO proxy for teams",
    )
