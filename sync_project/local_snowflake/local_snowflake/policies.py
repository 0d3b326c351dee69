"""Row access policies, as Snowflake applies them: every query of a table with a policy sees only the rows the
policy's body allows for the session, while the table's own figures (SHOW TABLES, INFORMATION_SCHEMA.TABLES'
ROW_COUNT) still count them all.

    CREATE [OR REPLACE] ROW ACCESS POLICY [IF NOT EXISTS] <name> AS (<arg> <type>, ...) RETURNS BOOLEAN -> <body>
    ALTER TABLE <table> ADD ROW ACCESS POLICY <name> ON (<column>, ...)
    ALTER TABLE <table> DROP ROW ACCESS POLICY <name>
    SELECT ... FROM TABLE(<db>.INFORMATION_SCHEMA.POLICY_REFERENCES(REF_ENTITY_NAME => '<table>',
                                                                    REF_ENTITY_DOMAIN => 'table'))

The body is applied by rewriting each reference to the table into a filtered subquery before fakesnow runs
the statement, with the policy's arguments bound to the columns it was added on and CURRENT_ROLE() to the
session's role. Policies live as long as the server (not in the data folder).
"""

from __future__ import annotations

import contextvars
import re
import threading
from dataclasses import dataclass, field

from sqlglot import exp

from local_snowflake.sqltext import ObjectName, sql_error

# The role of the session whose statement is being transformed, and the policies in force (set per request).
CURRENT: contextvars.ContextVar[tuple[Policies, str] | None] = contextvars.ContextVar("row_policies", default=None)


@dataclass(frozen=True)
class RowAccessPolicy:
    name: ObjectName
    args: tuple[str, ...]  # argument names, upper-cased
    body: str  # a Snowflake boolean expression over the arguments


@dataclass
class Policies:
    policies: dict[ObjectName, RowAccessPolicy] = field(default_factory=dict)
    attached: dict[ObjectName, tuple[ObjectName, tuple[str, ...]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, policy: RowAccessPolicy, replace: bool, if_not_exists: bool) -> str:
        with self._lock:
            if policy.name in self.policies and not replace:
                if if_not_exists:
                    return f"{policy.name.name} already exists, statement succeeded."
                raise sql_error(f"SQL compilation error:\nObject '{policy.name.display()}' already exists.", 2002)
            self.policies[policy.name] = policy
        return f"Row access policy '{policy.name.name}' is successfully created."

    def attach(self, table: ObjectName, policy: ObjectName, columns: tuple[str, ...]) -> None:
        with self._lock:
            found = self.policies.get(policy)
            if found is None:
                raise sql_error(
                    f"SQL compilation error:\nRow access policy '{policy.display()}' does not exist or not authorized.",
                    errno=2003,
                )
            if table in self.attached:
                # Snowflake: a table has at most one row access policy.
                raise sql_error(f"SQL compilation error:\nTable '{table.display()}' already has a row access policy")
            if len(columns) != len(found.args):
                raise sql_error("SQL compilation error:\nthe policy takes as many columns as it has arguments")
            self.attached[table] = (policy, columns)

    def detach(self, table: ObjectName) -> None:
        with self._lock:
            self.attached.pop(table, None)

    def on(self, table: ObjectName) -> tuple[RowAccessPolicy, tuple[str, ...]] | None:
        with self._lock:
            found = self.attached.get(table)
            return (self.policies[found[0]], found[1]) if found else None

    def reference_rows(self, table: ObjectName) -> list[list[object]]:
        """POLICY_REFERENCES rows for one table (POLICY_DB, POLICY_SCHEMA, POLICY_NAME, POLICY_KIND,
        REF_DATABASE_NAME, REF_SCHEMA_NAME, REF_ENTITY_NAME, REF_ENTITY_DOMAIN, REF_ARG_COLUMN_NAMES)."""
        found = self.on(table)
        if found is None:
            return []
        policy, columns = found
        name = policy.name
        return [[
            name.database, name.schema, name.name, "ROW_ACCESS_POLICY",
            table.database, table.schema, table.name, "TABLE", "[" + ",".join(f'"{c}"' for c in columns) + "]",
        ]]  # fmt: skip


REFERENCE_COLUMNS = (
    "POLICY_DB", "POLICY_SCHEMA", "POLICY_NAME", "POLICY_KIND", "REF_DATABASE_NAME", "REF_SCHEMA_NAME",
    "REF_ENTITY_NAME", "REF_ENTITY_DOMAIN", "REF_ARG_COLUMN_NAMES",
)  # fmt: skip


def parse_policy(name: ObjectName, text: str) -> RowAccessPolicy:
    """`AS (<arg> <type>, ...) RETURNS BOOLEAN -> <body>` after the policy's name."""
    m = re.fullmatch(r"\s*AS\s*\((?P<args>[^)]*)\)\s*RETURNS\s+BOOLEAN\s*->\s*(?P<body>.+)", text, re.I | re.S)
    if not m:
        raise sql_error("SQL compilation error:\nsyntax error in CREATE ROW ACCESS POLICY")
    args = tuple(a.split()[0].upper() for a in m.group("args").split(",") if a.strip())
    return RowAccessPolicy(name, args, m.group("body").strip().rstrip(";"))


def filtered(table: exp.Table, policy: RowAccessPolicy, columns: tuple[str, ...], role: str) -> exp.Expr:
    """`(SELECT * FROM <table> WHERE <body>) AS <alias>`: the rows the policy lets `role` see."""
    from fakesnow.dialect import parse_one

    bound = dict(zip(policy.args, columns, strict=True))

    def bind(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.upper() in bound:
            return exp.column(bound[node.name.upper()], quoted=True)
        if isinstance(node, exp.CurrentRole) or (
            isinstance(node, exp.Anonymous) and node.name.upper() == "CURRENT_ROLE"
        ):
            return exp.Literal.string(role)
        return node

    body = parse_one(f"SELECT {policy.body}").expressions[0].transform(bind)
    source = table.copy()
    source.set("alias", None)
    source.meta["row_policy_applied"] = True
    alias = table.alias_or_name
    return exp.Subquery(
        this=exp.select("*").from_(source).where(body),
        alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
    )
