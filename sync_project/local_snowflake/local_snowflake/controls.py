"""The emulator's test controls over HTTP, for what no SQL statement sets on Snowflake: faults to inject,
restricted roles (`{"name": "READER", "create_stage": false, "stages": {"DB.S.X": "read"}}`), users
(`{"name": "SYNC_SERVICE", "type": "SERVICE", "rsa_public_key": ..}`) and token validities. Parameters, stages
and policies are set by SQL, as an administrator would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local_snowflake.access import Access, Role
from local_snowflake.faults import Fault, FaultPlan
from local_snowflake.signin import User, Users
from local_snowflake.tokens import Tokens


def _control(
    define: Callable[[dict[str, Any]], None], clear: Callable[[], None], state: Callable[[], Any]
) -> Callable[[Request], Any]:
    """A test-control endpoint: POST defines one thing, DELETE clears them, every method answers the state."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            define(await request.json())
        elif request.method == "DELETE":
            clear()
        return JSONResponse(state())

    return endpoint


def control_routes(faults: FaultPlan, access: Access, users: Users, tokens: Tokens) -> list[Route]:
    every = ["GET", "POST", "DELETE"]
    return [
        Route(
            "/_local/faults", _control(lambda d: faults.add(Fault(**d)), faults.clear, faults.snapshot), methods=every
        ),
        Route(
            "/_local/faults/release",
            _control(lambda _: faults.release(), lambda: None, faults.snapshot),
            methods=["POST"],
        ),
        Route(
            "/_local/roles",
            _control(
                lambda d: access.define_role(Role(**d)), access.clear_roles, lambda: {"roles": sorted(access.roles)}
            ),
            methods=every,
        ),
        Route("/_local/users", _control(lambda d: users.define(User(**d)), users.clear, users.snapshot), methods=every),
        Route("/_local/tokens", _control(tokens.configure, tokens.reset, tokens.snapshot), methods=every),
    ]
