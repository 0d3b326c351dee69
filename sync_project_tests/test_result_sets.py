"""Large query results as Snowflake sends them (the first rows inline, the rest as chunks in cloud storage that
need the response's chunk headers), read by the connector's own chunk download, with its retries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import snowflake.connector
from dagster import DagsterEventType
from snowflake.connector.result_batch import ResultBatch

from sync_project import registry
from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA, DEMO_TABLES
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.sync.catalog import TableStats
from sync_project.sync.controls import UnloadPreventedError
from sync_project.sync.paths import choose_path
from sync_project.sync.pipeline import sync_table
from sync_project.sync.state import Fact, TableOptions, read_sync_state, write_all_options
from sync_project.sync_record import last_sync
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.emulator_controls import fault_state, inject_fault
from sync_project_tests.helpers import (
    assert_exact_copy,
    configure,
    connector,
    demo_table,
    fetch,
    options,
    snowflake_settings,
    sorted_rows,
    synced_rows,
)

ROWS = 200_000
QUERY = f"SELECT SEQ8() AS N, TO_VARCHAR(SEQ8()) || '-padding-padding' AS S FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))"


def batches(conn: Any) -> list[ResultBatch]:
    cur = conn.cursor()
    cur.execute(QUERY)
    return list(cur.get_result_batches() or [])


def assert_every_row(conn: Any) -> None:
    """Through the connector's own chunk download and decoding (its row iterator: no pandas here)."""
    cur = conn.cursor()
    cur.execute(QUERY)
    rows = cur.fetchall()
    assert sorted(int(n) for n, _ in rows) == list(range(ROWS))
    assert all(s == f"{n}-padding-padding" for n, s in rows)


def chunk_request(batch: ResultBatch, headers: dict[str, str]) -> int:
    info = batch._remote_chunk_info
    assert info is not None
    try:
        # The URL is the emulator's own, from its response.
        with urllib.request.urlopen(urllib.request.Request(info.url, headers=headers)) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as e:
        assert b"EncryptionKey" in e.read()
        return int(e.code)


def test_a_large_result_comes_inline_then_in_growing_chunks(sf: Any) -> None:
    found = batches(sf)
    assert len(found) >= 4
    assert found[0]._remote_chunk_info is None and all(b._remote_chunk_info for b in found[1:])
    sizes = [b._remote_chunk_info.uncompressedSize for b in found[1:-1] if b._remote_chunk_info]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    assert sum(b.rowcount for b in found) == ROWS
    assert_every_row(sf)


def test_a_chunk_is_refused_without_the_headers_the_response_names(sf: Any) -> None:
    chunk = batches(sf)[1]
    assert chunk_request(chunk, {}) == 400
    headers = chunk._chunk_headers or {}
    wrong = dict(headers)
    wrong["x-goog-encryption-key"] = "A" * 43 + "="
    assert chunk_request(chunk, wrong) == 400
    assert chunk_request(chunk, dict(headers)) == 200


def test_chunk_size_is_the_session_parameter_within_its_documented_range(sf: Any) -> None:
    from snowflake.connector.errors import ProgrammingError

    with pytest.raises(ProgrammingError, match="invalid value"):
        sf.cursor().execute("ALTER SESSION SET CLIENT_RESULT_CHUNK_SIZE = 16")
    sf.cursor().execute("ALTER SESSION SET CLIENT_RESULT_CHUNK_SIZE = 48")
    assert_every_row(sf)


@pytest.mark.parametrize(
    ("mode", "options"), [("http_error", {"status": 503}), ("stall", {"seconds": 1.0}), ("truncate", {})]
)
def test_a_chunk_download_that_fails_stalls_or_is_cut_short_is_retried_by_the_connector(
    sf: Any, local_snowflake: LocalSnowflakeProcess, mode: str, options: dict[str, Any]
) -> None:
    inject_fault(local_snowflake.base_url, "result_chunk", mode=mode, count=1, **options)
    assert_every_row(sf)
    assert fault_state(local_snowflake.base_url)["fired"] == ["result_chunk"]


# -- the sync through the result set -------------------------------------------------------------------------


