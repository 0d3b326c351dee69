"""QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE in force: Snowflake reads a quoted name in upper case, `"data"` as DATA.

The emulator keeps names in DuckDB, which cannot hold `"data"` and DATA side by side, so it cannot look DATA
up; instead it refuses, as Snowflake would, a quoted lower- or mixed-case name that exists only in that case.
"""

from __future__ import annotations

import duckdb

from local_snowflake.access import Session
from local_snowflake.sqltext import quoted_identifiers, sql_error, strip_comments

_NAMED = (
    "SELECT kind FROM (SELECT 'object' AS kind, table_name AS name FROM duckdb_tables() "
    "UNION ALL SELECT 'object', schema_name FROM duckdb_schemas() "
    "UNION ALL SELECT 'object', view_name FROM duckdb_views() "
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
