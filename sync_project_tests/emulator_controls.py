"""What tests set on a running embedded Snowflake over HTTP: roles, users and faults.

The server runs in another process (and another environment), so tests cannot reach its objects; these
endpoints (`/_local/...`) exist only on the emulator and are never used by the product. What a fault can be
(kinds and modes) is told in the emulator's `local_snowflake/faults.py`.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def request_json(base_url: str, path: str, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - our own server on loopback
        f"{base_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
        return result


def define_role(base_url: str, name: str, create_stage: bool = True, stages: dict[str, str] | None = None) -> None:
    """A restricted role: may read tables; CREATE STAGE only if `create_stage`; stage grants as listed."""
    request_json(base_url, "/_local/roles", "POST", {"name": name, "create_stage": create_stage, "stages": stages})


def clear_roles(base_url: str) -> None:
    request_json(base_url, "/_local/roles", "DELETE")


def define_user(
    base_url: str,
    name: str,
    *,
    password: str | None = None,
    rsa_public_key: str | None = None,
    tokens: list[str] | None = None,
    service: bool = False,
) -> None:
    """A user who may sign in with this password, this RSA public key (PEM) or these access tokens."""
    request_json(
        base_url,
        "/_local/users",
        "POST",
        {
            "name": name,
            "password": password,
            "rsa_public_key": rsa_public_key,
            "tokens": tokens or [],
            "type": "SERVICE" if service else "PERSON",
        },
    )


def clear_users(base_url: str) -> None:
    """Back to the built-in user only, and forget the recorded sign-in attempts."""
    request_json(base_url, "/_local/users", "DELETE")


def sign_in_attempts(base_url: str) -> list[dict[str, Any]]:
    """Every sign-in since the last clear: user, authenticator, and the refusal code (None if it worked)."""
    attempts: list[dict[str, Any]] = request_json(base_url, "/_local/users", "GET")["attempts"]
    return attempts


FAULTS = "/_local/faults"


def inject_fault(base_url: str, kind: str, **options: Any) -> None:
    """Ask a running local Snowflake to fail the next request(s) of `kind` (`mode`, `count`, `seconds`, ...)."""
    request_json(base_url, FAULTS, "POST", {"kind": kind, **options})


def release_faults(base_url: str) -> None:
    """Let every request a `hold` fault keeps waiting (and any later one) go on."""
    request_json(base_url, FAULTS + "/release", "POST", {})


def clear_faults(base_url: str) -> None:
    request_json(base_url, FAULTS, "DELETE")


def fault_state(base_url: str) -> dict[str, Any]:
    """Pending faults, the kinds that fired, and those whose held request a cancel ended."""
    return request_json(base_url, FAULTS, "GET")


TOKENS = "/_local/tokens"


def set_token_validity(base_url: str, session_seconds: float, master_seconds: float = 4 * 3600.0) -> None:
    """Shorten how long session and master tokens of sign-ins from now on stay valid (Snowflake: 1 h and 4 h)."""
    request_json(base_url, TOKENS, "POST", {"session_seconds": session_seconds, "master_seconds": master_seconds})


def token_state(base_url: str) -> dict[str, Any]:
    """The validities in force and how many session tokens were renewed."""
    return request_json(base_url, TOKENS, "GET")


def reset_tokens(base_url: str) -> None:
    request_json(base_url, TOKENS, "DELETE")
