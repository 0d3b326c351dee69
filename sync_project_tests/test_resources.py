"""Credential selection: key-pair first, then token, then password; secrets never in reprs or errors."""

from __future__ import annotations

import gc
from pathlib import Path

import dagster as dg
import pytest

from sync_project.definitions import build_definitions
from sync_project.jobs import SYNC_JOB
from sync_project.resources import SnowflakeResource, snowflake_resource
from sync_project.settings import Settings
from sync_project.sync.errors import PermanentError
from sync_project_tests.helpers import encrypted_private_key

PASSPHRASE = "correct-horse-battery-staple-7731"
PASSWORD = "pw-9f2c1e7d-do-not-leak"
TOKEN = "pat-5b8e0c3a-do-not-leak"


def resolved(monkeypatch: pytest.MonkeyPatch, **env: str) -> SnowflakeResource:
    for name in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_TOKEN", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "acme-prod")
    monkeypatch.setenv("SNOWFLAKE_USER", "SYNC_SERVICE")
    monkeypatch.setenv("SNOWFLAKE_DATABASE", "ANALYTICS")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    resource = snowflake_resource(Settings.from_env())
    # Resolve the EnvVars the way a run does.
    initialized: SnowflakeResource = resource.resolved()
    return initialized


def test_key_pair_wins_and_is_passed_as_der(monkeypatch: pytest.MonkeyPatch) -> None:
    pem = encrypted_private_key(PASSPHRASE)
    resource = resolved(
        monkeypatch,
        SNOWFLAKE_PRIVATE_KEY=pem,
        SNOWFLAKE_PRIVATE_KEY_PASSPHRASE=PASSPHRASE,
        SNOWFLAKE_PASSWORD=PASSWORD,
    )
    args = resource.connect_args()
    assert isinstance(args["private_key"], bytes) and args["private_key"][:1] == b"\x30"  # DER sequence
    assert "password" not in args
    assert args["account"] == "acme-prod"
    for secret in (PASSPHRASE, PASSWORD, pem[40:80]):
        assert secret not in repr(resource)


def test_key_file_with_wrong_passphrase_fails_without_leaking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "key.p8"
    key_file.write_text(encrypted_private_key(PASSPHRASE))
    resource = resolved(
        monkeypatch, SNOWFLAKE_PRIVATE_KEY_PATH=str(key_file), SNOWFLAKE_PRIVATE_KEY_PASSPHRASE="wrong-one-123"
    )
    with pytest.raises(PermanentError) as error:
        resource.connect_args()
    assert "wrong-one-123" not in str(error.value)
    assert "passphrase" in str(error.value)


def test_token_goes_through_the_token_authenticator_not_as_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = resolved(monkeypatch, SNOWFLAKE_TOKEN=TOKEN, SNOWFLAKE_PASSWORD=PASSWORD)
    args = resource.connect_args()
    assert (args["authenticator"], args["token"]) == ("PROGRAMMATIC_ACCESS_TOKEN", TOKEN)
    assert "password" not in args and resource.auth_mode == "token"
    assert TOKEN not in repr(resource) and PASSWORD not in repr(resource)


def test_password_last(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = resolved(monkeypatch, SNOWFLAKE_PASSWORD=PASSWORD)
    assert resource.connect_args()["password"] == PASSWORD
    assert PASSWORD not in repr(resource)


def test_account_without_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="SNOWFLAKE_PRIVATE_KEY"):
        resolved(monkeypatch)


def test_no_account_means_the_local_snowflake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", "18123")
    args = snowflake_resource(Settings.from_env()).connect_args()
    assert (args["host"], args["port"], args["protocol"]) == ("127.0.0.1", 18123, "http")


def test_an_account_without_a_database_is_refused_naming_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's database is no default for a real account (its tables would silently be looked up there)."""
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "acme-prod")
    monkeypatch.delenv("SNOWFLAKE_DATABASE", raising=False)
    with pytest.raises(ValueError, match="SNOWFLAKE_ACCOUNT is set but SNOWFLAKE_DATABASE is not"):
        Settings.from_env()
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT")
    assert Settings.from_env().snowflake_database == "KEBOOLA_33"  # the embedded Snowflake's demo database


def test_reading_the_credentials_leaves_no_dagster_instance_entered(settings: Settings) -> None:
    """Resolving the resource's EnvVars outside a run must not leave an ephemeral Dagster instance entered: when
    the resource outlived the instance around it, loading definitions later in the process found that dead
    instance's state storage and failed ("Attempted to resolve undefined DagsterInstance weakref")."""
    with dg.instance_for_test():
        resolved = snowflake_resource(settings).resolved()
    assert resolved.database == settings.snowflake_database
    del resolved
    gc.collect()
    assert build_definitions(settings).resolve_job_def(SYNC_JOB).name == SYNC_JOB
