"""Declared Snowflake column types, and the DuckDB type the emulator stores each in.

fakesnow stores NUMBER(38,0) as BIGINT (losing digits), forgets VARCHAR and
BINARY lengths, rejects GEOGRAPHY and prints only some columns in DESC TABLE.
The emulator therefore creates tables itself, stores the declared type as
Snowflake would print it, and answers DESC TABLE from that record.
"""

from __future__ import annotations

from sqlglot import exp

from local_snowflake.sqltext import sql_error

T = exp.DataType.Type

_INTEGER_TYPES = {T.INT, T.BIGINT, T.SMALLINT, T.TINYINT, T.BIT}
_FLOAT_TYPES = {T.FLOAT, T.DOUBLE}
_TEXT_TYPES = {T.VARCHAR, T.TEXT, T.NVARCHAR, T.CHAR, T.NCHAR}
_BINARY_TYPES = {T.BINARY, T.VARBINARY}
_NTZ_TYPES = {T.TIMESTAMP, T.TIMESTAMPNTZ, T.DATETIME}

MAX_VARCHAR = 16777216
MAX_BINARY = 8388608


def _params(dtype: exp.DataType) -> list[int]:
    values: list[int] = []
    for p in dtype.expressions:
        node = p.this if isinstance(p, exp.DataTypeParam) else p
        if isinstance(node, exp.Literal) and not node.is_string:
            values.append(int(node.this))
    return values


def declared_type(dtype: exp.DataType) -> str:
    """The type as Snowflake's DESC TABLE prints it: NUMBER(38,0), VARCHAR(10), TIMESTAMP_TZ(9), ..."""
    t = dtype.this
    params = _params(dtype)
    if t == T.DECIMAL or t in _INTEGER_TYPES:
        if t in _INTEGER_TYPES:
            return "NUMBER(38,0)"
        precision = params[0] if params else 38
        scale = params[1] if len(params) > 1 else 0
        return f"NUMBER({precision},{scale})"
    if t in _FLOAT_TYPES:
        return "FLOAT"
    if t in _TEXT_TYPES:
        default = 1 if t in (T.CHAR, T.NCHAR) else MAX_VARCHAR
        return f"VARCHAR({params[0] if params else default})"
    if t in _BINARY_TYPES:
        return f"BINARY({params[0] if params else MAX_BINARY})"
    if t == T.BOOLEAN:
        return "BOOLEAN"
    if t == T.DATE:
        return "DATE"
    if t == T.TIME:
        return f"TIME({params[0] if params else 9})"
    if t in _NTZ_TYPES:
        return f"TIMESTAMP_NTZ({params[0] if params else 9})"
    if t == T.TIMESTAMPTZ:
        return f"TIMESTAMP_TZ({params[0] if params else 9})"
    if t == T.TIMESTAMPLTZ:
        return f"TIMESTAMP_LTZ({params[0] if params else 9})"
    if t in (T.VARIANT, T.OBJECT, T.ARRAY):
        return "ARRAY" if t == T.ARRAY else t.name
    if t == T.GEOGRAPHY:
        return "GEOGRAPHY"
    if t == T.GEOMETRY:
        return "GEOMETRY"
    if t == T.VECTOR and params:
        # Snowflake's VECTOR(FLOAT, n) / VECTOR(INT, n): a type the sync has no exact DuckDB mapping for.
        element = dtype.expressions[0]
        kind = "INT" if isinstance(element, exp.DataType) and element.this in _INTEGER_TYPES else "FLOAT"
        return f"VECTOR({kind}, {params[-1]})"
    raise sql_error(
        f"SQL compilation error:\nthe local Snowflake cannot store type {dtype.sql('snowflake')}",
        errno=2040,
    )


def storage_type(declared: str) -> str:
    """The DuckDB type the emulator keeps a declared Snowflake type in."""
    base = declared.split("(", 1)[0]
    if base == "NUMBER":
        return "DECIMAL" + declared[len("NUMBER") :]
    if base == "VECTOR":
        kind, size = declared[len("VECTOR(") : -1].split(",")
        return f"{'INTEGER' if kind.strip() == 'INT' else 'FLOAT'}[{int(size)}]"
    return {
        "FLOAT": "DOUBLE",
        "VARCHAR": "VARCHAR",
        "BINARY": "BLOB",
        "BOOLEAN": "BOOLEAN",
        "DATE": "DATE",
        "TIME": "TIME",
        "TIMESTAMP_NTZ": "TIMESTAMP",
        "TIMESTAMP_TZ": "TIMESTAMPTZ",
        "TIMESTAMP_LTZ": "TIMESTAMPTZ",
        "VARIANT": "JSON",
        "OBJECT": "JSON",
        "ARRAY": "JSON",
        "GEOGRAPHY": "VARCHAR",
        "GEOMETRY": "VARCHAR",
    }[base]


def declared_from_storage(duckdb_type: str) -> str:
    """Best Snowflake type for a column the emulator did not create itself (e.g. CREATE TABLE AS)."""
    t = duckdb_type.upper()
    if t.startswith("DECIMAL"):
        return "NUMBER" + t[len("DECIMAL") :].replace(" ", "")
    if t in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "NUMBER(38,0)"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return "FLOAT"
    if t == "VARCHAR":
        return f"VARCHAR({MAX_VARCHAR})"
    if t == "BLOB":
        return f"BINARY({MAX_BINARY})"
    if t in ("BOOLEAN", "DATE"):
        return t
    if t.startswith("TIME") and "ZONE" not in t and not t.startswith("TIMESTAMP"):
        return "TIME(9)"
    if t in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return "TIMESTAMP_TZ(9)"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP_NTZ(9)"
    if t == "JSON":
        return "VARIANT"
    return t
