"""What Snowflake says about tables: DESC TABLE -> columns, SHOW TABLES / INFORMATION_SCHEMA -> figures."""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.errors import PermanentError, TableNotFoundError, UnsupportedTypeError, from_snowflake
from sync_project.sync.tables import TableRef, quote_identifier
from sync_project.sync.types import TypeMapping, map_type


@dataclass(frozen=True)
class Column:
    name: str
    snowflake_type: str
    nullable: bool
    primary_key: bool
    mapping: TypeMapping

    @property
    def duckdb_type(self) -> str:
        return self.mapping.duckdb_type

    @property
    def unload_expression(self) -> str:
        """`<expr> AS "<name>"`: every column aliased with its exact name."""
        quoted = quote_identifier(self.name)
        return f"{self.mapping.unload_expression.format(quoted)} AS {quoted}"


@dataclass(frozen=True)
class TableStats:
    """One row of a schema listing: figures as Snowflake reports them."""

    schema: str
    name: str
    kind: str  # TABLE or VIEW
    rows: int | None
    bytes: int | None
    last_altered: dt.datetime | None

    @property
    def stamp(self) -> SnowflakeStamp:
        """Its figures as the change sensor compares them."""
        return SnowflakeStamp(
            self.rows if self.rows is not None else -1,
            self.bytes if self.bytes is not None else -1,
            self.last_altered.isoformat() if self.last_altered else "",
        )


class SnowflakeStamp(NamedTuple):
    """Snowflake's rows, bytes and LAST_ALTERED of a table at one moment (-1, -1, "" when unknown): a table
    whose stamp moved since its last sync changed."""

    rows: int = -1
    bytes: int = -1
    last_altered: str = ""


def _is_view(conn: Any, table: TableRef) -> bool:
    pattern = table.name.replace("'", "''")
    cur = conn.cursor()
    cur.execute(
        f"SHOW VIEWS LIKE '{pattern}' IN SCHEMA {quote_identifier(table.database)}.{quote_identifier(table.schema)}"
    )
    names = [d[0].lower() for d in cur.description]
    return any(dict(zip(names, r, strict=True)).get("name") == table.name for r in cur.fetchall())


