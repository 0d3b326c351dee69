"""The emulator's key-pair sign-in checks, with real keys and real signatures, without a server."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from local_snowflake.signin import SignInRefused, User, Users

ACCOUNT_USER = "SYNC_SERVICE"
PASSPHRASE = b"sign-in-test-passphrase"


def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key_pem(key: rsa.RSAPrivateKey) -> str:
    """The public half, as an admin registers it with ALTER USER ... SET RSA_PUBLIC_KEY."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _jwt(key: rsa.RSAPrivateKey, user: User, *, lifetime: dt.timedelta, fingerprint: str | None = None) -> str:
    now = dt.datetime.now(dt.UTC)
    subject = f"ACME-PROD.{user.name}"
    claims = {
        "iss": f"{subject}.{fingerprint or user.fingerprint()}",
        "sub": subject,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, key, algorithm="RS256")  # type: ignore[arg-type]


@pytest.fixture
def registered() -> tuple[Users, User, rsa.RSAPrivateKey]:
    key = private_key()
    user = User(ACCOUNT_USER, rsa_public_key=public_key_pem(key), type="SERVICE")
    users = Users()
    users.define(user)
    return users, user, key


def _refusal(users: Users, token: str) -> int | None:
    body = {"LOGIN_NAME": ACCOUNT_USER, "AUTHENTICATOR": "SNOWFLAKE_JWT", "TOKEN": token}
    try:
        users.authenticate(body, "acme-prod")
    except SignInRefused as refused:
        return refused.code
    return None


def test_emulator_accepts_a_good_jwt_and_refuses_bad_ones_with_snowflakes_codes(
    registered: tuple[Users, User, rsa.RSAPrivateKey],
) -> None:
    users, user, key = registered
    assert _refusal(users, _jwt(key, user, lifetime=dt.timedelta(minutes=5))) is None
    assert _refusal(users, _jwt(key, user, lifetime=dt.timedelta(minutes=-5))) == 394301  # expired
    assert _refusal(users, "not.a.jwt") == 394306
    assert _refusal(users, _jwt(key, user, lifetime=dt.timedelta(minutes=5), fingerprint="SHA256:other")) == 394304
    # Claims the registered key's fingerprint but is signed by another key: the signature gives it away.
    forged = _jwt(private_key(), user, lifetime=dt.timedelta(minutes=5))
    assert _refusal(users, forged) == 390144
    header, payload, signature = _jwt(key, user, lifetime=dt.timedelta(minutes=5)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = claims["iss"] = "ACME-PROD.SOMEONE_ELSE.x"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert _refusal(users, f"{header}.{tampered}.{signature}") == 390144
    assert [a["refused"] for a in users.snapshot()["attempts"]] == [None, 394301, 394306, 394304, 390144, 390144]
    # Snowflake caps a key-pair JWT at an hour; the connector asks for a minute.
    assert _refusal(users, _jwt(key, user, lifetime=dt.timedelta(hours=2))) == 394303
