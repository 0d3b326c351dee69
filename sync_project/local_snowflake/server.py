"""The local Snowflake: fakesnow's HTTP server plus what the sync needs and fakesnow lacks.

snowflake-connector-python talks to it over HTTP exactly as to Snowflake. The
emulator answers the stage commands (CREATE/DROP STAGE, LIST, REMOVE, GET,
COPY INTO @stage), DESC TABLE and CREATE TABLE itself, keeps true table
statistics for SHOW TABLES and INFORMATION_SCHEMA.TABLES, and hands every
other statement to fakesnow. State lives in one data folder, so the
webserver, the daemon and every run process see one Snowflake.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import duckdb
import fakesnow.arrow
import fakesnow.server as fs_server
import pyarrow as pa
import pyarrow.compute as pc
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.dialect import parse_one
from fakesnow.fakes import FakeSnowflakeConnection
from fakesnow.instance import FakeSnow
from snowflake.connector.errors import Error as SnowflakeError
from sqlglot import exp
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync_project.local_snowflake import catalog
from sync_project.local_snowflake.access import Access, Role, Session
from sync_project.local_snowflake.faults import Fault, FaultPlan
from sync_project.local_snowflake.gcs import ROUTE as GCS_ROUTE
from sync_project.local_snowflake.gcs import PresignedStorage
from sync_project.local_snowflake.signin import SignInRefused, User, Users
from sync_project.local_snowflake.sqltext import (
    OptionValue,
    classify,
    matching_paren,
    normalise_identifier,
    parse_options,
    parse_stage_ref,
    resolve_name,
    resolve_schema,
    split_dotted,
    sql_error,
)
from sync_project.local_snowflake.stages import StageStore
from sync_project.local_snowflake.unload import new_query_id, unload_query

logger = logging.getLogger("sync_project.local_snowflake")

SELECT_STATEMENT = 0x1000


def _patch_fakesnow_null_timestamps() -> None:
    """fakesnow turns NULL timestamps into 1970-01-01 in query results; keep them NULL."""
    original = fakesnow.arrow.timestamp_to_sf_struct
    if getattr(original, "_keeps_nulls", False):
        return

    def timestamp_to_sf_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(pc.fill_null(ts, pa.scalar(0, ts.type)))
        if not ts.null_count:
            return struct
        return pa.StructArray.from_arrays(
            [struct.field(i) for i in range(struct.type.num_fields)],
            fields=list(struct.type),
            mask=pc.is_null(ts),
        )

    timestamp_to_sf_struct._keeps_nulls = True  # type: ignore[attr-defined]
    fakesnow.arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


_AS_TEXT_FUNCTIONS = {"ST_ASWKT", "ST_ASTEXT"}


def _geography_as_text(node: exp.Expr) -> exp.Expr:
    """GEOGRAPHY / GEOMETRY are stored as WKT text here, so ST_ASWKT(x) is x itself."""
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        args = [node.this] if node.this is not None and not isinstance(node, exp.Anonymous) else node.expressions
        if name.upper() in _AS_TEXT_FUNCTIONS and len(args) == 1 and isinstance(args[0], exp.Expr):
            return exp.cast(args[0].copy(), "VARCHAR")
    return node


def _patch_fakesnow_geography() -> None:
    """Teach fakesnow's transform chain that GEOGRAPHY is WKT text here (ST_ASWKT and friends)."""
    original = FakeSnowflakeCursor._transform
    if getattr(original, "_geography_as_text", False):
        return

    def transform(self: FakeSnowflakeCursor, expression: exp.Expr, params: Any) -> exp.Expr:
        transformed: exp.Expr = original(self, expression.transform(_geography_as_text, copy=False), params)
        return transformed

    transform._geography_as_text = True  # type: ignore[attr-defined]
    FakeSnowflakeCursor._transform = transform  # type: ignore[method-assign]


