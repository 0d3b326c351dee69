"""Names that differ only in case: `"data"` beside DATA, a column `"id"` beside ID.

Snowflake keeps them apart (a quoted name is exact; an unquoted one is upper-cased), but DuckDB, which holds the
emulator's tables, resolves every name without case, quoted or not. So the second of two such names is stored
under a marked name (`~twin~1~data`), every reference to a table is resolved exactly as Snowflake resolves it and
pointed at the stored name, and every place that prints a name (DESC TABLE, SHOW TABLES, INFORMATION_SCHEMA)
prints it unmarked. A reference whose exact name does not exist is refused, as Snowflake refuses it, even when
DuckDB would have found another table that differs only in case.

With `QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE` in the session Snowflake reads a quoted name in upper case
(`"data"` is DATA): `IGNORE_CASE` carries that into the transform of each statement.

Columns that differ only in case can be created and described; a statement that reads such a table is refused
with a message that says why, since pointing each column reference at its stored name needs a resolver of every
column's scope that the emulator does not have.
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from local_snowflake.sqltext import ObjectName, sql_error

MARK = "~twin~"
_MARKED = re.compile(r"^~twin~\d+~")
# The same rule in SQL, for the views that print names.
DECODE_SQL = "regexp_replace({}, '^~twin~[0-9]+~', '')"

IGNORE_CASE: contextvars.ContextVar[bool] = contextvars.ContextVar("quoted_identifiers_ignore_case", default=False)


def snowflake_name(stored: str) -> str:
    """The name Snowflake would print for a stored name."""
    return _MARKED.sub("", stored)


def marked(name: str, taken: list[str]) -> str:
    """A stored name for `name` that differs, ignoring case, from every name in `taken`."""
    folded = {t.casefold() for t in taken}
    k = 1
    while f"{MARK}{k}~{name}".casefold() in folded:
        k += 1
    return f"{MARK}{k}~{name}"


def column_twins(names: list[str]) -> list[str]:
    """Stored names for a table's columns: each second or later name that differs only in case is marked."""
    stored: list[str] = []
    for name in names:
        stored.append(marked(name, stored) if any(s.casefold() == name.casefold() for s in stored) else name)
    return stored


_RELATIONS = f"""
SELECT r.name, EXISTS (
    SELECT 1 FROM duckdb_columns() c WHERE c.database_name = r.database_name AND c.schema_name = r.schema_name
    AND c.table_name = r.name AND starts_with(c.column_name, '{MARK}'))
FROM (SELECT database_name, schema_name, table_name AS name FROM duckdb_tables()
      UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()) r
WHERE lower(r.database_name) = lower(?) AND lower(r.schema_name) = lower(?)
  AND lower({DECODE_SQL.format("r.name")}) = lower(?)
"""


_RELATION_KINDS = ("TABLE", "VIEW")


@dataclass(frozen=True)
class Relation:
    """What DuckDB holds under one Snowflake name: its stored name, if any, and the names it folds with."""

    stored: str | None
    has_twin_columns: bool
    folds_with: list[str]


def look_up(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> Relation:
    with duck.cursor() as cursor:
        rows = cursor.execute(_RELATIONS, [obj.database, obj.schema, obj.name]).fetchall()
    exact = [(name, twins) for name, twins in rows if snowflake_name(name) == obj.name]
    return Relation(
        stored=exact[0][0] if exact else None,
        has_twin_columns=bool(exact and exact[0][1]),
        folds_with=[name for name, _ in rows],
    )


def stored(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> ObjectName:
    """`obj` under the name DuckDB holds it by, or unchanged when it does not exist (callers say not found)."""
    found = look_up(duck, obj).stored
    return ObjectName(obj.database, obj.schema, found) if found and found != obj.name else obj


def name_to_create(duck: duckdb.DuckDBPyConnection, obj: ObjectName) -> ObjectName:
    """Where a new table named `obj` is stored: its own name, unless another table differs from it only in case."""
    found = look_up(duck, obj)
    if found.stored is not None or not found.folds_with:
        return ObjectName(obj.database, obj.schema, found.stored or obj.name)
    return ObjectName(obj.database, obj.schema, marked(obj.name, found.folds_with))


def refuse_twin_columns(obj: ObjectName) -> Exception:
    return sql_error(
        f"SQL compilation error:\nThe embedded Snowflake cannot read table '{obj.display()}': some of its "
        "columns differ only in case, which DuckDB (where the emulator keeps tables) cannot tell apart. "
        "Snowflake can; rename the columns to read it here.",
        errno=1003,
    )


def identifier_part(node: exp.Expr | None) -> str | None:
    """One part of a name as Snowflake resolves it in this session: quoted exactly (upper-cased when
    QUOTED_IDENTIFIERS_IGNORE_CASE is TRUE), unquoted upper-cased; None if it is not a plain identifier."""
    if not isinstance(node, exp.Identifier):
        return None
    text = str(node.this)
    return text if node.quoted and not IGNORE_CASE.get() else text.upper()


def _upper_quoted(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Identifier) and node.quoted:
        node.set("this", str(node.this).upper())
    return node


def resolve_tables(
    expression: exp.Expr, duck: duckdb.DuckDBPyConnection, database: str | None, schema: str | None
) -> exp.Expr:
    """Point each table reference at the name DuckDB stores it by, as Snowflake resolves it (see the module)."""
    if isinstance(expression, exp.Use | exp.Show | exp.Command) or (
        isinstance(expression, exp.Create | exp.Drop)
        and str(expression.args.get("kind")).upper() not in _RELATION_KINDS
    ):
        return expression
    if IGNORE_CASE.get():
        expression = expression.transform(_upper_quoted, copy=False)
    ctes = {cte.alias_or_name.casefold() for cte in expression.find_all(exp.CTE)}
    created = (
        expression.this.this
        if isinstance(expression, exp.Create) and isinstance(expression.this, exp.Schema)
        else expression.this
    )
    for table in list(expression.find_all(exp.Table)):
        name = identifier_part(table.args.get("this"))
        db = identifier_part(table.args.get("catalog")) or database
        sch = identifier_part(table.args.get("db")) or schema
        if not (name and db and sch) or (not table.args.get("db") and name.casefold() in ctes):
            continue
        obj = ObjectName(db, sch, name)
        if isinstance(expression, exp.Create) and table is created:
            target = name_to_create(duck, obj).name
        else:
            found = look_up(duck, obj)
            if found.stored is None:
                if found.folds_with:
                    raise sql_error(
                        f"SQL compilation error:\nObject '{obj.display()}' does not exist or not authorized.",
                        errno=2003,
                        sqlstate="42S02",
                    )
                continue
            if found.has_twin_columns and not isinstance(expression, exp.Drop | exp.Describe):
                raise refuse_twin_columns(obj)
            target = found.stored
        if target != str(table.this.this):
            table.set("this", exp.to_identifier(target, quoted=True))
    return expression
