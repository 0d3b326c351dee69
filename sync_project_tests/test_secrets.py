"""Secrets never reach run logs, materialization metadata, exception text, CLI output or reprs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._serdes import serialize_value

from sync_project.cli import main
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings
from sync_project_tests.helpers import (
    account_environment,
    allow_sign_in,
    credential_environment,
    encrypted_private_key,
)
from sync_project_tests.reliability import observe

PASSWORD = "Pw-7f3a9c1e-SECRET-do-not-leak"
PASSPHRASE = "Pp-2b8d4e6f-SECRET-do-not-leak"
TOKEN = "Tk-9e1c7a3b-SECRET-do-not-leak"
WRONG_PASSPHRASE = "Wp-5d0f2a8c-SECRET-do-not-leak"
WRONG_PASSWORD = "Wpw-3c5e7a9b-SECRET-do-not-leak"
WRONG_TOKEN = "Wtk-8a6c4e2d-SECRET-do-not-leak"


CASES = {
    "password": "A recognizable password (SNOWFLAKE_PASSWORD)",
    "token": "A recognizable programmatic access token (SNOWFLAKE_TOKEN)",
    "key_pair": "A recognizable private key and its passphrase (SNOWFLAKE_PRIVATE_KEY*)",
}


@pytest.mark.parametrize("auth", list(CASES))
def test_secrets_stay_out_of_everything(
    auth: str, local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = encrypted_private_key(PASSPHRASE)
    secrets = {"password": [PASSWORD], "token": [TOKEN], "key_pair": [PASSPHRASE, pem.splitlines()[1]]}[auth]
    secret = {"password": PASSWORD, "token": TOKEN, "key_pair": pem}[auth]
    allow_sign_in(local_snowflake, auth, secret, PASSPHRASE)
    environment = account_environment(local_snowflake, tmp_path) | credential_environment(auth, secret, PASSPHRASE)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir()
    definitions = build_definitions(Settings.from_env())
    seen: list[str] = [repr(definitions.resources), str(definitions.resources)]
    good, gone = "WORKSPACE_833213390.ALL_TYPES", "WORKSPACE_833213390.NOT_THERE"

    def sync(key: str, succeeds: bool) -> None:
        result = (
            build_definitions(Settings.from_env())
            .resolve_job_def(SYNC_JOB)
            .execute_in_process(tags={"dagster/partition": key}, instance=instance, raise_on_error=False)
        )
        assert result.success is succeeds
        seen.extend(serialize_value(record) for record in instance.all_logs(result.run_id))
        seen.extend(str(m.metadata) for m in result.asset_materializations_for_node("snowflake_table"))
        for event in result.all_events:
            if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data.error:
                seen.append(event.step_failure_data.error.to_string())

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [good, gone])
        sync(good, succeeds=True)
        sync(gone, succeeds=False)
        # Credentials Snowflake turns down (another user's: the server knows only the first) and, with
        # key-pair, a passphrase that does not open the key.
        wrong = {"password": WRONG_PASSWORD, "token": WRONG_TOKEN, "key_pair": encrypted_private_key(PASSPHRASE)}
        secrets.append(wrong[auth] if auth != "key_pair" else wrong[auth].splitlines()[1])
        for name, value in credential_environment(auth, wrong[auth], PASSPHRASE).items():
            monkeypatch.setenv(name, value)
        sync(good, succeeds=False)
        if auth == "key_pair":
            monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", WRONG_PASSPHRASE)
            secrets.append(WRONG_PASSPHRASE)
            sync(good, succeeds=False)
    for args in (["tables", "WORKSPACE_833213390"], ["register", "WORKSPACE_833213390.NOPE"], ["status"]):
        seen.append(CliRunner().invoke(main, args).output)
    text = "\n".join(seen)
    assert "ALL_TYPES" in text and "NOT_THERE" in text  # the sweep did see the runs
    assert {"password": "Incorrect username or password", "token": "Programmatic access token is invalid",
            "key_pair": "JWT token is invalid"}[auth] in text  # fmt: skip
    assert auth != "key_pair" or "private key could not be read" in text
    for secret in secrets:
        assert secret not in text
    observe(
        "Secrets",
        CASES[auth],
        "syncs through Dagster that succeed, fail (missing table) and are refused at login (and, with a key, "
        "a wrong passphrase); then `sync-project tables`, `register` (refused) and `status`",
        "the secret is in none of: the runs' event logs, materialization metadata, step failure text, CLI "
        "output, repr of the resources",
    )
