"""Statements about stages: CREATE/DROP/DESC STAGE, SHOW STAGES, LIST, REMOVE, GET and COPY INTO a stage."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fakesnow.dialect import parse_one

from local_snowflake import table_meta
from local_snowflake.sqltext import (
    matching_paren,
    parse_options,
    parse_stage_ref,
    resolve_name,
    resolve_schema,
    split_dotted,
    sql_error,
)
from local_snowflake.statement import Answer, Result, Statement, message, only_options
from local_snowflake.unload import new_query_id, write_unload

UNLOAD_COLUMNS = [("rows_unloaded", "fixed"), ("input_bytes", "fixed"), ("output_bytes", "fixed")]


STAGE_PROPERTIES = {
    "URL", "STORAGE_INTEGRATION", "CREDENTIALS", "ENCRYPTION", "FILE_FORMAT", "COPY_OPTIONS", "DIRECTORY", "COMMENT",
}  # fmt: skip
EXTERNAL_SCHEMES = ("s3://", "s3gov://", "s3china://", "gcs://", "azure://")


def create_stage(st: Statement) -> Result:
    parts, after = split_dotted(st.rest.strip())
    stage = resolve_name(parts, st.db, st.schema)
    st.session.role.may_create_stage(stage.database, stage.schema)
    properties = only_options(parse_options(after), STAGE_PROPERTIES, "CREATE STAGE")
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
    return message(created)


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
    return message(st.stages.drop(stage, if_exists=bool(st.match.group("ie"))))


def list_or_remove(st: Statement) -> Result:
    ref, after = parse_stage_ref(st.rest, st.db, st.schema, st.session.user)
    st.session.role.may_use(ref.stage, "read" if st.kind == "list" else "write")
    pattern = only_options(parse_options(after), {"PATTERN"}, st.kind.upper()).get("PATTERN")
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
    options = only_options(parse_options(m.group(3)), {"PATTERN", "PARALLEL"}, "GET")
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


HANDLERS: dict[str, Callable[[Statement], Answer]] = {
    "create_stage": create_stage,
    "drop_stage": drop_stage,
    "desc_stage": desc_stage,
    "list": list_or_remove,
    "remove": list_or_remove,
    "show_stages": show_stages,
    "get": get,
    "unload": unload,
}
