"""The statements the emulator answers itself, one small handler per kind, as fakesnow's own transforms are
one function per statement kind (`fakesnow/transforms/stage.py`).

`sqltext.classify` names the kind; `HANDLERS` maps it to its handler; a handler returns a `Result` (rows the
connector reads as JSON), a dict (GET's file-transfer answer) or None (fakesnow runs the statement after all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
from fakesnow.dialect import parse_one
from fakesnow.fakes import FakeSnowflakeConnection
from fakesnow.instance import FakeSnow
from sqlglot import exp

from local_snowflake import table_meta
from local_snowflake.access import Session, known_warehouse
from local_snowflake.account import LOCAL_ACCOUNT
from local_snowflake.gcs import PresignedStorage
from local_snowflake.parameters import (
    DEFAULTS,
    SESSION_DEFAULTS,
    USER_OBJECT_DEFAULTS,
    WAREHOUSE_DEFAULTS,
    show_value,
)
from local_snowflake.policies import REFERENCE_COLUMNS, Policies, parse_policy
from local_snowflake.running import Running, RunningQueries
from local_snowflake.sqltext import (
    OptionValue,
    matching_paren,
    normalise_identifier,
    parse_options,
    parse_stage_ref,
    resolve_name,
    resolve_schema,
    split_dotted,
    sql_error,
)
from local_snowflake.stages import StageStore
from local_snowflake.unload import new_query_id, write_unload

UNLOAD_COLUMNS = [("rows_unloaded", "fixed"), ("input_bytes", "fixed"), ("output_bytes", "fixed")]


@dataclass
class Result:
    """A small result set the emulator builds itself, sent as JSON rows."""

    columns: list[tuple[str, str]]  # (name, "text" | "fixed")
    rows: list[list[Any]]


Answer = Result | dict[str, Any] | None


@dataclass
class Statement:
    """One statement to answer, with what its handler may need: the session, the stages, fakesnow."""

    kind: str
    match: re.Match[str]
    sql: str
    token: str
    conn: FakeSnowflakeConnection
    base_url: str
    session: Session
    stages: StageStore
    storage: PresignedStorage
    fs: FakeSnow
    queries: RunningQueries
    running: Running
    policies: Policies  # this statement: a cancel sets it and interrupts what it runs

    @property
    def rest(self) -> str:
        return self.match.group("rest") if "rest" in self.match.groupdict() else ""

    @property
    def db(self) -> str | None:
        database: str | None = self.conn.database
        return database

    @property
    def schema(self) -> str | None:
        schema: str | None = self.conn.schema
        return schema

    @property
    def duck(self) -> duckdb.DuckDBPyConnection:
        duck: duckdb.DuckDBPyConnection = self.conn._duck_conn
        return duck


def answer(statement: Statement) -> Answer:
    """The emulator's answer, or None for a kind it only recognises (SHOW TABLES, say): fakesnow's to run."""
    handler = HANDLERS.get(statement.kind)
    return handler(statement) if handler else None


def _only_options(options: dict[str, OptionValue], allowed: set[str], statement: str) -> dict[str, OptionValue]:
    """Snowflake refuses options a statement does not have; so does the emulator."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise sql_error(f"SQL compilation error:\ninvalid option {unknown[0]!r} for {statement}", errno=1003)
    return options


def _message(text: str) -> Result:
    return Result([("status", "text")], [[text]])


DONE = "Statement executed successfully."


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
    return _message(DONE)


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
    return _message(DONE)


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


# CREATE STAGE's properties (internalStageParams, externalStageParams and the rest); anything else is refused.
STAGE_PROPERTIES = {
    "URL", "STORAGE_INTEGRATION", "CREDENTIALS", "ENCRYPTION", "FILE_FORMAT", "COPY_OPTIONS", "DIRECTORY", "COMMENT",
}  # fmt: skip
EXTERNAL_SCHEMES = ("s3://", "s3gov://", "s3china://", "gcs://", "azure://")


def create_stage(st: Statement) -> Result:
    parts, after = split_dotted(st.rest.strip())
    stage = resolve_name(parts, st.db, st.schema)
    st.session.role.may_create_stage(stage.database, stage.schema)
    properties = _only_options(parse_options(after), STAGE_PROPERTIES, "CREATE STAGE")
    url = properties.get("URL")
    if url is not None and (not isinstance(url, str) or not url.lower().startswith(EXTERNAL_SCHEMES)):
        raise sql_error(
            f"SQL compilation error:\ninvalid URL {url!r}: an external stage's URL is s3://, gcs:// or azure://"
        )
    created = st.stages.create(
        stage,
        session=st.token,
        temporary=bool(st.match.group("temp")),
        replace=bool(st.match.group("replace")),
        if_not_exists=bool(st.match.group("ine")),
        url=url if isinstance(url, str) else None,
    )
    return _message(created)