@dataclass
class Result:
    """A small result set the emulator builds itself, sent as JSON rows."""

    columns: list[tuple[str, str]]  # (name, "text" | "fixed")
    rows: list[list[Any]]


def _parse_or_none(sql: str) -> exp.Expr | None:
    try:
        parsed: exp.Expr = parse_one(sql)
    except Exception:  # fakesnow reports the syntax error itself
        return None
    return parsed


def _only_options(options: dict[str, OptionValue], allowed: set[str], statement: str) -> dict[str, OptionValue]:
    """Snowflake refuses options a statement does not have; so does the emulator."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise sql_error(f"SQL compilation error:\ninvalid option {unknown[0]!r} for {statement}", errno=1003)
    return options


def _message(text: str) -> Result:
    return Result([("status", "text")], [[text]])


def _rowtype(name: str, kind: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "database": "",
        "schema": "",
        "table": "",
        "nullable": True,
        "collation": None,
    }
    if kind == "fixed":
        return base | {"type": "fixed", "precision": 38, "scale": 0, "length": None, "byteLength": None}
    return base | {
        "type": "text",
        "length": 16777216,
        "byteLength": 16777216,
        "precision": None,
        "scale": None,
    }


def _without_query_params(request: Request, body: bytes, names: set[str]) -> Request:
    """The same request (body already read) without some query parameters."""
    from urllib.parse import urlencode

    scope = dict(request.scope)
    scope["query_string"] = urlencode(
        [(k, v) for k, v in request.query_params.multi_items() if k not in names]
    ).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def _login_refusal(code: int, message: str | None) -> JSONResponse:
    """A refused sign-in as Snowflake answers it: HTTP 200, success false, the code as a string."""
    return JSONResponse(
        {"data": {"nextAction": "RETRY_LOGIN"}, "code": str(code), "message": message, "success": False}
    )


def _error_response(error: SnowflakeError) -> JSONResponse:
    code = f"{error.errno or 0:06d}"
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": error.sqlstate, "queryId": str(uuid.uuid4())},
            "code": code,
            "message": error.msg,
            "success": False,
        }
    )


class LocalSnowflake:
    """One emulator instance over one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        databases = self.data_dir / "databases"
        databases.mkdir(parents=True, exist_ok=True)
        catalog.patch_fakesnow_info_schema()
        _patch_fakesnow_null_timestamps()
        _patch_fakesnow_geography()
        self.fs = FakeSnow(db_path=databases)
        duck = self.fs.duck_conn
        duck.execute(f"ATTACH '{self.data_dir / 'emulator.duckdb'}' AS {catalog.META}")
        duck.execute(catalog.META_SCHEMA_SQL)
        duck.execute(catalog.SHOW_TABLES_VIEW_SQL)
        # Attach the databases earlier runs created, so fully qualified names resolve from any session.
        for db_file in sorted(databases.glob("*.db")):
            self.fs.connect(db_file.stem, None).close()
        # fakesnow's server keeps one module-level instance; point it at this data folder.
        fs_server.shared_fs = self.fs
        self.stages = StageStore(self.data_dir / "stages")
        self.faults = FaultPlan()
        self.storage = PresignedStorage(self.stages, self.faults)
        self.access = Access()
        self.users = Users()
        self.ready = True

    # -- handlers for the statements the emulator answers itself --------------------------------

    def handle(
        self, kind: str, match: re.Match[str], sql: str, token: str, conn: FakeSnowflakeConnection, base_url: str
    ) -> Result | dict[str, Any] | None:
        rest = match.group("rest") if "rest" in match.groupdict() else ""
        db, schema = conn.database, conn.schema
        duck = conn._duck_conn
        session = self.access.session(token)
        if kind == "alter_session":
            if match.group("verb").upper() == "SET":
                session.set_parameters(parse_options(rest))
            else:
                names = [n.strip().upper() for n in rest.split(",") if n.strip()]
                session.set_parameters(dict.fromkeys(names))
                for name in names:
                    session.parameters.pop(name, None)
            return _message("Statement executed successfully.")
        if kind == "use_warehouse":
            parts, _ = split_dotted(rest.strip())
            session.use_warehouse(normalise_identifier(parts[0]) if parts else "")
            return _message("Statement executed successfully.")
        if kind == "session_context":
            # Context functions run in cloud services (no warehouse needed); fakesnow has no CURRENT_WAREHOUSE.
            names = [n.strip().split("(")[0].upper() for n in rest.split(",")]
            values = {
                "CURRENT_WAREHOUSE": session.warehouse,
                "CURRENT_ROLE": session.role.name,
                "CURRENT_USER": session.user,
                "CURRENT_DATABASE": db,
                "CURRENT_SCHEMA": schema if db else None,
            }
            if unknown := [n for n in names if n not in values]:
                raise sql_error(f"SQL compilation error:\nUnknown function {unknown[0]}", errno=2140, sqlstate="42601")
            return Result([(f"{n}()", "text") for n in names], [[values[n] for n in names]])
        if kind == "create_stage":
            parts, after = split_dotted(rest.strip())
            stage = resolve_name(parts, db, schema)
            session.role.may_create_stage(stage.database, stage.schema)
            return _message(
                self.stages.create(
                    stage,
                    session=token,
                    temporary=bool(match.group("temp")),
                    replace=bool(match.group("replace")),
                    if_not_exists=bool(match.group("ine")),
                )
            )
        if kind == "drop_stage":
            parts, _ = split_dotted(rest.strip())
            stage = resolve_name(parts, db, schema)
            session.role.may_use(stage, "write")
            return _message(self.stages.drop(stage, if_exists=bool(match.group("ie"))))
        if kind in ("list", "remove"):
            ref, after = parse_stage_ref(rest, db, schema, session.user)
            session.role.may_use(ref.stage, "read" if kind == "list" else "write")
            pattern = _only_options(parse_options(after), {"PATTERN"}, kind.upper()).get("PATTERN")
            pattern_text = pattern if isinstance(pattern, str) else None
            if kind == "list":
                return Result(
                    [("name", "text"), ("size", "fixed"), ("md5", "text"), ("last_modified", "text")],
                    self.stages.list_rows(ref, pattern_text),
                )
            return Result([("name", "text"), ("result", "text")], self.stages.remove(ref, pattern_text))
        if kind == "show_stages":
            scope, _ = split_dotted((rest or "").strip())
            return Result(
                [
                    ("created_on", "text"),
                    ("name", "text"),
                    ("database_name", "text"),
                    ("schema_name", "text"),
                    ("type", "text"),
                ],
                self.stages.show_rows(resolve_schema(scope, db) if scope else None, match.group("like")),
            )
        if kind == "get":
            return self._get(rest, db, schema, session, base_url)
        if kind == "unload":
            session.require_warehouse()
            return self._unload(rest, conn, session)
        if kind == "desc_table":
            parts, _ = split_dotted(rest.strip())
            obj = resolve_name(parts, db, schema)
            return Result([(c, "text") for c in catalog.DESC_COLUMNS], catalog.describe_table(duck, obj))
        if kind == "create_table":
            create = parse_one(sql)
            if (
                isinstance(create, exp.Create)
                and isinstance(create.this, exp.Schema)
                and any(isinstance(e, exp.ColumnDef) for e in create.this.expressions)
                and not create.args.get("expression")
            ):
                return _message(catalog.create_table(duck, create, db, schema))
        return None  # fakesnow answers it

    def _get(self, rest: str, db: str | None, schema: str | None, session: Session, base_url: str) -> dict[str, Any]:
        """GET as Snowflake answers it for a stage on cloud storage: per-file presigned URLs and the master key."""
        ref, after = parse_stage_ref(rest, db, schema, session.user)
        session.role.may_use(ref.stage, "read")
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
        files = self.stages.files(ref, pattern if isinstance(pattern, str) else None)
        if not files:
            raise sql_error(
                f"Remote file 'stage://{ref.stage.display()}/{ref.path}' was not found. There are several "
                "potential causes. The file might not exist. The required access might not be granted.",
                errno=253006,
                sqlstate="02000",
            )
        query_id = new_query_id()
        master = self.stages.master_key(ref.stage)
        material = {"queryStageMasterKey": master.key, "queryId": query_id, "smkId": str(master.smk_id)}
        return {
            "command": "DOWNLOAD",
            "src_locations": [f.relative for f in files],
            "presignedUrls": [self.storage.presign(base_url, ref.stage, f.relative) for f in files],
            "encryptionMaterial": [material for _ in files],
            "stageInfo": {
                "locationType": "GCS",
                "location": self.storage.stage_location(ref.stage),
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

    def _unload(self, rest: str, conn: FakeSnowflakeConnection, session: Session) -> Result:
        ref, after = parse_stage_ref(rest, conn.database, conn.schema, session.user)
        session.role.may_use(ref.stage, "write")
        m = re.match(r"\s*FROM\s+", after, re.IGNORECASE)
        if not m:
            raise sql_error("SQL compilation error:\nCOPY INTO <location> needs FROM (<query>) or FROM <table>")
        after = after[m.end() :]
        if after.startswith("("):
            end = matching_paren(after, 0)
            query, options_text = after[1:end], after[end + 1 :]
        else:
            parts, options_text = split_dotted(after)
            table = resolve_name(parts, conn.database, conn.schema)
            query = f"SELECT * FROM {catalog.qualified(table)}"
        # fakesnow's own transforms turn the Snowflake query into DuckDB SQL.
        cursor = conn.cursor()
        duckdb_sql = cursor._transform(parse_one(query), None).sql(dialect="duckdb")
        if not ref.path or ref.path.endswith("/"):
            folder, prefix = ref.path, "data"
        else:
            folder, _, prefix = ref.path.rpartition("/")
            folder = f"{folder}/" if folder else ""
        # A cursor of its own whose current schema lets fakesnow's macros (e.g. _fs_to_timestamp) resolve
        # even when the session has no current database.
        with self.fs.duck_conn.cursor() as duck:
            db = conn.database or (None if ref.stage.database == "~" else ref.stage.database)
            schema = conn.schema if conn.database else ref.stage.schema
            if db:
                duck.execute(f"USE {catalog.quote(db)}.{catalog.quote(schema or 'main')}")
            result = unload_query(
                duck, duckdb_sql, self.stages, ref.stage, folder, prefix, parse_options(options_text), new_query_id()
            )
        if not result.rows_unloaded:
            # Snowflake documents no result row for an unload that wrote nothing; return none, the harder case.
            return Result([("rows_unloaded", "fixed"), ("input_bytes", "fixed"), ("output_bytes", "fixed")], [])
        return Result(
            [("rows_unloaded", "fixed"), ("input_bytes", "fixed"), ("output_bytes", "fixed")],
            [[result.rows_unloaded, result.input_bytes, result.output_bytes]],
        )

    @staticmethod
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

    def after_fakesnow(self, expression: exp.Expr | None, conn: FakeSnowflakeConnection) -> None:
        """Keep declared types and statistics in step with a statement fakesnow just ran."""
        if expression is None:
            return
        if not isinstance(
            expression, exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Create | exp.Alter | exp.Drop
        ) and not isinstance(expression, exp.TruncateTable | exp.Copy):
            return
        if isinstance(expression, exp.Create | exp.Drop) and str(expression.args.get("kind")).upper() != "TABLE":
            return
        table = expression.find(exp.Table)
        if table is None:
            return
        obj = catalog.object_name(table, conn.database, conn.schema)
        duck = conn._duck_conn
        if isinstance(expression, exp.Drop):
            catalog.forget_table(duck, obj)
            return
        if isinstance(expression, exp.Alter):
            catalog.record_altered_columns(duck, expression, conn.database, conn.schema)
        catalog.refresh_stats(duck, obj, created=isinstance(expression, exp.Create))

    # -- HTTP ---------------------------------------------------------------------------------

    async def _apply_fault(self, *kinds: str) -> Response | None:
        fault = self.faults.take(*kinds)
        if fault is None:
            return None
        logger.info("injected fault %s (%s)", fault.kind, fault.mode)
        if fault.mode == "stall":
            await anyio.sleep(fault.seconds)
            return None
        if fault.mode == "http_error":
            return JSONResponse({"success": False, "message": fault.message}, status_code=fault.status)
        return _error_response(sql_error(fault.message, errno=fault.errno, sqlstate="XX000"))

    async def login(self, request: Request) -> Response:
        if failure := await self._apply_fault("login"):
            return failure
        body_bytes = body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        data = json.loads(body).get("data", {})
        try:
            # As Snowflake: the credentials first (a bad password with a bad role says "bad password"), then the role.
            user = self.users.authenticate(data, str(data.get("ACCOUNT_NAME") or ""))
            role = self.access.role(request.query_params.get("roleName"))
        except SignInRefused as e:
            return _login_refusal(e.code, e.message)
        except SnowflakeError as e:
            return _login_refusal(e.errno, e.msg)
        database = request.query_params.get("databaseName")
        if database and not self.database_exists(normalise_identifier(database)):
            # Snowflake signs in and leaves the session without a current database; fakesnow would create it.
            request = _without_query_params(request, body_bytes, {"databaseName", "schemaName"})
        response: Response = await fs_server.login_request(request)
        answer = json.loads(bytes(response.body))
        token = answer.get("data", {}).get("token")
        if token:
            self.access.open(token, user, role, request.query_params.get("warehouse"))
            # Without a master token the connector never logs out, and temporary stages would outlive sessions.
            answer["data"]["masterToken"] = f"master-{token}"
            response = JSONResponse(answer, status_code=response.status_code)
        conn = fs_server.sessions.get(token) if token else None
        if conn is not None and not conn.database:
            # fakesnow's helper macros live in each database; without a current database DuckDB would not
            # find them, so put every database's main schema on this session's search path.
            databases = [
                r[0]
                for r in conn._duck_conn.execute(
                    "SELECT database_name FROM duckdb_databases() "
                    "WHERE NOT internal AND NOT starts_with(database_name, '_') AND database_name != 'memory'"
                ).fetchall()
            ]
            if databases:
                path = ",".join(f"{catalog.quote(d)}.main" for d in databases)
                conn._duck_conn.execute(f"SET search_path = '{path}'")
        return response

    def database_exists(self, name: str) -> bool:
        found = self.fs.duck_conn.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [name]
        ).fetchone()
        return bool(found and found[0])

    async def session(self, request: Request) -> Response:
        if request.query_params.get("delete"):
            token = fs_server.to_token(request) if request.headers.get("Authorization") else ""
            self.stages.end_session(token)
            self.access.close(token)
        response: Response = await fs_server.session(request)
        return response

    async def query(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        sql = json.loads(body)["sqlText"]
        kind, match = classify(sql)
        if failure := await self._apply_fault("query", *([kind] if kind else [])):
            return failure
        try:
            token = fs_server.to_token(request)
            conn = fs_server.to_conn(token)
        except fs_server.ServerError as e:
            return JSONResponse({"data": None, "code": e.code, "message": e.message, "success": False}, e.status_code)
        base_url = str(request.base_url).rstrip("/")
        if kind and match:
            try:
                answer = await run_in_threadpool(self.handle, kind, match, sql, token, conn, base_url)
            except SnowflakeError as e:
                return _error_response(e)
            except duckdb.Error as e:
                # As fakesnow does: a DuckDB error is the query's fault, reported as a compilation error.
                return _error_response(sql_error(f"SQL compilation error:\n{e}", errno=2043, sqlstate="02000"))
            if isinstance(answer, dict):
                return JSONResponse({"data": answer, "success": True})
            if isinstance(answer, Result):
                return JSONResponse(
                    {
                        "data": {
                            "rowtype": [_rowtype(n, k) for n, k in answer.columns],
                            "rowset": [[None if v is None else str(v) for v in row] for row in answer.rows],
                            "total": len(answer.rows),
                            "returned": len(answer.rows),
                            "queryId": str(uuid.uuid4()),
                            "queryResultFormat": "json",
                            "statementTypeId": SELECT_STATEMENT,
                            "finalDatabaseName": conn.database,
                            "finalSchemaName": conn.schema,
                        },
                        "success": True,
                    }
                )
        # Parsed once, for the warehouse check before fakesnow runs it and the bookkeeping after.
        expression = _parse_or_none(sql)
        if self.needs_warehouse(expression):
            try:
                self.access.session(token).require_warehouse()
            except SnowflakeError as e:
                return _error_response(e)
        response: Response = await fs_server.query_request(request)
        if response.status_code >= 500:
            # fakesnow answers a DuckDB error it does not map (a constraint, say) with a 500, which the connector
            # would retry for minutes; Snowflake reports such a failure as the statement's error.
            message = json.loads(bytes(response.body)).get("message") or "statement failed"
            return _error_response(sql_error(str(message)[-2000:], errno=100072, sqlstate="22000"))
        if response.status_code == 200 and b'"success":true' in bytes(response.body):
            try:
                await run_in_threadpool(self.after_fakesnow, expression, conn)
            except Exception:
                # The statement itself succeeded; a bookkeeping slip must not turn it into a 500 the connector
                # would retry for ever.
                logger.exception("could not update the emulator's catalog after %.200s", sql)
        return response

    async def faults_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            self.faults.add(Fault(**(await request.json())))
        elif request.method == "DELETE":
            self.faults.clear()
        return JSONResponse(self.faults.snapshot())

    async def roles_endpoint(self, request: Request) -> Response:
        """Tests define restricted roles: `{"name": "READER", "create_stage": false, "stages": {"DB.S.X": "read"}}`."""
        if request.method == "POST":
            self.access.define_role(Role(**(await request.json())))
        elif request.method == "DELETE":
            self.access.clear_roles()
        return JSONResponse({"roles": sorted(self.access.roles)})

    async def users_endpoint(self, request: Request) -> Response:
        """Tests define users: `{"name": "SYNC_SERVICE", "type": "SERVICE", "rsa_public_key": PEM, "tokens": [..]}`."""
        if request.method == "POST":
            self.users.define(User(**(await request.json())))
        elif request.method == "DELETE":
            self.users.clear()
        return JSONResponse(self.users.snapshot())

    def app(self) -> Starlette:
        route: Callable[..., Any] = Route
        routes = [
            route("/session/v1/login-request", self.login, methods=["POST"]),
            route("/session", self.session, methods=["POST"]),
            route("/queries/v1/query-request", self.query, methods=["POST"]),
            route("/_local/faults", self.faults_endpoint, methods=["GET", "POST", "DELETE"]),
            route("/_local/roles", self.roles_endpoint, methods=["GET", "POST", "DELETE"]),
            route("/_local/users", self.users_endpoint, methods=["GET", "POST", "DELETE"]),
            route(GCS_ROUTE, self.storage.serve, methods=["GET"]),
            route("/_local/health", lambda _: JSONResponse({"ok": True, "ready": self.ready}), methods=["GET"]),
        ]
        own = {"/session/v1/login-request", "/session", "/queries/v1/query-request"}
        routes += [r for r in fs_server.routes if getattr(r, "path", None) not in own]
        return Starlette(routes=routes)
