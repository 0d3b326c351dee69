"""Statements about the session, the account and its parameters: ALTER SESSION/ACCOUNT/USER/WAREHOUSE, SHOW
PARAMETERS, USE WAREHOUSE, the context functions and SYSTEM$CANCEL_ALL_QUERIES (see parameters.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from local_snowflake.access import known_warehouse
from local_snowflake.account import LOCAL_ACCOUNT
from local_snowflake.parameters import (
    DEFAULTS,
    SESSION_DEFAULTS,
    USER_OBJECT_DEFAULTS,
    WAREHOUSE_DEFAULTS,
    show_value,
)
from local_snowflake.sqltext import (
    OptionValue,
    normalise_identifier,
    parse_options,
    split_dotted,
    sql_error,
)
from local_snowflake.statement import DONE, Answer, Result, Statement, message


def alter_session(st: Statement) -> Result:
    def unset(names: list[str]) -> None:
        st.session.set_parameters(dict.fromkeys(names))  # refuses a name that is no parameter
        for name in names:
            st.session.parameters.pop(name, None)

    return _set_or_unset(st, st.session.set_parameters, unset)


def _names(text: str) -> list[str]:
    return [n.strip().upper() for n in text.split(",") if n.strip()]


def _setting(st: Statement) -> bool:
    return bool(st.match.group("verb").upper() == "SET")


def _altered(st: Statement) -> list[str]:
    """The parameter names an ALTER ... SET or UNSET names."""
    return list(parse_options(st.rest)) if _setting(st) else _names(st.rest)


def _set_or_unset(
    st: Statement, set_values: Callable[[dict[str, OptionValue]], None], unset: Callable[[list[str]], None]
) -> Result:
    if _setting(st):
        set_values(parse_options(st.rest))
    else:
        unset(_names(st.rest))
    return message(DONE)


def alter_account(st: Statement) -> Result:
    st.session.require_admin("account")
    return _set_or_unset(st, st.session.levels.set_account, st.session.levels.unset_account)


def alter_user(st: Statement) -> Result:
    user = normalise_identifier(st.match.group("user"))
    if user.upper() != st.session.user.upper() or any(name in USER_OBJECT_DEFAULTS for name in _altered(st)):
        # A user may set its own session defaults (Snowflake's docs), never lift a control set on it.
        st.session.require_admin(f"user '{user}'")
    levels = st.session.levels
    return _set_or_unset(st, lambda values: levels.set_user(user, values), lambda names: levels.unset_user(user, names))


def alter_warehouse(st: Statement) -> Result:
    warehouse = normalise_identifier(st.match.group("warehouse"))
    st.session.require_admin(f"warehouse '{warehouse}'")
    known_warehouse(warehouse)
    levels = st.session.levels
    return _set_or_unset(
        st,
        lambda values: levels.set_warehouse(warehouse, values),
        lambda names: levels.unset_warehouse(warehouse, names),
    )


def show_parameters(st: Statement) -> Result:
    scope = (st.match.group("scope") or "SESSION").upper()
    columns = [(c, "text") for c in ("key", "value", "default", "level", "description", "type")]
    like = st.match.group("like")

    def chosen(names: Iterable[str]) -> list[str]:
        return [n for n in names if not like or re.fullmatch(like.replace("%", ".*").replace("_", "."), n, re.I)]

    if scope == "WAREHOUSE":
        warehouse = normalise_identifier(st.match.group("user") or "")
        known_warehouse(warehouse)
        rows = []
        for name in chosen(sorted(WAREHOUSE_DEFAULTS)):
            value, level = st.session.levels.warehouse_value(name, warehouse)
            rows.append([name, show_value(value), show_value(DEFAULTS[name]), level, "", "NUMBER"])
        return Result(columns, rows)
    user = normalise_identifier(st.match.group("user")) if st.match.group("user") else st.session.user
    if user.upper() != st.session.user.upper():
        st.session.require_admin(f"user '{user}'")
    names = {
        "SESSION": SESSION_DEFAULTS,
        "USER": SESSION_DEFAULTS | USER_OBJECT_DEFAULTS,
        "ACCOUNT": DEFAULTS,
    }[scope]
    session = st.session.parameters if scope == "SESSION" else None
    return Result(columns, st.session.levels.show(chosen(names), user, session, account=scope == "ACCOUNT"))


def use_warehouse(st: Statement) -> Result:
    parts, _ = split_dotted(st.rest.strip())
    st.session.use_warehouse(normalise_identifier(parts[0]) if parts else "")
    return message(DONE)


# What CURRENT_VERSION() answers: a Snowflake release number (major.minor.patch), as clients parse it.
SNOWFLAKE_VERSION = "9.40.1"
# The emulator's stages stand for Google Cloud Storage, so its region is a GCP one (Snowflake's region ids).
REGION = "GCP_US_CENTRAL1"


def session_context(st: Statement) -> Result:
    """Context functions: answered from the session in cloud services, without a warehouse, as Snowflake does
    (fakesnow has no CURRENT_WAREHOUSE, CURRENT_VERSION, ...). Clients call several on connect
    (snowflake-sqlalchemy's dialect asks for CURRENT_VERSION())."""
    names = [n.strip().split("(")[0].upper() for n in st.rest.split(",")]
    roles = sorted({st.session.role.name, "PUBLIC"})
    values: dict[str, Any] = {
        "CURRENT_WAREHOUSE": st.session.warehouse,
        "CURRENT_ROLE": st.session.role.name,
        "CURRENT_USER": st.session.user,
        "CURRENT_DATABASE": st.db,
        "CURRENT_SCHEMA": st.schema if st.db else None,
        "CURRENT_VERSION": SNOWFLAKE_VERSION,
        "CURRENT_ACCOUNT": LOCAL_ACCOUNT.upper(),
        "CURRENT_ACCOUNT_NAME": LOCAL_ACCOUNT.upper(),
        "CURRENT_ORGANIZATION_NAME": "LOCAL",
        "CURRENT_REGION": REGION,
        "CURRENT_CLIENT": st.session.client,
        "CURRENT_SESSION": str(st.session.session_id),
        "CURRENT_STATEMENT": st.sql,
        "CURRENT_TRANSACTION": None,
        "CURRENT_IP_ADDRESS": "127.0.0.1",
        "CURRENT_AVAILABLE_ROLES": json.dumps(roles),
        "CURRENT_SECONDARY_ROLES": json.dumps({"roles": "", "value": ""}),
        "CURRENT_SCHEMAS": json.dumps([f"{st.db}.{st.schema}"] if st.db and st.schema else []),
    }
    if unknown := [n for n in names if n not in values]:
        raise sql_error(f"SQL compilation error:\nUnknown function {unknown[0]}", errno=2140, sqlstate="42601")
    return Result([(f"{n}()", "text") for n in names], [[values[n] for n in names]])


def cancel_all_queries(st: Statement) -> Result:
    """SYSTEM$CANCEL_ALL_QUERIES(<session_id>): the session's other statements answer 604; says "<n> cancelled."."""
    # Stricter than may be needed: Snowflake does not say whether a system function needs a warehouse; a sync's
    # session always has one.
    st.session.require_warehouse()
    session_id = int(st.match.group("session"))
    cancelled = st.queries.cancel_session(session_id, st.session.user, caller=st.running)
    return Result([(f"SYSTEM$CANCEL_ALL_QUERIES({session_id})", "text")], [[f"{cancelled} cancelled."]])


HANDLERS: dict[str, Callable[[Statement], Answer]] = {
    "cancel_all_queries": cancel_all_queries,
    "alter_session": alter_session,
    "alter_account": alter_account,
    "alter_user": alter_user,
    "show_parameters": show_parameters,
    "alter_warehouse": alter_warehouse,
    "use_warehouse": use_warehouse,
    "session_context": session_context,
}
