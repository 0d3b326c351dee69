"""Accounts an administrator has hardened: parameters set by SQL, as on Snowflake, at the account and for the
sync's user, and what the sync and the doctor then do (issue: hardened and unusual accounts)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import snowflake.connector
from snowflake.connector.errors import ProgrammingError

from sync_project.checks import ROW_COUNT_CHECK
from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB, VERIFY_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.registry import register
from sync_project.resources import snowflake_resource
from sync_project.settings import Settings
from sync_project.sync.attempt import UnloadResult
from sync_project.sync.catalog import case_twins
from sync_project.sync.controls import PREVENT_UNLOAD
from sync_project.sync.disk import space_needed
from sync_project.sync.errors import PermanentError, TransientError, from_snowflake
from sync_project.sync.pipeline import sync_table
from sync_project.sync_record import COLUMNS
from sync_project_tests.emulator_controls import (
    inject_fault,
    set_token_validity,
    token_state,
)
from sync_project_tests.helpers import (
    FQ,
    assert_exact_copy,
    connector,
    demo_table,
    duckdb_rows,
    failed_once,
    fetch,
    options,
    run_job,
    snowflake_settings,
)
from sync_project_tests.reliability import observe

DATA = "WORKSPACE_833213390.data"
IGNORE_CASE = "QUOTED_IDENTIFIERS_IGNORE_CASE"
TIMEOUT = "STATEMENT_TIMEOUT_IN_SECONDS"
WAREHOUSE = "COMPUTE_WH"


def unload(conn: Any, folder: str) -> list[tuple[Any, ...]]:
    return fetch(
        conn,
        f"COPY INTO '@~/{folder}/' FROM (SELECT * FROM {FQ}.\"data\" LIMIT 10) FILE_FORMAT = (TYPE = PARQUET) "
        "OVERWRITE = TRUE",
    )


def parameter(conn: Any, name: str, scope: str = "USER") -> tuple[str, str]:
    """(value, level) as SHOW PARAMETERS answers them."""
    cur = conn.cursor()
    cur.execute(f"SHOW PARAMETERS LIKE '{name}' IN {scope}")
    names = [d[0].lower() for d in cur.description]
    (row,) = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return row["value"], row["level"]


@pytest.fixture
def admin(sf: Any) -> Iterator[Any]:
    """The account administrator's session; whatever the test sets on the account or the user is unset after."""
    user = fetch(sf, "SELECT CURRENT_USER()")[0][0]
    yield sf
    fetch(sf, f"ALTER ACCOUNT UNSET {PREVENT_UNLOAD}, {IGNORE_CASE}, {TIMEOUT}")
    fetch(sf, f'ALTER USER "{user}" UNSET {PREVENT_UNLOAD}, {IGNORE_CASE}, {TIMEOUT}')
    fetch(sf, f"ALTER WAREHOUSE {WAREHOUSE} UNSET {TIMEOUT}")


def test_prevent_unload_to_internal_stages_refuses_copy_into_unless_the_user_is_allowed(admin: Any) -> None:
    user = fetch(admin, "SELECT CURRENT_USER()")[0][0]
    assert parameter(admin, PREVENT_UNLOAD) == ("false", "")
    fetch(admin, f"ALTER ACCOUNT SET {PREVENT_UNLOAD} = TRUE")
    assert parameter(admin, PREVENT_UNLOAD) == ("true", "ACCOUNT")
    assert parameter(admin, PREVENT_UNLOAD, "ACCOUNT") == ("true", "ACCOUNT")
    with pytest.raises(ProgrammingError) as refused:
        unload(admin, "hardened/refused")
    assert PREVENT_UNLOAD not in str(refused.value)  # Snowflake documents no text to match; the sync must ask
    # The user's own value wins over the account's.
    fetch(admin, f'ALTER USER "{user}" SET {PREVENT_UNLOAD} = FALSE')
    assert parameter(admin, PREVENT_UNLOAD) == ("false", "USER")
    assert unload(admin, "hardened/allowed")[0][0] == 10
    fetch(admin, "REMOVE '@~/hardened/'")


