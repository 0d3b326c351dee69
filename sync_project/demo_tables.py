"""The demo dataset, created with plain Snowflake SQL through the connector.

Database `KEBOOLA_33`, schema `WORKSPACE_833213390`: the lower-case table
`"data"` (the caller's row count) and `ALL_TYPES` / `SEMI_STRUCTURED`, which
together cover every type of the type map, with NULLs, extreme decimals,
unicode and multi-line strings; and the view `ACTIVE_CUSTOMERS`, which the sync
refuses. Being plain SQL, it runs on a real account too.
"""

from __future__ import annotations

from typing import Any

DEMO_DATABASE = "KEBOOLA_33"
DEMO_SCHEMA = "WORKSPACE_833213390"
DEMO_TABLES = ("data", "ALL_TYPES", "SEMI_STRUCTURED")
DEFAULT_DEMO_ROWS = 100_000


def _generated(rows: int) -> str:
    # A numbered row source; each column is a pure function of s, so data is deterministic.
    return f"(SELECT SEQ8() AS s FROM TABLE(GENERATOR(ROWCOUNT => {int(rows)})))"


DATA_DDL = """
CREATE OR REPLACE TABLE {fq}."data" (
    "id" NUMBER(38,0) NOT NULL, "name" VARCHAR(100), "amount" NUMBER(12,2), "score" FLOAT,
    "quantity" NUMBER(18,0), "is_active" BOOLEAN, "created_at" TIMESTAMP_NTZ(9),
    "updated_at" TIMESTAMP_NTZ(9), "category" VARCHAR(20), "note" VARCHAR,
    PRIMARY KEY ("id")
)"""

DATA_ROWS = """
INSERT INTO {fq}."data"
SELECT s, 'customer_' || s, ((s * 7919) % 10000000) / 100, (s % 1000) / 7.0, s % 500, s % 3 = 0,
       DATEADD(second, s, '2020-01-01 00:00:00'::TIMESTAMP_NTZ),
       DATEADD(second, s * 2, '2021-01-01 00:00:00'::TIMESTAMP_NTZ),
       CASE s % 4 WHEN 0 THEN 'alpha' WHEN 1 THEN 'beta' WHEN 2 THEN 'gamma' ELSE 'delta' END,
       CASE WHEN s % 10 = 0 THEN NULL ELSE 'note ' || s END
FROM {source}"""

ALL_TYPES_DDL = """
CREATE OR REPLACE TABLE {fq}.ALL_TYPES (
    ID NUMBER(38,0) NOT NULL, NUM_38_0 NUMBER(38,0), NUM_18_0 NUMBER(18,0), NUM_12_2 NUMBER(12,2),
    NUM_38_10 NUMBER(38,10), INT_COL INT, FLOAT_COL FLOAT, DOUBLE_COL DOUBLE, VARCHAR_COL VARCHAR(50),
    CHAR_COL CHAR(3), TEXT_COL TEXT, STRING_COL STRING, BINARY_COL BINARY(16), BOOL_COL BOOLEAN,
    DATE_COL DATE, TIME_COL TIME(9), TS_NTZ TIMESTAMP_NTZ(9),
    PRIMARY KEY (ID)
)"""

ALL_TYPES_SPECIAL = """
INSERT INTO {fq}.ALL_TYPES VALUES
  (0, 99999999999999999999999999999999999999, 999999999999999999, 9999999999.99,
   9999999999999999999999999999.9999999999, 2147483647, 1.7976931348623157e308, -2.2250738585072014e-308,
   'Příliš žluťoučký kůň 🐎', 'abc', 'line one
line two
	tabbed', 'quote '' and "double"', TO_BINARY('00FF10', 'HEX'), TRUE,
   '0001-01-01', '23:59:59.999999', '9999-12-31 23:59:59.999999'),
  (1, -99999999999999999999999999999999999999, -999999999999999999, -9999999999.99,
   -9999999999999999999999999999.9999999999, -2147483648, -0.0, 0.5, '', 'x', '', '日本語テキスト',
   TO_BINARY('', 'HEX'), FALSE, '1970-01-01', '00:00:00', '1970-01-01 00:00:00'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"""

