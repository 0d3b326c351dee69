"""What the emulator knows about tables beyond what fakesnow keeps (the views that print it: info_views.py).

Declared column types (so DESC TABLE prints what CREATE TABLE said) and true
table statistics (rows, bytes, created, last altered), both stored in a small
DuckDB database inside the data folder so they survive restarts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
from sqlglot import exp

from local_snowflake import twins
from local_snowflake.coltypes import declared_from_storage, declared_type, storage_type
from local_snowflake.sqltext import ObjectName, sql_error

META = "_emulator"

META_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {META}.main.declared_columns (
    database_name VARCHAR, schema_name VARCHAR, table_name VARCHAR,
    column_name VARCHAR, declared_type VARCHAR,
    PRIMARY KEY (database_name, schema_name, table_name, column_name)
);
CREATE TABLE IF NOT EXISTS {META}.main.table_stats (
    database_name VARCHAR, schema_name VARCHAR, table_name VARCHAR,
    row_count BIGINT, bytes BIGINT, created_on TIMESTAMPTZ, last_altered TIMESTAMPTZ,
    PRIMARY KEY (database_name, schema_name, table_name)
);
"""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(obj: ObjectName) -> str:
    return f"{quote(obj.database)}.{quote(obj.schema)}.{quote(obj.name)}"


def _identifier(node: exp.Expr | None) -> str:
    if (part := twins.identifier_part(node)) is not None:
        return part
    if node is None:
        raise sql_error("SQL compilation error:\nmissing identifier")
    return node.name.upper()


def object_name(table: exp.Table, database: str | None, schema: str | None) -> ObjectName:
    """Resolve a sqlglot table reference the way Snowflake does (unquoted parts upper-cased)."""
    db = _identifier(table.args.get("catalog")) if table.args.get("catalog") else database
    sch = _identifier(table.args.get("db")) if table.args.get("db") else schema
    if not db or not sch:
        raise sql_error(
            "SQL compilation error:\nCannot resolve the table without a current database and schema.",
            errno=90105,
            sqlstate="22000",
        )
    return ObjectName(db, sch, _identifier(table.this))


def table_exists(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> bool:
    row = duck.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
        [obj.database, obj.schema, obj.name],
    ).fetchone()
    return bool(row and row[0])


def not_found(obj: ObjectName) -> Exception:
    shown = ObjectName(obj.database, obj.schema, twins.snowflake_name(obj.name))
    return sql_error(
        f"SQL compilation error:\nTable '{shown.display()}' does not exist or not authorized.",
        errno=2003,
        sqlstate="42S02",
    )


def _column_definitions(
    schema_node: exp.Schema, default_collation: str
) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """(name, declared type, NOT NULL) per column of a CREATE TABLE, and its primary key's columns."""
    columns: list[tuple[str, str, bool]] = []
    primary_key: list[str] = []
    for item in schema_node.expressions:
        if isinstance(item, exp.ColumnDef):
            kind = item.args.get("kind")
            if not isinstance(kind, exp.DataType):
                raise sql_error(f"SQL compilation error:\ncolumn {item.name} has no type")
            not_null = any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in item.constraints)
            name = _identifier(item.this)
            if any(isinstance(c.kind, exp.PrimaryKeyColumnConstraint) for c in item.constraints):
                primary_key.append(name)
            collation = next(
                (c.kind.this.name for c in item.constraints if isinstance(c.kind, exp.CollateColumnConstraint)),
                default_collation,
            )
            declared = declared_type(kind)
            if collation and declared.startswith("VARCHAR"):
                declared += f" COLLATE '{collation}'"
            columns.append((name, declared, not_null))
        elif isinstance(item, exp.PrimaryKey):
            primary_key.extend(_identifier(e if isinstance(e, exp.Identifier) else e.this) for e in item.expressions)
    return columns, primary_key