def test_parameters_are_an_administrators_and_typed(local_snowflake: LocalSnowflakeProcess, admin: Any) -> None:
    with pytest.raises(ProgrammingError, match="invalid parameter"):
        fetch(admin, "ALTER ACCOUNT SET PREVENT_UNLOADS = TRUE")
    with pytest.raises(ProgrammingError, match="invalid value"):
        fetch(admin, f"ALTER ACCOUNT SET {PREVENT_UNLOAD} = 'yes'")
    with pytest.raises(ProgrammingError, match="does not exist"):
        fetch(admin, f"ALTER USER NOBODY SET {PREVENT_UNLOAD} = TRUE")
    settings = snowflake_settings(local_snowflake) | {"role": "SYSADMIN"}
    with snowflake.connector.connect(**settings) as sysadmin:
        user = fetch(sysadmin, "SELECT CURRENT_USER()")[0][0]
        for statement in (
            f"ALTER ACCOUNT SET {PREVENT_UNLOAD} = TRUE",
            f'ALTER USER "{user}" SET {PREVENT_UNLOAD} = FALSE',
        ):
            with pytest.raises(ProgrammingError) as refused:
                fetch(sysadmin, statement)
            assert refused.value.errno == 3001, statement
    assert parameter(admin, PREVENT_UNLOAD) == ("false", "")


def test_a_sync_refused_by_the_parameter_fails_once_naming_it_and_the_fix(
    settings: Settings, instance: dg.DagsterInstance, admin: Any
) -> None:
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA])
    assert run_job(settings, instance, SYNC_JOB, DATA).success
    before = duckdb_rows(settings.duckdb_path, '"WORKSPACE_833213390"."data"')
    user = fetch(admin, "SELECT CURRENT_USER()")[0][0]
    fetch(admin, f"ALTER ACCOUNT SET {PREVENT_UNLOAD} = TRUE")
    result = run_job(settings, instance, SYNC_JOB, DATA)
    message = failed_once(result)
    assert f'ALTER USER "{user}" SET {PREVENT_UNLOAD} = FALSE' in message and "the account" in message, message
    assert duckdb_rows(settings.duckdb_path, '"WORKSPACE_833213390"."data"') == before
    observe(
        "Hardened account",
        "Unloads to internal stages prevented (PREVENT_UNLOAD_TO_INTERNAL_STAGES)",
        "set TRUE on the account by SQL: the sync's run failed once, without retries, naming the parameter, where "
        "it is set and the ALTER USER statement that allows the sync's user alone",
        f"the previous DuckDB table is untouched ({len(before):,} rows)",
    )


def test_every_connection_the_project_opens_takes_the_syncs_session_settings(settings: Settings, admin: Any) -> None:
    """Register, the sensors, the checks and the chores connect through the resource: with the account ignoring
    the case of quoted names, their sessions still do not, as the sync's own does (asked for at sign-in)."""
    fetch(admin, f"ALTER ACCOUNT SET {IGNORE_CASE} = TRUE")
    assert parameter(admin, IGNORE_CASE, "SESSION") == ("true", "ACCOUNT")
    resource = snowflake_resource(settings).resolved()
    with resource.get_connection() as conn:
        assert parameter(conn, IGNORE_CASE, "SESSION") == ("false", "SESSION")
        assert parameter(conn, "ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION", "SESSION") == ("false", "SESSION")


