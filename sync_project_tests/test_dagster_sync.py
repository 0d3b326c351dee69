"""The Dagster shell: the partitioned asset, its checks and retries, on a temporary instance."""

from __future__ import annotations

import dataclasses

import dagster as dg
import duckdb
import pytest
import snowflake.connector
from dagster._core.event_api import PartitionKeyFilter

from sync_project.checks import ROW_COUNT_CHECK, SCHEMA_CHECK
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import CLEANUP_JOB, SYNC_JOB, VERIFY_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings
from sync_project.sync_record import sync_figures
from sync_project_tests.emulator_controls import fault_state, inject_fault
from sync_project_tests.helpers import (
    FQ,
    assert_exact_copy,
    demo_table,
    events_of,
    fetch,
    run_job,
    snowflake_settings,
)
from sync_project_tests.reliability import observe

DATA = "WORKSPACE_833213390.data"
ALL_TYPES = "WORKSPACE_833213390.ALL_TYPES"


@pytest.fixture
def instance(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The shared test instance, with the two demo tables registered."""
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA, ALL_TYPES])
    return instance


def test_materialize_one_partition_records_metadata_and_checks(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess
) -> None:
    result = run_job(settings, instance, SYNC_JOB, DATA)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("snowflake_table")
    metadata = materialization.metadata
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        source_rows = fetch(conn, f'SELECT COUNT(*) FROM {FQ}."data"')[0][0]
    figures = sync_figures(materialization)
    assert figures["rows_total"] == figures["rows_unloaded"] == source_rows
    # For people: the table named, counts with thousands separators. Of Dagster's standard keys the partition's
    # only, none of the asset-level ones that the asset's overview would show as if they were the whole asset's.
    assert str(metadata["table"].value).startswith(DATA) and metadata["rows"].value == f"{source_rows:,} rows in {DATA}"
    standard = {key: value.value for key, value in metadata.items() if key.startswith("dagster/")}
    assert standard == {"dagster/partition_row_count": source_rows, "dagster/table_name": DATA}
    columns = {c.name: c for c in metadata["columns"].value.columns}  # type: ignore[union-attr]
    assert columns["id"].type == "DECIMAL(38,0)" and columns["id"].description == "Snowflake NUMBER(38,0)"
    assert columns["amount"].type == "DECIMAL(12,2)"
    assert figures["files"] >= 1 and metadata["unload_query_id"].value
    assert {"describe", "unload", "download", "load", "total"} <= set(figures["seconds"])
    preview = metadata["preview"]
    assert isinstance(preview, dg.TableMetadataValue) and [c.name for c in preview.schema.columns][:2] == ["id", "name"]
    assert all(isinstance(v, str) for record in preview.records for v in record.data.values())
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations[ROW_COUNT_CHECK].passed and evaluations[SCHEMA_CHECK].passed
    assert evaluations[ROW_COUNT_CHECK].partition == DATA


def test_missing_table_fails_once_without_retries(settings: Settings, instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, ["WORKSPACE_833213390.GONE"])
    result = run_job(settings, instance, SYNC_JOB, "WORKSPACE_833213390.GONE")
    assert not result.success
    assert events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = events_of(result, dg.DagsterEventType.STEP_FAILURE)
    assert "GONE" in str(failure.step_failure_data.error.message)  # type: ignore[union-attr]
    assert "does not exist" in str(failure.step_failure_data.error.message)  # type: ignore[union-attr]


def test_incremental_without_a_cursor_is_refused_clearly(settings: Settings, instance: dg.DagsterInstance) -> None:
    assert run_job(settings, instance, SYNC_JOB, DATA).success  # a table registered without options
    config = {"ops": {"snowflake_table": {"config": {"strategy": "incremental"}}}}
    result = run_job(settings, instance, SYNC_JOB, DATA, config)
    assert not result.success
    assert events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = events_of(result, dg.DagsterEventType.STEP_FAILURE)
    assert "needs a cursor column" in str(failure.step_failure_data.error.message)  # type: ignore[union-attr]


def test_check_history_is_per_partition(settings: Settings, instance: dg.DagsterInstance) -> None:
    assert run_job(settings, instance, SYNC_JOB, DATA).success
    assert run_job(settings, instance, SYNC_JOB, ALL_TYPES).success
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute('DELETE FROM "WORKSPACE_833213390"."ALL_TYPES" WHERE ID = 0')
    verify = run_job(settings, instance, VERIFY_JOB, ALL_TYPES)
    (row_count,) = [e for e in verify.get_asset_check_evaluations() if e.check_name == ROW_COUNT_CHECK]
    assert not row_count.passed and row_count.severity == dg.AssetCheckSeverity.ERROR
    check = dg.AssetCheckKey(dg.AssetKey("snowflake_table"), ROW_COUNT_CHECK)

    def history(partition: str) -> list[bool | None]:
        records = instance.event_log_storage.get_asset_check_execution_history(
            check, limit=10, partition_filter=PartitionKeyFilter(key=partition)
        )
        return [r.event.asset_check_evaluation.passed for r in records if r.event and r.event.asset_check_evaluation]  # type: ignore[union-attr]

    assert history(ALL_TYPES) == [False, True]
    assert history(DATA) == [True]


def test_retry_after_a_broken_download_fetches_only_the_rest(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess
) -> None:
    small_files = dataclasses.replace(settings, max_file_size=20_000)
    inject_fault(local_snowflake.base_url, "download", mode="truncate")
    result = run_job(small_files, instance, SYNC_JOB, DATA)
    assert result.success
    assert len(events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    messages = [
        str(record.user_message)
        for record in instance.all_logs(result.run_id)
        if "reused" in str(record.user_message) or "resuming" in str(record.user_message)
    ]
    assert any("its unload is done already" in m for m in messages)
    assert any("downloaded 1 file(s), reused" in m for m in messages)
    (materialization,) = result.asset_materializations_for_node("snowflake_table")
    figures = sync_figures(materialization)
    files = int(figures["files"])
    assert figures["files_reused"] == files - 1
    observe(
        "Fault",
        "Connection drops in the middle of GET (one file's download from cloud storage is cut off half way)",
        f"1 step retry; the retry reused the unload and {files - 1} verified files and fetched only the broken one",
        assert_exact_copy(local_snowflake, settings.duckdb_path, settings.download_dir, demo_table("data")),
    )


def test_cleanup_job_runs(settings: Settings, instance: dg.DagsterInstance) -> None:
    old = settings.download_dir / "some.table" / "SYNC_PROJECT_20200101T000000Z_00000000"
    old.mkdir(parents=True)
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA])
    result = build_definitions(settings).resolve_job_def(CLEANUP_JOB).execute_in_process(instance=instance)
    assert result.success and not old.exists()


DROPS = {
    # (statement kind, how it fails, how many times): the case as the reliability report names it
    ("login", "http_error", 2): "Connection drops during login, more often than the connector retries it",
    ("unload", "http_error", 1): "Connection drops during the unload (COPY INTO @stage)",
    ("unload", "sql_error", 1): "Snowflake fails the unload with its transient internal error 603",
    ("get", "sql_error", 1): "GET fails with a transient error before any file arrives",
}


@pytest.mark.parametrize(("kind", "mode", "count"), list(DROPS))
def test_transient_snowflake_failures_are_retried_and_the_table_is_exact(
    settings: Settings,
    instance: dg.DagsterInstance,
    local_snowflake: LocalSnowflakeProcess,
    kind: str,
    mode: str,
    count: int,
) -> None:
    inject_fault(local_snowflake.base_url, kind, mode=mode, count=count)
    result = run_job(settings, instance, SYNC_JOB, DATA)
    fired = fault_state(local_snowflake.base_url)["fired"]
    assert result.success and len(fired) == count
    retries = len(events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY))
    # A 503 the connector absorbs itself (it retries with backoff); anything it gives up on, Dagster retries.
    assert retries == (0 if (mode, count) == ("http_error", 1) else 1)
    by = "the connector retried it with backoff" if retries == 0 else f"{retries} step retry by the RetryPolicy"
    observe(
        "Fault",
        DROPS[(kind, mode, count)],
        f"{count} injected failure(s); {by}; the run succeeded",
        assert_exact_copy(local_snowflake, settings.duckdb_path, settings.download_dir, demo_table("data")),
    )
