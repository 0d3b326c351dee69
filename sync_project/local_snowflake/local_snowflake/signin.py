"""Sign-in as Snowflake checks it: users, their password, RSA public key and programmatic access tokens.

fakesnow accepts any credentials. Snowflake does not, and the sync must prove
it treats a refusal as final (a retried bad password can lock the user), so the
emulator refuses as Snowflake does, with Snowflake's codes and messages:

- a password that does not match, an unknown user, or any password for a
  `TYPE = SERVICE` user (service users sign in with a key pair or a token):
  390100 "Incorrect username or password was specified.";
- a key-pair JWT (`AUTHENTICATOR=SNOWFLAKE_JWT`) that is malformed (394306),
  expired (394301), valid for more than an hour after it was issued (394303),
  for a key whose fingerprint is not the user's registered RSA_PUBLIC_KEY
  (394304), or whose signature does not verify (390144);
- a programmatic access token (`AUTHENTICATOR=PROGRAMMATIC_ACCESS_TOKEN`) that
  is not one of the user's: 394400 "Programmatic access token is invalid.".

The built-in user (LOCAL_USER / LOCAL_PASSWORD) is a person with a password;
tests define more over HTTP (`POST /_local/users`). Every attempt is recorded
(`GET /_local/users`), so a test can prove a refused sign-in was not retried.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from local_snowflake.account import LOCAL_PASSWORD, LOCAL_USER

UserType = Literal["PERSON", "SERVICE"]

KEY_PAIR = "SNOWFLAKE_JWT"
TOKEN = "PROGRAMMATIC_ACCESS_TOKEN"  # noqa: S105 - an authenticator's name
PASSWORD = "SNOWFLAKE"  # noqa: S105 - the connector's default authenticator

BAD_PASSWORD = (390100, "Incorrect username or password was specified.")
JWT_INVALID = (390144, "JWT token is invalid.")
JWT_EXPIRED = (394301, "JWT token is invalid.")
JWT_LIFETIME = (394303, "JWT token is invalid.")
MAX_JWT_LIFETIME_SECONDS = 3600  # Snowflake refuses a key-pair JWT whose exp is more than an hour after its iat
JWT_FINGERPRINT = (394304, "JWT token is invalid.")
JWT_FORMAT = (394306, "JWT token is invalid.")
TOKEN_INVALID = (394400, "Programmatic access token is invalid.")


class SignInRefused(Exception):
    def __init__(self, refusal: tuple[int, str]) -> None:
        super().__init__(refusal[1])
        self.code, self.message = refusal


@dataclass
class User:
    name: str
    password: str | None = None
    rsa_public_key: str | None = None  # PEM, or base64 DER as `ALTER USER ... SET RSA_PUBLIC_KEY` takes it
    tokens: list[str] = field(default_factory=list)
    type: UserType = "PERSON"

    def fingerprint(self) -> str | None:
        """`SHA256:<base64>` of the DER public key, as Snowflake's RSA_PUBLIC_KEY_FP and the connector compute it."""
        key = self.public_key()
        if key is None:
            return None
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()

    def public_key(self) -> Any:
        if not self.rsa_public_key:
            return None
        from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

        text = self.rsa_public_key.strip()
        if text.startswith("-----"):
            return load_pem_public_key(text.encode())
        return load_der_public_key(base64.b64decode(text))


@dataclass
class Users:
    users: dict[str, User] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.clear()

    def define(self, user: User) -> None:
        with self._lock:
            self.users[user.name.upper()] = user

    def clear(self) -> None:
        with self._lock:
            self.users = {LOCAL_USER.upper(): User(LOCAL_USER, password=LOCAL_PASSWORD)}
            self.attempts = []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"users": sorted(self.users), "attempts": list(self.attempts)}

    def exists(self, name: str) -> bool:
        with self._lock:
            return name.upper() in self.users

    def authenticate(self, data: dict[str, Any], account: str) -> str:
        """The signed-in user's name, or SignInRefused with Snowflake's code; every attempt is recorded."""
        name = str(data.get("LOGIN_NAME") or "").upper()
        authenticator = str(data.get("AUTHENTICATOR") or PASSWORD).upper()
        with self._lock:
            user = self.users.get(name)
        try:
            if authenticator == KEY_PAIR:
                _check_jwt(str(data.get("TOKEN") or ""), user, name, account)
            elif authenticator == TOKEN:
                if user is None or str(data.get("TOKEN") or "") not in user.tokens:
                    raise SignInRefused(TOKEN_INVALID)
            elif authenticator == PASSWORD:
                if user is None or user.type == "SERVICE" or user.password is None:
                    raise SignInRefused(BAD_PASSWORD)
                if str(data.get("PASSWORD") or "") != user.password:
                    raise SignInRefused(BAD_PASSWORD)
            else:
                raise SignInRefused(BAD_PASSWORD)
        except SignInRefused as refused:
            self._record(name, authenticator, refused.code)
            raise
        self._record(name, authenticator, None)
        return name

    def _record(self, user: str, authenticator: str, code: int | None) -> None:
        with self._lock:
            self.attempts.append({"user": user, "authenticator": authenticator, "refused": code})


def _check_jwt(token: str, user: User | None, name: str, account: str) -> None:
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        issuer, subject = str(claims["iss"]), str(claims["sub"])
    except (jwt.PyJWTError, KeyError):
        raise SignInRefused(JWT_FORMAT) from None
    # The connector writes iss = ACCOUNT.USER.SHA256:fp and sub = ACCOUNT.USER (account without region).
    expected_subject = f"{account.partition('.')[0].upper()}.{name}"
    if subject != expected_subject or not issuer.startswith(expected_subject + "."):
        raise SignInRefused(JWT_INVALID)
    if user is None or user.rsa_public_key is None:
        raise SignInRefused(JWT_INVALID)
    if issuer.removeprefix(expected_subject + ".") != user.fingerprint():
        raise SignInRefused(JWT_FINGERPRINT)
    try:
        jwt.decode(token, user.public_key(), algorithms=["RS256", "ES256", "ES384", "ES512"], leeway=60)
    except jwt.ExpiredSignatureError:
        raise SignInRefused(JWT_EXPIRED) from None
    except jwt.PyJWTError:
        raise SignInRefused(JWT_INVALID) from None
    if "exp" not in claims or int(claims["exp"]) < int(dt.datetime.now(dt.UTC).timestamp()) - 60:
        raise SignInRefused(JWT_EXPIRED)
    if "iat" not in claims or int(claims["exp"]) - int(claims["iat"]) > MAX_JWT_LIFETIME_SECONDS:
        raise SignInRefused(JWT_LIFETIME)