def create_table(
    duck: duckdb.DuckDBPyConnection,
    create: exp.Create,
    database: str | None,
    schema: str | None,
    default_collation: str = "",
) -> str:
    """Run a CREATE TABLE with column definitions: store declared types, create the DuckDB table.

    A text column's collation (its own `COLLATE '<spec>'`, else the account's DEFAULT_DDL_COLLATION) is part of
    its declared type, as DESC TABLE prints it (`VARCHAR(16777216) COLLATE 'en-ci'`); the values are stored as
    they are."""
    schema_node = create.this
    assert isinstance(schema_node, exp.Schema)
    table = schema_node.this
    assert isinstance(table, exp.Table)
    obj = object_name(table, database, schema)
    columns, primary_key = _column_definitions(schema_node, default_collation)
    exists = table_exists(duck, twins.stored(duck, obj))
    if exists and create.args.get("exists"):
        return f"{obj.name} already exists, statement succeeded."
    if exists and not create.args.get("replace"):
        raise sql_error(f"SQL compilation error:\nObject '{obj.display()}' already exists.", errno=2002)
    # Columns (and the table) that differ from another only in case are stored under marked names (twins.py).
    stored_names = twins.column_twins([name for name, _, _ in columns])
    by_name = dict(zip([name for name, _, _ in columns], stored_names, strict=True))
    body = [
        f"{quote(stored)} {storage_type(decl.split(' COLLATE ')[0])}{' NOT NULL' if not_null else ''}"
        for stored, (_, decl, not_null) in zip(stored_names, columns, strict=True)
    ]
    if primary_key:
        body.append(f"PRIMARY KEY ({', '.join(quote(by_name.get(c, c)) for c in primary_key)})")
    target = twins.name_to_create(duck, obj)
    duck.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(obj.database)}.{quote(obj.schema)}")
    duck.execute(f"CREATE OR REPLACE TABLE {qualified(target)} ({', '.join(body)})")
    forget_table(duck, target)
    duck.executemany(
        f"INSERT INTO {META}.main.declared_columns VALUES (?, ?, ?, ?, ?)",
        [
            [target.database, target.schema, target.name, stored, decl]
            for stored, (_, decl, _) in zip(stored_names, columns, strict=True)
        ],
    )
    refresh_stats(duck, target, created=True)
    return f"Table {obj.name} successfully created."


def record_altered_columns(
    duck: duckdb.DuckDBPyConnection, alter: exp.Alter, database: str | None, schema: str | None
) -> None:
    """After fakesnow ran ALTER TABLE ... ADD COLUMN / ALTER COLUMN ... SET DATA TYPE, keep the declared types."""
    table = alter.this
    if not isinstance(table, exp.Table):
        return
    obj = object_name(table, database, schema)
    for action in alter.args.get("actions") or []:
        dtype = None
        if isinstance(action, exp.ColumnDef) and isinstance(action.args.get("kind"), exp.DataType):
            dtype = action.args["kind"]
        elif isinstance(action, exp.AlterColumn) and isinstance(action.args.get("dtype"), exp.DataType):
            dtype = action.args["dtype"]
            # fakesnow may keep its own storage type; make DuckDB hold the declared one.
            duck.execute(
                f"ALTER TABLE {qualified(obj)} ALTER COLUMN {quote(_identifier(action.this))} "
                f"TYPE {storage_type(declared_type(dtype))}"
            )
        if dtype is not None:
            duck.execute(
                f"INSERT OR REPLACE INTO {META}.main.declared_columns VALUES (?, ?, ?, ?, ?)",
                [obj.database, obj.schema, obj.name, _identifier(action.this), declared_type(dtype)],
            )


