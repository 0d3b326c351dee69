"""Every `sync-project` command through its entry point, against the local Snowflake and a temporary instance."""

from __future__ import annotations

import csv
import dataclasses
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import filelock
import pyarrow.parquet as pq
import pytest
import snowflake.connector
from click.testing import CliRunner, Result

from sync_project.checks import CONTENT_CHECK
from sync_project.cli import main
from sync_project.dagster_api import latest_check_evaluation
from sync_project.definitions import build_definitions
from sync_project.demo_tables import DEMO_DATABASE
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import DISCOVER_JOB, REGISTER_JOB, SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.resources import snowflake_resource
from sync_project.settings import Settings
from sync_project.sync.mirror.access import lock_path
from sync_project.sync.tables import TableRef
from sync_project.sync_record import SYNC_ASSET_KEY, last_sync
from sync_project_tests.conftest import DEMO_ROWS
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import inject_fault
from sync_project_tests.helpers import FQ, comparable, create_orders, fetch, snowflake_settings

SCHEMA = "WORKSPACE_833213390"
DATA = f"{SCHEMA}.data"


@pytest.fixture
def env(dagster_processes: DagsterProcesses) -> Path:
    """The CLI's environment: a temporary DAGSTER_HOME, DuckDB file and downloads (no processes started)."""
    return dagster_processes.home.parent


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def partitions() -> list[str]:
    return list(dg.DagsterInstance.get().get_dynamic_partitions(SNOWFLAKE_TABLES))


def sync(key: str) -> bool:
    definitions = build_definitions(Settings.from_env())
    result = definitions.resolve_job_def(SYNC_JOB).execute_in_process(
        tags={"dagster/partition": key}, instance=dg.DagsterInstance.get(), raise_on_error=False
    )
    return result.success


