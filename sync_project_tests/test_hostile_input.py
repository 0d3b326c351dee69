"""Hostile table names and partition keys, end to end through Dagster.

Anyone who can type a partition key in the UI (or name a table in Snowflake) supplies these. Each
one either syncs to the DuckDB relation of exactly its name or is refused, with a message, before a
connection to Snowflake is even opened.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import snowflake.connector

from sync_project.checks import ROW_COUNT_CHECK
from sync_project.definitions import build_definitions
from sync_project.demo_tables import ALL_TYPES_DDL, SEMI_DDL
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.registry import register
from sync_project.settings import Settings
from sync_project.sync.tables import TableRef, quote_identifier
from sync_project_tests.emulator_controls import fault_state, inject_fault
from sync_project_tests.helpers import (
    FQ,
    assert_both_checks_passed,
    assert_exact_copy,
    connector,
    demo_table,
    duckdb_rows,
    events_of,
    failed_once,
    fetch,
    options,
    run_job,
    snowflake_settings,
    sorted_rows,
    stage_leftovers,
    synced_types,
)
from sync_project_tests.reliability import observe

ODD_NAMES = {
    'it\'s "quoted"': "Table name with single and double quotes",
    "x; DROP TABLE data; --": "Table name with a semicolon, a statement and --",
    "Zürich 東京 🚀": "Table name in unicode (accents, CJK, emoji)",
    "a.b": "Table name with a dot",
    "..x": "Table name starting with ..",
    "select": "Table name that is a reserved word",
    "  spaced  ": "Table name with leading and trailing spaces",
    "N" * 255: "Table name of 255 characters (Snowflake's limit)",
}

REFUSED_KEYS = {
    'WORKSPACE_833213390."../../etc/passwd"': ("Partition key with ../ (a path)", "looks like a path"),
    "WORKSPACE_833213390.../x": ("Partition key with unquoted dots", "must be SCHEMA.TABLE"),
    "WORKSPACE_833213390.a/b": ("Partition key with a slash", "looks like a path"),
    "WORKSPACE_833213390.a\x00b": ("Partition key with a NUL character", "control or unassigned characters"),
    "WORKSPACE_833213390.bell\x07tab\tnewline\n": ("Partition key with control characters", "control or unassigned"),
    "WORKSPACE_833213390." + "N" * 300: ("Partition key with a 300-character name", "Snowflake allows 255"),
    'WORKSPACE_833213390."unterminated': ("Partition key with an unterminated quote", "unterminated quote"),
    "no_schema": ("Partition key without a schema", "must be SCHEMA.TABLE"),
}


def duckdb_relations(settings: Settings) -> list[tuple[str, str]]:
    if not settings.duckdb_path.exists():
        return []
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> '_sync'"
        ).fetchall()


@pytest.mark.parametrize("name", list(ODD_NAMES))
def test_odd_table_names_sync_to_exactly_their_relation(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess, name: str
) -> None:
    table = demo_table(name)
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE OR REPLACE TABLE {table.snowflake_sql} (ID NUMBER(38,0), {quote_identifier(name)} TEXT)")
        fetch(conn, f"INSERT INTO {table.snowflake_sql} VALUES (1, 'one'), (2, NULL), (3, '''; --')")
    register(instance, connector(local_snowflake), [table])
    assert instance.get_dynamic_partitions(SNOWFLAKE_TABLES) == [table.key]
    assert TableRef.from_key(table.key, table.database) == table
    result = run_job(settings, instance, SYNC_JOB, table.key)
    assert result.success
    (row_count,) = [e for e in result.get_asset_check_evaluations() if e.check_name == ROW_COUNT_CHECK]
    assert row_count.passed
    verified = assert_exact_copy(local_snowflake, settings.duckdb_path, settings.download_dir, table)
    assert duckdb_relations(settings) == [(table.schema, name)]  # that relation and no other
    observe(
        "Hostile input",
        ODD_NAMES[name],
        "registered (DESC TABLE) and synced through Dagster; row-count check passed",
        f"landed in the DuckDB relation of exactly that name and no other; {verified}",
    )


@pytest.mark.parametrize("key", list(REFUSED_KEYS))
def test_hostile_partition_keys_are_refused_before_connecting(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess, key: str
) -> None:
    case, reason = REFUSED_KEYS[key]
    inject_fault(local_snowflake.base_url, "login", count=1)  # a tripwire: fires if anything connects
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [key])  # as a UI user or a sensor could
    result = run_job(settings, instance, SYNC_JOB, key)
    assert not result.success
    assert events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = events_of(result, dg.DagsterEventType.STEP_FAILURE)
    message = str(failure.step_failure_data.error.message)  # type: ignore[union-attr]
    assert reason in message
    assert fault_state(local_snowflake.base_url)["fired"] == []  # no connection, so no SQL
    assert not settings.duckdb_path.exists() and not settings.download_dir.exists()
    observe(
        "Hostile input",
        case,
        f"the run failed once, without retries, saying '{reason}'",
        "Snowflake was never connected to (a login tripwire stayed armed); no DuckDB file or folder made",
    )


def test_a_view_is_refused_before_any_unload(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess
) -> None:
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f'CREATE OR REPLACE VIEW {FQ}.V_HOSTILE AS SELECT * FROM {FQ}."data"')
    inject_fault(local_snowflake.base_url, "unload", count=1)  # a tripwire for COPY INTO
    key = "WORKSPACE_833213390.V_HOSTILE"
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [key])  # registration refuses views; the UI does not ask
    result = run_job(settings, instance, SYNC_JOB, key)
    assert "is a view" in failed_once(result)
    assert fault_state(local_snowflake.base_url)["fired"] == []
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        assert stage_leftovers(conn) == []
    assert duckdb_relations(settings) == []
    observe(
        "Hostile input",
        "A VIEW as a partition key",
        "the run failed once, without retries, saying the object is a view",
        "no COPY INTO was sent (an unload tripwire stayed armed); no stage; no DuckDB relation",
    )


def test_a_second_table_on_the_same_duckdb_name_is_refused(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess
) -> None:
    # Snowflake's quoted "data" and "DATA" are two tables; DuckDB names ignore case, so they would share one. The
    # embedded Snowflake keeps its tables in DuckDB and cannot hold both in one schema, so they are in two
    # databases: the mirror's relation is SCHEMA.TABLE, and the two collide there exactly as in one schema.
    schema, suffix = "CASEWS", uuid.uuid4().hex[:6].upper()
    first, second = TableRef(f"CASE_A_{suffix}", schema, "data"), TableRef(f"CASE_B_{suffix}", schema, "DATA")
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        for ref, rows in ((first, 3), (second, 5)):
            fetch(conn, f"CREATE DATABASE {ref.database}")
            fetch(conn, f"CREATE SCHEMA {ref.database}.{schema}")
            fetch(conn, f"CREATE TABLE {ref.snowflake_sql} (ID NUMBER(38,0), NOTE VARCHAR)")
            fetch(
                conn, f"INSERT INTO {ref.snowflake_sql} SELECT SEQ8(), 'row' FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
            )
    key_of = {first: f'{schema}."data"', second: f'{schema}."DATA"'}
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, list(key_of.values()))
    synced = run_job(
        dataclasses.replace(settings, snowflake_database=first.database), instance, SYNC_JOB, key_of[first]
    )
    assert synced.success
    before = duckdb_rows(settings.duckdb_path, first.duckdb_sql)
    result = run_job(
        dataclasses.replace(settings, snowflake_database=second.database), instance, SYNC_JOB, key_of[second]
    )
    message = failed_once(result)
    assert "ignore case" in message and f"{schema}.data" in message, message
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        source = sorted_rows(fetch(conn, f"SELECT * FROM {first.snowflake_sql}"))
    after = duckdb_rows(settings.duckdb_path, first.duckdb_sql)
    assert sorted_rows(after) == sorted_rows(before) == source and len(source) == 3
    assert [r for r in duckdb_relations(settings) if r[0] == schema and r[1].lower() == "data"] == [(schema, "data")]
    observe(
        "Hostile input",
        "Two Snowflake tables whose names differ only in case",
        'two real Snowflake tables, "data" and "DATA" (in two databases, mirrored to one DuckDB schema): '
        "the second one's run failed once, without retries, naming the relation and saying DuckDB names ignore case",
        f"the first table's DuckDB relation is untouched and still equals Snowflake's ({len(source)} rows)",
    )


@pytest.mark.parametrize("target", ["duckdb", "ducklake"])
def test_a_table_with_a_thousand_columns(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess, target: str
) -> None:
    if target == "ducklake":
        lake_home = settings.duckdb_path.parent
        settings = dataclasses.replace(
            settings,
            target="ducklake",
            ducklake_catalog=str(lake_home / "lake.sqlite"),
            ducklake_data_path=str(lake_home / "lake-data"),
        )
    kinds = ["NUMBER(38,0)", "VARCHAR(20)", "NUMBER(12,2)", "TIMESTAMP_NTZ(9)"]
    columns = ", ".join(f"C{i} {kinds[i % 4]}" for i in range(1000))
    values = ", ".join(
        ["SEQ8()", "'v' || SEQ8()", "SEQ8() / 100", "'2024-01-01 00:00:00'::TIMESTAMP_NTZ"][i % 4] for i in range(1000)
    )
    table = demo_table("WIDE_1000")
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"CREATE OR REPLACE TABLE {table.snowflake_sql} ({columns})")
        fetch(conn, f"INSERT INTO {table.snowflake_sql} SELECT {values} FROM TABLE(GENERATOR(ROWCOUNT => 50))")
    register(instance, connector(local_snowflake), [table])
    result = run_job(settings, instance, SYNC_JOB, table.key)
    assert_both_checks_passed(result)
    opts = options(settings.duckdb_path.parent, duckdb_path=settings.duckdb_path, lake=settings.lake)
    types = list(synced_types(opts, table.schema, table.name).values())
    assert types[:4] == ["DECIMAL(38,0)", "VARCHAR", "DECIMAL(12,2)", "TIMESTAMP"] and len(types) == 1000
    (materialization,) = result.asset_materializations_for_node("snowflake_table")
    schema = materialization.metadata["columns"].value
    assert len(schema.columns) == 1000  # type: ignore[union-attr]
    observe(
        "Hostile input",
        "A table with 1,000 columns" if target == "duckdb" else "A table with 1,000 columns, in a DuckLake",
        "synced through Dagster; both checks passed; the column schema metadata lists all 1,000",
        assert_exact_copy(local_snowflake, settings.duckdb_path, settings.download_dir, table, settings.lake)
        + f"; {len(types):,} columns of the mapped types",
    )


def test_a_table_of_every_type_with_only_nulls(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess
) -> None:
    widths = []
    for ddl, name in ((ALL_TYPES_DDL, "ALL_TYPES"), (SEMI_DDL, "SEMI_STRUCTURED")):
        table = demo_table(f"{name}_NULLS")
        nullable = re.sub(r",\s*PRIMARY KEY \(ID\)", "", ddl.format(fq=FQ)).replace(" NOT NULL", "")
        with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
            fetch(conn, nullable.replace(f"{FQ}.{name} (", f"{table.snowflake_sql} ("))
            width = len(fetch(conn, f"DESC TABLE {table.snowflake_sql}"))
            nulls = ", ".join(["NULL"] * width)
            fetch(conn, f"INSERT INTO {table.snowflake_sql} VALUES ({nulls}), ({nulls})")
        register(instance, connector(local_snowflake), [table])
        result = run_job(settings, instance, SYNC_JOB, table.key)
        assert_both_checks_passed(result)
        assert duckdb_rows(settings.duckdb_path, table.duckdb_sql) == [(None,) * width] * 2
        widths.append(width)
    observe(
        "Hostile input",
        "A table of every type with only NULLs",
        f"two tables ({' and '.join(map(str, widths))} columns, every type of the type map) synced; checks passed",
        "every value arrived as NULL, 2 rows each; the schema check confirmed each column has its mapped type",
    )


def test_config_values_of_the_wrong_type_are_refused_before_running(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = build_definitions(settings).resolve_job_def(SYNC_JOB)
    refused = []
    for bad in ({"strategy": "sideways"}, {"strategy": 5}, {"rebuild": "yes please"}, {"unknown": 1}):
        with dg.instance_for_test() as instance, pytest.raises(dg.DagsterInvalidConfigError) as error:
            job.execute_in_process(
                run_config={"ops": {"snowflake_table": {"config": bad}}},
                tags={"dagster/partition": "WORKSPACE_833213390.data"},
                instance=instance,
            )
        assert str(next(iter(bad))) in str(error.value)
        refused.append(bad)
    monkeypatch.setenv("SYNC_GET_PARALLEL", "ten")
    with pytest.raises(ValueError, match="SYNC_GET_PARALLEL='ten' is not a non-negative int"):
        Settings.from_env()
    assert not settings.duckdb_path.exists()
    observe(
        "Hostile input",
        "Run config and settings of the wrong type",
        f"Dagster refused all {len(refused)} bad run configs before the run started, naming the field; "
        "a non-numeric SYNC_GET_PARALLEL is refused naming the variable",
        "no run step executed; no DuckDB file made",
    )


def test_an_unwritable_duckdb_path_fails_once_before_any_unload_naming_the_setting(
    settings: Settings, instance: dg.DagsterInstance, local_snowflake: LocalSnowflakeProcess
) -> None:
    """A folder nobody may create (/sys refuses even root): a permanent error naming SYNC_DUCKDB_PATH and the
    fix, no retries, and no unload spent on a table that cannot be loaded."""
    unwritable = dataclasses.replace(settings, duckdb_path=Path("/sys/sync-project/sync.duckdb"))
    inject_fault(local_snowflake.base_url, "unload", count=1)  # a tripwire for COPY INTO
    instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [f"{FQ.split('.')[1]}.ALL_TYPES"])
    result = run_job(unwritable, instance, SYNC_JOB, f"{FQ.split('.')[1]}.ALL_TYPES")
    message = failed_once(result)
    assert "SYNC_DUCKDB_PATH" in message and "/sys/sync-project" in message and "Traceback" not in message
    assert fault_state(local_snowflake.base_url)["fired"] == []
