"""A big table's files are loaded as they arrive: the download folder holds two groups at most, the table still
appears whole and checked, a download that fails mid-way keeps the previous table and resumes, and another
table of the run loads beside it."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import filelock
import pytest

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.attempt import Attempt
from sync_project.sync.catalog import describe_table
from sync_project.sync.content import verify_content
from sync_project.sync.errors import LockTimeoutError, TransientError
from sync_project.sync.feed import GROUPS_ON_DISK, FileFeed, bytes_held, in_groups
from sync_project.sync.mirror.access import lock_path
from sync_project.sync.pipeline import sync_table
from sync_project.sync.stage import clear_location, staged_names, unload_query, unload_to_stage
from sync_project.sync.tables import TableRef
from sync_project_tests.emulator_controls import fault_state, inject_fault, release_faults
from sync_project_tests.helpers import connector, fetch, lake_for, new_schema, options

DATABASE = "KEBOOLA_33"
SMALL_FILES = 256 * 1024  # MAX_FILE_SIZE: a 200,000-row table unloads to a few dozen files


def big_table(sf: Any, rows: int) -> TableRef:
    table = TableRef(DATABASE, new_schema(sf, "FEED"), "EVENTS")
    fetch(
        sf,
        f"CREATE TABLE {table.snowflake_sql} AS SELECT SEQ8() AS ID, UNIFORM(0, 1000000, RANDOM()) / 100 AS AMOUNT, "
        "RANDSTR(20, RANDOM()) AS NOTE, DATEADD(second, SEQ8(), '2024-01-01'::TIMESTAMP_NTZ) AS AT "
        f"FROM TABLE(GENERATOR(ROWCOUNT => {rows}))",
    )
    return table


@pytest.mark.parametrize("target", ["file", "ducklake-sqlite", "ducklake-postgres"])
def test_a_full_sync_of_many_files_loads_them_as_they_arrive_two_groups_at_most(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    table = big_table(sf, 200_000)
    opts = options(tmp_path, lake=lake_for(target, tmp_path, request), max_file_size=SMALL_FILES, feed_from_bytes=0)
    report = sync_table(connector(local_snowflake), table, opts)

    assert report.files >= 10 and report.rows_total == 200_000
    assert report.download_peak_bytes is not None
    sizes = {f.name: f for f in report.download.files} if report.download else {}
    assert len(sizes) == report.files
    # Each group is a tenth of the files; two of them on disk at once, however the sizes fall.
    largest_group = max(len(g) for g in in_groups(sorted(sizes)))
    bound = report.bytes_downloaded * GROUPS_ON_DISK * largest_group // report.files * 2
    assert 0 < report.download_peak_bytes <= bound < report.bytes_downloaded
    assert not any(Path(opts.download_root).rglob("*.parquet"))  # every file went once read
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal
    assert report.phase_seconds["download"] >= 0 and report.phase_seconds["load"] > 0


def test_a_download_failing_mid_way_keeps_the_previous_table_and_the_retry_resumes_the_unload(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    table = big_table(sf, 100_000)
    opts = options(tmp_path, max_file_size=SMALL_FILES, feed_from_bytes=0)
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"DELETE FROM {table.snowflake_sql} WHERE ID >= 50000")

    inject_fault(local_snowflake.base_url, "get", mode="sql_error", after=2)  # the third group's GET
    started = dt.datetime.now(dt.UTC)
    with pytest.raises(TransientError):
        sync_table(
            connector(local_snowflake), table, opts, attempt_id="run-1", attempt_started=started, keep_for_retry=True
        )
    assert fault_state(local_snowflake.base_url)["fired"] == ["get"]
    with opts.mirror.session("checking", read_only=True) as con:
        kept = con.execute(f"SELECT count(*), max(ID) FROM {table.duckdb_sql}").fetchone()
    assert kept == (100_000, 99_999)  # two groups were read into the transaction, and rolled back

    report = sync_table(connector(local_snowflake), table, opts, attempt_id="run-1", attempt_started=started)
    assert report.resumed_unload and report.rows_total == 50_000
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal


def test_the_feed_waits_for_the_load_with_two_groups_on_disk(sf: Any, tmp_path: Path) -> None:
    """However fast the download, the thread fetches no third group until the load has read the first: with the
    first group held (not yet read), the thread stops for room with exactly two groups on disk."""
    table = big_table(sf, 100_000)
    columns = describe_table(sf, table)
    attempt = Attempt.new(table, tmp_path / "downloads")
    unload = unload_to_stage(sf, attempt, columns, SMALL_FILES)
    names = staged_names(sf, attempt)
    feed = FileFeed(sf, attempt, unload, unload_query(table, columns), names, parallel=4)
    with contextlib.ExitStack() as stack:
        stack.callback(clear_location, sf, attempt)  # the stage folder, as a sync's cleanup removes it
        stack.enter_context(feed.running())
        groups = feed.groups()
        first = next(groups)
        assert feed.waiting_for_room.wait(timeout=60), "the thread never stopped for room"
        on_disk = sorted(p.name for p in attempt.local_dir.glob("*.parquet"))
        planned = in_groups(names)
        assert on_disk == sorted(planned[0] + planned[1]) and len(planned) > GROUPS_ON_DISK
        assert [p.name for p in first] == planned[0]
        seen = [first, *groups]  # the rest, each group deleted as the next is asked for
    assert [[p.name for p in g] for g in seen] == planned
    assert not any(attempt.local_dir.glob("*.parquet"))
    assert feed.fetched == names and feed.download().bytes > 0


def test_a_load_that_cannot_have_the_file_stops_its_download_and_the_next_try_ends_exact(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    """The feed starts before the load waits for the DuckDB file; a load that times out waiting stops it (no
    thread left holding the Snowflake session), and the next try, with the file free, ends exact."""
    table = big_table(sf, 100_000)
    opts = options(tmp_path, lock_timeout=0.5, max_file_size=SMALL_FILES, feed_from_bytes=0)
    started = dt.datetime.now(dt.UTC)
    with filelock.FileLock(str(lock_path(tmp_path / "sync.duckdb"))), pytest.raises(LockTimeoutError):
        sync_table(
            connector(local_snowflake), table, opts, attempt_id="run-2", attempt_started=started, keep_for_retry=True
        )
    assert not [t for t in threading.enumerate() if t.name.startswith("feed ")]
    report = sync_table(connector(local_snowflake), table, opts, attempt_id="run-2", attempt_started=started)
    assert report.resumed_unload and report.rows_total == 100_000
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal


def test_every_group_of_a_huge_unload_is_named_in_its_get() -> None:
    """A group's GET names its files; a pattern too long to send would make GET fetch the whole folder."""
    from sync_project.sync.stage import _only_these

    names = [f"data_{n // 1000}_{n % 1000}_0.snappy.parquet" for n in range(20_000)]
    groups = in_groups(names)
    assert [n for g in groups for n in g] == names and len(groups) >= 100
    assert all(_only_these(g, named=True) for g in groups)


