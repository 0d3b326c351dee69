"""The statements the emulator answers itself, one small handler per kind, as fakesnow's own transforms are
one function per statement kind (`fakesnow/transforms/stage.py`): those about tables and row access policies
here, the session's and the account's in `session_statements.py`, the stages' in `stage_statements.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fakesnow.dialect import parse_one
from sqlglot import exp

from local_snowflake import session_statements, stage_statements, table_meta, twins
from local_snowflake.policies import REFERENCE_COLUMNS, parse_policy
from local_snowflake.sqltext import (
    normalise_identifier,
    resolve_name,
    split_dotted,
    sql_error,
)
from local_snowflake.statement import DONE, Answer, Result, Statement, message

__all__ = ["Answer", "Result", "Statement", "answer"]


def answer(statement: Statement) -> Answer:
    """The emulator's answer, or None for a kind it only recognises (SHOW TABLES, say): fakesnow's to run."""
    handler = HANDLERS.get(statement.kind)
    return handler(statement) if handler else None


def create_row_access_policy(st: Statement) -> Result:
    parts, after = split_dotted(st.rest.strip())
    policy = parse_policy(resolve_name(parts, st.db, st.schema), after)
    replace, if_not_exists = bool(st.match.group("replace")), bool(st.match.group("ine"))
    return message(st.policies.create(policy, replace, if_not_exists))


def alter_table_row_access(st: Statement) -> Result:
    parts, _ = split_dotted(st.match.group("table").strip())
    table = resolve_name(parts, st.db, st.schema)
    if not table_meta.table_exists(st.duck, twins.stored(st.duck, table)):
        raise sql_error(f"SQL compilation error:\nTable '{table.display()}' does not exist or not authorized.", 2003)
    policy_parts, after = split_dotted(st.rest.strip())
    if st.match.group("verb").upper() == "DROP":
        st.policies.detach(table)
        return message(DONE)
    m = re.fullmatch(r"\s*ON\s*\((?P<columns>[^)]*)\)\s*", after, re.I)
    if not m:
        raise sql_error("SQL compilation error:\nADD ROW ACCESS POLICY needs ON (<column>, ...)")
    columns = tuple(normalise_identifier(c.strip()) for c in m.group("columns").split(",") if c.strip())
    st.policies.attach(table, resolve_name(policy_parts, st.db, st.schema), columns)
    return message(DONE)


def policy_references(st: Statement) -> Result:
    """TABLE(<db>.INFORMATION_SCHEMA.POLICY_REFERENCES(REF_ENTITY_NAME => '<table>', REF_ENTITY_DOMAIN => 'table'))."""
    args = dict((k.upper(), v) for k, v in re.findall(r"(\w+)\s*=>\s*'((?:[^']|'')*)'", st.match.group("rest")))
    if args.get("REF_ENTITY_DOMAIN", "").upper() != "TABLE" or "REF_ENTITY_NAME" not in args:
        raise sql_error(
            "SQL compilation error:\nPOLICY_REFERENCES needs REF_ENTITY_NAME and REF_ENTITY_DOMAIN => 'table'"
        )
    parts, _ = split_dotted(args["REF_ENTITY_NAME"].replace("''", "'"))
    table = resolve_name(parts, st.db, st.schema)
    wanted = [c.strip().upper() for c in st.match.group("columns").split(",")]
    columns = list(REFERENCE_COLUMNS) if wanted == ["*"] else wanted
    if unknown := [c for c in columns if c not in REFERENCE_COLUMNS]:
        raise sql_error(f"SQL compilation error:\ninvalid identifier '{unknown[0]}'", errno=904)
    rows = [[row[REFERENCE_COLUMNS.index(c)] for c in columns] for row in st.policies.reference_rows(table)]
    return Result([(c, "text") for c in columns], rows)


def desc_table(st: Statement) -> Result:
    parts, _ = split_dotted(st.rest.strip())
    obj = resolve_name(parts, st.db, st.schema)
    return Result([(c, "text") for c in table_meta.DESC_COLUMNS], table_meta.desc_table_rows(st.duck, obj))


def create_table(st: Statement) -> Result | None:
    """CREATE TABLE with column definitions keeps the declared types; CTAS and the rest go to fakesnow."""
    create = parse_one(st.sql)
    if (
        isinstance(create, exp.Create)
        and isinstance(create.this, exp.Schema)
        and any(isinstance(e, exp.ColumnDef) for e in create.this.expressions)
        and not create.args.get("expression")
    ):
        collation = st.session.value("DEFAULT_DDL_COLLATION")
        return message(table_meta.create_table(st.duck, create, st.db, st.schema, str(collation or "")))
    return None


HANDLERS: dict[str, Callable[[Statement], Answer]] = {
    **session_statements.HANDLERS,
    **stage_statements.HANDLERS,
    "desc_table": desc_table,
    "create_row_access_policy": create_row_access_policy,
    "alter_table_row_access": alter_table_row_access,
    "policy_references": policy_references,
    "create_table": create_table,
}
