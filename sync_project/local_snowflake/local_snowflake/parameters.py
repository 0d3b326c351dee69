"""Parameters at their levels, resolved as Snowflake resolves them.

Snowflake ("Parameters", docs.snowflake.com/en/sql-reference/parameters): an account parameter is set with
`ALTER ACCOUNT SET` by an account administrator; a session parameter has a default, may be set for the account,
overridden for a user (`ALTER USER <name> SET`) and again for a session (`ALTER SESSION SET`), the most specific
level winning; an object parameter set on a user (`PREVENT_UNLOAD_TO_INTERNAL_STAGES`, since the 2025_01 bundle)
overrides the account's value for that user. `SHOW PARAMETERS [LIKE '<pattern>'] IN SESSION | USER [<name>] |
ACCOUNT` answers key, value, default, level (empty for a default), description and type.

An administrator configures the emulator the same way, by SQL through the connector; there is no side door.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from local_snowflake.sqltext import OptionValue, sql_error

Level = Literal["SESSION", "USER", "WAREHOUSE", "ACCOUNT", ""]

# Session parameters with the defaults Snowflake documents; ALTER SESSION also accepts the other documented
# names (access.SESSION_PARAMETERS), which SHOW PARAMETERS does not list here.
SESSION_DEFAULTS: dict[str, OptionValue] = {
    "ABORT_DETACHED_QUERY": False,
    "AUTOCOMMIT": True,
    "CLIENT_RESULT_CHUNK_SIZE": 160,
    "CLIENT_SESSION_KEEP_ALIVE": False,
    "ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION": True,
    "LOCK_TIMEOUT": 43200,
    "QUERY_TAG": "",
    "QUOTED_IDENTIFIERS_IGNORE_CASE": False,
    "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS": 0,
    "STATEMENT_TIMEOUT_IN_SECONDS": 172800,
    "STRICT_JSON_OUTPUT": False,
    "TIMESTAMP_TYPE_MAPPING": "TIMESTAMP_NTZ",
    "TIMEZONE": "America/Los_Angeles",
}
# Object parameters a user (and the account, for every user) may hold.
USER_OBJECT_DEFAULTS: dict[str, OptionValue] = {
    "PREVENT_UNLOAD_TO_INLINE_URL": False,
    "PREVENT_UNLOAD_TO_INTERNAL_STAGES": False,
}
# Object parameters of a warehouse (ALTER WAREHOUSE ... SET), which the account's value also reaches.
WAREHOUSE_DEFAULTS: dict[str, OptionValue] = {
    "MAX_CONCURRENCY_LEVEL": 8,
    "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS": 0,
    "STATEMENT_TIMEOUT_IN_SECONDS": 172800,
}
# Set on the account only.
ACCOUNT_DEFAULTS: dict[str, OptionValue] = {
    "DEFAULT_DDL_COLLATION": "",
    "REQUIRE_STORAGE_INTEGRATION_FOR_STAGE_CREATION": False,
    "REQUIRE_STORAGE_INTEGRATION_FOR_STAGE_OPERATION": False,
}
DEFAULTS = SESSION_DEFAULTS | USER_OBJECT_DEFAULTS | WAREHOUSE_DEFAULTS | ACCOUNT_DEFAULTS
TIMEOUT = "STATEMENT_TIMEOUT_IN_SECONDS"
CHUNK_SIZE = "CLIENT_RESULT_CHUNK_SIZE"
RANGES = {CHUNK_SIZE: (48, 160)}  # documented bounds (MB)


def typed(name: str, value: OptionValue) -> OptionValue:
    """The value as the parameter's type takes it; Snowflake refuses another type (002051-like, as documented
    for a value outside a parameter's domain)."""
    default = DEFAULTS.get(name)
    ok = (
        default is None
        or (isinstance(default, bool) and isinstance(value, bool))
        or (isinstance(default, int) and not isinstance(default, bool) and isinstance(value, int) and value >= 0)
        or (isinstance(default, str) and isinstance(value, str))
    ) and (name not in RANGES or (isinstance(value, int) and RANGES[name][0] <= value <= RANGES[name][1]))
    if not ok:
        raise sql_error(
            f"SQL compilation error:\ninvalid value [{value}] for parameter '{name}'", errno=1008, sqlstate="22023"
        )
    return value


