"""End to end as a user runs it: dagster-webserver + dagster-daemon, driven through the GraphQL API."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_graphql import DagsterGraphQLClient

from sync_project.assets import ASSET_DESCRIPTION
from sync_project.demo_tables import type_table_rows
from sync_project.embedded_snowflake import free_port
from sync_project.settings import project_root
from sync_project_tests.conftest import DEMO_ROWS
from sync_project_tests.daemon import PARTITION_RUNS, DagsterProcesses, graphql

pytestmark = pytest.mark.e2e
ARTIFACTS = project_root() / ".local" / "test-artifacts"
SCHEMA = "WORKSPACE_833213390"
KEY = f"{SCHEMA}.ALL_TYPES"

RUN_EVENTS = """
query RunEvents($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status
      eventConnection(afterCursor: null) {
        events {
          __typename
          ... on AssetCheckEvaluationEvent { evaluation { checkName success partition } }
          ... on MaterializationEvent { partition metadataEntries { label ... on TextMetadataEntry { text } } }
        }
      }
    }
  }
}
"""


@pytest.fixture
def ui(dagster_processes: DagsterProcesses) -> tuple[DagsterProcesses, int]:
    port = free_port()
    dagster_processes.start_webserver(port)
    dagster_processes.start_daemon()
    return dagster_processes, port


def ensure_chromium() -> str:
    """Debian's chromium, installed here when missing (the CI machine starts without it)."""
    found = shutil.which("chromium")
    if found:
        return found
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=True, capture_output=True)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium that waits (virtual time) for the UI's GraphQL calls to render the page."""
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1400,1000",
    ]  # fmt: skip
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def wait_for(client: DagsterGraphQLClient, run_id: str, timeout: float = 180) -> dg.DagsterRunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            return status
        time.sleep(1)
    raise TimeoutError(f"run {run_id} did not finish")


def test_register_materialize_check_and_backfill_through_the_ui(
    ui: tuple[DagsterProcesses, int], tmp_path: Path
) -> None:
    processes, port = ui
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    register = client.submit_job_execution(
        "register_tables",
        run_config={"ops": {"register_in_schema": {"config": {"schema_name": SCHEMA, "tables": ["ALL_TYPES"]}}}},
    )
    assert wait_for(client, register) == dg.DagsterRunStatus.SUCCESS
    assert dg.DagsterInstance.get().get_dynamic_partitions("snowflake_tables") == [KEY]

    sync = client.submit_job_execution("sync_tables", tags={"dagster/partition": KEY})
    assert wait_for(client, sync) == dg.DagsterRunStatus.SUCCESS
    events = graphql(port, RUN_EVENTS, {"runId": sync})["runOrError"]["eventConnection"]["events"]
    checks = {
        e["evaluation"]["checkName"]: e["evaluation"] for e in events if e["__typename"] == "AssetCheckEvaluationEvent"
    }
    assert (
        checks["row_count_matches_snowflake"]["success"] and checks["row_count_matches_snowflake"]["partition"] == KEY
    )
    assert checks["schema_matches_type_map"]["success"]
    (materialized,) = [e for e in events if e["__typename"] == "MaterializationEvent"]
    assert materialized["partition"] == KEY
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        assert con.execute(f'SELECT count(*) FROM "{SCHEMA}"."ALL_TYPES"').fetchone() == (type_table_rows(DEMO_ROWS),)

    # What a person sees: the asset's page lists the partitions and shows the latest materialization's metadata.
    browser = ensure_chromium()
    page = f"http://127.0.0.1:{port}/assets/snowflake_table?view=partitions&partition={KEY}"
    dom = chromium(browser, tmp_path / "chromium-dom", "--dump-dom", page).stdout
    assert KEY in dom
    # This run's own values, not words every page holds: the sync's summary line and Snowflake's query id.
    texts = {m["label"]: m.get("text") for m in materialized["metadataEntries"]}
    for label in ("table", "sync", "unload_query_id"):
        assert texts[label] and html.escape(texts[label], quote=False) in dom, (label, texts[label])
    # The table's own row count, with a thousands separator, as text on its partition page.
    assert f"{type_table_rows(DEMO_ROWS):,} rows in {KEY}" in dom
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = {
        "asset-partition-page.png": page,
        "asset-checks-tab.png": f"http://127.0.0.1:{port}/assets/snowflake_table?view=checks",
        "asset-overview.png": f"http://127.0.0.1:{port}/assets/snowflake_table",
    }
    for name, url in pages.items():
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        chromium(browser, tmp_path / f"chromium-{name}", f"--screenshot={shot}", url)
        assert shot.stat().st_size > 10_000, name  # kept as the test's artifacts
    # The overview no longer presents one table's row count or columns as the whole asset's.
    overview = chromium(browser, tmp_path / "chromium-overview", "--dump-dom", pages["asset-overview.png"]).stdout
    assert ASSET_DESCRIPTION.splitlines()[0] in overview  # the page rendered, and it is this asset's
    assert "dagster/row_count" not in overview and "dagster/column_schema" not in overview

    backfill = processes.dagster(
        "job", "backfill", "-w", str(project_root() / "workspace.yaml"), "-j", "sync_tables",
        "--partitions", KEY, "--noprompt",
    )  # fmt: skip
    assert backfill.returncode == 0, backfill.stderr[-2000:]
    deadline = time.monotonic() + 180
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = graphql(port, PARTITION_RUNS, {"value": KEY})["runsOrError"]["results"]
        if len(runs) == 2 and all(r["status"] in ("SUCCESS", "FAILURE") for r in runs):
            break
        time.sleep(1)
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"], runs
