"""Controls an administrator may set on the account or the sync's user that refuse a sync, found by asking
Snowflake for the parameter (`SHOW PARAMETERS ... IN USER`), never by matching an error's text: Snowflake does
not document the text or code of these refusals, and either may change.

PREVENT_UNLOAD_TO_INTERNAL_STAGES (an account parameter, and a user parameter since the 2025_01 bundle, the
user's value winning) makes every `COPY INTO` an internal stage fail: `@~` and named internal stages alike. It is
a common data-exfiltration control; an administrator can lift it for the sync's user alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.catalog import list_tables
from sync_project.sync.errors import PermanentError, SyncError
from sync_project.sync.setting_names import SNOWFLAKE_WAREHOUSE
from sync_project.sync.tables import TableRef, quote_identifier, sql_string

PREVENT_UNLOAD = "PREVENT_UNLOAD_TO_INTERNAL_STAGES"
STATEMENT_TIMEOUT = "STATEMENT_TIMEOUT_IN_SECONDS"
TIMEOUT_ERRNO = 630  # "Statement reached its statement or warehouse timeout of N second(s) and was canceled."


@dataclass(frozen=True)
class UnloadPrevented:
    """The parameter is TRUE for `user`, set on `level` (ACCOUNT or USER)."""

    user: str
    level: str

    @property
    def fix(self) -> str:
        return f'ALTER USER "{self.user}" SET {PREVENT_UNLOAD} = FALSE'

    def message(self, what: str) -> str:
        where = "the account" if self.level == "ACCOUNT" else f"the user {self.user}"
        return (
            f"{what}: Snowflake refuses to unload to an internal stage: {PREVENT_UNLOAD} is TRUE for {where}, so "
            f"no COPY INTO @~ or a named internal stage can run as this user. An administrator can allow it for the "
            f"sync's user alone (a user's value wins over the account's): {self.fix}"
        )


class UnloadPreventedError(PermanentError):
    """An unload refused by PREVENT_UNLOAD_TO_INTERNAL_STAGES; `fix` is the statement that lifts it."""

    def __init__(self, prevented: UnloadPrevented, what: str) -> None:
        super().__init__(prevented.message(what))
        self.fix = f"an administrator runs: {prevented.fix}"


def _parameter(conn: Any, name: str, scope: str) -> tuple[str, str] | None:
    """(value, level) of one parameter as SHOW PARAMETERS says it for `scope`; None if Snowflake won't say."""
    try:
        cur = conn.cursor()
        cur.execute(f"SHOW PARAMETERS LIKE '{name}' IN {scope}")
        names = [d[0].lower() for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except SnowflakeError:
        return None
    for row in rows:
        if str(row.get("key", "")).upper() == name:
            return str(row.get("value", "")), str(row.get("level") or "").upper()
    return None


def _scalar(conn: Any, sql: str) -> Any:
    try:
        row = conn.cursor().execute(sql).fetchone()
    except SnowflakeError:
        return None
    return row[0] if row else None


def _size(conn: Any, table: TableRef) -> str:
    try:
        (stats,) = list_tables(conn, table.database, table.schema, names=[table.name])
    except (SyncError, ValueError):
        return "its size unknown"
    rows = "?" if stats.rows is None else f"{stats.rows:,}"
    size = "?" if stats.bytes is None else f"{stats.bytes / 1024**3:,.1f} GiB"
    return f"{rows} rows, {size} in Snowflake"


class StatementTimeoutError(PermanentError):
    """Snowflake stopped a statement at STATEMENT_TIMEOUT_IN_SECONDS (000630): another try would run as long
    and be stopped again, so it is not retried; the message says which timeout, where it is set and what to do."""


def statement_timed_out(conn: Any, table: TableRef, what: str) -> StatementTimeoutError:
    """The error for a statement Snowflake stopped at its timeout: the lower non-zero of the session's value
    (set for the session, the user or the account) and the warehouse's, as Snowflake applies them."""
    candidates = []
    if found := _parameter(conn, STATEMENT_TIMEOUT, "SESSION"):
        level = found[1] or "DEFAULT"
        candidates.append((found[0], "the user" if level == "USER" else level.lower()))
    warehouse = _scalar(conn, "SELECT CURRENT_WAREHOUSE()")
    if warehouse and (found := _parameter(conn, STATEMENT_TIMEOUT, f'WAREHOUSE "{warehouse}"')):
        candidates.append((found[0], f"the warehouse {warehouse}"))
    applied = sorted((int(v), where) for v, where in candidates if v.isdigit() and int(v) > 0)
    setting = (
        f"{STATEMENT_TIMEOUT} = {applied[0][0]:,} (set on {applied[0][1]})" if applied else f"the {STATEMENT_TIMEOUT}"
    )
    user = _scalar(conn, "SELECT CURRENT_USER()") or "<the sync's user>"
    return StatementTimeoutError(
        f"{what}: Snowflake stopped it at {setting}; the table holds {_size(conn, table)}. Not retried: it would "
        f'run as long again. Raise the timeout for the sync\'s user (ALTER USER "{user}" SET {STATEMENT_TIMEOUT} = '
        f"<seconds>; a warehouse's own lower value still applies), use a larger warehouse ({SNOWFLAKE_WAREHOUSE}), or "
        "sync the table incrementally"
    )


def unload_prevented(conn: Any) -> UnloadPrevented | None:
    """Whether the session's user may not unload to internal stages; None when it may, or Snowflake won't say."""
    try:
        cur = conn.cursor()
        cur.execute(f"SHOW PARAMETERS LIKE '{PREVENT_UNLOAD}' IN USER")
        rows = cur.fetchall()
        names = [d[0].lower() for d in cur.description]
        cur.execute("SELECT CURRENT_USER()")
        user_row = cur.fetchone()
    except SnowflakeError:
        return None
    for row in rows:
        found = dict(zip(names, row, strict=True))
        if str(found.get("key", "")).upper() == PREVENT_UNLOAD and str(found.get("value", "")).lower() == "true":
            return UnloadPrevented(str(user_row[0]) if user_row else "", str(found.get("level") or "ACCOUNT").upper())
    return None


def row_access_policy(conn: Any, table: TableRef) -> str | None:
    """The row access policy on a table, if Snowflake says it has one (POLICY_REFERENCES): the sync's role then
    reads only the rows it allows, while the table's own row count still counts them all."""
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT POLICY_DB, POLICY_SCHEMA, POLICY_NAME, POLICY_KIND FROM TABLE("
            f"{quote_identifier(table.database)}.INFORMATION_SCHEMA.POLICY_REFERENCES("
            f"REF_ENTITY_NAME => {sql_string(table.snowflake_sql)}, REF_ENTITY_DOMAIN => 'table'))"
        )
        rows = [row for row in cur.fetchall() if str(row[3]).upper() == "ROW_ACCESS_POLICY"]
    except SnowflakeError:
        return None
    return ".".join(str(part) for part in rows[0][:3]) if rows else None
