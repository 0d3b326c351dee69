"""The emulator's own SQL helpers, without a server."""

from __future__ import annotations

import pytest
import sqlglot
from local_snowflake.coltypes import declared_type, storage_type
from local_snowflake.kinds import classify
from local_snowflake.sqltext import ObjectName, parse_options, parse_stage_ref, split_dotted
from local_snowflake.stages import safe_component
from snowflake.connector.errors import ProgrammingError
from sqlglot import exp


def test_stage_reference_keeps_quoted_case_and_path() -> None:
    ref, rest = parse_stage_ref('@db."My.Sch"."st""g"/run/1/ FROM x', "CUR", "S")
    assert ref.stage == ObjectName("DB", "My.Sch", 'st"g')
    assert ref.path == "run/1/"
    assert rest.strip() == "FROM x"


def test_stage_reference_uses_session_context_and_quotes() -> None:
    ref, rest = parse_stage_ref("'@stg/p' PATTERN = '.*'", "DB", "SCH")
    assert ref.stage == ObjectName("DB", "SCH", "STG")
    assert ref.path == "p"
    assert parse_options(rest) == {"PATTERN": ".*"}


def test_stage_reference_without_at_is_refused() -> None:
    with pytest.raises(ProgrammingError):
        parse_stage_ref("stage/path", "DB", "SCH")


def test_options_are_typed_and_nested() -> None:
    options = parse_options(
        "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = 'SNAPPY') HEADER = TRUE MAX_FILE_SIZE = 1024 OVERWRITE=false"
    )
    assert options == {
        "FILE_FORMAT": {"TYPE": "PARQUET", "COMPRESSION": "SNAPPY"},
        "HEADER": True,
        "MAX_FILE_SIZE": 1024,
        "OVERWRITE": False,
    }


def test_split_dotted_stops_at_path() -> None:
    parts, rest = split_dotted('a."b/c".d/x')
    assert parts == ["a", '"b/c"', "d"]
    assert rest == "/x"


@pytest.mark.parametrize(
    ("sql", "declared", "stored"),
    [
        ("NUMBER(38,0)", "NUMBER(38,0)", "DECIMAL(38,0)"),
        ("INT", "NUMBER(38,0)", "DECIMAL(38,0)"),
        ("NUMBER", "NUMBER(38,0)", "DECIMAL(38,0)"),
        ("NUMBER(12,2)", "NUMBER(12,2)", "DECIMAL(12,2)"),
        ("VARCHAR", "VARCHAR(16777216)", "VARCHAR"),
        ("CHAR(3)", "VARCHAR(3)", "VARCHAR"),
        ("BINARY(16)", "BINARY(16)", "BLOB"),
        ("TIMESTAMP_TZ(3)", "TIMESTAMP_TZ(3)", "TIMESTAMPTZ"),
        ("TIMESTAMP_LTZ", "TIMESTAMP_LTZ(9)", "TIMESTAMPTZ"),
        ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ(9)", "TIMESTAMP"),
        ("TIME", "TIME(9)", "TIME"),
        ("DOUBLE", "FLOAT", "DOUBLE"),
        ("VARIANT", "VARIANT", "JSON"),
        ("OBJECT", "OBJECT", "JSON"),
        ("ARRAY", "ARRAY", "JSON"),
        ("GEOGRAPHY", "GEOGRAPHY", "VARCHAR"),
        ("GEOMETRY", "GEOMETRY", "VARCHAR"),
    ],
)
def test_declared_and_storage_types(sql: str, declared: str, stored: str) -> None:
    create = sqlglot.parse_one(f"CREATE TABLE t (c {sql})", read="snowflake")  # as fakesnow.dialect parses
    column = create.find(exp.ColumnDef)
    assert column is not None
    assert declared_type(column.args["kind"]) == declared
    assert storage_type(declared) == stored


