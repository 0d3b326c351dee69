"""TableRef: keys round-trip, SQL never leaves the identifier, file names never leave their folder."""

from __future__ import annotations

import pytest
import sqlglot
from hypothesis import given, strategies as st
from sqlglot import exp

from sync_project.sync.errors import InvalidTableNameError
from sync_project.sync.tables import TableRef
from sync_project_tests.reliability import observe

# Printable names Snowflake allows in quoted identifiers (control characters are refused separately).
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn"), blacklist_characters="/\\"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip(".") != "")


@given(schema=names, name=names)
def test_key_round_trips(schema: str, name: str) -> None:
    table = TableRef("DB", schema, name)
    assert TableRef.from_key(table.key, "DB") == table


@given(schema=names, name=names)
def test_sql_is_one_identifier_per_part(schema: str, name: str) -> None:
    table = TableRef("DB", schema, name)
    parsed = sqlglot.parse_one(f"SELECT * FROM {table.snowflake_sql}", read="snowflake")
    tables = list(parsed.find_all(exp.Table))
    assert len(tables) == 1
    assert (tables[0].catalog, tables[0].db, tables[0].name) == ("DB", schema, name)
    assert isinstance(parsed, exp.Select) and not parsed.args.get("where")
    in_duckdb = sqlglot.parse_one(f"SELECT * FROM {table.duckdb_sql}", read="duckdb")
    (local,) = list(in_duckdb.find_all(exp.Table))
    assert (local.db, local.name) == (schema, name) and not in_duckdb.args.get("where")
    observe(
        "Hostile input",
        "Any printable schema and table name (hypothesis property tests of TableRef)",
        "every generated name was quoted for Snowflake and for DuckDB, and its key parsed back to the same table",
        "the SQL parses as one table reference with exactly those parts and nothing else; folder names are "
        "distinct and stay inside their folder",
    )


@given(schema=names, name=names)
def test_folder_name_is_safe(schema: str, name: str) -> None:
    folder = TableRef("DB", schema, name).folder_name
    assert "/" not in folder and "\\" not in folder and folder not in (".", "..")
    assert len(folder) <= 120
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in folder)


@given(a=names, b=names)
def test_distinct_tables_get_distinct_folders(a: str, b: str) -> None:
    if a != b:
        assert TableRef("DB", "S", a).folder_name != TableRef("DB", "S", b).folder_name


def test_long_names_are_bounded_and_distinct() -> None:
    one, two = TableRef("DB", "S", "x" * 250 + "1"), TableRef("DB", "S", "x" * 250 + "2")
    assert len(one.folder_name) <= 120 and one.folder_name != two.folder_name


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("WORKSPACE_833213390.data", ("WORKSPACE_833213390", "data")),
        ('S."a.b"', ("S", "a.b")),
        ('S."say ""hi"""', ("S", 'say "hi"')),
        ('"sch.ema".T', ("sch.ema", "T")),
    ],
)
def test_key_examples(key: str, expected: tuple[str, str]) -> None:
    table = TableRef.from_key(key, "DB")
    assert (table.schema, table.name) == expected
    assert table.key == key


@pytest.mark.parametrize("key", ["", "S.", ".T", "S.T.U", 'S."open', 'S.a"b', "S." + "x" * 256, 'S."x"y'])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidTableNameError):
        TableRef.from_key(key, "DB")


@pytest.mark.parametrize(
    ("name", "like", "expected"),
    [
        ("AR_ONE", "AR\\_%", True),
        ("ARXONE", "AR\\_%", False),
        ("ARXONE", "AR_%", True),
        ("data", "DA%", True),
        ("100%", "100\\%", True),
        ("1000", "100\\%", False),
        ("a.b", "a_b", True),
    ],
)
def test_like_patterns(name: str, like: str, expected: bool) -> None:
    from sync_project.sync.catalog import matches_like

    assert matches_like(name, like) is expected
