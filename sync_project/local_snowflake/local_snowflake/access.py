"""Who a session is and what it may do: user, role, warehouse, session parameters, grants.

Snowflake is strict here and the emulator must be too, or tests pass that a real
account fails:

- A statement that computes (a query or DML over tables, COPY INTO) needs a current
  warehouse; without one Snowflake answers 000606. Metadata statements (SHOW, DESC,
  LIST, GET, REMOVE, DDL) run in cloud services and need none.
- A role may read tables and yet lack CREATE STAGE on a schema, or READ/WRITE on a
  named stage (003001, "Insufficient privileges"); a stage it has no privilege on
  at all is invisible (002003). The user stage `@~` needs no privilege.
- ALTER SESSION accepts only parameters that exist.

Tests define restricted roles over HTTP (`POST /_local/roles`); every other role
name but the built-in ones is unknown, and signing in with it fails as on Snowflake.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from snowflake.connector.errors import ProgrammingError
from sqlglot import exp

from local_snowflake.account import LOCAL_WAREHOUSE
from local_snowflake.parameters import SESSION_DEFAULTS, Parameters, typed
from local_snowflake.sqltext import ObjectName, OptionValue, is_user_stage, sql_error

WAREHOUSES = frozenset({LOCAL_WAREHOUSE})
FULL_ROLES = frozenset({"ACCOUNTADMIN", "SYSADMIN", "PUBLIC"})
StageAccess = Literal["read", "write"]

# Session parameters Snowflake documents ("Parameters", session and object parameters a session may set).
SESSION_PARAMETERS = frozenset(
    {
        "ABORT_DETACHED_QUERY",
        "AUTOCOMMIT",
        "BINARY_INPUT_FORMAT",
        "BINARY_OUTPUT_FORMAT",
        "CLIENT_MEMORY_LIMIT",
        "CLIENT_METADATA_REQUEST_USE_CONNECTION_CTX",
        "CLIENT_PREFETCH_THREADS",
        "CLIENT_RESULT_CHUNK_SIZE",
        "CLIENT_RESULT_COLUMN_CASE_INSENSITIVE",
        "CLIENT_SESSION_KEEP_ALIVE",
        "CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY",
        "CLIENT_TIMESTAMP_TYPE_MAPPING",
        "DATE_INPUT_FORMAT",
        "DATE_OUTPUT_FORMAT",
        "ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION",
        "ERROR_ON_NONDETERMINISTIC_MERGE",
        "ERROR_ON_NONDETERMINISTIC_UPDATE",
        "GEOGRAPHY_OUTPUT_FORMAT",
        "GEOMETRY_OUTPUT_FORMAT",
        "JDBC_TREAT_DECIMAL_AS_INT",
        "JDBC_TREAT_TIMESTAMP_NTZ_AS_UTC",
        "JDBC_USE_SESSION_TIMEZONE",
        "JSON_INDENT",
        "LOCK_TIMEOUT",
        "MULTI_STATEMENT_COUNT",
        "PYTHON_CONNECTOR_QUERY_RESULT_FORMAT",
        "QUERY_TAG",
        "QUOTED_IDENTIFIERS_IGNORE_CASE",
        "ROWS_PER_RESULTSET",
        "S3_STAGE_VPCE_DNS_NAME",
        "SEARCH_PATH",
        "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS",
        "STATEMENT_TIMEOUT_IN_SECONDS",
        "STRICT_JSON_OUTPUT",
        "TIMESTAMP_DAY_IS_ALWAYS_24H",
        "TIMESTAMP_INPUT_FORMAT",
        "TIMESTAMP_LTZ_OUTPUT_FORMAT",
        "TIMESTAMP_NTZ_OUTPUT_FORMAT",
        "TIMESTAMP_OUTPUT_FORMAT",
        "TIMESTAMP_TYPE_MAPPING",
        "TIMESTAMP_TZ_OUTPUT_FORMAT",
        "TIMEZONE",
        "TIME_INPUT_FORMAT",
        "TIME_OUTPUT_FORMAT",
        "TRANSACTION_ABORT_ON_ERROR",
        "TRANSACTION_DEFAULT_ISOLATION_LEVEL",
        "TWO_DIGIT_CENTURY_START",
        "UNSUPPORTED_DDL_ACTION",
        "USE_CACHED_RESULT",
        "WEEK_OF_YEAR_POLICY",
        "WEEK_START",
    }
)


def known_warehouse(name: str) -> None:
    if name not in WAREHOUSES:
        raise sql_error(
            f"SQL compilation error:\nObject does not exist, or operation cannot be performed. "
            f"Warehouse '{name}' does not exist or not authorized.",
            errno=2043,
            sqlstate="02000",
        )


@dataclass
class Role:
    """A role: full (the built-in ones) or restricted to reading tables plus the stage grants listed."""

    name: str
    create_stage: bool = True
    stages: dict[str, StageAccess] | None = None  # None: every stage; else "DB.SCHEMA.NAME" -> access

    def may_use(self, stage: ObjectName, needs: StageAccess) -> None:
        if self.stages is None or is_user_stage(stage):
            return
        granted = self.stages.get(stage.display())
        if granted is None:
            # No privilege at all: the stage is invisible to this role.
            raise sql_error(
                f"SQL compilation error:\nStage '{stage.display()}' does not exist or not authorized.",
                errno=2003,
                sqlstate="02000",
            )
        if needs == "write" and granted != "write":
            raise sql_error(
                f"SQL access control error:\nInsufficient privileges to operate on stage '{stage.name}'",
                errno=3001,
                sqlstate="42501",
            )

    def may_create_stage(self, database: str, schema: str) -> None:
        if not self.create_stage:
            raise sql_error(
                f"SQL access control error:\nInsufficient privileges to operate on schema '{schema}'",
                errno=3001,
                sqlstate="42501",
            )


@dataclass
class Session:
    user: str
    role: Role
    warehouse: str | None
    parameters: dict[str, Any] = field(default_factory=dict)  # its own, set by ALTER SESSION
    levels: Parameters = field(default_factory=Parameters)  # the account's and the users', shared
    client: str = ""  # CURRENT_CLIENT(): the application and version the login request named
    session_id: int = 0  # CURRENT_SESSION()

    def value(self, name: str) -> OptionValue:
        """The parameter in force in this session: its own, else its user's, else the account's, else default."""
        return self.levels.resolve(name, self.user, self.parameters)[0]

    def require_admin(self, what: str) -> None:
        # Only an account administrator alters the account or another user's parameters.
        if self.role.name != "ACCOUNTADMIN":
            raise sql_error(
                f"SQL access control error:\nInsufficient privileges to operate on {what}", errno=3001, sqlstate="42501"
            )

    def require_warehouse(self) -> None:
        if self.warehouse is None:
            raise sql_error(
                "No active warehouse selected in the current session.  Select an active warehouse with the "
                "'use warehouse' command.\n",
                errno=606,
                sqlstate="57P03",
            )

    def set_parameters(self, values: dict[str, Any]) -> None:
        for key in values:
            if key not in SESSION_PARAMETERS:
                raise sql_error(f"SQL compilation error:\ninvalid parameter '{key}'", errno=1008, sqlstate="22023")
            if key in SESSION_DEFAULTS and values[key] is not None:
                typed(key, values[key])
        self.parameters.update(values)

    def sign_in_parameters(self, values: dict[str, Any]) -> None:
        """The connector's `session_parameters`, sent in the login request: the session starts with them.

        Snowflake does not document what it does with a name it does not know here; the connector adds its own
        (CLIENT_...) ones, so those the emulator does not know are left out rather than refusing the sign-in.
        """
        known = {k.upper(): v for k, v in values.items() if k.upper() in SESSION_PARAMETERS}
        self.set_parameters(known)

    def use_warehouse(self, name: str) -> None:
        known_warehouse(name)
        self.warehouse = name


@dataclass
class Access:
    """The emulator's roles and its live sessions."""

    roles: dict[str, Role] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    parameters: Parameters = field(default_factory=Parameters)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def define_role(self, role: Role) -> None:
        with self._lock:
            self.roles[role.name.upper()] = role

    def clear_roles(self) -> None:
        with self._lock:
            self.roles.clear()

    def role(self, name: str | None) -> Role:
        """The role a sign-in asks for; an unknown one fails the sign-in as Snowflake does (390189)."""
        wanted = (name or "ACCOUNTADMIN").upper()
        if wanted in FULL_ROLES:
            return Role(wanted)
        with self._lock:
            role = self.roles.get(wanted)
        if role is None:
            raise ProgrammingError(
                msg=f"Role '{wanted}' specified in the connect string does not exist or not authorized. Contact "
                "your local system administrator, or attempt to login with another role, e.g. PUBLIC.",
                errno=390189,
                sqlstate="08004",
            )
        return role

    def open(self, token: str, user: str, role: Role, warehouse: str | None) -> Session:
        # Snowflake signs in even with a warehouse that does not exist; the session then has none.
        session = Session(
            user,
            role,
            warehouse.upper() if warehouse and warehouse.upper() in WAREHOUSES else None,
            levels=self.parameters,
        )
        with self._lock:
            self.sessions[token] = session
        return session

    def renamed(self, old: str, new: str) -> None:
        with self._lock:
            if old in self.sessions:
                self.sessions[new] = self.sessions.pop(old)

    def close(self, token: str) -> None:
        with self._lock:
            self.sessions.pop(token, None)

    def session(self, token: str) -> Session:
        with self._lock:
            found = self.sessions.get(token)
        if found is None:
            raise sql_error("Session no longer exists.  New login required to access the service.", errno=390112)
        return found


def needs_warehouse(expression: exp.Expr | None) -> bool:
    """Does a statement fakesnow runs compute over tables (a query or DML), so that Snowflake needs a warehouse?

    An unparsable statement (None) fails in fakesnow with a syntax error, as on Snowflake.
    """
    if expression is None:
        return False
    computes = exp.Select | exp.Union | exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Copy
    if isinstance(expression, exp.Create):
        return expression.args.get("expression") is not None
    return isinstance(expression, computes) and expression.find(exp.Table) is not None