def test_safe_component_cannot_escape() -> None:
    for name in ("..", ".", "a/b", "x\x00y", ""):
        component = safe_component(name)
        assert "/" not in component and component not in (".", "..", "") and "\x00" not in component


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("copy into @s/p/ from (select 1)", "unload"),
        ("COPY INTO t FROM @s", None),
        ("-- note\nGET @s/p/ 'file:///tmp/'", "get"),
        ("create or replace temporary stage x", "create_stage"),
        ("drop stage if exists x", "drop_stage"),
        ("ls @s", "list"),
        ("rm @s", "remove"),
        ("describe table t", "desc_table"),
        ("alter account set PREVENT_UNLOAD_TO_INTERNAL_STAGES = TRUE", "alter_account"),
        ('ALTER USER IF EXISTS "sync user" UNSET STATEMENT_TIMEOUT_IN_SECONDS', "alter_user"),
        ("show parameters like 'PREVENT%' in user", "show_parameters"),
        ("SHOW PARAMETERS IN USER SYNC_SERVICE", "show_parameters"),
        ("show parameters", "show_parameters"),
        ("select 1", None),
    ],
)
def test_statement_classification(sql: str, kind: str | None) -> None:
    assert classify(sql)[0] == kind


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT TO_NUMBER('ff', 'XX')", 255),
        ("SELECT TO_NUMBER('0A', 'xx')", 10),
        ("SELECT TO_NUMBER(NULL, 'XX')", None),
        ("SELECT TO_NUMBER(SUBSTR(MD5('abc'), 1, 15), 'XXXXXXXXXXXXXXX')", 0x900150983CD24FB),
    ],
)
def test_to_number_reads_hexadecimal_as_snowflake_does(sql: str, expected: int | None) -> None:
    """SQL format models: X is a hexadecimal digit (the content check sums MD5s this way)."""
    import duckdb
    import fakesnow.transforms
    from local_snowflake.patches import _patch_fakesnow_hex_numbers

    _patch_fakesnow_hex_numbers()
    translated = sqlglot.parse_one(sql, read="snowflake").transform(fakesnow.transforms.to_decimal)
    rows = duckdb.connect().execute(translated.sql(dialect="duckdb")).fetchall()
    assert rows == [(expected,)]


@pytest.mark.parametrize("text", ["fff", "zz", "-1"])
def test_to_number_refuses_what_its_hex_format_cannot_hold(text: str) -> None:
    """More digits than the format's X's, or a character that is no hex digit: an error, as in Snowflake."""
    import duckdb
    import fakesnow.transforms
    from local_snowflake.patches import _patch_fakesnow_hex_numbers

    _patch_fakesnow_hex_numbers()
    translated = sqlglot.parse_one(f"SELECT TO_NUMBER('{text}', 'XX')", read="snowflake")
    with pytest.raises(duckdb.Error, match="is not recognized"):
        duckdb.connect().execute(translated.transform(fakesnow.transforms.to_decimal).sql(dialect="duckdb")).fetchall()


# Snowflake's documented examples (MD5_NUMBER_UPPER64 / MD5_NUMBER_LOWER64, and Snowpark's functions of them).
@pytest.mark.parametrize(
    ("text", "upper", "lower"),
    [
        ("'Snowflake'", 17145559544104499780, 9203306159527282910),
        ("'test'", 688887797400064883, 14618207765679027446),
        ("'hello'", 6719722671305337462, 13362634815750784402),
        ("NULL", None, None),
    ],
)
def test_md5_numbers_read_the_digest_big_endian_as_snowflake_does(text: str, upper: int, lower: int) -> None:
    import duckdb
    from local_snowflake.patches import _md5_numbers

    sql = f"SELECT MD5_NUMBER_UPPER64({text}), MD5_NUMBER_LOWER64({text})"
    translated = sqlglot.parse_one(sql, read="snowflake").transform(_md5_numbers)
    assert duckdb.connect().execute(translated.sql(dialect="duckdb")).fetchall() == [(upper, lower)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COALESCE(a, CHR(30)) || CHR(31) || COALESCE(b, 'none') FROM t",
        "SELECT CONCAT(COALESCE(a, CHR(30)), CHR(31), COALESCE(b, CHR(30))) FROM t",
        "SELECT COALESCE(a, CHR(30)) || CHR(31) || b FROM t",  # b may be NULL: so is the whole
        "SELECT CONCAT(a, '-', COALESCE(b, '')) FROM t",
    ],
)
def test_a_concatenation_gives_the_same_values_when_its_never_null_parts_are_joined_at_once(sql: str) -> None:
    """Snowflake's `||` and CONCAT are NULL when any part is; the emulator's faster DuckDB `concat` (which skips
    NULLs) is used only where no part can be NULL, so every row's value is the one `||` gives."""
    import duckdb
    from local_snowflake.patches import _concat_of_never_null

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('x', 'y'), (NULL, 'y'), ('x', NULL), (NULL, NULL)) v(a, b)")
    parsed = sqlglot.parse_one(sql, read="snowflake")
    as_written = con.execute(parsed.sql(dialect="duckdb")).fetchall()
    joined = parsed.copy().transform(_concat_of_never_null)
    assert con.execute(joined.sql(dialect="duckdb")).fetchall() == as_written
    # Joined at once exactly where every part is a literal or ends in one.
    assert ("||" not in joined.sql(dialect="duckdb")) == ("COALESCE(a" in sql and "COALESCE(b" in sql)