def test_a_statement_stops_at_the_lower_of_its_sessions_and_its_warehouses_timeout(
    local_snowflake: LocalSnowflakeProcess, admin: Any
) -> None:
    user = fetch(admin, "SELECT CURRENT_USER()")[0][0]
    fetch(admin, f'ALTER USER "{user}" SET {TIMEOUT} = 3600')
    fetch(admin, f"ALTER WAREHOUSE {WAREHOUSE} SET {TIMEOUT} = 1")
    assert parameter(admin, TIMEOUT, "SESSION") == ("3600", "USER")
    assert parameter(admin, TIMEOUT, f"WAREHOUSE {WAREHOUSE}") == ("1", "WAREHOUSE")
    inject_fault(local_snowflake.base_url, "unload", mode="hold", seconds=60)  # an unload that would run a minute
    with pytest.raises(ProgrammingError) as stopped:
        unload(admin, "hardened/timeout")
    assert stopped.value.errno == 630 and "timeout of 1 second(s)" in str(stopped.value)
    with pytest.raises(ProgrammingError, match="invalid parameter"):
        fetch(admin, f"ALTER WAREHOUSE {WAREHOUSE} SET {PREVENT_UNLOAD} = TRUE")


def test_a_sync_stopped_by_the_statement_timeout_fails_once_naming_the_timeout_and_the_table(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess, admin: Any
) -> None:
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA])
    assert run_job(settings, instance, SYNC_JOB, DATA).success
    before = duckdb_rows(settings.duckdb_path, '"WORKSPACE_833213390"."data"')
    rows = fetch(admin, f'SELECT count(*) FROM {FQ}."data"')[0][0]
    fetch(admin, f"ALTER WAREHOUSE {WAREHOUSE} SET {TIMEOUT} = 1")
    inject_fault(local_snowflake.base_url, "unload", mode="hold", seconds=60)
    result = run_job(settings, instance, SYNC_JOB, DATA)
    message = failed_once(result)
    assert f"{TIMEOUT} = 1 (set on the warehouse {WAREHOUSE})" in message and f"{rows:,} rows" in message, message
    assert duckdb_rows(settings.duckdb_path, '"WORKSPACE_833213390"."data"') == before
    observe(
        "Hardened account",
        "An unload longer than STATEMENT_TIMEOUT_IN_SECONDS",
        "the warehouse's timeout set to 1 s by SQL and the unload held longer: Snowflake's 000630 failed the run "
        "once, without retries (another try would run as long), naming the timeout, its level and value, and "
        "the table's rows",
        f"the previous DuckDB table is untouched ({len(before):,} rows)",
    )


@pytest.fixture
def external_stage(admin: Any) -> Iterator[str]:
    stage = f"{FQ}.LAKE_EXPORTS"
    fetch(admin, f"CREATE OR REPLACE STAGE {stage} URL = 's3://acme-exports/snowflake/'")
    yield stage
    fetch(admin, f"DROP STAGE IF EXISTS {stage}")


def test_an_external_stage_takes_an_unload_but_get_refuses_it(admin: Any, external_stage: str, tmp_path: Path) -> None:
    shown = {r[1]: r for r in fetch(admin, f"SHOW STAGES IN SCHEMA {FQ}")}
    assert shown["LAKE_EXPORTS"][4:6] == ("s3://acme-exports/snowflake/", "EXTERNAL")
    (location,) = [r for r in fetch(admin, f"DESC STAGE {external_stage}") if r[1] == "URL"]
    assert location[3] == '["s3://acme-exports/snowflake/"]'
    fetch(
        admin,
        f"COPY INTO '@{external_stage}/x/' FROM (SELECT 1 AS N FROM {FQ}.\"data\") FILE_FORMAT = (TYPE = PARQUET)",
    )
    with pytest.raises(ProgrammingError) as refused:
        fetch(admin, f"GET '@{external_stage}/x/' 'file://{tmp_path}/'")
    assert refused.value.errno == 91003 and "not supported with external stage" in str(refused.value)
    with pytest.raises(ProgrammingError, match="invalid URL"):
        fetch(admin, f"CREATE STAGE {FQ}.BAD_URL URL = 'https://acme.example/'")
    with pytest.raises(ProgrammingError, match="invalid option 'LOCATION'"):
        fetch(admin, f"CREATE STAGE {FQ}.BAD_PROPERTY LOCATION = 's3://acme-exports/'")


