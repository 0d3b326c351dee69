"""The content check: the same aggregates on both sides, exact on every type, and it sees what the counts miss."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.content import verify_content
from sync_project.sync.errors import PermanentError
from sync_project.sync.pipeline import sync_table
from sync_project.sync.state import TableOptions
from sync_project.sync.tables import TableRef
from sync_project_tests.helpers import (
    configure,
    connector,
    demo_table,
    fetch,
    new_schema,
    options,
    orders_in_a_new_schema,
)

DATABASE = "KEBOOLA_33"
MERGE = TableOptions("incremental", "UPDATED_AT", ("ID",))


@pytest.mark.parametrize("extract", ["unload", "results", "unload, small files loaded as they arrive"])
def test_every_type_of_a_synced_table_has_equal_content(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, extract: str
) -> None:
    """Every type the map copies (38-digit numbers, 0001 and 9999 timestamps of each kind, binary, VARIANT,
    geography, floats with NaN), through both ways out of Snowflake (and the unload's files read a group at a
    time, feed.py): the aggregates agree exactly."""
    fed = "arrive" in extract
    small_files: dict[str, Any] = {"max_file_size": 20_000, "feed_from_bytes": 0} if fed else {}
    opts = options(tmp_path, extract=extract.split(",")[0], **small_files)
    for name, aggregates in (("ALL_TYPES", 46), ("SEMI_STRUCTURED", 17), ("data", 28)):
        table = demo_table(name)
        synced = sync_table(connector(local_snowflake), table, opts)
        if name == "data":  # its 5,000 rows make a few dozen small files: a feed of several groups
            assert (synced.download_peak_bytes is not None) == fed
        report = verify_content(connector(local_snowflake), opts.mirror, table)
        assert report.equal, report.summary()
        assert report.aggregates == aggregates  # every column compared by its kind's aggregates, not just counted


def test_silent_updates_are_named_by_column_and_a_full_sync_mends_them(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    table = orders_in_a_new_schema(sf, "CON")
    opts = options(tmp_path)
    configure(opts, table, MERGE)
    sync_table(connector(local_snowflake), table, opts)
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal
    # Changed without moving the cursor: an incremental sync cannot see them, and the counts stay equal.
    # STATUS keeps its length ('new' -> 'old'): only the values' hashes can tell.
    fetch(sf, f"UPDATE {table.snowflake_sql} SET STATUS = 'old' WHERE MOD(ID, 100) = 42")
    fetch(sf, f"UPDATE {table.snowflake_sql} SET AMOUNT = AMOUNT + 0.01 WHERE MOD(ID, 100) = 17")
    report = sync_table(connector(local_snowflake), table, opts)
    assert report.strategy == "incremental" and report.rows_total == 1000

    verdict = verify_content(connector(local_snowflake), opts.mirror, table)
    assert verdict.differing_columns == ["AMOUNT", "STATUS"]
    assert "AMOUNT: sum is" in verdict.summary() and "STATUS: sum of MD5s" in verdict.summary()

    configure(opts, table, dataclasses.replace(MERGE, strategy="full"))
    sync_table(connector(local_snowflake), table, opts, strategy="full")
    assert verify_content(connector(local_snowflake), opts.mirror, table).equal


def test_a_table_not_in_the_mirror_says_to_sync_it(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    opts = options(tmp_path)
    table = demo_table("ALL_TYPES")
    sync_table(connector(local_snowflake), demo_table("data"), opts)  # the mirror exists, without this table
    with pytest.raises(PermanentError, match=r"has no such table.*sync-project sync"):
        verify_content(connector(local_snowflake), opts.mirror, table)


def test_one_row_hash_over_the_text_columns_and_the_pinpoint_names_the_column(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    """The text columns share one MD5 per row; when it differs, each column's own sum names the one changed
    (here to a value of the same length, which only a hash sees)."""
    schema = new_schema(sf, "CON")
    table = TableRef(DATABASE, schema, "COPY_OF_DATA")
    fetch(sf, f"CREATE TABLE {table.snowflake_sql} AS SELECT * FROM {demo_table('data').snowflake_sql}")
    opts = options(tmp_path)
    sync_table(connector(local_snowflake), table, opts)
    fetch(sf, f"""UPDATE {table.snowflake_sql} SET "category" = 'zeta' WHERE "category" = 'beta' AND "id" < 50""")
    report = verify_content(connector(local_snowflake), opts.mirror, table)
    assert report.differing_columns == ["category"], report.summary()
    assert "category: sum of MD5s" in report.summary()