def case_twins(names: list[str]) -> list[tuple[str, ...]]:
    """Groups of names equal but for case (`"id"`, `"ID"`), in the order they come."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.lower(), []).append(name)
    return [tuple(group) for group in groups.values() if len(group) > 1]


def describe_table(conn: Any, table: TableRef, stats: TableStats | None = None) -> list[Column]:
    """Columns of a table with their mapped types; a clear PermanentError if the table is missing or unmappable.

    Views are refused: the sync mirrors tables, whose row counts and change times Snowflake reports. `stats`,
    when the caller has just read them, say whether it is a view without another round trip.
    """
    try:
        if stats.kind == "VIEW" if stats is not None else _is_view(conn, table):
            raise PermanentError(
                f"{table} is a view. The sync mirrors tables (it checks their row counts and change times); "
                "materialize the view into a table in Snowflake and register that."
            )
        cur = conn.cursor()
        cur.execute(f"DESC TABLE {table.snowflake_sql}")
        names = [d[0].lower() for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except SnowflakeError as e:
        if getattr(e, "errno", None) in (2003, 2043):
            raise TableNotFoundError(
                f"table {table} does not exist in Snowflake, or this role cannot see it. Check the name "
                "(quoted parts keep their case: WORKSPACE.data is not WORKSPACE.DATA) and the role's grants."
            ) from None
        raise from_snowflake(e, f"describing {table}") from None
    if not rows:
        raise PermanentError(f"table {table} has no columns; nothing to sync")
    columns: list[Column] = []
    refused: list[str] = []
    for row in rows:
        if str(row.get("kind", "COLUMN")).upper() != "COLUMN":
            continue  # virtual columns are computed, not stored
        try:
            mapping = map_type(row["type"], row["name"], str(table))
        except UnsupportedTypeError:
            refused.append(f"{row['name']!r} ({row['type']})")
            continue
        columns.append(
            Column(
                name=row["name"],
                snowflake_type=row["type"],
                nullable=row.get("null?", "Y") == "Y",
                primary_key=row.get("primary key", "N") == "Y",
                mapping=mapping,
            )
        )
    if twins := case_twins([c.name for c in columns]):
        named = "; ".join(" and ".join(repr(n) for n in group) for group in twins)
        raise PermanentError(
            f"table {table}: columns {named} differ only in case. Snowflake keeps quoted names apart; DuckDB's "
            "names ignore case, so one DuckDB table cannot hold them both. Rename one of each in Snowflake "
            '(ALTER TABLE ... RENAME COLUMN "id" TO "id_2"), or register a table that selects them under '
            "distinct names."
        )
    if refused:
        # Name every such column at once, so one fix round is enough.
        raise UnsupportedTypeError(
            f"table {table}: column(s) {', '.join(refused)} have types the sync cannot copy exactly. "
            "Exclude the table, or change the columns to supported types "
            "(see the type map in sync_project/sync/README.md)."
        )
    return columns


def list_tables(
    conn: Any, database: str, schema: str, like: str | None = None, names: list[str] | None = None
) -> list[TableStats]:
    """Tables of a schema (or only `names` of it) with rows, bytes and LAST_ALTERED, in one INFORMATION_SCHEMA
    query.

    LAST_ALTERED over-reports (DDL and maintenance bump it too), which only ever causes an extra sync.
    """
    only = f" AND TABLE_NAME IN ({', '.join(['%s'] * len(names))})" if names else ""
    try:
        cur = conn.cursor()
        cur.execute(
            f"SELECT TABLE_NAME, TABLE_TYPE, ROW_COUNT, BYTES, LAST_ALTERED "
            f"FROM {quote_identifier(database)}.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s{only}",
            (schema, *(names or [])),
        )
        found = [
            TableStats(
                schema=schema,
                name=name,
                kind="VIEW" if "VIEW" in str(kind).upper() else "TABLE",
                rows=None if rows is None else int(rows),
                bytes=None if size is None else int(size),
                last_altered=altered,
            )
            for name, kind, rows, size, altered in cur.fetchall()
        ]
    except SnowflakeError as e:
        raise from_snowflake(e, f"listing tables of {database}.{schema}") from None
    if like:
        found = [t for t in found if matches_like(t.name, like)]
    return sorted(found, key=lambda t: t.name)


def matches_like(name: str, like: str) -> bool:
    """Snowflake's LIKE as SHOW TABLES LIKE uses it: % and _ wildcards, backslash escapes, no case."""
    parts: list[str] = []
    chars = iter(like)
    for ch in chars:
        if ch == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.fullmatch("".join(parts), name, re.IGNORECASE | re.DOTALL) is not None


def list_schemas(conn: Any, database: str) -> list[str]:
    """The database's schemas this role can see, as Snowflake stores their names."""
    cur = conn.cursor()
    cur.execute(f"SHOW SCHEMAS IN DATABASE {quote_identifier(database)}")
    names = [d[0].lower() for d in cur.description]
    return [str(dict(zip(names, r, strict=True))["name"]) for r in cur.fetchall()]


def table_stats(conn: Any, table: TableRef) -> TableStats | None:
    """Snowflake's current rows, bytes and LAST_ALTERED for one table (None if it is gone)."""
    return RunFigures([table]).of(conn, table)


class RunFigures:
    """Snowflake's figures for the tables of one run, read by one query per schema when its first table asks.

    A statement per table costs a round trip (100-300 ms on an account) that a small table's rows do not
    justify. Figures read at the start of a run are older by the time a later table is read; they only ever
    say a table changed when it did not (one extra sync), or warn that its rows moved meanwhile, which they did.
    """

    def __init__(self, tables: list[TableRef]) -> None:
        self._names: dict[tuple[str, str], list[str]] = {}
        for table in tables:
            self._names.setdefault((table.database, table.schema), []).append(table.name)
        self._read: dict[tuple[str, str], dict[str, TableStats]] = {}
        self._lock = threading.Lock()

    def of(self, conn: Any, table: TableRef) -> TableStats | None:
        """The table's figures (None if Snowflake lists no such table); listing errors are raised each time."""
        schema = (table.database, table.schema)
        with self._lock:
            if schema not in self._read:
                names = self._names.get(schema, [table.name])
                found = list_tables(conn, table.database, table.schema, names=names)
                self._read[schema] = {t.name: t for t in found}
            return self._read[schema].get(table.name)