ALL_TYPES_ROWS = """
INSERT INTO {fq}.ALL_TYPES
SELECT s + 3, s * 1000000000000000000000, s, (s % 100000) / 100, s / 1000, s % 1000, s / 3.0, s * 1.5,
       'v' || s, 'c' || (s % 10), 'text ' || s, 'string ' || s, TO_BINARY(TO_VARCHAR(s % 256, '0X'), 'HEX'),
       s % 2 = 0, DATEADD(day, s % 20000, '1990-01-01'::DATE), '12:34:56'::TIME,
       DATEADD(second, s, '2022-06-01 08:00:00'::TIMESTAMP_NTZ)
FROM {source}"""

SEMI_DDL = """
CREATE OR REPLACE TABLE {fq}.SEMI_STRUCTURED (
    ID NUMBER(38,0) NOT NULL, TS_TZ TIMESTAMP_TZ(9), TS_LTZ TIMESTAMP_LTZ(9), VARIANT_COL VARIANT,
    OBJECT_COL OBJECT, ARRAY_COL ARRAY, GEOGRAPHY_COL GEOGRAPHY, GEOMETRY_COL GEOMETRY,
    PRIMARY KEY (ID)
)"""

SEMI_SPECIAL = """
INSERT INTO {fq}.SEMI_STRUCTURED
SELECT 0, '2024-03-10 12:34:56.123456+05:30'::TIMESTAMP_TZ, '2024-03-10 23:59:59.5-08:00'::TIMESTAMP_LTZ,
       PARSE_JSON('{{"n": 12345678901234567890, "s": "žluťoučký kůň ✓", "nested": {{"a": [1, 2, null]}}}}'),
       OBJECT_CONSTRUCT('key', 'value', 'number', 1.5), ARRAY_CONSTRUCT(1, 'two', 3.0),
       'POINT(-122.35 37.55)', 'POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))'
UNION ALL
SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL"""

SEMI_ROWS = """
INSERT INTO {fq}.SEMI_STRUCTURED
SELECT s + 2, DATEADD(second, s, '2023-01-01 00:00:00+00:00'::TIMESTAMP_TZ),
       DATEADD(minute, s, '2023-01-01 00:00:00+00:00'::TIMESTAMP_LTZ),
       OBJECT_CONSTRUCT('id', s, 'label', 'row ' || s), OBJECT_CONSTRUCT('k', s % 7),
       ARRAY_CONSTRUCT(s, s + 1), 'POINT(' || (s % 180) || ' ' || (s % 90) || ')', 'POINT(0 0)'
FROM {source}"""


# A view, to see the sync refuse one (it mirrors tables, whose row counts and change times Snowflake reports).
VIEW_DDL = """
CREATE OR REPLACE VIEW {fq}.ACTIVE_CUSTOMERS AS SELECT "id", "name", "amount" FROM {fq}."data" WHERE "is_active"
"""


def type_table_rows(rows: int) -> int:
    """The type tables are there for coverage, not volume: 1% of `"data"`, at least 1,000 rows."""
    return max(1_000, rows // 100)


def create_demo_tables(cursor: Any, rows: int = DEFAULT_DEMO_ROWS) -> dict[str, int]:
    """Create (or replace) the demo tables through a Snowflake cursor; return rows per table."""
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DEMO_DATABASE}")
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {DEMO_DATABASE}.{DEMO_SCHEMA}")
    return create_tables_in(cursor, f"{DEMO_DATABASE}.{DEMO_SCHEMA}", rows)


def create_tables_in(cursor: Any, schema: str, rows: int) -> dict[str, int]:
    """The demo tables in an existing schema (`DB.SCHEMA` as SQL writes it): also the contract suite's data."""
    extra = type_table_rows(rows)
    statements = [
        DATA_DDL.format(fq=schema),
        DATA_ROWS.format(fq=schema, source=_generated(rows)) if rows else "",
        ALL_TYPES_DDL.format(fq=schema),
        ALL_TYPES_SPECIAL.format(fq=schema),
        ALL_TYPES_ROWS.format(fq=schema, source=_generated(extra - 3)),
        SEMI_DDL.format(fq=schema),
        SEMI_SPECIAL.format(fq=schema),
        SEMI_ROWS.format(fq=schema, source=_generated(extra - 2)),
        VIEW_DDL.format(fq=schema),
    ]
    for statement in statements:
        if statement:
            cursor.execute(statement)
    return {"data": rows, "ALL_TYPES": extra, "SEMI_STRUCTURED": extra}