def test_choose_path_takes_small_tables_and_remembered_refusals_to_the_result_set() -> None:
    now = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
    small = TableStats("S", "T", "TABLE", 10, 1_000, None)
    big = dataclasses.replace(small, bytes=10**9)
    assert choose_path("auto", small, 16 * 2**20)[0] == "results"
    assert choose_path("auto", big, 16 * 2**20)[0] == "unload"
    assert choose_path("auto", None, 16 * 2**20) == ("unload", "Snowflake did not say the table's size")
    assert choose_path("unload", small, 16 * 2**20)[0] == "unload"
    assert choose_path("results", big, 16 * 2**20)[0] == "results"
    refused = Fact("an administrator runs: ALTER USER ...", now - dt.timedelta(hours=2))
    path, why = choose_path("auto", big, 16 * 2**20, refused, now)
    assert path == "results" and "refused unloads" in why and "ALTER USER" in why
    stale = dataclasses.replace(refused, noted_at=now - dt.timedelta(days=2))
    assert choose_path("auto", big, 16 * 2**20, stale, now)[0] == "unload"  # tried again: it may be lifted


def test_auto_reads_through_the_result_set_once_unloads_are_refused_and_remembers_it(
    sf: Any, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """`auto` on a table it would unload: the account refuses, the same attempt reads the result set, and the
    next sync goes there at once; once the control is lifted and the note is old, an unload works again."""
    table = demo_table("data")
    opts = options(tmp_path, extract="auto", results_max_bytes=0)
    fetch(sf, "ALTER ACCOUNT SET PREVENT_UNLOAD_TO_INTERNAL_STAGES = TRUE")
    try:
        first = sync_table(connector(local_snowflake), table, opts)
        second = sync_table(connector(local_snowflake), table, opts)
    finally:
        fetch(sf, "ALTER ACCOUNT UNSET PREVENT_UNLOAD_TO_INTERNAL_STAGES")
    assert first.path == second.path == "results"
    assert (
        "refused the unload" in first.path_reason and "PREVENT_UNLOAD_TO_INTERNAL_STAGES = FALSE" in first.path_reason
    )
    assert {"unload", "result_set"} <= set(first.phase_seconds)  # the one refused try, then the result set
    assert "unload" not in second.phase_seconds and "refused unloads" in second.path_reason
    assert sorted_rows(synced_rows(opts, table.duckdb_sql)) == sorted_rows(
        fetch(sf, f"SELECT * FROM {table.snowflake_sql}")
    )
    with duckdb.connect(str(tmp_path / "sync.duckdb")) as con:
        con.execute("UPDATE _sync.facts SET noted_at = noted_at - INTERVAL 2 DAY")
    third = sync_table(connector(local_snowflake), table, opts)
    assert third.path == "unload" and third.rows_loaded == second.rows_loaded
    with duckdb.connect(str(tmp_path / "sync.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM _sync.facts").fetchone() == (0,)


def test_results_can_be_asked_for_and_unload_stays_refused(
    sf: Any, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    table = demo_table("data")
    fetch(sf, "ALTER ACCOUNT SET PREVENT_UNLOAD_TO_INTERNAL_STAGES = TRUE")
    try:
        asked = sync_table(connector(local_snowflake), table, options(tmp_path, extract="results"))
        with pytest.raises(UnloadPreventedError):
            sync_table(connector(local_snowflake), table, options(tmp_path / "u", extract="unload"))
    finally:
        fetch(sf, "ALTER ACCOUNT UNSET PREVENT_UNLOAD_TO_INTERNAL_STAGES")
    assert asked.path == "results" and asked.path_reason == "extract is set to results"
    assert asked.rows_loaded == asked.rows_unloaded > 0 and asked.files >= 1


@pytest.mark.e2e
def test_an_account_refusing_unloads_gets_the_demo_backfilled_exactly_through_result_sets(
    dagster_processes: DagsterProcesses, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """PREVENT_UNLOAD_TO_INTERNAL_STAGES set by SQL on the account; `extract: auto` with every table over the size
    that goes to the result set at once: each run's unload is refused, the same step reads the result set, and
    the backfill of the demo's tables succeeds exactly, each in one run, no step failed or retried."""
    dagster_processes.env |= {"SYNC_EXTRACT": "auto", "SYNC_RESULTS_MAX_BYTES": "0"}
    keys = [demo_table(name).key for name in DEMO_TABLES]
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as admin:
        fetch(admin, "ALTER ACCOUNT SET PREVENT_UNLOAD_TO_INTERNAL_STAGES = TRUE")
        try:
            dagster_processes.start_daemon()
            dagster_processes.backfill_every_table()
            records = wait_for_runs(instance, len(keys))
        finally:
            fetch(admin, "ALTER ACCOUNT UNSET PREVENT_UNLOAD_TO_INTERNAL_STAGES")
    log = (dagster_processes.home / "daemon.log").read_text()[-3000:]
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}, log
    for record in records:
        kinds = {e.dagster_event_type for e in instance.all_logs(record.dagster_run.run_id) if e.dagster_event}
        assert not kinds & {DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_RESTARTED}
    for key in keys:
        found = last_sync(instance, key)
        assert found is not None and found.record.figures["extract"] == "results"
        assert_exact_copy(
            local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", demo_table(key.split(".")[1])
        )


def wait_for_runs(instance: dg.DagsterInstance, count: int) -> list[Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = list(instance.get_run_records(dg.RunsFilter(job_name="sync_tables")))
        if len(records) >= count and all(r.dagster_run.is_finished for r in records):
            return records
        time.sleep(1)
    raise TimeoutError(f"{count} runs did not finish in 300 s")


def test_a_chunk_that_fails_mid_stream_is_retried_and_the_table_ends_exact(
    sf: Any, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """The sync's own chunk reading: the inline rows arrive, the next chunk's download fails once (503), the
    connector's retry fetches it, and the mirror holds every row once."""
    fetch(sf, f"CREATE OR REPLACE TABLE {DEMO_DATABASE}.{DEMO_SCHEMA}.CHUNKED AS {QUERY}")
    table = demo_table("CHUNKED")
    inject_fault(local_snowflake.base_url, "result_chunk", mode="http_error", status=503, count=1)
    report = sync_table(connector(local_snowflake), table, options(tmp_path, extract="results"))
    assert fault_state(local_snowflake.base_url)["fired"] == ["result_chunk"]
    assert report.path == "results" and report.files >= 3  # the inline part and at least two chunks
    rows = synced_rows(options(tmp_path), table.duckdb_sql)
    assert sorted(int(n) for n, _ in rows) == list(range(ROWS))
    assert all(s == f"{n}-padding-padding" for n, s in rows)


def test_a_tables_own_extract_setting_overrides_the_mirrors_and_keeps_its_other_options(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """`register --extract results` on an incremental table: it stays incremental, reads its result set while
    the mirror's setting says unload, and `status --json` shows the setting; registering with another strategy
    and no --extract resets it to the mirror's."""
    table = demo_table("data")
    opts = options(tmp_path, extract="unload")
    configure(opts, table, TableOptions("incremental", "id", ("id",)))
    registry.register(instance, connector(local_snowflake), [table], None, opts.mirror, extract="results")
    with opts.mirror.session("reading", read_only=True) as con:
        kept = read_sync_state(con, table).options
    assert kept == TableOptions("incremental", "id", ("id",), "results")
    assert str(kept).endswith(", extract results")
    report = sync_table(connector(local_snowflake), table, opts)
    assert report.path == "results" and report.path_reason == "extract is set to results"
    assert report.strategy == "full" and report.rows_loaded == report.rows_unloaded > 0  # first sync of it
    registry.register(instance, connector(local_snowflake), [table], TableOptions(), opts.mirror)
    assert sync_table(connector(local_snowflake), table, opts).path == "unload"


def test_a_mirror_from_before_the_extract_option_is_read_and_then_gains_it(tmp_path: Path) -> None:
    """Files written before `_sync.tables` had an `extract` column: read-only readers see no setting, and the
    next write adds the column without losing the table's options."""
    path = tmp_path / "old.duckdb"
    table = demo_table("data")
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA _sync")
        con.execute(
            "CREATE TABLE _sync.tables (table_id VARCHAR NOT NULL, strategy VARCHAR NOT NULL, cursor_column VARCHAR, "
            "primary_key VARCHAR, high_water_mark VARCHAR, rows BIGINT, synced_at TIMESTAMPTZ, columns VARCHAR)"
        )
        con.execute(
            "INSERT INTO _sync.tables VALUES (?, 'incremental', 'id', '[\"id\"]', '7', 3, now(), NULL)", [str(table)]
        )
    opts = options(tmp_path, duckdb_path=path)
    with opts.mirror.session("reading", read_only=True) as con:
        before = read_sync_state(con, table)
    assert before.options == TableOptions("incremental", "id", ("id",)) and before.high_water_mark == "7"
    with opts.mirror.session("writing") as con:
        written = write_all_options(con, [(table, None)], "results")
    assert written[table] == (before.options, TableOptions("incremental", "id", ("id",), "results"))
    with opts.mirror.session("reading", read_only=True) as con:
        assert read_sync_state(con, table).high_water_mark == "7"  # the cursor did not change: the mark stays
