"""The JSON answers the connector reads, in the shapes Snowflake sends them."""

from __future__ import annotations

import uuid
from typing import Any

from fakesnow.fakes import FakeSnowflakeConnection
from snowflake.connector.errors import Error as SnowflakeError
from starlette.requests import Request
from starlette.responses import JSONResponse

from local_snowflake.statements import Result

SELECT_STATEMENT = 0x1000


def rowtype(name: str, kind: str) -> dict[str, Any]:
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


def result_data(result: Result, conn: FakeSnowflakeConnection) -> dict[str, Any]:
    """A result set in the JSON form the connector reads (as Snowflake sends small results)."""
    return {
        "rowtype": [rowtype(n, k) for n, k in result.columns],
        "rowset": [[None if v is None else str(v) for v in row] for row in result.rows],
        "total": len(result.rows),
        "returned": len(result.rows),
        "queryId": str(uuid.uuid4()),
        "queryResultFormat": "json",
        "statementTypeId": SELECT_STATEMENT,
        "finalDatabaseName": conn.database,
        "finalSchemaName": conn.schema,
    }


def login_refusal(code: int, message: str | None) -> JSONResponse:
    """A refused sign-in as Snowflake answers it: HTTP 200, success false, the code as a string."""
    return JSONResponse(
        {"data": {"nextAction": "RETRY_LOGIN"}, "code": str(code), "message": message, "success": False}
    )


def error_response(error: SnowflakeError) -> JSONResponse:
    code = f"{error.errno or 0:06d}"
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": error.sqlstate, "queryId": str(uuid.uuid4())},
            "code": code,
            "message": error.msg,
            "success": False,
        }
    )


def without_query_params(request: Request, body: bytes, names: set[str]) -> Request:
    """The same request (body already read) without some query parameters."""
    from urllib.parse import urlencode

    scope = dict(request.scope)
    scope["query_string"] = urlencode(
        [(k, v) for k, v in request.query_params.multi_items() if k not in names]
    ).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)