def test_a_small_table_of_the_run_commits_while_a_big_one_waits_for_its_next_group(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    """Loads of one run share the file's instance and go in together: with the big table's load in its
    transaction, waiting for a GET that is held, the small table's sync loads and commits."""
    big = big_table(sf, 100_000)
    small = TableRef(DATABASE, new_schema(sf, "FEED"), "SMALL")
    fetch(sf, f"CREATE TABLE {small.snowflake_sql} AS SELECT SEQ8() AS ID FROM TABLE(GENERATOR(ROWCOUNT => 10))")
    opts = options(tmp_path, max_file_size=SMALL_FILES, feed_from_bytes=0)
    loading = threading.Event()
    reports: list[Any] = []

    def log(line: str) -> None:
        if line.startswith(f"{big}: loading"):
            loading.set()  # said once the load's transaction is open

    def sync_big() -> None:
        reports.append(sync_table(connector(local_snowflake), big, opts, log))

    inject_fault(local_snowflake.base_url, "get", mode="hold", seconds=120, after=1)  # the second group's GET
    with opts.mirror.sharing():
        thread = threading.Thread(target=sync_big)
        thread.start()
        try:
            assert loading.wait(timeout=120), "the big table's load never began"
            small_report = sync_table(connector(local_snowflake), small, dataclasses.replace(opts, extract="results"))
            assert thread.is_alive() and not reports  # the big load is still waiting for its group
            assert fault_state(local_snowflake.base_url)["fired"] == ["get"]
        finally:
            release_faults(local_snowflake.base_url)
            thread.join(timeout=300)
    assert small_report.rows_total == 10
    assert [r.rows_total for r in reports] == [100_000]
    assert verify_content(connector(local_snowflake), opts.mirror, big).equal


def test_what_the_folder_holds_counts_no_file_deleted_while_it_is_measured(tmp_path: Path) -> None:
    """The feed measures its folder while the load deletes the group it has read: a file listed and gone before
    its size is read is no longer held, and must not fail the sync (it once did: FileNotFoundError mid-load). A
    dangling link is such a file, listed and not there, every time."""
    (tmp_path / "data_0_0_0.snappy.parquet").write_bytes(b"x" * 1000)
    (tmp_path / "data_0_0_1.snappy.parquet").symlink_to(tmp_path / "read-and-deleted.parquet")
    (tmp_path / "manifest.json").write_text("{}")
    assert bytes_held(tmp_path) == 1000