def forget_table(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> None:
    # By the Snowflake name: after a DROP the stored name of a twin is no longer known.
    for meta_table in ("declared_columns", "table_stats"):
        duck.execute(
            f"DELETE FROM {META}.main.{meta_table} WHERE database_name = ? AND schema_name = ? "
            f"AND {twins.DECODE_SQL.format('table_name')} = ?",
            [obj.database, obj.schema, twins.snowflake_name(obj.name)],
        )


def _columns(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> list[tuple[str, str, bool]]:
    return [
        (r[0], r[1], bool(r[2]))
        for r in duck.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [obj.database, obj.schema, obj.name],
        ).fetchall()
    ]


_VARIABLE_WIDTH = ("VARCHAR", "BLOB", "JSON")
_FIXED_WIDTH = {"BOOLEAN": 1, "DATE": 4, "TIME": 8, "DOUBLE": 8, "BIGINT": 8, "INTEGER": 4, "HUGEINT": 16}


def refresh_stats(duck: duckdb.DuckDBPyConnection, obj: ObjectName, created: bool = False) -> None:
    """Recount rows and bytes of a table that just changed and stamp LAST_ALTERED."""
    if not table_exists(duck, obj):
        forget_table(duck, obj)
        return
    terms = ["0"]
    for name, dtype, _ in _columns(duck, obj):
        col = quote(name)
        if dtype == "BLOB":
            terms.append(f"coalesce(sum(octet_length({col})), 0)")
        elif dtype in _VARIABLE_WIDTH:
            terms.append(f"coalesce(sum(strlen({col}::VARCHAR)), 0)")
        else:
            width = _FIXED_WIDTH.get(dtype, 16 if dtype.startswith(("DECIMAL", "TIMESTAMP")) else 8)
            terms.append(f"{width} * count({col})")
    # One aggregate per column, added up here: a 1,000-term sum in SQL would nest past DuckDB's depth limit.
    row = duck.execute(f"SELECT count(*), {', '.join(terms)} FROM {qualified(obj)}").fetchone()
    assert row is not None
    row = (row[0], sum(int(v or 0) for v in row[1:]))
    now = dt.datetime.now(dt.UTC)
    duck.execute(
        f"""
        INSERT INTO {META}.main.table_stats VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (database_name, schema_name, table_name) DO UPDATE SET
            row_count = excluded.row_count, bytes = excluded.bytes, last_altered = excluded.last_altered,
            created_on = CASE WHEN ? THEN excluded.created_on ELSE table_stats.created_on END
        """,
        [obj.database, obj.schema, obj.name, row[0], int(row[1]), now, now, created],
    )


DESC_COLUMNS = [
    "name",
    "type",
    "kind",
    "null?",
    "default",
    "primary key",
    "unique key",
    "check",
    "expression",
    "comment",
    "policy name",
    "privacy domain",
]


def desc_table_rows(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> list[list[Any]]:
    """DESC TABLE rows, as Snowflake prints them, from declared types (or derived ones)."""
    obj = twins.stored(duck, obj)
    is_view = duck.execute(
        "SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND view_name = ?",
        [obj.database, obj.schema, obj.name],
    ).fetchone()
    if not table_exists(duck, obj) and not (is_view and is_view[0]):
        raise not_found(obj)
    declared = dict(
        duck.execute(
            f"SELECT column_name, declared_type FROM {META}.main.declared_columns "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [obj.database, obj.schema, obj.name],
        ).fetchall()
    )
    pk_row = duck.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [obj.database, obj.schema, obj.name],
    ).fetchone()
    primary_key = set(pk_row[0]) if pk_row else set()
    if is_view and is_view[0]:
        cols = [
            (r[0], r[1], True)
            for r in duck.execute(f"DESCRIBE SELECT * FROM {qualified(obj)}").fetchall()  # view columns
        ]
    else:
        cols = _columns(duck, obj)
    return [
        [
            twins.snowflake_name(name),
            declared.get(name) or declared_from_storage(dtype),
            "COLUMN",
            "Y" if nullable else "N",
            None,
            "Y" if name in primary_key else "N",
            "N",
            None,
            None,
            None,
            None,
            None,
        ]
        for name, dtype, nullable in cols
    ]
