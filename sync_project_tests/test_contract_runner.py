"""`make test-snowflake`: without an account it says how to configure one and runs nothing; pointed at the
embedded Snowflake through the SNOWFLAKE_* variables it runs the contract through the account code path,
and it drops its scratch schema even when a test fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import snowflake.connector

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.settings import project_root
from sync_project_tests.emulator_controls import sign_in_attempts
from sync_project_tests.helpers import (
    ACCOUNT_USER,
    account_environment,
    allow_sign_in,
    credential_environment,
    encrypted_private_key,
    fetch,
    snowflake_settings,
)

PASSPHRASE = "contract-runner-passphrase"


def run_contract(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync_project_tests.contract", *args],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def scratch_schemas(process: LocalSnowflakeProcess) -> list[str]:
    with snowflake.connector.connect(**snowflake_settings(process)) as conn:
        return [str(r[1]) for r in fetch(conn, "SHOW SCHEMAS IN DATABASE KEBOOLA_33") if "SYNC_CONTRACT_" in str(r[1])]


def test_scratch_schemas_are_seen_while_they_exist(local_snowflake: LocalSnowflakeProcess) -> None:
    """The leftover assertions below mean something: a scratch schema that exists is listed."""
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, "CREATE SCHEMA KEBOOLA_33.SYNC_CONTRACT_SEEN")
        try:
            assert "SYNC_CONTRACT_SEEN" in scratch_schemas(local_snowflake)
        finally:
            fetch(conn, "DROP SCHEMA KEBOOLA_33.SYNC_CONTRACT_SEEN")
    assert "SYNC_CONTRACT_SEEN" not in scratch_schemas(local_snowflake)


def account(process: LocalSnowflakeProcess, tmp_path: Path) -> dict[str, str]:
    """A service user with a key pair, as a team would run the contract unattended."""
    pem = encrypted_private_key(PASSPHRASE)
    allow_sign_in(process, "key_pair", pem, PASSPHRASE)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SYNC_"))}
    return (
        clean
        | account_environment(process, tmp_path)
        | credential_environment("key_pair", pem, PASSPHRASE)
        | {"SNOWFLAKE_DATABASE": "KEBOOLA_33"}
    )


def test_without_an_account_it_says_how_and_runs_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    done = run_contract(env)
    assert done.returncode == 0
    assert "No Snowflake account configured: nothing run" in done.stdout
    assert "SNOWFLAKE_WAREHOUSE" in done.stdout and "passed" not in done.stdout


def test_an_account_without_credentials_is_told_which_are_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")} | {"SNOWFLAKE_ACCOUNT": "acme"}
    done = run_contract(env)
    assert done.returncode == 2 and "SNOWFLAKE_USER" in done.stderr and "SNOWFLAKE_PASSWORD" in done.stderr


def test_pointed_at_the_embedded_snowflake_the_account_path_passes(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    done = run_contract(account(local_snowflake, tmp_path), "-q")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary
    attempts = sign_in_attempts(local_snowflake.base_url)
    assert attempts and {(a["user"], a["authenticator"], a["refused"]) for a in attempts} == {
        (ACCOUNT_USER, "SNOWFLAKE_JWT", None)
    }
    assert scratch_schemas(local_snowflake) == []


def test_the_scratch_schema_is_dropped_when_a_test_fails(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    plugin = tmp_path / "fail_one_contract_test.py"
    plugin.write_text(
        "import pytest\n\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_runtest_call(item):\n"
        "    if 'missing_table' in item.name:\n"
        "        raise AssertionError('made to fail')\n"
    )
    env = account(local_snowflake, tmp_path) | {"PYTHONPATH": str(tmp_path)}
    done = run_contract(
        env, "-q", "-p", "fail_one_contract_test", "-k", "(missing_table or empty_table) and file and not results"
    )
    assert done.returncode == 1 and "made to fail" in done.stdout
    assert "1 failed, 1 passed" in done.stdout.strip().splitlines()[-1]
    assert scratch_schemas(local_snowflake) == []
