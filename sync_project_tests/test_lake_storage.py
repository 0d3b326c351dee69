"""A lake whose data is in S3-compatible object storage (a real S3 server, IAM checks on): the files land there,
an analyst's read-only key reads them and cannot write, a refusal is permanent and said without a key, an
endpoint that stops answering mid-sync is transient and keeps the previous table, and maintenance deletes
objects (the doctor's `lake storage` line: test_doctor.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.errors import PermanentError, TransientError
from sync_project.sync.mirror.lake import Lake
from sync_project.sync.mirror.maintenance import maintain_lake
from sync_project.sync.pipeline import sync_table
from sync_project.sync.tables import TableRef
from sync_project_tests.helpers import connector, fetch, new_schema, options
from sync_project_tests.s3 import CuttableProxy, S3Server

DATABASE = "KEBOOLA_33"
ROWS = 20_000  # more than DuckLake inlines into its catalog: the rows are Parquet objects in the bucket


def events(sf: Any, rows: int = ROWS, offset: int = 0) -> TableRef:
    table = TableRef(DATABASE, new_schema(sf, "LAKE_S3"), "EVENTS")
    fill(sf, table, rows, offset)
    return table


def fill(sf: Any, table: TableRef, rows: int, offset: int = 0) -> None:
    fetch(
        sf,
        f"CREATE OR REPLACE TABLE {table.snowflake_sql} AS SELECT SEQ8() + {offset} AS ID, "
        f"RANDSTR(12, RANDOM()) AS NOTE FROM TABLE(GENERATOR(ROWCOUNT => {rows}))",
    )


def lake_rows(opts: Any, table: TableRef) -> tuple[int, int]:
    with opts.mirror.session("checking", read_only=True) as con:
        found = con.execute(f"SELECT count(*), sum(ID) FROM {table.duckdb_sql}").fetchone()
    return int(found[0]), int(found[1])


@pytest.fixture
def lake(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    s3.use(monkeypatch, "worker")
    return Lake(str(tmp_path / "lake.sqlite"), s3.new_prefix())


def test_the_files_land_in_the_bucket_and_an_analyst_reads_them_but_cannot_write(
    local_snowflake: LocalSnowflakeProcess, sf: Any, s3: S3Server, lake: Lake, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    table = events(sf)
    opts = options(tmp_path, lake=lake)
    sync_table(connector(local_snowflake), table, opts)
    stored = s3.objects(lake.data_path)
    assert stored and all(key.endswith(".parquet") for key in stored)
    assert not (tmp_path / "lake-data").exists()  # nothing of the lake on local disk but its catalog

    s3.use(monkeypatch, "analyst")
    assert lake_rows(opts, table) == (ROWS, ROWS * (ROWS - 1) // 2)  # read with the read-only key
    fill(sf, table, ROWS // 2, offset=1_000_000)
    with pytest.raises(PermanentError) as refused:
        sync_table(connector(local_snowflake), table, opts)
    message = str(refused.value)
    assert "AccessDenied" in message and "s3:PutObject" in message and "AWS_ACCESS_KEY_ID" in message
    assert all(secret not in message for secret in s3.keys["analyst"])
    assert lake_rows(opts, table) == (ROWS, ROWS * (ROWS - 1) // 2)  # nothing of the refused sync is visible


@pytest.mark.parametrize(("principal", "code"), [("nobody", "InvalidAccessKeyId"), ("worker", "SignatureDoesNotMatch")])
def test_an_unknown_key_or_a_wrong_secret_is_refused_permanently_and_neither_reaches_the_message_or_the_log(
    local_snowflake: LocalSnowflakeProcess, sf: Any, s3: S3Server, lake: Lake, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, principal: str, code: str,
) -> None:  # fmt: skip
    table = events(sf)
    s3.use(monkeypatch, principal)
    if principal == "worker":  # a key IAM knows, with a secret that is not its own
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong" + s3.keys["worker"][1][5:])
    lines: list[str] = []
    with pytest.raises(PermanentError) as refused:
        sync_table(connector(local_snowflake), table, options(tmp_path, lake=lake), lines.append)
    said = "\n".join([str(refused.value), *lines])
    assert code in said
    key_id, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    assert key_id not in said and secret not in said
    assert f"key ...{key_id[-4:]}" in str(refused.value)  # which key, as AWS's console shows it


def test_an_endpoint_that_stops_answering_mid_sync_is_transient_and_keeps_the_previous_table(
    local_snowflake: LocalSnowflakeProcess, sf: Any, s3: S3Server, lake: Lake, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    proxy = CuttableProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    try:
        s3.use(monkeypatch, "worker", endpoint=proxy.endpoint)
        table = events(sf)
        opts = options(tmp_path, lake=lake)
        sync_table(connector(local_snowflake), table, opts)
        fill(sf, table, ROWS * 2, offset=5)

        def cut_when_loading(line: str) -> None:
            if line.startswith(f"{table}: loading"):  # the load's transaction is open; its files go up next
                proxy.cut()

        with pytest.raises(TransientError, match="did not answer"):
            sync_table(connector(local_snowflake), table, opts, cut_when_loading)
        proxy.resume()
        assert lake_rows(opts, table) == (ROWS, ROWS * (ROWS - 1) // 2)  # the previous table, whole

        report = sync_table(connector(local_snowflake), table, opts)
        assert report.rows_total == ROWS * 2
        assert lake_rows(opts, table) == (ROWS * 2, sum(range(5, ROWS * 2 + 5)))
    finally:
        proxy.close()


def test_maintenance_with_retention_0_leaves_only_the_objects_the_latest_snapshot_names(
    local_snowflake: LocalSnowflakeProcess, sf: Any, s3: S3Server, lake: Lake, tmp_path: Path
) -> None:
    table = events(sf)
    opts = options(tmp_path, lake=lake)
    for offset in (0, 7, 11):  # three full syncs: each replaces the table's files
        fill(sf, table, ROWS, offset)
        sync_table(connector(local_snowflake), table, opts)
    orphan = f"{lake.data_path}{table.duckdb_schema}/{table.duckdb_table}/left-by-a-failed-upload.parquet"
    s3.client().put_object(Bucket=orphan.split("/")[2], Key=orphan.split("/", 3)[3], Body=b"PAR1")
    before = s3.objects(lake.data_path)

    # Grace 0: nothing else writes this lake, so a file no snapshot names is no load's in flight.
    done = maintain_lake(lake, retention_days=0, orphan_grace_seconds=0)
    after = s3.objects(lake.data_path)
    with opts.mirror.session("listing", read_only=True) as con:
        named = con.execute(
            "SELECT data_file FROM ducklake_list_files('lake', ?, schema => ?)",
            [table.duckdb_table, table.duckdb_schema],
        ).fetchall()
    assert sorted(after) == sorted(str(f[0]).removeprefix(lake.data_path) for f in named)
    assert len(before) > len(after) and done.files_deleted > 0 and done.orphans_deleted == 1
    assert lake_rows(opts, table) == (ROWS, sum(range(11, ROWS + 11)))


def test_without_a_key_in_the_environment_a_duckdb_secret_of_the_users_is_used(
    local_snowflake: LocalSnowflakeProcess, sf: Any, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user who keeps the key in a persistent DuckDB secret (`CREATE PERSISTENT SECRET`, in ~/.duckdb) sets no
    AWS variable: the sync makes no secret of its own, and DuckDB's applies."""
    import duckdb

    from sync_project.sync.extensions import OFFLINE, load_extension

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in s3.env():
        monkeypatch.delenv(name, raising=False)
    key_id, secret = s3.keys["worker"]
    endpoint = s3.endpoint.removeprefix("http://")
    with duckdb.connect(config=OFFLINE) as con:
        load_extension(con, "httpfs")
        con.execute(
            f"CREATE PERSISTENT SECRET users_own (TYPE s3, KEY_ID '{key_id}', SECRET '{secret}', REGION 'us-east-1', "
            f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)"
        )
    lake = Lake(str(tmp_path / "lake.sqlite"), s3.new_prefix())
    table = events(sf)
    opts = options(tmp_path, lake=lake)
    assert sync_table(connector(local_snowflake), table, opts).rows_total == ROWS
    assert any(key.endswith(".parquet") for key in s3.objects(lake.data_path))