def test_a_sync_through_an_external_stage_is_refused_before_it_unloads(
    settings: Settings, instance: dg.DagsterInstance, admin: Any, external_stage: str
) -> None:
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA])
    result = run_job(dataclasses.replace(settings, stage=external_stage), instance, SYNC_JOB, DATA)
    message = failed_once(result)
    assert "an external stage (" in message and "SYNC_STAGE" in message and "@~" in message, message
    assert fetch(admin, f"LIST '@{external_stage}'") == []  # nothing was paid for: no unload ran


@pytest.fixture
def sf_settings(local_snowflake: LocalSnowflakeProcess) -> dict[str, Any]:
    return snowflake_settings(local_snowflake)


@pytest.fixture
def short_tokens(local_snowflake: LocalSnowflakeProcess) -> str:
    """Sign-ins from now on get session tokens valid 1 s (Snowflake: an hour), master tokens 10 minutes."""
    set_token_validity(local_snowflake.base_url, session_seconds=1, master_seconds=600)
    return local_snowflake.base_url


def test_an_expired_session_token_is_renewed_by_the_connector(short_tokens: str, sf_settings: dict[str, Any]) -> None:
    with snowflake.connector.connect(**sf_settings) as conn:
        assert fetch(conn, "SELECT 1")[0][0] == 1
        time.sleep(1.5)  # past the session token's validity (monotonic; no clock or race involved)
        assert fetch(conn, f'SELECT count(*) FROM {FQ}."data"')[0][0] > 0
    assert token_state(short_tokens)["renewals"] == 1


def test_a_heartbeat_keeps_the_session_token_alive(short_tokens: str, sf_settings: dict[str, Any]) -> None:
    set_token_validity(short_tokens, session_seconds=2, master_seconds=600)
    with snowflake.connector.connect(**sf_settings) as conn:
        time.sleep(1.2)
        rest: Any = conn.rest
        assert rest._heartbeat()["success"]  # what client_session_keep_alive sends every hour
        time.sleep(1.2)  # 2.4 s after sign-in, 1.2 s after the heartbeat
        assert fetch(conn, "SELECT 1")[0][0] == 1
    assert token_state(short_tokens)["renewals"] == 0


def test_a_session_whose_master_token_expired_fails_transient(short_tokens: str, sf_settings: dict[str, Any]) -> None:
    set_token_validity(short_tokens, session_seconds=1, master_seconds=1)
    with snowflake.connector.connect(**sf_settings) as conn:
        time.sleep(1.5)
        with pytest.raises(ProgrammingError) as expired:
            fetch(conn, "SELECT 1")
    assert expired.value.errno == 390114
    assert isinstance(from_snowflake(expired.value, "syncing"), TransientError)


