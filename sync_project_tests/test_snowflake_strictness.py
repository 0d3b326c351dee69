"""What a real account does that a kind emulator would hide, and the sync passing it (issue: first sync on an account).

Each test provokes one of Snowflake's strict behaviours through the real connector: encrypted internal stages
behind presigned cloud-storage URLs, the user stage, grants, the warehouse, session parameters, Snowflake's own
Parquet encodings and the full timestamp range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
import snowflake.connector
from snowflake.connector.errors import ProgrammingError

from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings
from sync_project.sync.errors import PermanentError, TransientError
from sync_project.sync.pipeline import sync_table
from sync_project_tests.emulator_controls import clear_roles, define_role, fault_state, inject_fault
from sync_project_tests.helpers import (
    FQ,
    account_environment,
    assert_exact_copy,
    connector,
    demo_table,
    duckdb_rows,
    fetch,
    options,
    run_job,
    snowflake_settings,
    sorted_rows,
)

READER = "SYNC_READER"
# Retries of one run share its start time (Dagster passes the run's); the attempt's name carries it.
STARTED = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def reader_role(local_snowflake: LocalSnowflakeProcess) -> Iterator[str]:
    """A role that may read tables but may not CREATE STAGE anywhere and has no stage grants."""
    define_role(local_snowflake.base_url, READER, create_stage=False, stages={})
    yield READER
    clear_roles(local_snowflake.base_url)


def _unload_sample(sf: Any, path: str, rows: int = 3000) -> None:
    fetch(
        sf,
        f"COPY INTO '@~/{path}' FROM (SELECT * FROM {FQ}.\"data\" LIMIT {rows}) "
        "FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE OVERWRITE = TRUE",
    )


def test_get_runs_the_remote_path_stored_bytes_are_encrypted(sf: Any, tmp_path: Path) -> None:
    _unload_sample(sf, "strict/remote/")
    listed = {str(r[0]).rsplit("/", 1)[-1]: int(r[1]) for r in fetch(sf, "LIST '@~/strict/remote/'")}
    # The raw answer GET gives the connector: presigned URLs on cloud storage plus the stage master key.
    answer = sf.cursor()._execute_helper(f"GET '@~/strict/remote/' 'file://{tmp_path}/'")["data"]
    assert answer["stageInfo"]["locationType"] == "GCS" and answer["encryptionMaterial"][0]["queryStageMasterKey"]
    with urllib.request.urlopen(answer["presignedUrls"][0], timeout=10) as response:  # noqa: S310
        served = response.read()
        assert "EncryptedKey" in response.headers["x-goog-meta-encryptiondata"]
    got = {str(r[0]).rsplit("/", 1)[-1]: int(r[1]) for r in fetch(sf, f"GET '@~/strict/remote/' 'file://{tmp_path}/'")}
    assert set(got) == set(listed)
    first = Path(answer["src_locations"][0]).name
    written = (tmp_path / first).read_bytes()
    assert served != written and len(served) == listed[first] != got[first] == len(written)
    # AES-CBC with PKCS5 padding: the stored object is the file padded up to the next 16-byte block.
    assert all(listed[n] == (got[n] // 16 + 1) * 16 for n in got)
    assert pq.read_metadata(tmp_path / first).num_rows > 0
    # A tampered URL is refused as cloud storage refuses it.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(answer["presignedUrls"][0].replace("Signature=", "Signature=0"), timeout=10)  # noqa: S310
    assert refused.value.code == 403
    fetch(sf, "REMOVE '@~/strict/remote/'")


def test_parquet_files_carry_snowflakes_encodings(sf: Any, tmp_path: Path) -> None:
    fetch(sf, "ALTER SESSION SET ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = FALSE")  # the logical types, as the sync
    fetch(
        sf,
        "COPY INTO '@~/strict/types/' FROM (SELECT ID, NUM_12_2, TS_NTZ, TIME_COL, BINARY_COL, DATE_COL "
        f"FROM {FQ}.ALL_TYPES) FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE",
    )
    (name,) = [str(r[0]).rsplit("/", 1)[-1] for r in fetch(sf, f"GET '@~/strict/types/' 'file://{tmp_path}/'")]
    schema = pq.read_schema(tmp_path / name)
    physical = pq.ParquetFile(tmp_path / name).schema
    kinds = {physical.column(i).name: physical.column(i) for i in range(len(physical))}
    assert kinds["ID"].physical_type == "FIXED_LEN_BYTE_ARRAY"  # NUMBER(38,0): a decimal, never an INT64
    assert kinds["NUM_12_2"].physical_type == "FIXED_LEN_BYTE_ARRAY"
    assert str(schema.field("TS_NTZ").type) == "timestamp[ns]"
    assert str(schema.field("TIME_COL").type) == "time64[ns]"
    assert kinds["BINARY_COL"].physical_type == "BYTE_ARRAY" and kinds["DATE_COL"].physical_type == "INT32"
    fetch(sf, "REMOVE '@~/strict/types/'")


def test_overwrite_replaces_only_files_of_the_same_name(sf: Any) -> None:
    fetch(sf, "REMOVE '@~/strict/overwrite/'")
    _unload_sample(sf, "strict/overwrite/other_")
    _unload_sample(sf, "strict/overwrite/")
    _unload_sample(sf, "strict/overwrite/")
    names = sorted(str(r[0]).rsplit("/", 1)[-1] for r in fetch(sf, "LIST '@~/strict/overwrite/'"))
    assert any(n.startswith("other_") for n in names) and any(n.startswith("data_") for n in names)
    with pytest.raises(ProgrammingError) as exists:
        fetch(
            sf,
            f"COPY INTO '@~/strict/overwrite/' FROM (SELECT 1 AS X FROM {FQ}.\"data\") FILE_FORMAT = (TYPE = PARQUET)",
        )
    assert exists.value.errno == 100117
    fetch(sf, "REMOVE '@~/strict/overwrite/'")


def test_an_unload_option_snowflake_does_not_have_is_refused(sf: Any) -> None:
    query = f"COPY INTO '@~/strict/options/' FROM (SELECT 1 AS X FROM {FQ}.\"data\") "
    for wrong, name in (
        ("FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE MAX_FILESIZE = 1000", "MAX_FILESIZE"),
        ("FILE_FORMAT = (TYPE = PARQUET COMPRESION = SNAPPY) HEADER = TRUE", "COMPRESION"),
    ):
        with pytest.raises(ProgrammingError, match=f"invalid parameter '{name}'"):
            fetch(sf, query + wrong)


def test_physical_type_optimisation_gives_each_file_the_types_of_its_own_values(sf: Any, tmp_path: Path) -> None:
    """Snowflake's default: a file's Parquet schema follows its values, so one unload's files can disagree; the
    sync turns it off (test_hardened_accounts.py checks that every session of the project does)."""
    query = (
        "SELECT (R * IFF(R <= 50000, 1, 100000))::NUMBER(38,0) AS N FROM "
        "(SELECT ROW_NUMBER() OVER (ORDER BY SEQ4()) AS R FROM TABLE(GENERATOR(ROWCOUNT => 100000)))"
    )

    def unload_types(optimise: bool) -> set[str]:
        fetch(sf, f"ALTER SESSION SET ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = {optimise}")
        folder = f"strict/physical_{optimise}"
        fetch(
            sf,
            f"COPY INTO '@~/{folder}/' FROM ({query}) FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE "
            "OVERWRITE = TRUE MAX_FILE_SIZE = 100000",
        )
        target = tmp_path / folder
        target.mkdir(parents=True)
        fetch(sf, f"GET '@~/{folder}/' 'file://{target}/'")
        fetch(sf, f"REMOVE '@~/{folder}/'")
        return {str(pq.read_schema(f).field("N").type) for f in target.iterdir()}

    try:
        assert unload_types(False) == {"decimal128(38, 0)"}
        narrowed = unload_types(True)
        assert len(narrowed) > 1 and "decimal128(38, 0)" not in narrowed, narrowed
    finally:
        fetch(sf, "ALTER SESSION UNSET ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION")


def test_seq4_may_leave_gaps_so_a_gapless_count_needs_row_number(sf: Any) -> None:
    """Snowflake documents that SEQ4's sequence is not guaranteed gap-free (the doctor's round trip once assumed
    it was); ROW_NUMBER() is."""
    seq = "SELECT SEQ4() AS S FROM TABLE(GENERATOR(ROWCOUNT => 2500))"
    low, high, count, distinct = fetch(sf, f"SELECT min(S), max(S), count(*), count(DISTINCT S) FROM ({seq})")[0]
    assert (low, count, distinct) == (0, 2500, 2500) and high > count - 1
    numbered = "SELECT ROW_NUMBER() OVER (ORDER BY SEQ4()) - 1 AS N FROM TABLE(GENERATOR(ROWCOUNT => 2500))"
    assert fetch(sf, f"SELECT min(N), max(N), count(*) FROM ({numbered})")[0] == (0, 2499, 2500)


def test_strict_statements(local_snowflake: LocalSnowflakeProcess, sf: Any) -> None:
    with pytest.raises(ProgrammingError) as unknown:
        fetch(sf, "ALTER SESSION SET NOT_A_PARAMETER = TRUE")
    assert "NOT_A_PARAMETER" in str(unknown.value)
    fetch(sf, "ALTER SESSION SET QUOTED_IDENTIFIERS_IGNORE_CASE = FALSE TIMEZONE = 'UTC'")
    with pytest.raises(ProgrammingError) as unquoted:
        fetch(sf, "LIST @~/dir#1/")
    assert "single quotes" in str(unquoted.value)
    with pytest.raises(ProgrammingError, match="invalid option"):
        fetch(sf, "LIST @~/has space/")  # the unquoted path stops at the space; the rest is no LIST option
    # An unload of nothing may answer with no row at all.
    cur = sf.cursor()
    cur.execute(
        f"COPY INTO '@~/strict/empty/' FROM (SELECT * FROM {FQ}.\"data\" WHERE 1 = 0) FILE_FORMAT = (TYPE = PARQUET)"
    )
    assert cur.fetchone() is None
    no_warehouse = snowflake_settings(local_snowflake) | {"warehouse": None}
    with snowflake.connector.connect(**no_warehouse) as conn:
        assert fetch(conn, f"DESC TABLE {FQ}.ALL_TYPES")  # metadata needs no warehouse
        with pytest.raises(ProgrammingError) as idle:
            fetch(conn, f'SELECT COUNT(*) FROM {FQ}."data"')
        assert idle.value.errno == 606
        fetch(conn, "USE WAREHOUSE COMPUTE_WH")
        assert fetch(conn, f'SELECT COUNT(*) FROM {FQ}."data"')[0][0] > 0


def test_role_without_create_stage_syncs_through_the_user_stage(
    local_snowflake: LocalSnowflakeProcess, reader_role: str, tmp_path: Path, sf: Any
) -> None:
    settings = snowflake_settings(local_snowflake) | {"role": reader_role}
    with snowflake.connector.connect(**settings) as conn, pytest.raises(ProgrammingError) as refused:
        fetch(conn, f"CREATE STAGE {FQ}.SHOULD_NOT_EXIST")
    assert refused.value.errno == 3001 and "Insufficient privileges" in str(refused.value)

    def connect() -> Any:
        return snowflake.connector.connect(**settings)

    table = demo_table("ALL_TYPES")
    report = sync_table(connect, table, options(tmp_path))
    assert report.rows_loaded == report.rows_unloaded > 0
    assert_exact_copy(local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", table)
    # Nothing was created in the source schema (another test's TEAM_STAGE may live there).
    assert [r[1] for r in fetch(sf, f"SHOW STAGES IN SCHEMA {FQ}") if r[1] != "TEAM_STAGE"] == []


def test_a_stage_the_role_cannot_use_fails_once_naming_it(
    settings: Settings, local_snowflake: LocalSnowflakeProcess, reader_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = f"{FQ}.TEAM_STAGE"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as admin:
        fetch(admin, f"CREATE STAGE IF NOT EXISTS {stage}")
    define_role(local_snowflake.base_url, reader_role, create_stage=False, stages={stage: "read"})
    monkeypatch.setenv("SNOWFLAKE_ROLE", reader_role)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, ["WORKSPACE_833213390.ALL_TYPES"])
        result = run_job(
            dataclasses.replace(
                Settings.from_env(), duckdb_path=settings.duckdb_path, download_dir=settings.download_dir, stage=stage
            ),
            instance,
            SYNC_JOB,
            "WORKSPACE_833213390.ALL_TYPES",
        )
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1 and not any(
        e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events
    )
    message = str(failures[0].step_failure_data.error)
    assert stage in message and "WRITE" in message and "SYNC_STAGE" in message
    assert not settings.duckdb_path.exists()


SENTINELS = [
    ("0001-01-01", "0001-01-01 00:00:00"),
    ("1677-09-21", "1677-09-21 00:12:43.145224"),
    ("2262-04-12", "2262-04-12 23:47:16.854776"),
    ("9999-12-31", "9999-12-31 23:59:59.999999"),
]


def test_the_whole_timestamp_range_round_trips(local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path) -> None:
    table = demo_table("SENTINEL_DATES")
    fetch(
        sf,
        f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), D DATE, NTZ TIMESTAMP_NTZ(9), "
        "TZ TIMESTAMP_TZ(9), LTZ TIMESTAMP_LTZ(9))",
    )
    values = ", ".join(f"({i}, '{d}', '{ts}', '{ts}+00:00', '{ts}+00:00')" for i, (d, ts) in enumerate(SENTINELS))
    fetch(sf, f"INSERT INTO {table.snowflake_sql} VALUES {values}")
    report = sync_table(connector(local_snowflake), table, options(tmp_path))
    assert report.rows_loaded == len(SENTINELS)
    loaded = sorted_rows(duckdb_rows(tmp_path / "sync.duckdb", table.duckdb_sql))
    assert loaded == sorted_rows(fetch(sf, f"SELECT * FROM {table.snowflake_sql}"))
    assert [str(r[2]) for r in loaded] == [ts for _, ts in SENTINELS]
    fetch(sf, f"DROP TABLE {table.snowflake_sql}")


def test_a_download_broken_mid_file_is_retried_and_ends_exact(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    table = demo_table("data")
    opts = options(tmp_path, max_file_size=20_000, get_parallel=1)
    inject_fault(local_snowflake.base_url, "download", mode="truncate", count=1)
    with pytest.raises(TransientError, match="did not arrive intact: the connection broke mid-file") as broken:
        sync_table(
            connector(local_snowflake), table, opts, attempt_id="run-1", attempt_started=STARTED, keep_for_retry=True
        )
    assert "IncompleteRead" in str(broken.value)  # GET's own word for the file, kept
    assert fault_state(local_snowflake.base_url)["fired"] == ["download"]
    logs: list[str] = []
    report = sync_table(
        connector(local_snowflake), table, opts, logs.append, attempt_id="run-1", attempt_started=STARTED
    )
    assert report.resumed_unload and report.files_reused == report.files - 1 > 0
    assert_exact_copy(local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", table)


def test_an_expired_download_url_fails_the_try_and_the_next_one_fetches_afresh(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    table = demo_table("ALL_TYPES")
    inject_fault(local_snowflake.base_url, "download", mode="expired", count=2)
    with pytest.raises(TransientError, match="presigned URLs had expired") as expired:
        sync_table(
            connector(local_snowflake),
            table,
            options(tmp_path),
            attempt_id="run-2",
            attempt_started=STARTED,
            keep_for_retry=True,
        )
    assert "<presigned URL>" in str(expired.value) and "Signature" not in str(expired.value)  # a URL is a key
    report = sync_table(
        connector(local_snowflake), table, options(tmp_path), attempt_id="run-2", attempt_started=STARTED
    )
    assert report.rows_loaded == report.rows_unloaded > 0
    assert_exact_copy(local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", table)


def test_no_warehouse_with_an_account_fails_at_once_naming_the_setting(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (account_environment(local_snowflake, tmp_path) | {"SNOWFLAKE_PASSWORD": "not-used"}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SNOWFLAKE_WAREHOUSE", raising=False)
    inject_fault(local_snowflake.base_url, "login", mode="sql_error", count=1, errno=390100, message="tripwire")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, ["WORKSPACE_833213390.data"])
        result = run_job(Settings.from_env(), instance, SYNC_JOB, "WORKSPACE_833213390.data")
    failures = [e for e in result.all_events if e.is_step_failure]
    assert not result.success and len(failures) == 1
    assert "SNOWFLAKE_WAREHOUSE" in str(failures[0].step_failure_data.error)
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    # Refused before signing in: the login tripwire never fired.
    assert fault_state(local_snowflake.base_url)["fired"] == []


def test_sync_stage_must_be_a_plain_stage_name() -> None:
    from sync_project.sync.attempt import validate_stage

    assert validate_stage("@~") == "~"
    assert validate_stage('MYDB."Sync".MIRROR') == 'MYDB."Sync".MIRROR'
    for bad in ("@~/path/", "db.s.x'; DROP", "two words", ""):
        with pytest.raises(PermanentError, match="SYNC_STAGE"):
            validate_stage(bad)


def test_a_first_get_names_no_files_and_a_retry_names_only_the_missing_ones() -> None:
    """A first GET fetches the attempt's folder whole: listing tens of thousands of file names would make a huge
    statement. A retry names what it still needs, unless that list would be too long to send."""
    from sync_project.sync.stage import _only_these

    many = [f"data_0_0_{n}.snappy.parquet" for n in range(20_000)]
    assert _only_these(many, named=False) == ""
    retry = _only_these(["data_0_0_7.snappy.parquet"], named=True)
    assert retry == r" PATTERN = '.*(data_0_0_7\.snappy\.parquet)'"
    assert _only_these(many[1:], named=True) == ""


def test_a_million_rows_through_the_remote_path_are_exact(
    local_snowflake: LocalSnowflakeProcess, sf: Any, tmp_path: Path
) -> None:
    table = demo_table("MILLION")
    fetch(
        sf,
        f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), AMOUNT NUMBER(12,2), TS TIMESTAMP_NTZ(9), "
        "NAME VARCHAR)",
    )
    fetch(
        sf,
        f"INSERT INTO {table.snowflake_sql} SELECT SEQ8(), SEQ8() / 100, DATEADD(second, SEQ8(), '2020-01-01'), "
        "'row ' || SEQ8() FROM TABLE(GENERATOR(ROWCOUNT => 1000000))",
    )
    report = sync_table(connector(local_snowflake), table, options(tmp_path, max_file_size=8 * 1024 * 1024))
    assert report.rows_loaded == report.rows_unloaded == 1_000_000 and report.files > 1
    assert report.bytes_downloaded < report.output_bytes  # GET's decrypted files are smaller than what LIST shows
    figures = (
        "COUNT(*), SUM(ID), MIN(AMOUNT), MAX(AMOUNT), COUNT(DISTINCT AMOUNT), MIN(TS), MAX(TS), COUNT(DISTINCT NAME)"
    )
    source = fetch(sf, f"SELECT {figures} FROM {table.snowflake_sql}")[0]
    import duckdb

    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        loaded = con.execute(f"SELECT {figures} FROM {table.duckdb_sql}").fetchone()
    assert loaded is not None and tuple(loaded) == tuple(source)
    fetch(sf, f"DROP TABLE {table.snowflake_sql}")