def create_row_access_policy(st: Statement) -> Result:
    parts, after = split_dotted(st.rest.strip())
    policy = parse_policy(resolve_name(parts, st.db, st.schema), after)
    replace, if_not_exists = bool(st.match.group("replace")), bool(st.match.group("ine"))
    return _message(st.policies.create(policy, replace, if_not_exists))


def alter_table_row_access(st: Statement) -> Result:
    parts, _ = split_dotted(st.match.group("table").strip())
    table = resolve_name(parts, st.db, st.schema)
    if not table_meta.table_exists(st.duck, table):
        raise sql_error(f"SQL compilation error:\nTable '{table.display()}' does not exist or not authorized.", 2003)
    policy_parts, after = split_dotted(st.rest.strip())
    if st.match.group("verb").upper() == "DROP":
        st.policies.detach(table)
        return _message(DONE)
    m = re.fullmatch(r"\s*ON\s*\((?P<columns>[^)]*)\)\s*", after, re.I)
    if not m:
        raise sql_error("SQL compilation error:\nADD ROW ACCESS POLICY needs ON (<column>, ...)")
    columns = tuple(normalise_identifier(c.strip()) for c in m.group("columns").split(",") if c.strip())
    st.policies.attach(table, resolve_name(policy_parts, st.db, st.schema), columns)
    return _message(DONE)


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


def desc_stage(st: Statement) -> Result:
    """DESC STAGE: its properties (parent_property, property, property_type, property_value, property_default);
    the emulator answers the STAGE_LOCATION ones: URL (a JSON list, empty for an internal stage)."""
    parts, _ = split_dotted(st.rest.strip())
    stage = resolve_name(parts, st.db, st.schema)
    st.session.role.may_use(stage, "read")
    if not st.stages.exists(stage):
        raise st.stages.not_found(stage)
    url = st.stages.url_of(stage)
    rows = [["STAGE_LOCATION", "URL", "String", json.dumps([url]) if url else "", ""]]
    columns = ("parent_property", "property", "property_type", "property_value", "property_default")
    return Result([(c, "text") for c in columns], rows)


def drop_stage(st: Statement) -> Result:
    parts, _ = split_dotted(st.rest.strip())
    stage = resolve_name(parts, st.db, st.schema)
    st.session.role.may_use(stage, "write")
    return _message(st.stages.drop(stage, if_exists=bool(st.match.group("ie"))))


def list_or_remove(st: Statement) -> Result:
    ref, after = parse_stage_ref(st.rest, st.db, st.schema, st.session.user)
    st.session.role.may_use(ref.stage, "read" if st.kind == "list" else "write")
    pattern = _only_options(parse_options(after), {"PATTERN"}, st.kind.upper()).get("PATTERN")
    pattern_text = pattern if isinstance(pattern, str) else None
    if st.kind == "list":
        return Result(
            [("name", "text"), ("size", "fixed"), ("md5", "text"), ("last_modified", "text")],
            st.stages.list_rows(ref, pattern_text),
        )
    return Result([("name", "text"), ("result", "text")], st.stages.remove(ref, pattern_text))


def show_stages(st: Statement) -> Result:
    scope, _ = split_dotted((st.rest or "").strip())
    columns = ["created_on", "name", "database_name", "schema_name", "url", "type"]
    rows = st.stages.show_rows(resolve_schema(scope, st.db) if scope else None, st.match.group("like"))
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
        return _message(table_meta.create_table(st.duck, create, st.db, st.schema, str(collation or "")))
    return None