def test_a_sync_outliving_its_session_token_renews_it_and_ends_exact(
    settings: Settings, short_tokens: str, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """An unload longer than the session token's validity: the statements after it (LIST, GET, REMOVE) renew
    the token through the connector and the sync ends exact; the resource asks for the keep-alive heartbeat."""
    resource = snowflake_resource(settings)
    assert resource.connect_args()["client_session_keep_alive"] is True
    table = demo_table("data")
    inject_fault(local_snowflake.base_url, "unload", mode="stall", seconds=2)
    report = sync_table(resource.resolved().get_connection, table, options(tmp_path))
    assert report.rows_loaded == report.rows_unloaded > 0 and token_state(short_tokens)["renewals"] >= 1
    assert_exact_copy(local_snowflake, tmp_path / "sync.duckdb", tmp_path / "downloads", table)


def test_the_disk_check_counts_what_get_decrypts_in_tmpdir(tmp_path: Path) -> None:
    """GET decrypts each file in the connector's temporary folder before moving it (storage_client.py, tmp_dir):
    up to PARALLEL files at once, on whatever disk TMPDIR is."""
    download, database, temp = (tmp_path / name for name in ("downloads", "db", "tmp"))
    for folder in (download, database, temp):
        folder.mkdir()
    unload = UnloadResult(query_id="q", rows_unloaded=10, input_bytes=900, output_bytes=500)
    # One disk: everything adds up, the in-flight decryptions at most PARALLEL files of MAX_FILE_SIZE.
    assert space_needed(download, database, temp, unload, parallel=4, max_file_size=100) == {download: 1800}
    assert space_needed(download, database, temp, unload, parallel=10, max_file_size=100) == {download: 1900}
    assert space_needed(download, None, temp, unload, parallel=2, max_file_size=100) == {download: 700}


def test_collated_text_is_described_with_its_collation_and_syncs_as_varchar(
    settings: Settings, instance: dg.DagsterInstance, admin: Any
) -> None:
    """With DEFAULT_DDL_COLLATION on the account, every text column created after carries a collation, and
    DESC TABLE prints it: the type map once refused every such table."""
    table = demo_table("COLLATED")
    fetch(admin, "ALTER ACCOUNT SET DEFAULT_DDL_COLLATION = 'en-ci'")
    try:
        declared = "ID NUMBER(38,0), NAME VARCHAR, CODE VARCHAR(3) COLLATE 'de'"
        fetch(admin, f"CREATE OR REPLACE TABLE {table.snowflake_sql} ({declared})")
    finally:
        fetch(admin, "ALTER ACCOUNT UNSET DEFAULT_DDL_COLLATION")
    fetch(admin, f"INSERT INTO {table.snowflake_sql} VALUES (1, 'Ärger', 'abc'), (2, 'ärger', 'ABC'), (3, NULL, NULL)")
    described = {r[0]: r[1] for r in fetch(admin, f"DESC TABLE {table.snowflake_sql}")}
    assert described == {
        "ID": "NUMBER(38,0)",
        "NAME": "VARCHAR(16777216) COLLATE 'en-ci'",
        "CODE": "VARCHAR(3) COLLATE 'de'",
    }
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [table.key])
    result = run_job(settings, instance, SYNC_JOB, table.key)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("snowflake_table")
    schema: Any = materialization.metadata[COLUMNS].value
    name = {c.name: c for c in schema.columns}["NAME"]
    assert (name.type, name.description) == ("VARCHAR", "Snowflake VARCHAR(16777216) COLLATE 'en-ci'")
    assert sorted(duckdb_rows(settings.duckdb_path, table.duckdb_sql), key=lambda r: r[0]) == [
        (1, "Ärger", "abc"),
        (2, "ärger", "ABC"),
        (3, None, None),
    ]
    fetch(admin, f"DROP TABLE {table.snowflake_sql}")


def test_an_account_ignoring_the_case_of_quoted_names_cannot_mislead_register_sync_or_checks(
    settings: Settings, instance: dg.DagsterInstance, admin: Any, sf_settings: dict[str, Any]
) -> None:
    """With QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE on the account, "data" means DATA to any session that does not
    set it back: a client that forgets is refused while only "data" exists, and reads the other table once a
    table DATA exists beside it. Register, the sync and its checks all connect with the setting off, so they
    address "data" itself and copy its rows, never DATA's."""
    fetch(admin, f"ALTER ACCOUNT SET {IGNORE_CASE} = TRUE")
    with snowflake.connector.connect(**sf_settings) as forgetful:
        with pytest.raises(ProgrammingError) as refused:
            fetch(forgetful, f'SELECT count(*) FROM {FQ}."data"')
        assert refused.value.errno == 2003 and ".WORKSPACE_833213390.DATA' does not exist" in str(refused.value)
        fetch(admin, f"ALTER SESSION SET {IGNORE_CASE} = FALSE")
        fetch(admin, f"CREATE TABLE {FQ}.DATA (MARK VARCHAR)")
        try:
            fetch(admin, f"INSERT INTO {FQ}.DATA VALUES ('upper'), ('upper')")
            assert fetch(forgetful, f'SELECT MARK FROM {FQ}."data"') == [("upper",), ("upper",)]
            resource = snowflake_resource(settings).resolved()
            registration = register(instance, resource.get_connection, [demo_table("data")])
            assert registration.new == [DATA]
            result = run_job(settings, instance, SYNC_JOB, DATA)
            assert result.success
            evaluations = result.get_asset_check_evaluations()
            assert evaluations and all(e.passed for e in evaluations)
            with resource.get_connection() as conn:
                source = sorted(fetch(conn, f'SELECT * FROM {FQ}."data"'))
        finally:
            fetch(admin, f"DROP TABLE {FQ}.DATA")
    assert len(source) > 2 and source[0] != ("upper",)
    assert sorted(duckdb_rows(settings.duckdb_path, '"WORKSPACE_833213390"."data"')) == source


