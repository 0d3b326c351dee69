"""Every command block of the README, and of the READMEs it points to, runs as written against a live demo."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from sync_project.embedded_snowflake import free_port
from sync_project.settings import project_root
from sync_project_tests.daemon import BIN, DagsterProcesses

SKIP = "<!-- readme-test: skip"
# In the order a reader meets them: the README, then the files its "Where to go next" names.
DOCS = (
    "README.md",
    "sync_project/README.md",
    "sync_project/sync/README.md",
    "sync_project/sync/mirror/README.md",
    "sync_project/team/README.md",
    "sync_project/local_snowflake/README.md",
    "sync_project_tests/README.md",
    "sync_project/DECISIONS.md",
)


def command_blocks(readme: str) -> list[tuple[int, str]]:
    """(line number, text) of each ```bash block not marked `<!-- readme-test: skip ... -->` just above it."""
    blocks: list[tuple[int, str]] = []
    lines = readme.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            body: list[str] = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            marked = start > 0 and lines[start - 1].strip().startswith(SKIP)
            if not marked:
                blocks.append((start + 1, "\n".join(body)))
        i += 1
    return blocks


def all_blocks() -> list[tuple[str, str]]:
    """(file:line, text) of every command block of every doc, in reading order."""
    return [
        (f"{doc}:{line}", text) for doc in DOCS for line, text in command_blocks((project_root() / doc).read_text())
    ]


def test_the_readme_finds_its_blocks() -> None:
    blocks = all_blocks()
    texts = "\n".join(text for _, text in blocks)
    assert len(blocks) >= 8 and "source .venv/bin/activate" in blocks[0][1]
    assert {doc.split(":")[0] for doc, _ in blocks} >= {
        "README.md",
        "sync_project/README.md",
        "sync_project/sync/README.md",
    }
    assert "make demo" not in texts and "SNOWFLAKE_ACCOUNT=myorg" not in texts  # the marked ones are left out
    assert not re.search(r"\[--", texts), "placeholders like [--json] are not commands"


def test_every_readme_command_block_runs_against_a_live_demo(
    dagster_processes: DagsterProcesses, tmp_path: Path
) -> None:
    # A copy of the repository's layout whose .local is this test's state, so `$PWD/.local/...` in the README
    # points at the demo started here, never at a developer's own demo.
    state = dagster_processes.home.parent
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in (".venv", "workspace.yaml", "pyproject.toml", "Makefile", "sync_project"):
        (checkout / name).symlink_to(project_root() / name)
    (checkout / ".local").symlink_to(state)
    ui_port = free_port()
    env = {
        "LOCAL_SNOWFLAKE_PORT": str(free_port()),
        "LOCAL_SNOWFLAKE_DATA_DIR": str(state / "snowflake"),
        "SYNC_PUBLISHED_PATH": str(state / "mirror.duckdb"),
    }
    demo = dagster_processes.spawn(
        [str(BIN / "sync-project"), "demo", "--rows", "1000", "--ui-port", str(ui_port)], "demo.log", **env
    )
    dagster_processes.wait_for_ui(demo, ui_port, "demo.log")
    blocks = all_blocks()
    script = ["set -eo pipefail", "trap 'echo \"the block at $BLOCK failed: $BASH_COMMAND\" >&2' ERR"]
    for where, text in blocks:
        script += [f"BLOCK={where}", f"echo '::: block {where}'", text]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=checkout,
        env=dagster_processes.env | env | {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=900,
    )
    ran = done.stdout.count("::: block ")
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    assert ran == len(blocks), (ran, len(blocks))
    # Samples land in .local/ (ignored by git), never in the repository's root.
    assert (state / "sample.parquet").exists() and (state / "samples.jsonl").read_text().count("\n") == 10
    assert not (checkout / "sample.parquet").exists() and not (checkout / "samples.jsonl").exists()
    assert "WORKSPACE_833213390.data" in done.stdout and "every check passed" in done.stdout
