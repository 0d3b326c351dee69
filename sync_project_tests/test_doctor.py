"""`sync-project doctor` and the doctor job: every line passes on the demo, and each broken set-up fails
the right line with its fix."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import snowflake.connector
from click.testing import CliRunner

from sync_project.cli import main
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess, free_port
from sync_project.jobs import DOCTOR_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import define_role, inject_fault, sign_in_attempts
from sync_project_tests.helpers import (
    FQ,
    account_environment,
    allow_sign_in,
    fetch,
    snowflake_settings,
    stage_leftovers,
)
from sync_project_tests.postgres import Postgres
from sync_project_tests.s3 import S3Server

SCHEMA = "WORKSPACE_833213390"
REGISTERED = [f"{SCHEMA}.data", f"{SCHEMA}.ALL_TYPES"]


@pytest.fixture
def env(dagster_processes: DagsterProcesses) -> Path:
    """A temporary DAGSTER_HOME with two demo tables registered; DuckDB file and downloads beside it."""
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, REGISTERED)
    return dagster_processes.home.parent


def doctor() -> tuple[int, dict[str, dict[str, str]]]:
    result = CliRunner().invoke(main, ["doctor", "--json"], catch_exceptions=False)
    report = json.loads(result.output)
    assert report["passed"] is (result.exit_code == 0)
    return result.exit_code, {c["name"]: c for c in report["checks"]}


def failed_only(checks: dict[str, dict[str, str]], *names: str) -> None:
    assert sorted(n for n, c in checks.items() if c["status"] == "failed") == sorted(names), checks


def test_the_demo_passes_every_line_and_leaves_nothing(env: Path, local_snowflake: LocalSnowflakeProcess) -> None:
    human = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert human.exit_code == 0, human.output
    assert human.output.splitlines()[-1] == "every check passed"
    code, checks = doctor()
    assert code == 0 and all(c["status"] == "passed" for c in checks.values())
    assert set(checks) == {
        "configuration",
        "sign-in",
        "warehouse",
        "database",
        "stage",
        "tables",
        "extract",
        "duckdb file",
        "download folder",
        "disk space",
        "dagster instance",
    }
    assert (
        "embedded Snowflake" in checks["configuration"]["detail"]
        and "auth password" in checks["configuration"]["detail"]
    )
    assert "1,000 rows back intact" in checks["stage"]["detail"]
    assert "2 registered table(s)" in checks["tables"]["detail"]
    assert "retry" not in human.output and "waiting for" not in human.output  # no retries, no waiting on locks
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        assert stage_leftovers(conn) == []
    assert not any((env / "downloads").rglob("*.parquet"))


def test_a_wrong_password_fails_sign_in_once_and_skips_what_needs_it(
    env: Path, local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_sign_in(local_snowflake, "password", "the-real-one")
    for name, value in (account_environment(local_snowflake, env) | {"SNOWFLAKE_PASSWORD": "not-it"}).items():
        monkeypatch.setenv(name, value)
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "sign-in")
    assert "390100" in checks["sign-in"]["detail"] and "SNOWFLAKE_PASSWORD" in checks["sign-in"]["detail"]
    assert "not-it" not in json.dumps(checks)
    assert checks["stage"]["status"] == checks["tables"]["status"] == "skipped"
    assert checks["configuration"]["detail"].startswith("account acme-prod via http://127.0.0.1")
    assert [a["refused"] for a in sign_in_attempts(local_snowflake.base_url)] == [390100]


@pytest.mark.parametrize("warehouse", [None, "NO_SUCH_WH"])
def test_no_usable_warehouse_fails_that_line_with_the_setting_or_the_grant(
    warehouse: str | None, env: Path, local_snowflake: LocalSnowflakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_sign_in(local_snowflake, "password", "pw")
    for name, value in (account_environment(local_snowflake, env) | {"SNOWFLAKE_PASSWORD": "pw"}).items():
        monkeypatch.setenv(name, value)
    if warehouse:
        monkeypatch.setenv("SNOWFLAKE_WAREHOUSE", warehouse)
    else:
        monkeypatch.delenv("SNOWFLAKE_WAREHOUSE")
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "warehouse")
    fix = "GRANT USAGE ON WAREHOUSE NO_SUCH_WH" if warehouse else "set SNOWFLAKE_WAREHOUSE"
    assert fix in checks["warehouse"]["fix"]
    assert checks["stage"]["status"] == "skipped"


def test_a_stage_without_privilege_fails_the_stage_line(
    env: Path, local_snowflake: LocalSnowflakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = f"{FQ}.TEAM_STAGE"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as admin:
        fetch(admin, f"CREATE STAGE IF NOT EXISTS {stage}")
    define_role(local_snowflake.base_url, "DOCTOR_READER", create_stage=False, stages={stage: "read"})
    monkeypatch.setenv("SNOWFLAKE_ROLE", "DOCTOR_READER")
    monkeypatch.setenv("SYNC_STAGE", stage)
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "stage")
    assert "TEAM_STAGE" in checks["stage"]["detail"] and "WRITE" in checks["stage"]["detail"]
    assert "SYNC_STAGE" in checks["stage"]["fix"]


def test_an_account_that_prevents_unloads_fails_the_stage_line_with_the_alter_user_statement(
    env: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as admin:
        user = fetch(admin, "SELECT CURRENT_USER()")[0][0]
        fetch(admin, "ALTER ACCOUNT SET PREVENT_UNLOAD_TO_INTERNAL_STAGES = TRUE")
        try:
            code, checks = doctor()
        finally:
            fetch(admin, "ALTER ACCOUNT UNSET PREVENT_UNLOAD_TO_INTERNAL_STAGES")
    assert code == 1
    failed_only(checks, "stage")
    statement = f'ALTER USER "{user}" SET PREVENT_UNLOAD_TO_INTERNAL_STAGES = FALSE'
    assert "PREVENT_UNLOAD_TO_INTERNAL_STAGES is TRUE for the account" in checks["stage"]["detail"]
    assert statement in checks["stage"]["fix"] and "firewall" not in checks["stage"]["fix"], checks["stage"]


def test_a_registered_table_whose_columns_differ_only_in_case_fails_the_tables_line_naming_them(
    env: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    """Registered while it could be copied, then replaced in Snowflake by a table with "id" and ID."""
    twins = f"{SCHEMA}.TWINS"
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, [twins])
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as admin:
        fetch(admin, f'CREATE TABLE {SCHEMA}.{SCHEMA}.TWINS ("id" NUMBER(38,0), ID NUMBER(38,0))')
        try:
            code, checks = doctor()
        finally:
            fetch(admin, f"DROP TABLE {SCHEMA}.{SCHEMA}.TWINS")
    assert code == 1
    failed_only(checks, "tables")
    assert "columns 'id' and 'ID' differ only in case" in checks["tables"]["detail"], checks["tables"]


def test_the_extract_line_says_which_way_each_table_would_take_and_why(
    env: Path, local_snowflake: LocalSnowflakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, checks = doctor()
    assert code == 0 and checks["extract"]["status"] == "passed"
    assert checks["extract"]["detail"].startswith("extract unload: 2 by unload, 0 by result set")
    monkeypatch.setenv("SYNC_EXTRACT", "auto")
    code, checks = doctor()
    assert code == 0
    assert checks["extract"]["detail"].startswith("extract auto: 0 by unload, 2 by result set"), checks["extract"]
    assert "one query beats a stage's round trips" in checks["extract"]["detail"]


def test_a_download_that_fails_on_the_way_fails_the_stage_line_with_the_network_fix(
    env: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    # A proxy in front of the cloud storage answering 403 to every object request.
    inject_fault(local_snowflake.base_url, "download", mode="http_error", status=403, count=20)
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "stage")
    detail, fix = checks["stage"]["detail"], checks["stage"]["fix"]
    assert "did not arrive intact: the storage refused them" in detail and "403" in detail, detail
    assert "Signature" not in detail and "SYSTEM$ALLOWLIST()" in fix and "proxy" in fix, fix


def test_a_table_with_an_unmappable_column_is_named_with_the_column(
    env: Path, local_snowflake: LocalSnowflakeProcess
) -> None:
    name = f"EMBEDDINGS_{uuid.uuid4().hex[:6].upper()}"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        # Registered while it was fine; a VECTOR column was added later (the sync has no exact DuckDB type).
        fetch(conn, f"CREATE TABLE {FQ}.{name} (ID NUMBER(38,0), EMBEDDING VECTOR(FLOAT, 3))")
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, [f"{SCHEMA}.{name}"])
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "tables")
    detail = checks["tables"]["detail"]
    assert name in detail and "'EMBEDDING' (VECTOR(FLOAT, 3))" in detail and "1 of 3" in detail


@pytest.fixture
def duckdb_held_elsewhere(env: Path) -> Iterator[int]:
    """Another process (a notebook, say) holding the DuckDB file open for writing."""
    path = env / "sync.duckdb"
    script = f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('open', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    try:
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_duckdb_file_held_by_another_process_names_the_process(env: Path, duckdb_held_elsewhere: int) -> None:
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "duckdb file")
    assert str(duckdb_held_elsewhere) in checks["duckdb file"]["detail"]
    assert "close the process" in checks["duckdb file"]["fix"]


def test_too_little_disk_for_the_reserve_fails_the_disk_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_DISK_RESERVE_BYTES", str(10**18))
    code, checks = doctor()
    assert code == 1
    failed_only(checks, "disk space")
    detail = checks["disk space"]["detail"]
    assert "SYNC_DISK_RESERVE_BYTES" in detail and f"largest registered table, KEBOOLA_33.{SCHEMA}.data" in detail


def test_the_doctor_job_puts_the_checklist_in_the_run(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = dg.DagsterInstance.get()
    job = build_definitions(Settings.from_env()).resolve_job_def(DOCTOR_JOB)
    good = job.execute_in_process(instance=instance)
    assert good.success
    (observation,) = [
        e.step_output_data.metadata for e in good.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT
    ]
    assert observation["passed"].value is True
    table = observation["checks"]
    assert isinstance(table, dg.TableMetadataValue)
    rows = table.records
    assert len(rows) == 11 and {r.data["status"] for r in rows} == {"passed"}
    monkeypatch.setenv("SYNC_DISK_RESERVE_BYTES", str(10**18))
    bad = (
        build_definitions(Settings.from_env())
        .resolve_job_def(DOCTOR_JOB)
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    (failure,) = [e for e in bad.all_events if e.is_step_failure]
    assert not bad.success and "disk space" in str(failure.step_failure_data.error)
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in bad.all_events)


def test_on_a_lake_the_doctor_checks_the_lake_instead_of_the_file(
    env: Path, monkeypatch: pytest.MonkeyPatch, postgres: Postgres
) -> None:
    monkeypatch.setenv("SYNC_TARGET", "ducklake")
    monkeypatch.setenv("SYNC_DUCKLAKE_CATALOG", str(env / "lake.sqlite"))
    monkeypatch.setenv("SYNC_DUCKLAKE_DATA_PATH", str(env / "lake-data"))
    code, checks = doctor()
    assert code == 0 and "duckdb file" not in checks, checks
    assert checks["ducklake"]["status"] == "passed" and "attaches: 0 table(s)" in checks["ducklake"]["detail"]
    # A PostgreSQL catalog that is not there: the line fails, names the setting, and the rest still runs.
    monkeypatch.setenv("SYNC_DUCKLAKE_CATALOG", f"postgres:dbname=no_such_database host={postgres.host} user=postgres")
    code, checks = doctor()
    failed_only(checks, "ducklake")
    assert "SYNC_DUCKLAKE_CATALOG" in checks["ducklake"]["fix"] and "no_such_database" in checks["ducklake"]["detail"]


@pytest.mark.parametrize("command", [["tables", SCHEMA], ["register", f"{SCHEMA}.data"]])
def test_a_refused_sign_in_is_one_line_with_the_fix_in_every_command(
    env: Path, local_snowflake: LocalSnowflakeProcess, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    allow_sign_in(local_snowflake, "password", "the-real-one")
    for name, value in (account_environment(local_snowflake, env) | {"SNOWFLAKE_PASSWORD": "not-it"}).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, command, catch_exceptions=False)  # a traceback would raise here
    assert result.exit_code == 1, result.output
    assert "390100" in result.output and "SNOWFLAKE_PASSWORD" in result.output and "doctor" in result.output
    assert "Traceback" not in result.output and "not-it" not in result.output
    assert len(result.output.strip().splitlines()) <= 2, result.output


@pytest.mark.parametrize("command", [["tables", SCHEMA], ["register", f"{SCHEMA}.data"]])
def test_an_unreachable_snowflake_is_one_line_with_what_to_check(
    env: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", str(free_port()))  # nothing listens there
    result = CliRunner().invoke(main, command, catch_exceptions=False)  # a traceback would raise here
    assert result.exit_code == 1, result.output
    assert "250001" in result.output and "SNOWFLAKE_ACCOUNT" in result.output and "doctor" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2, result.output


def test_a_lake_in_object_storage_has_a_lake_storage_line_that_names_the_fix(
    env: Path, local_snowflake: LocalSnowflakeProcess, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_path = s3.new_prefix()
    lake = {
        "SYNC_TARGET": "ducklake",
        "SYNC_DUCKLAKE_CATALOG": str(tmp_path / "lake.sqlite"),
        "SYNC_DUCKLAKE_DATA_PATH": data_path,
    }
    for name, value in lake.items():
        monkeypatch.setenv(name, value)
    s3.use(monkeypatch)
    code, checks = doctor()
    storage = checks["lake storage"]
    assert code == 0 and storage["status"] == "passed" and data_path in storage["detail"], checks
    assert s3.objects(data_path) == []  # the probe object was deleted

    s3.use(monkeypatch, "analyst")  # a key that may only read
    code, checks = doctor()
    failed_only(checks, "lake storage")
    storage = checks["lake storage"]
    assert "AccessDenied" in storage["detail"] and "s3:PutObject" in storage["fix"]
    assert all(secret not in json.dumps(checks) for secret in s3.keys["analyst"])
