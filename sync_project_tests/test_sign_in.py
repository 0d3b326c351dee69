"""Sign-in as a real account does it: the token authenticator, key pairs from text or file, and refusals
that fail a run once (a retried bad password counts toward locking the user)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from snowflake.connector import errors as sf

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.resources import snowflake_resource
from sync_project.settings import Settings
from sync_project.sync import errors
from sync_project_tests.emulator_controls import sign_in_attempts
from sync_project_tests.helpers import (
    ACCOUNT_USER,
    AUTH_MODES,
    account_environment,
    allow_sign_in,
    credential_environment,
    encrypted_private_key,
    run_job,
)

PASSPHRASE = "sign-in-test-passphrase"
TABLE = "WORKSPACE_833213390.ALL_TYPES"


def good_secret(auth: str) -> str:
    return {
        "password": "the-right-password",
        "token": "the-right-token",
        "key_pair": encrypted_private_key(PASSPHRASE),
    }[auth]


def wrong_secret(auth: str) -> str:
    # For key-pair: a perfectly good key that is simply not the one registered for the user.
    return {"password": "a-wrong-password", "token": "a-wrong-token", "key_pair": encrypted_private_key(PASSPHRASE)}[
        auth
    ]


def account(monkeypatch: pytest.MonkeyPatch, process: LocalSnowflakeProcess, tmp_path: Path, **env: str) -> None:
    for name in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_TOKEN", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (account_environment(process, tmp_path) | env).items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir(exist_ok=True)


def sync_once(tmp_path: Path) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [TABLE])
        return run_job(Settings.from_env(), instance, SYNC_JOB, TABLE)


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_each_auth_mode_signs_in_and_syncs(
    auth: str, local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = good_secret(auth)
    allow_sign_in(local_snowflake, auth, secret, PASSPHRASE)
    account(monkeypatch, local_snowflake, tmp_path, **credential_environment(auth, secret, PASSPHRASE))
    assert sync_once(tmp_path).success
    authenticators = {a["authenticator"] for a in sign_in_attempts(local_snowflake.base_url)}
    expected = {"password": "SNOWFLAKE", "token": "PROGRAMMATIC_ACCESS_TOKEN", "key_pair": "SNOWFLAKE_JWT"}[auth]
    assert authenticators == {expected}


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_refused_credentials_fail_the_run_once_without_a_retry(
    auth: str, local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_sign_in(local_snowflake, auth, good_secret(auth), PASSPHRASE)
    account(monkeypatch, local_snowflake, tmp_path, **credential_environment(auth, wrong_secret(auth), PASSPHRASE))
    result = sync_once(tmp_path)
    failures = [e for e in result.all_events if e.is_step_failure]
    assert not result.success and len(failures) == 1
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    attempts = sign_in_attempts(local_snowflake.base_url)
    code = {"password": 390100, "token": 394400, "key_pair": 394304}[auth]
    assert [a["refused"] for a in attempts] == [code]  # one attempt, not three
    message = str(failures[0].step_failure_data.error)
    fix = {"password": "SNOWFLAKE_PASSWORD", "token": "SNOWFLAKE_TOKEN", "key_pair": "RSA_PUBLIC_KEY"}[auth]
    assert "not retried" in message and fix in message


def test_a_service_user_cannot_use_a_password_and_is_told_what_to_use(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_sign_in(local_snowflake, "token", "a-token")  # a service user: a token, and no password at all
    account(monkeypatch, local_snowflake, tmp_path, SNOWFLAKE_PASSWORD="any-password")
    resource = snowflake_resource(Settings.from_env()).resolved()
    with pytest.raises(sf.DatabaseError) as raised:
        resource.connect()
    error = errors.from_snowflake(raised.value, "signing in")
    assert isinstance(error, errors.CredentialsRejectedError)
    assert "TYPE = SERVICE" in str(error) and "SNOWFLAKE_PRIVATE_KEY" in str(error)


def test_key_pair_from_a_file_with_a_passphrase(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = good_secret("key_pair")
    allow_sign_in(local_snowflake, "key_pair", pem, PASSPHRASE)
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_text(pem)
    account(
        monkeypatch,
        local_snowflake,
        tmp_path,
        SNOWFLAKE_PRIVATE_KEY_PATH=str(key_file),
        SNOWFLAKE_PRIVATE_KEY_PASSPHRASE=PASSPHRASE,
    )
    resource = snowflake_resource(Settings.from_env()).resolved()
    assert resource.auth_mode == "key-pair"
    conn = resource.connect()
    try:
        assert conn.cursor().execute("SELECT CURRENT_USER()").fetchone()[0] == ACCOUNT_USER  # the key's own user
    finally:
        conn.close()


def test_an_unknown_role_is_refused_at_sign_in_and_not_retried(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_sign_in(local_snowflake, "password", "pw")
    account(monkeypatch, local_snowflake, tmp_path, SNOWFLAKE_PASSWORD="pw", SNOWFLAKE_ROLE="NO_SUCH_ROLE")
    result = sync_once(tmp_path)
    failures = [e for e in result.all_events if e.is_step_failure]
    assert not result.success and len(failures) == 1
    assert "390189" in str(failures[0].step_failure_data.error)
    assert "SNOWFLAKE_ROLE" in str(failures[0].step_failure_data.error)
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)


@pytest.mark.parametrize(
    ("errno", "kind"),
    [
        (390100, errors.CredentialsRejectedError),
        (390144, errors.KeyPairRejectedError),
        *[(code, errors.KeyPairRejectedError) for code in range(394300, 394307)],
        (394400, errors.TokenRejectedError),
        (390189, errors.RoleNotGrantedError),
        (390422, errors.NetworkPolicyError),
        (390199, errors.SignInError),
    ],
)
def test_every_sign_in_refusal_is_permanent(errno: int, kind: type[errors.SignInError]) -> None:
    error = errors.from_snowflake(sf.DatabaseError(msg="refused", errno=errno, sqlstate="28000"), "signing in")
    assert type(error) is kind and isinstance(error, errors.PermanentError)


@pytest.mark.parametrize(
    "error",
    [
        sf.OperationalError(msg="lost", errno=250001),
        # As the connector raises an expired session it could not renew (network.py, ReauthenticationRequest's
        # cause): a ProgrammingError, with SQLSTATE 08001.
        sf.ProgrammingError(msg="Session no longer exists.", errno=390112, sqlstate="08001"),
        sf.ProgrammingError(msg="Master token has expired.", errno=390114, sqlstate="08001"),
    ],
)
def test_network_and_session_expiry_stay_transient(error: sf.Error) -> None:
    assert isinstance(errors.from_snowflake(error, "syncing"), errors.TransientError)