def test_help_for_every_command(env: Path) -> None:
    for command in ("tables", "register", "deregister", "status", "sample", "doctor", "local-snowflake", "demo"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_usage_errors_exit_2(env: Path) -> None:
    assert cli("register").exit_code == 2
    assert cli("sample", DATA, "--first", "-3").exit_code == 2
    assert cli("sample", DATA, "--first", "1", "--random", "1").exit_code == 2
    assert cli("nonsense").exit_code == 2


def test_tables_shows_true_figures(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    result = cli("tables", SCHEMA, "--json")
    assert result.exit_code == 0, result.output
    listing = {row["name"]: row for row in json.loads(result.output)}
    assert listing["data"]["rows"] == DEMO_ROWS and listing["data"]["bytes"] > 0
    assert listing["data"]["last_altered"] and not listing["data"]["registered"]
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        shown = {r[1]: (r[7], r[8]) for r in fetch(conn, f"SHOW TABLES IN SCHEMA {FQ}")}
    assert all((row["rows"], row["bytes"]) == shown[name] for name, row in listing.items() if name in shown)
    human = cli("tables", SCHEMA, "--like", "ALL_TYPES")  # other tests add ALL_TYPES_NULLS
    assert human.exit_code == 0
    lines = human.output.splitlines()
    assert lines[0].split()[:3] == ["TABLE", "ROWS", "SIZE"]
    assert len(lines) == 2 and lines[1].startswith(f"{SCHEMA}.ALL_TYPES") and "KiB" in lines[1]


def test_register_verifies_and_is_idempotent(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    result = cli("register", DATA, f"{SCHEMA}.ALL_TYPES")
    assert result.exit_code == 0, result.output
    assert sorted(partitions()) == sorted([DATA, f"{SCHEMA}.ALL_TYPES"])
    again = cli("register", DATA)
    assert again.exit_code == 0 and "registered already" in again.output
    missing = cli("register", f"{SCHEMA}.SEMI_STRUCTURED", f"{SCHEMA}.NOT_THERE")
    assert missing.exit_code == 1 and "NOT_THERE" in missing.output and "does not exist" in missing.output
    assert f"{SCHEMA}.SEMI_STRUCTURED" not in partitions()  # all or nothing
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f'CREATE OR REPLACE VIEW {FQ}.V_DATA AS SELECT * FROM {FQ}."data"')
    view = cli("register", f"{SCHEMA}.V_DATA")
    assert view.exit_code == 1 and "is a view" in view.output
    hostile = cli("register", f'{SCHEMA}."../etc"')
    assert hostile.exit_code == 1 and "path" in hostile.output
    assert "V_DATA" not in str(partitions())
    pattern = cli("register", "--schema", SCHEMA, "--like", "SEMI%")
    assert pattern.exit_code == 0 and f"{SCHEMA}.SEMI_STRUCTURED" in partitions()


def test_register_and_sync_queues_a_run(env: Path) -> None:
    result = cli("register", f"{SCHEMA}.ALL_TYPES", "--sync")
    assert result.exit_code == 0, result.output
    assert "queued a sync" in result.output
    runs = dg.DagsterInstance.get().get_runs(dg.RunsFilter(tags={"dagster/partition": f"{SCHEMA}.ALL_TYPES"}))
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.QUEUED and runs[0].job_name == SYNC_JOB


def test_deregister_keeps_or_drops_the_duckdb_table(env: Path) -> None:
    assert cli("register", DATA).exit_code == 0 and sync(DATA)
    kept = cli("deregister", DATA)
    assert kept.exit_code == 0 and "is kept" in kept.output and DATA not in partitions()
    with duckdb.connect(str(env / "sync.duckdb"), read_only=True) as con:
        assert con.execute(f'SELECT count(*) FROM "{SCHEMA}"."data"').fetchone() == (DEMO_ROWS,)
    assert cli("register", DATA).exit_code == 0
    dropped = cli("deregister", DATA, "--drop")
    assert dropped.exit_code == 0 and "dropped" in dropped.output
    with duckdb.connect(str(env / "sync.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'data'").fetchone() == (0,)


def test_status_follows_success_failure_success(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    key = f"{SCHEMA}.ALL_TYPES"
    assert cli("register", key).exit_code == 0

    def status() -> dict[str, Any]:
        result = cli("status", key, "--json")
        assert result.exit_code == 0, result.output
        (report,) = json.loads(result.output)
        return report  # type: ignore[no-any-return]

    never = status()
    assert never["last_run"] is None and never["duckdb"]["exists"] is False
    assert sync(key)
    first = status()
    assert first["last_run"]["status"] == "SUCCESS" and first["row_count_check"]["passed"] is True
    assert first["row_count_check"]["severity"] is None  # a passed check has no severity to report
    assert first["last_successful_sync"]["rows"] == first["duckdb"]["rows"] > 0
    assert first["duckdb"]["bytes"] > 0 and first["last_failed_run"] is None
    inject_fault(local_snowflake.base_url, "desc_table", errno=2003, message="Object does not exist")
    assert not sync(key)
    failed = status()
    assert failed["last_run"]["status"] == "FAILURE"
    assert "does not exist" in failed["last_failed_run"]["error"]
    assert failed["last_successful_sync"] == first["last_successful_sync"]
    assert sync(key)
    again = status()
    assert again["last_run"]["status"] == "SUCCESS" and again["last_run"]["run_id"] != first["last_run"]["run_id"]
    assert again["last_failed_run"]["run_id"] == failed["last_run"]["run_id"]
    human = cli("status")
    assert human.exit_code == 0 and "last synced:" in human.output and "row count:    passed" in human.output


def _duckdb_rows(env: Path, table: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(env / "sync.duckdb"), read_only=True) as con:
        return con.execute(f'SELECT * FROM "{SCHEMA}"."{table}"').fetchall()


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_sample_formats_parse_back_to_the_same_rows(env: Path, fmt: str) -> None:
    key = f"{SCHEMA}.ALL_TYPES"
    assert cli("register", key).exit_code == 0 and sync(key)
    out = env / f"sample.{fmt}"
    result = cli("sample", key, "--first", "50", "--format", fmt, "--output", str(out))
    assert result.exit_code == 0, result.output
    expected = {r[0]: r for r in _duckdb_rows(env, "ALL_TYPES")}
    if fmt == "parquet":
        table = pq.read_table(out)
        assert str(table.schema.field("NUM_38_0").type) == "decimal128(38, 0)"
        rows = [tuple(r.values()) for r in table.to_pylist()]
        assert len(rows) == 50
        for row in rows:
            assert tuple(comparable(v) for v in row) == tuple(comparable(v) for v in expected[row[0]])
        return
    if fmt == "json":
        parsed = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        parsed = list(csv.DictReader(out.open()))
    assert len(parsed) == 50
    by_id = {int(r["ID"]): r for r in parsed}
    for ident, row in by_id.items():
        source = expected[ident]
        assert str(row["NUM_38_0"] if row["NUM_38_0"] is not None else "") == (
            str(source[1]) if source[1] is not None else ""
        )
        assert (row["VARCHAR_COL"] or None) == (source[8] or None)
    extreme = by_id[0]
    assert int(extreme["NUM_38_0"]) == int("9" * 38)  # no float on the way
    assert str(extreme["TS_NTZ"]).startswith("9999-12-31T23:59:59")


def test_sample_random_and_refusals(env: Path) -> None:
    key = f"{SCHEMA}.ALL_TYPES"
    unregistered = cli("sample", key, "--output", str(env / "x.json"))
    assert unregistered.exit_code == 1 and "not registered" in unregistered.output
    assert cli("register", key).exit_code == 0
    unsynced = cli("sample", key, "--output", str(env / "x.json"))
    assert unsynced.exit_code == 1 and "synced yet" in unsynced.output
    assert sync(key)
    out = env / "random.json"
    assert cli("sample", key, "--random", "7", "--output", str(out)).exit_code == 0
    ids = [json.loads(line)["ID"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 7


def test_readers_wait_for_a_writer_bounded(env: Path) -> None:
    key = f"{SCHEMA}.ALL_TYPES"
    assert cli("register", key).exit_code == 0 and sync(key)
    lock = filelock.FileLock(str(lock_path(env / "sync.duckdb")))
    with lock:
        gave_up = cli("sample", key, "--wait", "0.5", "--output", str(env / "a.json"))
        assert gave_up.exit_code == 1 and "held" in gave_up.output
        status = cli("status", key, "--wait", "0.5")
        assert status.exit_code == 1 and "held" in status.output
    held = threading.Event()
    released: list[float] = []

    def hold_for_a_second() -> None:  # filelock locks belong to the thread that took them
        with filelock.FileLock(str(lock_path(env / "sync.duckdb"))):
            held.set()
            time.sleep(1.0)
            released.append(time.time())

    writer = threading.Thread(target=hold_for_a_second)
    writer.start()
    held.wait()
    waited = cli("sample", key, "--wait", "30", "--output", str(env / "b.json"))
    writer.join()
    # In order: the holder let go, then the sample was written (it waited rather than failing or reading around).
    assert waited.exit_code == 0 and (env / "b.json").stat().st_mtime >= released[0]


def test_discover_and_register_jobs_from_the_launchpad(env: Path) -> None:
    definitions = build_definitions(Settings.from_env())
    instance = dg.DagsterInstance.get()
    discovered = definitions.resolve_job_def(DISCOVER_JOB).execute_in_process(
        run_config={"ops": {"discover_schema": {"config": {"schema_name": SCHEMA, "like": "%TYPES"}}}},
        instance=instance,
    )
    (output,) = [e for e in discovered.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    table = output.step_output_data.metadata["tables"]  # type: ignore[union-attr]
    assert isinstance(table, dg.TableMetadataValue)
    assert [r.data["table"] for r in table.value.records] == [f"{SCHEMA}.ALL_TYPES"]
    registered = definitions.resolve_job_def(REGISTER_JOB).execute_in_process(
        run_config={"ops": {"register_in_schema": {"config": {"schema_name": SCHEMA, "tables": ["data", "NOPE"]}}}},
        instance=instance,
        raise_on_error=False,
    )
    assert not registered.success and partitions() == []
    registered = definitions.resolve_job_def(REGISTER_JOB).execute_in_process(
        run_config={"ops": {"register_in_schema": {"config": {"schema_name": SCHEMA, "like": "da%"}}}},
        instance=instance,
    )
    assert registered.success and partitions() == [DATA]


def test_an_account_refusing_unloads_is_synced_through_result_sets_and_status_says_so(
    env: Path, local_snowflake: LocalSnowflakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With extract auto (and every table over the size that goes to the result set at once), a refused unload
    falls back to the result set in the same run, is remembered, and status and the metadata say so."""
    monkeypatch.setenv("SYNC_EXTRACT", "auto")
    monkeypatch.setenv("SYNC_RESULTS_MAX_BYTES", "0")
    assert cli("register", DATA).exit_code == 0
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as admin:
        fetch(admin, "ALTER ACCOUNT SET PREVENT_UNLOAD_TO_INTERNAL_STAGES = TRUE")
        try:
            assert sync(DATA)
        finally:
            fetch(admin, "ALTER ACCOUNT UNSET PREVENT_UNLOAD_TO_INTERNAL_STAGES")
    record = last_sync(dg.DagsterInstance.get(), DATA)
    assert record is not None and record.record.figures["extract"] == "results"
    (report,) = json.loads(cli("status", DATA, "--json").output)
    assert "PREVENT_UNLOAD_TO_INTERNAL_STAGES = FALSE" in report["unload_prevented"]
    assert report["last_successful_sync"]["rows"] == DEMO_ROWS
    human = cli("status", DATA).output
    assert "read its result set into" in human and "Snowflake refused unloads to internal stages" in human


def test_register_with_options_status_and_rebuild(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    key = f"{SCHEMA}.data"
    refused = cli("register", key, "--strategy", "incremental", "--cursor", "no_such_column")
    assert refused.exit_code == 1 and "no_such_column" in refused.output and partitions() == []
    result = cli("register", key, "--strategy", "incremental", "--cursor", "updated_at")
    assert result.exit_code == 0, result.output
    assert sync(key)
    (report,) = json.loads(cli("status", key, "--json").output)
    options = {
        "strategy": "incremental",
        "cursor_column": "updated_at",
        "primary_key": ["id"],
        "extract": None,
        "deletes": "remove",
        "verify": "counts",
    }
    assert report["options"] == options
    assert report["high_water_mark"] and report["high_water_mark"].startswith("2021-01-01")
    assert "incremental on updated_at, key id" in cli("status", key).output
    # --extract alone sets the table's way out of Snowflake and keeps its strategy, cursor and key.
    again = cli("register", key, "--extract", "results")
    assert again.exit_code == 0 and "extract results" in again.output, again.output
    (report,) = json.loads(cli("status", key, "--json").output)
    assert report["options"] == options | {"extract": "results"}
    assert "incremental on updated_at, key id, extract results" in cli("status", key).output
    rebuilt = cli("rebuild", key)
    assert rebuilt.exit_code == 0 and f"rebuilt {key}: {DEMO_ROWS:,} rows" in rebuilt.output
    unregistered = cli("rebuild", f"{SCHEMA}.ALL_TYPES")
    assert unregistered.exit_code == 1 and "not registered" in unregistered.output


def test_status_sees_runs_of_many_tables_and_blames_only_the_table_that_failed(
    env: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    """`sync --all`, the nightly schedule, the change sensor and backfills sync tables in runs of many."""
    from sync_project.automation import batch_tags

    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE OR REPLACE TABLE {FQ}.DOOMED AS SELECT 1 AS ID")
    keys = [f"{SCHEMA}.ALL_TYPES", f"{SCHEMA}.DOOMED", DATA]
    assert cli("register", *keys).exit_code == 0
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"DROP TABLE {FQ}.DOOMED")  # gone since it was registered: its part of the run fails
    definitions = build_definitions(Settings.from_env())
    batch = definitions.resolve_job_def(SYNC_JOB).execute_in_process(
        tags=batch_tags(keys), instance=dg.DagsterInstance.get(), raise_on_error=False
    )
    assert not batch.success

    def status(key: str) -> dict[str, Any]:
        (report,) = json.loads(cli("status", key, "--json").output)
        return report  # type: ignore[no-any-return]

    synced, doomed = status(DATA), status(f"{SCHEMA}.DOOMED")
    assert synced["last_run"]["run_id"] == doomed["last_run"]["run_id"] == batch.run_id
    assert synced["last_successful_sync"] is not None and synced["last_failed_run"] is None
    assert doomed["last_failed_run"]["run_id"] == batch.run_id and "DOOMED" in doomed["last_failed_run"]["error"]


def test_the_register_job_uses_the_database_of_its_resource(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    """The Snowflake resource, overridden, names another database: the register job looks for the table there
    (and not in the settings' database, which has no such schema)."""
    other = f"OTHER_{uuid.uuid4().hex[:6].upper()}"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        for sql in (
            f"CREATE DATABASE {other}",
            f"CREATE SCHEMA {other}.SALES",
            f"CREATE TABLE {other}.SALES.ORDERS (ID NUMBER(38,0))",
        ):
            fetch(conn, sql)
    settings = Settings.from_env()
    job = build_definitions(settings).resolve_job_def(REGISTER_JOB)
    register = {"ops": {"register_in_schema": {"config": {"schema_name": "SALES", "tables": ["ORDERS"]}}}}
    instance = dg.DagsterInstance.get()
    assert not job.execute_in_process(run_config=register, instance=instance, raise_on_error=False).success
    overridden = snowflake_resource(dataclasses.replace(settings, snowflake_database=other))
    assert job.execute_in_process(run_config=register, instance=instance, resources={"snowflake": overridden}).success
    assert partitions() == ["SALES.ORDERS"]


def test_deletes_mark_through_register_a_dagster_sync_and_status(
    env: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    """The option from `register` to the engine, and what the sync did with deleted rows back in its metadata and
    in `status`; refused without the incremental options it belongs to."""
    schema = f"DEL_{uuid.uuid4().hex[:8].upper()}"
    key = f"{schema}.ORDERS"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA {schema}")
        create_orders(conn, TableRef(DEMO_DATABASE, schema, "ORDERS"))
    assert cli("register", key, "--deletes", "mark").exit_code == 2  # no incremental options: a usage error
    registered = cli("register", key, "--strategy", "incremental", "--cursor", "UPDATED_AT", "--deletes", "mark")
    assert registered.exit_code == 0, registered.output
    assert sync(key)
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"DELETE FROM {schema}.ORDERS WHERE MOD(ID, 10) = 3")
    assert sync(key)
    record = last_sync(dg.DagsterInstance.get(), key)
    assert record is not None and record.record.figures["rows_deleted"] == 100
    assert record.record.figures["deletes"] == "marked"
    (report,) = json.loads(cli("status", key, "--json").output)
    assert report["options"]["deletes"] == "mark" and report["last_successful_sync"]["rows"] == 900
    assert "marked in _sync_deleted_at at each incremental sync; the last sync marked 100 row(s)" in report["deletes"]
    assert "deletes mark" in cli("status", key).output


def test_verify_content_after_each_sync_and_from_the_cli(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    """`--verify content` adds the content check to each sync of the table; `verify` runs it on demand, names the
    column that differs, records the verdict as the table's check, and exits 1."""
    schema = f"VER_{uuid.uuid4().hex[:8].upper()}"
    key = f"{schema}.ORDERS"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA {schema}")
        create_orders(conn, TableRef(DEMO_DATABASE, schema, "ORDERS"))
    assert cli("register", key, "--strategy", "incremental", "--cursor", "UPDATED_AT").exit_code == 0
    assert cli("register", key, "--verify", "content").exit_code == 0  # alone: keeps the incremental options
    assert "incremental on UPDATED_AT, key ID, verify content" in cli("status", key).output
    assert sync(key)
    instance = dg.DagsterInstance.get()
    check = dg.AssetCheckKey(SYNC_ASSET_KEY, CONTENT_CHECK)
    after_sync = latest_check_evaluation(instance, check, key)
    assert after_sync is not None and after_sync.passed
    assert cli("verify", key).exit_code == 0
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"UPDATE {schema}.ORDERS SET STATUS = 'old' WHERE MOD(ID, 100) = 42")  # the cursor stays
    assert sync(key)  # incremental: the change is not seen, and the counts agree
    after_sync = latest_check_evaluation(instance, check, key)
    assert after_sync is not None and not after_sync.passed and "STATUS" in str(after_sync.description)
    verified = cli("verify", key)
    assert verified.exit_code == 1 and "differs in 1 column(s): STATUS" in verified.output
    assert "1 of 1 table(s) differ from Snowflake" in verified.output
    assert cli("rebuild", key).exit_code == 0
    assert cli("verify", "--all").exit_code == 0
    recorded = latest_check_evaluation(instance, check, key)
    assert recorded is not None and recorded.passed


def test_status_says_deletes_are_not_detected_without_a_key(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    schema = f"NOKEY_{uuid.uuid4().hex[:8].upper()}"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE SCHEMA {schema}")
        fetch(conn, f"CREATE TABLE {schema}.EVENTS (AT TIMESTAMP_NTZ, NOTE VARCHAR)")
    key = f"{schema}.EVENTS"
    refused = cli("register", key, "--strategy", "incremental", "--cursor", "AT", "--deletes", "remove")
    assert refused.exit_code == 1 and "needs the table's key" in refused.output
    assert cli("register", key, "--strategy", "incremental", "--cursor", "AT").exit_code == 0
    (report,) = json.loads(cli("status", key, "--json").output)
    assert report["options"]["deletes"] == "keep"
    assert report["deletes"].startswith("not detected: an incremental table without a key")
    assert "--primary-key COLUMN" in cli("status", key).output