def test_tables_differing_only_in_case_are_two_tables(admin: Any) -> None:
    """Snowflake keeps "data" and DATA apart; each reference reaches exactly its own, each listing names both,
    and an unquoted data (DATA) is not found while only "data" exists, as DuckDB alone would have found it."""
    with pytest.raises(ProgrammingError) as missing:
        fetch(admin, f"SELECT count(*) FROM {FQ}.data")
    assert missing.value.errno == 2003 and "DATA' does not exist" in str(missing.value)
    rows = fetch(admin, f'SELECT count(*) FROM {FQ}."data"')[0][0]
    fetch(admin, f"CREATE TABLE {FQ}.DATA AS SELECT 'upper' AS MARK")
    try:
        assert fetch(admin, f'SELECT count(*) FROM {FQ}."data"')[0][0] == rows > 1
        assert fetch(admin, f"SELECT * FROM {FQ}.data") == [("upper",)]
        assert [r[0] for r in fetch(admin, f'DESC TABLE {FQ}."DATA"')] == ["MARK"]
        listed = fetch(
            admin,
            f"SELECT TABLE_NAME, ROW_COUNT FROM {DEMO_DATABASE}.INFORMATION_SCHEMA.TABLES "
            f"WHERE TABLE_SCHEMA = '{DEMO_SCHEMA}' AND lower(TABLE_NAME) = 'data'",
        )
        assert sorted(listed) == [("DATA", 1), ("data", rows)]
        shown = fetch(admin, f"SHOW TABLES LIKE 'data' IN SCHEMA {FQ}")
        assert sorted(r[1] for r in shown) == ["DATA", "data"]
    finally:
        fetch(admin, f"DROP TABLE {FQ}.DATA")
    assert fetch(admin, f'SELECT count(*) FROM {FQ}."data"')[0][0] == rows


def test_columns_differing_only_in_case_are_described_and_refused_by_register(
    admin: Any, instance: dg.DagsterInstance, settings: Settings
) -> None:
    """Snowflake allows "id" and "ID" in one table and DESC TABLE prints both; DuckDB cannot hold both in one
    table, so register refuses such a table naming the pair (the doctor: test_doctor), and the embedded
    Snowflake, which keeps its tables in DuckDB too, refuses to read it rather than answer for one of them."""
    assert case_twins(["ID", "id", "Name", "NAME", "name", "note"]) == [("ID", "id"), ("Name", "NAME", "name")]
    assert case_twins(["ID", "NAME", "Ä", "ä"]) == [("Ä", "ä")]
    table = demo_table("TWINS")
    fetch(admin, f'CREATE OR REPLACE TABLE {table.snowflake_sql} ("id" NUMBER(38,0), ID VARCHAR, "Note" TEXT)')
    try:
        described = [(r[0], r[1]) for r in fetch(admin, f"DESC TABLE {table.snowflake_sql}")]
        assert described == [("id", "NUMBER(38,0)"), ("ID", "VARCHAR(16777216)"), ("Note", "VARCHAR(16777216)")]
        resource = snowflake_resource(settings).resolved()
        with pytest.raises(PermanentError, match="columns 'id' and 'ID' differ only in case"):
            register(instance, resource.get_connection, [table])
        with pytest.raises(ProgrammingError, match=r"cannot read table .*differ only in case"):
            fetch(admin, f"SELECT * FROM {table.snowflake_sql}")
    finally:
        fetch(admin, f"DROP TABLE {table.snowflake_sql}")


