"""`dg`, Dagster's project command line, loads this project as it loads any components-era project: the
definitions are listed and checked, and `dg launch` syncs one table's partition."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import duckdb

from sync_project.assets import snowflake_table
from sync_project.definitions import build_definitions
from sync_project.demo_tables import DEMO_SCHEMA
from sync_project.embedded_snowflake import LocalSnowflakeProcess, free_port
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings, project_root
from sync_project_tests.daemon import DagsterProcesses, graphql
from sync_project_tests.helpers import connector, project_copy

DG = str(Path(sys.executable).with_name("dg"))


def dg_command(processes: DagsterProcesses, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DG, *args], cwd=project_root(), env=processes.env, capture_output=True, text=True, timeout=timeout
    )


def test_dg_lists_and_checks_every_definition(dagster_processes: DagsterProcesses) -> None:
    listed = dg_command(dagster_processes, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    defs = json.loads(listed.stdout)
    (asset,) = defs["assets"]
    # Its kinds, and the code reference the UI links to: the function that syncs a table.
    line = inspect.getsourcelines(snowflake_table.op.compute_fn.decorated_fn)[1]  # type: ignore[union-attr]
    assert (asset["asset_key"], asset["kinds"]) == ("snowflake_table", ["duckdb", "snowflake"])
    assert asset["owners"] == [{"team": "data-platform"}]  # from the component's defs.yaml
    assert asset["source"] == f"sync_project/assets.py:{line}"
    assert {c["key"] for c in defs["asset_checks"]} == {
        "snowflake_table:row_count_matches_snowflake",
        "snowflake_table:schema_matches_type_map",
        "snowflake_table:content_matches_snowflake",
    }
    assert {j["name"] for j in defs["jobs"]} >= {"sync_tables", "verify_synced_tables", "register_tables"}
    assert {s["name"] for s in defs["schedules"]} == {"nightly_sync", "daily_cleanup", "weekly_verify"}
    assert {s["name"] for s in defs["sensors"]} == {
        "snowflake_change_sensor",
        "auto_register_tables",
        "publish_after_syncs",
    }
    checked = dg_command(dagster_processes, "check", "defs")
    assert checked.returncode == 0 and "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_dg_launch_syncs_one_tables_partition(dagster_processes: DagsterProcesses) -> None:
    key = f"{DEMO_SCHEMA}.ALL_TYPES"
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, [key])
    launched = dg_command(dagster_processes, "launch", "--assets", "snowflake_table", "--partition", key)
    assert launched.returncode == 0, (launched.stdout + launched.stderr)[-3000:]
    with duckdb.connect(dagster_processes.env["SYNC_DUCKDB_PATH"], read_only=True) as con:
        synced = con.execute(f'SELECT count(*) FROM "{DEMO_SCHEMA}"."ALL_TYPES"').fetchone()
    materialization = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey("snowflake_table"))
    assert synced is not None and synced[0] > 0
    assert materialization is not None and materialization.asset_materialization is not None
    recorded = materialization.asset_materialization
    assert recorded.partition == key
    # Dagster's standard partition metadata: the rows DuckDB holds, and which DuckDB table this partition is.
    assert recorded.metadata["dagster/partition_row_count"] == dg.MetadataValue.int(synced[0])
    assert recorded.metadata["dagster/table_name"] == dg.MetadataValue.text(f"{DEMO_SCHEMA}.ALL_TYPES")


def test_the_asset_is_of_the_kind_of_its_target(settings: Settings) -> None:
    """`snowflake` and `duckdb` for the DuckDB file; `snowflake` and `ducklake` for a lake."""
    for target in ("duckdb", "ducklake"):
        defs = build_definitions(dataclasses.replace(settings, target=target))
        asset = defs.resolve_assets_def("snowflake_table")
        assert asset.specs_by_key[asset.key].kinds == {"snowflake", target}


def database_with_orders(local_snowflake: LocalSnowflakeProcess, table: str) -> str:
    """A new database of the local Snowflake with one table, SALES.ORDERS `table` (columns, or AS SELECT)."""
    other = f"OTHER_{uuid.uuid4().hex[:6].upper()}"
    with connector(local_snowflake)() as conn:
        for sql in (
            f"CREATE DATABASE {other}",
            f"CREATE SCHEMA {other}.SALES",
            f"CREATE TABLE {other}.SALES.ORDERS {table}",
        ):
            conn.cursor().execute(sql)
    return other


def test_a_second_mirror_scaffolded_with_dg_loads_and_syncs_beside_the_first(
    dagster_processes: DagsterProcesses, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """`dg scaffold defs sync_project.SnowflakeMirrorComponent another_mirror` makes a second mirror (its own
    database and DuckDB file, its names prefixed) that loads beside the first; `dg launch` syncs a table in each."""
    project = project_copy(tmp_path / "project")
    env = dagster_processes.env | {"PYTHONPATH": str(project)}  # the copy's sync_project, with its defs

    def dg_here(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([DG, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return done

    dg_here("scaffold", "defs", "sync_project.SnowflakeMirrorComponent", "another_mirror")
    declared = project / "sync_project" / "defs" / "another_mirror" / "defs.yaml"
    other = database_with_orders(local_snowflake, "AS SELECT 1 AS ID UNION ALL SELECT 2 UNION ALL SELECT 3")
    declared.write_text(re.sub(r"(?m)^  database: .*$", f"  database: {other}", declared.read_text()))

    listed = json.loads(dg_here("list", "defs", "--json").stdout)
    assert {a["asset_key"] for a in listed["assets"]} == {"snowflake_table", "another_mirror/snowflake_table"}
    assert {j["name"] for j in listed["jobs"]} >= {"sync_tables", "another_mirror_sync_tables"}
    assert {r["name"] for r in listed["resources"]} >= {"snowflake", "duckdb", "another_mirror_duckdb"}

    instance = dg.DagsterInstance.get()
    first_key = f"{DEMO_SCHEMA}.ALL_TYPES"
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [first_key])
    instance.add_dynamic_partitions("another_mirror_snowflake_tables", ["SALES.ORDERS"])
    dg_here("launch", "--assets", "another_mirror/snowflake_table", "--partition", "SALES.ORDERS")
    dg_here("launch", "--assets", "snowflake_table", "--partition", first_key)

    with duckdb.connect(str(project / ".local" / "another_mirror" / "sync.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM SALES.ORDERS").fetchone() == (3,)
        assert con.execute(f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{DEMO_SCHEMA}'")
        assert con.fetchone() == (0,)  # the first mirror's table is not here
    with duckdb.connect(env["SYNC_DUCKDB_PATH"], read_only=True) as con:
        synced = con.execute(f'SELECT count(*) FROM "{DEMO_SCHEMA}"."ALL_TYPES"').fetchone()
        assert synced is not None and synced[0] > 0
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'SALES'")
        assert con.fetchone() == (0,)
    second = instance.get_latest_materialization_event(dg.AssetKey(["another_mirror", "snowflake_table"]))
    assert second is not None and second.asset_materialization is not None
    assert second.asset_materialization.metadata["dagster/partition_row_count"] == dg.MetadataValue.int(3)
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["another_mirror", "snowflake_table"]), "row_count_matches_snowflake")]
    )
    assert [c.status.value for c in checks.values()] == ["SUCCEEDED"]


def test_the_cli_takes_its_database_from_the_first_mirrors_defs_yaml(
    dagster_processes: DagsterProcesses, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """The component's `database` attribute, set in `defs.yaml` alone, is what `sync-project tables` lists: the
    CLI reads the resources the definitions build, not settings of its own."""
    project = project_copy(tmp_path / "project")
    declared = project / "sync_project" / "defs" / "snowflake_mirror" / "defs.yaml"
    other = database_with_orders(local_snowflake, "(ID INT)")

    def tables_of_sales() -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).with_name("sync-project")), "tables", "SALES", "--json"]
        env = dagster_processes.env | {"PYTHONPATH": str(project)}
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)

    before = tables_of_sales()
    assert before.returncode != 0 and "SALES" in before.stderr  # KEBOOLA_33 has no such schema
    declared.write_text(declared.read_text() + f"  database: {other}\n")
    after = tables_of_sales()
    assert after.returncode == 0, after.stderr[-2000:]
    assert [t["key"] for t in json.loads(after.stdout)] == ["SALES.ORDERS"], after.stdout


LOCATIONS = "query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def test_dg_dev_serves_the_mirror_and_with_the_demo_workspace_what_make_demo_serves(
    dagster_processes: DagsterProcesses,
) -> None:
    """`dg dev` from the project's root serves the project's code location (the mirror); with the demo's
    workspace, the UI `make demo` serves: the mirror and the demo's downstream location, both loaded."""
    for extra, expected in (
        ([], {"sync_project"}),
        (["-w", "sync_project/downstream_demo/workspace.yaml"], {"sync_project", "downstream_demo"}),
    ):
        port = free_port("127.0.0.1")
        server = dagster_processes.spawn_in(project_root(), [DG, "dev", "-p", str(port), *extra], "dg-dev.log")
        dagster_processes.wait_for_ui(server, port, "dg-dev.log")
        entries = graphql(port, LOCATIONS, {})["workspaceOrError"]["locationEntries"]
        assert {e["name"] for e in entries} == expected
        assert {e["loadStatus"] for e in entries} == {"LOADED"}
        dagster_processes.stop()
        dagster_processes.processes.clear()
