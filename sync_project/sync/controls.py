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

from sync_project.sync.errors import PermanentError

PREVENT_UNLOAD = "PREVENT_UNLOAD_TO_INTERNAL_STAGES"


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