def show_value(value: OptionValue | None) -> str:
    """As SHOW PARAMETERS prints it: booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _type_name(value: OptionValue) -> str:
    return "BOOLEAN" if isinstance(value, bool) else "NUMBER" if isinstance(value, int) else "STRING"


@dataclass
class Parameters:
    """The account's and each user's parameter values (a session's own live in its `Session`)."""

    user_exists: Callable[[str], bool] = lambda _: True
    account: dict[str, OptionValue] = field(default_factory=dict)
    users: dict[str, dict[str, OptionValue]] = field(default_factory=dict)
    warehouses: dict[str, dict[str, OptionValue]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_account(self, values: dict[str, OptionValue]) -> None:
        for name, value in values.items():
            if name not in DEFAULTS:
                raise sql_error(f"SQL compilation error:\ninvalid parameter '{name}'", errno=1008, sqlstate="22023")
            typed(name, value)
        with self._lock:
            self.account.update(values)

    def unset_account(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self.account.pop(name, None)

    def set_user(self, user: str, values: dict[str, OptionValue]) -> None:
        self._known_user(user)
        for name, value in values.items():
            if name not in SESSION_DEFAULTS and name not in USER_OBJECT_DEFAULTS:
                raise sql_error(f"SQL compilation error:\ninvalid parameter '{name}'", errno=1008, sqlstate="22023")
            typed(name, value)
        with self._lock:
            self.users.setdefault(user.upper(), {}).update(values)

    def unset_user(self, user: str, names: Iterable[str]) -> None:
        self._known_user(user)
        with self._lock:
            for name in names:
                self.users.get(user.upper(), {}).pop(name, None)

    def set_warehouse(self, warehouse: str, values: dict[str, OptionValue]) -> None:
        for name, value in values.items():
            if name not in WAREHOUSE_DEFAULTS:
                raise sql_error(f"SQL compilation error:\ninvalid parameter '{name}'", errno=1008, sqlstate="22023")
            typed(name, value)
        with self._lock:
            self.warehouses.setdefault(warehouse.upper(), {}).update(values)

    def unset_warehouse(self, warehouse: str, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self.warehouses.get(warehouse.upper(), {}).pop(name, None)

    def warehouse_value(self, name: str, warehouse: str) -> tuple[OptionValue, Level]:
        with self._lock:
            if name in self.warehouses.get(warehouse.upper(), {}):
                return self.warehouses[warehouse.upper()][name], "WAREHOUSE"
            if name in self.account:
                return self.account[name], "ACCOUNT"
        return DEFAULTS.get(name, ""), ""

    def statement_timeout(self, user: str, session: dict[str, Any], warehouse: str | None) -> tuple[int, str]:
        """Snowflake: set on both the warehouse and the session, the lower non-zero value applies (0: none)."""
        candidates: list[tuple[OptionValue, Level]] = [self.resolve(TIMEOUT, user, session)]
        if warehouse:
            candidates.append(self.warehouse_value(TIMEOUT, warehouse))
        set_ = [(int(v), level or "DEFAULT") for v, level in candidates if isinstance(v, int) and v > 0]
        return min(set_) if set_ else (0, "")

    def _known_user(self, user: str) -> None:
        if not self.user_exists(user):
            raise sql_error(
                f"SQL compilation error:\nUser '{user}' does not exist or not authorized.", errno=2003, sqlstate="02000"
            )

    def resolve(self, name: str, user: str, session: dict[str, Any] | None = None) -> tuple[OptionValue, Level]:
        """The value in force for this user (and session), and the level it comes from."""
        with self._lock:
            if session is not None and name in session:
                return session[name], "SESSION"
            if name in self.users.get(user.upper(), {}):
                return self.users[user.upper()][name], "USER"
            if name in self.account:
                return self.account[name], "ACCOUNT"
        return DEFAULTS.get(name, ""), ""

    def show(self, names: Iterable[str], user: str, session: dict[str, Any] | None, account: bool) -> list[list[str]]:
        """SHOW PARAMETERS rows: key, value, default, level, description, type."""
        rows = []
        for name in sorted(names):
            if account:
                value, level = (self.account[name], "ACCOUNT") if name in self.account else (DEFAULTS[name], "")
            else:
                value, level = self.resolve(name, user, session)
            default = DEFAULTS[name]
            rows.append([name, show_value(value), show_value(default), level, "", _type_name(default)])
        return rows
