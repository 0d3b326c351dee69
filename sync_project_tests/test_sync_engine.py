"""The engine (sync/) end to end against the local Snowflake: real connector, real DuckDB files."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import filelock
import pytest

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.errors import LockTimeoutError, PermanentError, TransientError
from sync_project.sync.mirror.access import lock_path
from sync_project.sync.pipeline import sync_table
from sync_project.sync.tables import TableRef
from sync_project_tests.emulator_controls import fault_state, inject_fault
from sync_project_tests.helpers import (
    connector,
    demo_table,
    duckdb_rows,
    fetch,
    options,
    sorted_rows,
    stage_leftovers,
)
from sync_project_tests.reliability import observe


@pytest.mark.parametrize(
    "key", ["WORKSPACE_833213390.../x", "WORKSPACE_833213390.a\x00b", "WORKSPACE_833213390.tab\tle", "../x", "x"]
)
def test_hostile_keys_are_refused_before_any_sql(key: str) -> None:
    with pytest.raises(PermanentError):
        TableRef.from_key(key, "KEBOOLA_33")


def _snapshot(path: Path) -> list[tuple[Any, ...]]:
    return sorted_rows(duckdb_rows(path, '"WORKSPACE_833213390"."data"'))


@pytest.fixture
def synced_once(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> list[tuple[Any, ...]]:
    sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path))
    return _snapshot(tmp_path / "sync.duckdb")


GIVING_UP = {
    "desc_table": "Snowflake fails DESC TABLE on the last try (retries used up)",
    "unload": "Snowflake fails the unload on the last try (retries used up)",
    "get": "Snowflake fails GET on the last try (retries used up)",
}


@pytest.mark.parametrize("kind", list(GIVING_UP))
def test_snowflake_failure_leaves_previous_table_and_nothing_behind(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, synced_once: list[Any], kind: str
) -> None:
    inject_fault(local_snowflake.base_url, kind)
    with pytest.raises(TransientError) as error:
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path))
    phase = {"desc_table": "describing", "unload": "unloading", "get": "downloading"}[kind]
    assert f"{phase} KEBOOLA_33.WORKSPACE_833213390.data" in str(error.value)
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []
    assert stage_leftovers(sf) == []
    observe(
        "Fault",
        GIVING_UP[kind],
        "the sync failed with an error naming the table and the phase",
        f"previous {len(synced_once):,} rows intact; its stage dropped; download folder empty",
    )


def test_load_failure_inside_the_transaction_rolls_back(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, synced_once: list[Any]
) -> None:
    removed: list[Path] = []

    def remove_one_file_from_disk(message: str) -> None:
        if "download took" in message:  # the files are on disk; the load has not begun
            removed.append(sorted((tmp_path / "downloads").rglob("*.parquet"))[0])
            removed[0].unlink()

    with pytest.raises(TransientError) as error:
        sync_table(
            connector(local_snowflake), demo_table("data"), options(tmp_path, max_file_size=20_000),
            remove_one_file_from_disk,
        )  # fmt: skip
    assert removed and removed[0].name in str(error.value) and "download" in str(error.value), error.value
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []
    assert stage_leftovers(sf) == []
    observe(
        "Fault",
        "A downloaded file goes missing before the load",
        "one Parquet file deleted from disk between GET and the load: the load failed with a retryable error "
        "naming the file, and rolled back",
        f"previous {len(synced_once):,} rows intact; stage dropped; download folder empty",
    )


def test_lock_held_too_long_fails_retryably_and_keeps_table(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, synced_once: list[Any]
) -> None:
    with filelock.FileLock(str(lock_path(tmp_path / "sync.duckdb"))), pytest.raises(LockTimeoutError):
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path, lock_timeout=0.5))
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_retry_after_a_busy_duckdb_file_reuses_the_downloaded_files(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, synced_once: list[Any]
) -> None:
    writer = filelock.FileLock(str(lock_path(tmp_path / "sync.duckdb")))

    def busy_once_downloaded(message: str) -> None:
        if "download took" in message:
            writer.acquire()  # someone else's load starts just as ours would

    first = options(tmp_path, lock_timeout=0.5, max_file_size=20_000)
    started = dt.datetime.now(dt.UTC)  # with the id, what ties a run's tries to one attempt (as Dagster passes)
    with pytest.raises(LockTimeoutError):
        sync_table(connector(local_snowflake), demo_table("data"), first, busy_once_downloaded,
                   attempt_id="run-1", attempt_started=started, keep_for_retry=True)  # fmt: skip
    writer.release()
    kept = sorted(p.name for p in (tmp_path / "downloads").rglob("*.parquet"))
    assert len(kept) > 1
    for kind in ("unload", "get", "list"):
        inject_fault(local_snowflake.base_url, kind)  # tripwires: the retry needs none of these
    retry = sync_table(
        connector(local_snowflake), demo_table("data"), first, attempt_id="run-1", attempt_started=started
    )
    assert fault_state(local_snowflake.base_url)["fired"] == []
    assert retry.resumed_unload and retry.files_reused == retry.files == len(kept)
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once
    assert list((tmp_path / "downloads").iterdir()) == []


def test_not_enough_disk_fails_before_download(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="not enough disk") as error:
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path, disk_reserve=10**18))
    assert "1,000,000,000,000,000,000 bytes kept free (SYNC_DISK_RESERVE_BYTES)" in str(error.value)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_changed_database_setting_is_refused_naming_both_until_a_rebuild(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, synced_once: list[Any]
) -> None:
    """Partition keys are SCHEMA.TABLE in SNOWFLAKE_DATABASE: pointing it elsewhere must not silently re-point a
    synced table to another database's table of the same name."""
    other = f"OTHER_{uuid.uuid4().hex[:6].upper()}"
    fetch(sf, f"CREATE DATABASE {other}")
    fetch(sf, f"CREATE SCHEMA {other}.WORKSPACE_833213390")
    fetch(sf, f'CREATE TABLE {other}.WORKSPACE_833213390."data" AS SELECT 1 AS "id"')
    moved = TableRef(other, "WORKSPACE_833213390", "data")
    with pytest.raises(PermanentError) as error:
        sync_table(connector(local_snowflake), moved, options(tmp_path))
    said = str(error.value)
    assert "synced from database KEBOOLA_33" in said and other in said and "sync-project rebuild" in said
    assert _snapshot(tmp_path / "sync.duckdb") == synced_once  # untouched
    rebuilt = sync_table(connector(local_snowflake), moved, options(tmp_path), rebuild=True)
    assert rebuilt.rows_total == 1
    with pytest.raises(PermanentError, match=f"synced from database {other}"):  # and the way back is refused too
        sync_table(connector(local_snowflake), demo_table("data"), options(tmp_path))
