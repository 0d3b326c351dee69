"""The local Snowflake: fakesnow's HTTP server plus what the sync needs and fakesnow lacks.

snowflake-connector-python talks to it over HTTP exactly as to Snowflake. The
emulator answers the stage commands (CREATE/DROP STAGE, LIST, REMOVE, GET,
COPY INTO @stage), DESC TABLE and CREATE TABLE itself, keeps true table
statistics for SHOW TABLES and INFORMATION_SCHEMA.TABLES (`statements.py`, one
handler per kind), and hands every other statement to fakesnow. State lives in one data folder, so the
webserver, the daemon and every run process see one Snowflake.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import fakesnow.server as fs_server
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

from local_snowflake import info_views, policies, result_chunks, table_meta, twins
from local_snowflake.access import Access, needs_warehouse
from local_snowflake.account import LOCAL_ACCOUNT, LOCAL_USER, LOCAL_WAREHOUSE
from local_snowflake.controls import control_routes
from local_snowflake.faults import FaultPlan
from local_snowflake.gcs import ROUTE as GCS_ROUTE, PresignedStorage
from local_snowflake.identifiers import refuse_names_that_fold
from local_snowflake.kinds import classify
from local_snowflake.parameters import CHUNK_SIZE, Parameters
from local_snowflake.patches import patch_fakesnow
from local_snowflake.policies import Policies
from local_snowflake.responses import error_response, login_refusal, result_data, without_query_params
from local_snowflake.result_chunks import ResultChunks
from local_snowflake.running import Running, RunningQueries, canceled_error
from local_snowflake.signin import SignInRefused, Users
from local_snowflake.sqltext import normalise_identifier, sql_error, upper_quoted_identifiers
from local_snowflake.stages import StageStore
from local_snowflake.statements import Result, Statement, answer
from local_snowflake.tokens import Tokens, heartbeat, renew_session, session_expired

logger = logging.getLogger("local_snowflake")


def _rename_fakesnow(old: str, new: str) -> None:
    if old in fs_server.sessions:
        fs_server.sessions[new] = fs_server.sessions.pop(old)


def _parse_or_none(sql: str) -> exp.Expr | None:
    try:
        parsed: exp.Expr = parse_one(sql)
    except Exception:  # fakesnow reports the syntax error itself
        return None
    return parsed


class LocalSnowflake:
    """One emulator instance over one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        databases = self.data_dir / "databases"
        databases.mkdir(parents=True, exist_ok=True)
        patch_fakesnow()
        result_chunks.patch_fakesnow_result_encoding()
        self.fs = FakeSnow(db_path=databases)
        duck = self.fs.duck_conn
        duck.execute(f"ATTACH '{self.data_dir / 'emulator.duckdb'}' AS {table_meta.META}")
        duck.execute(table_meta.META_SCHEMA_SQL)
        duck.execute(info_views.SHOW_TABLES_VIEW_SQL)
        # Attach the databases earlier runs created, so fully qualified names resolve from any session.
        for db_file in sorted(databases.glob("*.db")):
            self.fs.connect(db_file.stem, None).close()
        # fakesnow's server keeps one module-level instance; point it at this data folder.
        fs_server.shared_fs = self.fs
        self.stages = StageStore(self.data_dir / "stages")
        self.faults = FaultPlan()
        self.storage = PresignedStorage(self.stages, self.faults)
        self.results = ResultChunks(self.data_dir / "results", self.faults)
        self.users = Users()
        self.access = Access(parameters=Parameters(user_exists=self.users.exists))
        self.queries = RunningQueries()
        self.tokens = Tokens()
        self.policies = Policies()

    @staticmethod
    def health() -> dict[str, Any]:
        """It answers, and which account it serves: the client checks this against the names it connects with."""
        return {"ok": True, "account": LOCAL_ACCOUNT, "user": LOCAL_USER, "warehouse": LOCAL_WAREHOUSE}

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
        duck = conn._duck_conn
        obj = twins.stored(duck, table_meta.object_name(table, conn.database, conn.schema))
        if isinstance(expression, exp.Drop):
            table_meta.forget_table(duck, obj)
            return
        if isinstance(expression, exp.Alter):
            table_meta.record_altered_columns(duck, expression, conn.database, conn.schema)
        table_meta.refresh_stats(duck, obj, created=isinstance(expression, exp.Create))

    # -- HTTP ---------------------------------------------------------------------------------

    async def _apply_fault(self, *kinds: str, running: Running | None = None) -> Response | None:
        fault = self.faults.take(*kinds)
        if fault is None:
            return None
        logger.info("injected fault %s (%s)", fault.kind, fault.mode)
        if fault.mode in ("stall", "hold"):
            if await self.faults.delay(fault, running.cancelled if running else None):
                return error_response(running.stop_error() if running else canceled_error())
            return None
        if fault.mode == "http_error":
            return JSONResponse({"success": False, "message": fault.message}, status_code=fault.status)
        return error_response(sql_error(fault.message, errno=fault.errno, sqlstate="XX000"))

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
            return login_refusal(e.code, e.message)
        except SnowflakeError as e:
            return login_refusal(e.errno, e.msg)
        database = request.query_params.get("databaseName")
        if database and not self.database_exists(normalise_identifier(database)):
            # Snowflake signs in and leaves the session without a current database; fakesnow would create it.
            request = without_query_params(request, body_bytes, {"databaseName", "schemaName"})
        response: Response = await fs_server.login_request(request)
        answer = json.loads(bytes(response.body))
        token = answer.get("data", {}).get("token")
        if token:
            session = self.access.open(token, user, role, request.query_params.get("warehouse"))
            session.sign_in_parameters(data.get("SESSION_PARAMETERS") or {})
            session.client = f"{data.get('CLIENT_APP_ID', '')} {data.get('CLIENT_APP_VERSION', '')}".strip()
            # Without a master token the connector never logs out, and temporary stages would outlive sessions;
            # with it, it renews an expired session token (tokens.py).
            answer["data"]["masterToken"] = self.tokens.issue(token)
            answer["data"]["validityInSeconds"] = int(self.tokens.validity.session_seconds)
            answer["data"]["masterValidityInSeconds"] = int(self.tokens.validity.master_seconds)
            # The connector's `session_id`, which SYSTEM$CANCEL_ALL_QUERIES takes.
            session.session_id = answer["data"]["sessionId"] = self.queries.open_session(token, user)
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
                path = ",".join(f"{table_meta.quote(d)}.main" for d in databases)
                conn._duck_conn.execute(f"SET search_path = '{path}'")
        return response

    def database_exists(self, name: str) -> bool:
        found = self.fs.duck_conn.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [name]
        ).fetchone()
        return bool(found and found[0])

    async def renew(self, request: Request) -> Response:
        """The connector's `/session/token-request` (RENEW): a new session token for the same session."""
        renamers = (self.access.renamed, self.queries.renamed_session, self.stages.renamed_session, _rename_fakesnow)
        return await renew_session(request, self.tokens, renamers)

    async def heartbeat(self, request: Request) -> Response:
        return heartbeat(request, self.tokens)

    async def session(self, request: Request) -> Response:
        if request.query_params.get("delete"):
            token = fs_server.to_token(request) if request.headers.get("Authorization") else ""
            self.tokens.end(token)
            self.stages.end_session(token)
            self.access.close(token)
            self.queries.close_session(token)
        response: Response = await fs_server.session(request)
        return response

    async def query(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        sql = json.loads(body)["sqlText"]
        try:
            token = fs_server.to_token(request)
            conn = fs_server.to_conn(token)
        except fs_server.ServerError as e:
            return JSONResponse({"data": None, "code": e.code, "message": e.message, "success": False}, e.status_code)
        if self.tokens.expired(token):
            return session_expired()
        with self.queries.running(token, request.query_params.get("requestId", "")) as running:
            with running.timeout(self._statement_timeout(token)):
                response = await self._run(request, sql, token, conn, running)
            if (
                running.timed_out_after is not None
                and response.status_code == 200
                and b'"success":true' in bytes(response.body)
            ):
                # A statement fakesnow ran cannot be interrupted; it ran past its timeout, so Snowflake would
                # have stopped it: answer as Snowflake would have.
                return error_response(running.stop_error())
            return response

    def _statement_timeout(self, token: str) -> int:
        """STATEMENT_TIMEOUT_IN_SECONDS for this session's statement: the lower non-zero of the session's (with
        its user's and the account's under it) and its warehouse's."""
        try:
            session = self.access.session(token)
        except SnowflakeError:
            return 0
        return session.levels.statement_timeout(session.user, session.parameters, session.warehouse)[0]

    async def abort(self, request: Request) -> Response:
        """The connector's abort request (sent on Ctrl-C in its main thread): cancel that statement."""
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            token = fs_server.to_token(request)
        except fs_server.ServerError as e:
            return JSONResponse({"data": None, "code": e.code, "message": e.message, "success": False}, e.status_code)
        found = self.queries.cancel_request(token, str(json.loads(body).get("requestId", "")))
        return JSONResponse({"data": None, "success": found})

    async def _run(
        self, request: Request, sql: str, token: str, conn: FakeSnowflakeConnection, running: Running
    ) -> Response:
        session = None
        with contextlib.suppress(SnowflakeError):  # a dead session fails below, as it would anyway
            session = self.access.session(token)
        if session is not None:
            # Row access policies apply to what this session's role may see (policies.py, patches.py).
            policies.CURRENT.set((self.policies, session.role.name))
            ignore_case = session.value("QUOTED_IDENTIFIERS_IGNORE_CASE") is True
            twins.IGNORE_CASE.set(ignore_case)
            if ignore_case:  # rare: only then look names up
                try:
                    await run_in_threadpool(refuse_names_that_fold, session, self.fs.duck_conn, sql)
                except SnowflakeError as e:
                    return error_response(e)
                sql = upper_quoted_identifiers(sql)  # for the emulator's own handlers; fakesnow's: twins.py
        kind, match = classify(sql)
        if failure := await self._apply_fault("query", *([kind] if kind else []), running=running):
            return failure
        if kind and match:
            statement = Statement(
                kind, match, sql, token, conn, str(request.base_url).rstrip("/"), self.access.session(token),
                self.stages, self.storage, self.fs, self.queries, running, self.policies,
            )  # fmt: skip
            answered = await self._answer(statement)
            if answered is not None:
                return answered
        # Parsed once, for the warehouse check before fakesnow runs it and the bookkeeping after.
        expression = _parse_or_none(sql)
        if needs_warehouse(expression):
            try:
                self.access.session(token).require_warehouse()
            except SnowflakeError as e:
                return error_response(e)
        with result_chunks.handing_over() as held:
            response: Response = await fs_server.query_request(request)
        if response.status_code >= 500:
            # fakesnow answers a DuckDB error it does not map (a constraint, say) with a 500, which the connector
            # would retry for minutes; Snowflake reports such a failure as the statement's error.
            message = json.loads(bytes(response.body)).get("message") or "statement failed"
            return error_response(sql_error(str(message)[-2000:], errno=100072, sqlstate="22000"))
        if response.status_code == 200 and (held.table is not None or len(response.body) > result_chunks.INLINE_BYTES):
            # A large result as Snowflake sends it: the first rows inline, the rest as chunks (result_chunks.py).
            base, cap = str(request.base_url).rstrip("/"), session.value(CHUNK_SIZE) if session else None
            response = await run_in_threadpool(self.results.chunked_response, response, base, cap, held.table)
        if response.status_code == 200 and b'"success":true' in bytes(response.body):
            try:
                await run_in_threadpool(self.after_fakesnow, expression, conn)
            except Exception:
                # The statement itself succeeded; a bookkeeping slip must not turn it into a 500 the connector
                # would retry for ever.
                logger.exception("could not update the emulator's catalog after %.200s", sql)
        return response

    async def _answer(self, statement: Statement) -> Response | None:
        """The emulator's own answer to a statement it handles, or None to hand it to fakesnow."""
        try:
            answered = await run_in_threadpool(answer, statement)
        except SnowflakeError as e:
            return error_response(e)
        except duckdb.Error as e:
            # As fakesnow does: a DuckDB error is the query's fault, reported as a compilation error.
            return error_response(sql_error(f"SQL compilation error:\n{e}", errno=2043, sqlstate="02000"))
        if isinstance(answered, dict):
            return JSONResponse({"data": answered, "success": True})
        if isinstance(answered, Result):
            return JSONResponse({"data": result_data(answered, statement.conn), "success": True})
        return None

    def app(self) -> Starlette:
        route: Callable[..., Any] = Route
        routes = [
            route("/session/v1/login-request", self.login, methods=["POST"]),
            route("/session", self.session, methods=["POST"]),
            route("/session/token-request", self.renew, methods=["POST"]),
            route("/session/heartbeat", self.heartbeat, methods=["POST"]),
            route("/queries/v1/query-request", self.query, methods=["POST"]),
            route("/queries/v1/abort-request", self.abort, methods=["POST"]),
            route(GCS_ROUTE, self.storage.serve, methods=["GET"]),
            route(result_chunks.ROUTE, self.results.serve, methods=["GET"]),
            route("/_local/health", lambda _: JSONResponse(self.health()), methods=["GET"]),
            *control_routes(self.faults, self.access, self.users, self.tokens),
        ]
        own = {
            "/session/v1/login-request", "/session", "/session/token-request", "/session/heartbeat",
            "/queries/v1/query-request", "/queries/v1/abort-request",
        }  # fmt: skip
        routes += [r for r in fs_server.routes if getattr(r, "path", None) not in own]
        return Starlette(routes=routes)
