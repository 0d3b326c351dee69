"""Snowflake -> DuckDB type map, as a table of rules (DESIGN.md, "Type map").

Each rule says how DESC TABLE prints the type, which DuckDB type holds it
exactly, and how the unload projection must present it so Parquet can carry
it (TIMESTAMP_TZ/LTZ as UTC TIMESTAMP_NTZ, semi-structured as JSON text,
geospatial as WKT). Never NUMBER -> DOUBLE.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sync_project.sync.errors import UnsupportedTypeError


@dataclass(frozen=True)
class TypeMapping:
    duckdb_type: str
    # How the unload projection presents the column; `{}` is the quoted column name.
    unload_expression: str = "{}"
    # How the load turns the Parquet column back into `duckdb_type`; `{}` is the quoted column name.
    load_template: str = "CAST({} AS {type})"

    def load_expression(self, quoted: str) -> str:
        return self.load_template.replace("{type}", self.duckdb_type).format(quoted)


# Timestamps travel as integer microseconds since 1970 (a NUMBER, so a Parquet decimal). Snowflake may write
# timestamp columns in nanoseconds, which hold only 1677-09-21 .. 2262-04-11, while tables hold 0001 .. 9999 and
# warehouses use 9999-12-31 as "open end"; an integer is exact over the whole range whatever the file's units.
# For TIMESTAMP_TZ / LTZ, EPOCH_MICROSECOND is the UTC instant (and Parquet cannot carry them anyway: 100171).
_EPOCH_MICROS = "DATE_PART(EPOCH_MICROSECOND, {})::NUMBER(18,0)"  # 18 digits hold 0001 .. 9999
_FROM_EPOCH_MICROS = "make_timestamp(CAST({} AS BIGINT))"


def _number(match: re.Match[str]) -> TypeMapping:
    precision = int(match.group("p") or 38)
    scale = int(match.group("s") or 0)
    if scale > 0:
        return TypeMapping(f"DECIMAL({precision},{scale})")
    return TypeMapping("BIGINT" if precision <= 18 else WIDE_INTEGER)


# NUMBER(p,0) with p > 18 (and INT, which is NUMBER(38,0)) is DECIMAL(38,0): exactly Snowflake's 38 digits, where
# HUGEINT would allow 39, and the type Snowflake's Parquet files carry, so the load converts nothing.
WIDE_INTEGER = "DECIMAL(38,0)"


def _fixed(duckdb_type: str, unload: str = "{}") -> Callable[[re.Match[str]], TypeMapping]:
    return lambda _: TypeMapping(duckdb_type, unload)


_P = r"(\s*\(\s*\d+\s*\))?"
RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], TypeMapping]]] = [
    (re.compile(r"(NUMBER|DECIMAL|NUMERIC)(\s*\(\s*(?P<p>\d+)\s*(,\s*(?P<s>\d+)\s*)?\))?"), _number),
    (re.compile(r"(INT|INTEGER|BIGINT|SMALLINT|TINYINT|BYTEINT)"), _fixed(WIDE_INTEGER)),
    (re.compile(r"(FLOAT|FLOAT4|FLOAT8|DOUBLE|DOUBLE PRECISION|REAL)"), _fixed("DOUBLE")),
    # A collation ('en-ci', 'de-ai', ...) changes how Snowflake compares and sorts, never the characters: the
    # text copies exactly as VARCHAR, and the column's description keeps the whole Snowflake type.
    (re.compile(rf"(VARCHAR|CHAR|CHARACTER|NCHAR|NVARCHAR|TEXT|STRING){_P}(\s+COLLATE\s+'[^']*')?"), _fixed("VARCHAR")),
    (re.compile(rf"(BINARY|VARBINARY){_P}"), _fixed("BLOB")),
    (re.compile(r"BOOLEAN"), _fixed("BOOLEAN")),
    (re.compile(r"DATE"), _fixed("DATE")),
    (re.compile(rf"TIME{_P}"), _fixed("TIME")),
    (
        re.compile(rf"(TIMESTAMP_NTZ|TIMESTAMP|DATETIME){_P}"),
        lambda _: TypeMapping("TIMESTAMP", _EPOCH_MICROS, _FROM_EPOCH_MICROS),
    ),
    (
        re.compile(rf"(TIMESTAMP_TZ|TIMESTAMP_LTZ){_P}"),
        # The load session runs with TimeZone = UTC, so the cast reads the instant as UTC.
        lambda _: TypeMapping("TIMESTAMPTZ", _EPOCH_MICROS, f"CAST({_FROM_EPOCH_MICROS} AS TIMESTAMPTZ)"),
    ),
    (re.compile(r"(VARIANT|OBJECT|ARRAY)"), _fixed("JSON", "TO_JSON({})")),
    (re.compile(r"(GEOGRAPHY|GEOMETRY)"), _fixed("VARCHAR", "ST_ASWKT({})")),
]


def map_type(snowflake_type: str, column: str = "?", table: str = "?") -> TypeMapping:
    """The DuckDB type and unload expression for a Snowflake type as DESC TABLE prints it."""
    normalised = " ".join(snowflake_type.upper().split())
    for pattern, build in RULES:
        if match := pattern.fullmatch(normalised):
            return build(match)
    raise UnsupportedTypeError(
        f"table {table}: column {column!r} has type {snowflake_type}, which the sync cannot copy exactly. "
        "Exclude the table, or change the column to a supported type (see the type map in sync_project/sync/README.md)."
    )


# DuckDB reports some types under another name than the one we write in DDL.
_DUCKDB_ALIASES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "INT": "INTEGER"}


def duckdb_type_name(duckdb_type: str) -> str:
    """The name DuckDB's catalog (duckdb_columns) uses for a type we create."""
    upper = duckdb_type.upper().replace(" ", "") if duckdb_type.upper().startswith("DECIMAL") else duckdb_type.upper()
    return _DUCKDB_ALIASES.get(upper, upper)


def _decimal(type_name: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", type_name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def widens(old: str, new: str) -> bool:
    """Can a DuckDB column of type `old` be changed to `new` without losing any value it may hold?"""
    old, new = duckdb_type_name(old), duckdb_type_name(new)
    if old == new:
        return True
    integer_digits = {"BIGINT": 19, "HUGEINT": 39}
    old_decimal, new_decimal = _decimal(old), _decimal(new)
    if old == "BIGINT" and new == "HUGEINT":
        return True
    if old == "HUGEINT" and new_decimal == (38, 0):
        # Tables synced before NUMBER(38,0) became DECIMAL(38,0) hold HUGEINT; its values came from a Snowflake
        # NUMBER of at most 38 digits, so they all fit.
        return True
    if old in integer_digits and new_decimal:
        return new_decimal[0] - new_decimal[1] >= integer_digits[old]
    if old_decimal and new_decimal:
        return new_decimal[1] >= old_decimal[1] and new_decimal[0] - new_decimal[1] >= old_decimal[0] - old_decimal[1]
    if old_decimal and old_decimal[1] == 0 and new in integer_digits:
        return old_decimal[0] < integer_digits[new]
    return False