def test_variant_holding_nan_and_infinity_loads_exactly(
    admin: Any, local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """Snowflake's VARIANT holds NaN and ±Infinity, and TO_JSON writes them as bare NaN / Infinity (not standard
    JSON, with STRICT_JSON_OUTPUT at its default). DuckDB's JSON reads them, so they land as they were."""
    table = demo_table("NON_FINITE")
    fetch(admin, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), X VARIANT)")
    fetch(
        admin,
        f"INSERT INTO {table.snowflake_sql} SELECT 1, TO_VARIANT('NaN'::FLOAT) UNION ALL "
        "SELECT 2, OBJECT_CONSTRUCT('up', 'inf'::FLOAT, 'down', '-inf'::FLOAT) UNION ALL SELECT 3, PARSE_JSON('[1.5]')",
    )
    try:
        source = sorted((int(i), x) for i, x in fetch(admin, f"SELECT ID, TO_JSON(X) FROM {table.snowflake_sql}"))
        report = sync_table(connector(local_snowflake), table, options(tmp_path))
        loaded = duckdb_rows(tmp_path / "sync.duckdb", f"(SELECT ID, X::VARCHAR FROM {table.duckdb_sql})")
    finally:
        fetch(admin, f"DROP TABLE {table.snowflake_sql}")
    assert report.rows_loaded == 3 and any("NaN" in x for _, x in source) and any("Infinity" in x for _, x in source)
    assert sorted((int(i), x) for i, x in loaded) == source


def test_a_row_access_policy_is_named_by_the_row_count_check_instead_of_warning_forever(
    settings: Settings, instance: dg.DagsterInstance, admin: Any
) -> None:
    """Under a row access policy the sync's role reads fewer rows than the table's own count says it holds;
    syncing again would read the same. The check says so and passes, after the sync and in the checks job."""
    table = demo_table("SALES_BY_REGION")
    fetch(admin, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), REGION VARCHAR)")
    fetch(admin, f"INSERT INTO {table.snowflake_sql} SELECT SEQ8(), IFF(SEQ8() % 5 < 3, 'EU', 'US') "
                 "FROM TABLE(GENERATOR(ROWCOUNT => 100))")  # fmt: skip
    fetch(admin, f"CREATE OR REPLACE ROW ACCESS POLICY {FQ}.EU_ONLY AS (R VARCHAR) RETURNS BOOLEAN -> R = 'EU'")
    fetch(admin, f"ALTER TABLE {table.snowflake_sql} ADD ROW ACCESS POLICY {FQ}.EU_ONLY ON (REGION)")
    try:
        visible = fetch(admin, f"SELECT count(*) FROM {table.snowflake_sql}")[0][0]
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [table.key])
        synced = run_job(settings, instance, SYNC_JOB, table.key)
        verified = run_job(settings, instance, VERIFY_JOB, table.key)
    finally:
        fetch(admin, f"DROP TABLE {table.snowflake_sql}")
    assert visible == 60 and len(duckdb_rows(settings.duckdb_path, table.duckdb_sql)) == visible
    for result in (synced, verified):
        (count,) = [e for e in result.get_asset_check_evaluations() if e.check_name == ROW_COUNT_CHECK]
        assert count.passed and "row access policy KEBOOLA_33.WORKSPACE_833213390.EU_ONLY" in str(count.description)
        assert "100 rows" in str(count.description) and str(count.metadata["row_access_policy"].value).endswith(
            "EU_ONLY"
        )
