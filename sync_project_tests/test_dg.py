"""`dg`, Dagster's project command line, loads this project as it loads any components-era project: the
definitions are listed and checked, and `dg launch` syncs one table's partition."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from sync_project.assets import snowflake_table
from sync_project.definitions import build_definitions
from sync_project.demo_tables import DEMO_SCHEMA
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings, project_root
from sync_project_tests.daemon import DagsterProcesses

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
    assert asset["source"] == f"sync_project/assets.py:{line}"
    assert {c["key"] for c in defs["asset_checks"]} == {
        "snowflake_table:row_count_matches_snowflake",
        "snowflake_table:schema_matches_type_map",
    }
    assert {j["name"] for j in defs["jobs"]} >= {"sync_tables", "verify_synced_tables", "register_tables"}
    assert {s["name"] for s in defs["schedules"]} == {"nightly_sync", "daily_cleanup"}
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
