"""QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE in force: Snowflake reads a quoted name in upper case, `"data"` as DATA.

Tables and views are then looked up by their upper-case name (twins.py), which refuses `"data"` when only a
table `data` exists. Schemas and columns live in DuckDB, which finds `data` for DATA; so a quoted lower- or
mixed-case schema or column name that exists only in that case is refused here, as Snowflake would.
"""

from __future__ import annotations

import duckdb

from local_snowflake.access import Session
from local_snowflake.sqltext import quoted_identifiers, sql_error, strip_comments

_NAMED = (
    "SELECT kind FROM (SELECT 'object' AS kind, schema_name AS name FROM duckdb_schemas() "
    "UNION ALL SELECT 'column', column_name FROM duckdb_columns()) WHERE name = ? LIMIT 1"
)


def refuse_names_that_fold(session: Session, duck: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Call only with the parameter TRUE in `session`."""
    for name in {n for n in quoted_identifiers(strip_comments(sql)) if n != n.upper()}:
        with duck.cursor() as cursor:
            found = cursor.execute(_NAMED, [name]).fetchone()
        if found and found[0] == "column":
            raise sql_error(f"SQL compilation error:\ninvalid identifier '\"{name.upper()}\"'", errno=904)
        if found:
            raise sql_error(
                f"SQL compilation error:\nObject '{name.upper()}' does not exist or not authorized.", errno=2003
            )