def get(st: Statement) -> dict[str, Any]:
    """GET as Snowflake answers it for a stage on cloud storage: per-file presigned URLs and the master key."""
    ref, after = parse_stage_ref(st.rest, st.db, st.schema, st.session.user)
    st.session.role.may_use(ref.stage, "read")
    if st.stages.url_of(ref.stage):
        # As Snowflake answers (snowflakedb/gosnowflake#920, slingdata-io/sling-cli#716): files of an external
        # stage are fetched with the cloud's own tools.
        raise sql_error(
            f"Failure using stage area. Cause: [{ref.stage.name} GET and PUT commands are not supported with "
            "external stage]",
            errno=91003,
            sqlstate="22000",
        )
    m = re.match(r"\s*(?:'([^']*)'|(\S+))(.*)", after, re.DOTALL)
    if not m:
        raise sql_error("SQL compilation error:\nGET needs a local file:// location")
    url = m.group(1) or m.group(2)
    if not url.lower().startswith("file://"):
        raise sql_error(f"SQL compilation error:\nGET target {url!r} is not a file:// URL")
    # Snowflake takes the rest of a file:// URI literally (no percent-decoding); quote it for spaces.
    local = url[len("file://") :]
    options = _only_options(parse_options(m.group(3)), {"PATTERN", "PARALLEL"}, "GET")
    pattern = options.get("PATTERN")
    parallel = options.get("PARALLEL", 10)
    if not isinstance(parallel, int) or not 1 <= parallel <= 99:
        raise sql_error("SQL compilation error:\nPARALLEL must be an integer between 1 and 99", errno=1008)
    files = st.stages.files(ref, pattern if isinstance(pattern, str) else None)
    if not files:
        raise sql_error(
            f"Remote file 'stage://{ref.stage.display()}/{ref.path}' was not found. There are several "
            "potential causes. The file might not exist. The required access might not be granted.",
            errno=253006,
            sqlstate="02000",
        )
    query_id = new_query_id()
    master = st.stages.master_key(ref.stage)
    material = {"queryStageMasterKey": master.key, "queryId": query_id, "smkId": str(master.smk_id)}
    return {
        "command": "DOWNLOAD",
        "src_locations": [f.relative for f in files],
        "presignedUrls": [st.storage.presign(st.base_url, ref.stage, f.relative) for f in files],
        "encryptionMaterial": [material for _ in files],
        "stageInfo": {
            "locationType": "GCS",
            "location": st.storage.stage_location(ref.stage),
            "path": ref.path,
            "region": "us-central1",
            "creds": {},
            "isClientSideEncrypted": True,
            "useRegionalUrl": False,
            "endPoint": None,
        },
        "localLocation": local,
        "parallel": parallel,
        "overwrite": True,
        "autoCompress": False,
        "sourceCompression": "none",
        "queryId": query_id,
    }


def _unload_source(st: Statement, after: str) -> tuple[str, str]:
    """The query of COPY INTO <location> FROM (<query>) | <table>, and the options after it."""
    m = re.match(r"\s*FROM\s+", after, re.IGNORECASE)
    if not m:
        raise sql_error("SQL compilation error:\nCOPY INTO <location> needs FROM (<query>) or FROM <table>")
    after = after[m.end() :]
    if after.startswith("("):
        end = matching_paren(after, 0)
        return after[1:end], after[end + 1 :]
    parts, options_text = split_dotted(after)
    table = resolve_name(parts, st.db, st.schema)
    return f"SELECT * FROM {table_meta.qualified(table)}", options_text


def unload(st: Statement) -> Result:
    st.session.require_warehouse()
    ref, after = parse_stage_ref(st.rest, st.db, st.schema, st.session.user)
    st.session.role.may_use(ref.stage, "write")
    if st.session.value("PREVENT_UNLOAD_TO_INTERNAL_STAGES") is True and not st.stages.url_of(ref.stage):
        # Every stage the emulator holds is internal. Snowflake documents the control, not its error's text or
        # code; this one names neither the parameter nor a code a client could lean on.
        raise sql_error("SQL compilation error:\nUnloading to an internal stage is not allowed.", errno=1003)
    query, options_text = _unload_source(st, after)
    # fakesnow's own transforms turn the Snowflake query into DuckDB SQL.
    duckdb_sql = st.conn.cursor()._transform(parse_one(query), None).sql(dialect="duckdb")
    if not ref.path or ref.path.endswith("/"):
        folder, prefix = ref.path, "data"
    else:
        folder, _, prefix = ref.path.rpartition("/")
        folder = f"{folder}/" if folder else ""
    # A cursor of its own whose current schema lets fakesnow's macros (e.g. _fs_to_timestamp) resolve
    # even when the session has no current database.
    with st.fs.duck_conn.cursor() as duck:
        db = st.db or (None if ref.stage.database == "~" else ref.stage.database)
        schema = st.schema if st.db else ref.stage.schema
        if db:
            duck.execute(f"USE {table_meta.quote(db)}.{table_meta.quote(schema or 'main')}")
        with st.running.interruptible(duck):
            written = write_unload(
                duck, duckdb_sql, st.stages, ref.stage, folder, prefix, parse_options(options_text), new_query_id(),
                st.running.cancelled, st.session.value("ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION") is True,
            )  # fmt: skip
    if not written.rows_unloaded:
        # Snowflake documents no result row for an unload that wrote nothing; return none, the harder case.
        return Result(UNLOAD_COLUMNS, [])
    return Result(UNLOAD_COLUMNS, [[written.rows_unloaded, written.input_bytes, written.output_bytes]])


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
    "create_stage": create_stage,
    "drop_stage": drop_stage,
    "list": list_or_remove,
    "remove": list_or_remove,
    "show_stages": show_stages,
    "get": get,
    "unload": unload,
    "desc_table": desc_table,
    "desc_stage": desc_stage,
    "create_row_access_policy": create_row_access_policy,
    "alter_table_row_access": alter_table_row_access,
    "policy_references": policy_references,
    "create_table": create_table,
}
