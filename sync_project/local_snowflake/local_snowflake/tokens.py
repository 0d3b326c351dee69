"""Session and master tokens that expire, and their renewal, as Snowflake and the connector handle them.

A login answers a session token (valid an hour on Snowflake) and a master token (four hours). A request with an
expired session token answers code 390112; the connector then posts `/session/token-request` (`requestType`
RENEW, the master token as its credential) and retries with the new session token. An expired master token
answers 390114 and the connector gives up (`ReauthenticationRequest`). A heartbeat (`/session/heartbeat`, sent
every hour with `client_session_keep_alive`) keeps the session token alive. Connector: `network.py`
(`SESSION_EXPIRED_GS_CODE`, `MASTER_TOKEN_EXPIRED_GS_CODE`, `_token_request`, `_heartbeat`).

Tests shorten both validities over HTTP (`POST /_local/tokens`): Snowflake has no statement that sets them.
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import fakesnow.server as fs_server
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SESSION_EXPIRED = "390112"
MASTER_EXPIRED = "390114"


@dataclass
class Validity:
    session_seconds: float = 3600.0
    master_seconds: float = 4 * 3600.0


@dataclass
class Tokens:
    validity: Validity = field(default_factory=Validity)
    _expiry: dict[str, float] = field(default_factory=dict)  # session token -> when it expires
    _masters: dict[str, tuple[str, float]] = field(default_factory=dict)  # master -> (session token, expiry)
    renewals: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, values: dict[str, Any]) -> None:
        with self._lock:
            self.validity = Validity(**values)

    def reset(self) -> None:
        with self._lock:
            self.validity = Validity()
            self.renewals = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self.validity) | {"renewals": self.renewals}

    def issue(self, token: str) -> str:
        """A new session's token starts its validity; returns its master token."""
        master = f"master-{secrets.token_urlsafe(16)}"
        now = time.monotonic()
        with self._lock:
            self._expiry[token] = now + self.validity.session_seconds
            self._masters[master] = (token, now + self.validity.master_seconds)
        return master

    def expired(self, token: str) -> bool:
        with self._lock:
            expires = self._expiry.get(token)
        return expires is not None and time.monotonic() >= expires

    def heartbeat(self, token: str) -> bool:
        """Keep a live session token alive; False if it had already expired."""
        with self._lock:
            if token not in self._expiry or time.monotonic() >= self._expiry[token]:
                return False
            self._expiry[token] = time.monotonic() + self.validity.session_seconds
            return True

    def renew(self, master: str, old: str) -> tuple[str | None, str]:
        """(new session token, "") for a live master token of `old`; (None, code) otherwise."""
        with self._lock:
            current, master_expires = self._masters.get(master, ("", 0.0))
            if current != old:
                return None, SESSION_EXPIRED  # not this session's master: the connector must sign in again
            if time.monotonic() >= master_expires:
                return None, MASTER_EXPIRED
            new = secrets.token_urlsafe(32)
            self._expiry.pop(old, None)
            self._expiry[new] = time.monotonic() + self.validity.session_seconds
            self._masters[master] = (new, master_expires)
            self.renewals += 1
            return new, ""

    def end(self, token: str) -> None:
        with self._lock:
            self._expiry.pop(token, None)
            self._masters = {m: v for m, v in self._masters.items() if v[0] != token}


def session_expired() -> JSONResponse:
    """390112, which makes the connector renew the session token with its master token."""
    return JSONResponse({"data": None, "code": SESSION_EXPIRED, "message": "Session token expired", "success": False})


async def renew_session(request: Request, tokens: Tokens, renamers: Sequence[Callable[[str, str], None]]) -> Response:
    """The connector's `/session/token-request` (RENEW): a new session token for the same session, which every
    store keyed by the old token (`renamers`) takes over."""
    raw = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    body = json.loads(raw or b"{}")
    master = fs_server.to_token(request) if request.headers.get("Authorization") else ""
    old = str(body.get("oldSessionToken") or "")
    new, code = tokens.renew(master, old)
    if new is None:
        message = "Master token has expired." if code == MASTER_EXPIRED else "Session no longer exists."
        return JSONResponse({"data": None, "code": code, "message": message, "success": False})
    for renamed in renamers:
        renamed(old, new)
    data = {"sessionToken": new, "masterToken": master, "validityInSecondsST": int(tokens.validity.session_seconds)}
    return JSONResponse({"data": data, "success": True})


def heartbeat(request: Request, tokens: Tokens) -> Response:
    token = fs_server.to_token(request) if request.headers.get("Authorization") else ""
    if not tokens.heartbeat(token):
        return session_expired()
    return JSONResponse({"data": None, "code": None, "message": None, "success": True})
