"""Two kinds of failure: worth retrying (TransientError) or not (PermanentError).

The Dagster shell retries the first with backoff, and says whether a retry is coming (the engine cannot
know: the CLI does not retry, and a last attempt has none left); it fails the second at once.
Every message names the table and says what to do; none carries a secret.
"""

from __future__ import annotations

from snowflake.connector import errors as sf

from sync_project.sync.setting_names import (
    SNOWFLAKE_ACCOUNT,
    SNOWFLAKE_HOST,
    SNOWFLAKE_PASSWORD,
    SNOWFLAKE_PRIVATE_KEY,
    SNOWFLAKE_ROLE,
    SNOWFLAKE_TOKEN,
    SNOWFLAKE_USER,
)


class SyncError(Exception):
    """A sync failed; `str(error)` is the message for people."""


class TransientError(SyncError):
    """Network trouble, a Snowflake hiccup, a busy DuckDB file: trying again may well succeed."""


class PermanentError(SyncError):
    """Missing table, bad credentials, unsupported type, hostile name, full disk: retrying cannot help."""


class TableNotFoundError(PermanentError):
    pass


class UnsupportedTypeError(PermanentError):
    pass


class InvalidTableNameError(PermanentError, ValueError):
    pass


class NotEnoughDiskError(PermanentError):
    pass


class RowCountMismatchError(TransientError):
    """The load saw a different number of rows than Snowflake unloaded; a fresh attempt re-reads everything."""


class LockTimeoutError(TransientError):
    pass


class SignInError(PermanentError):
    """Snowflake refused the sign-in. Never retried: each retry of a bad password counts toward locking the user."""

    hint = f"check {SNOWFLAKE_USER}, the credentials and {SNOWFLAKE_ROLE}"


class CredentialsRejectedError(SignInError):
    hint = (
        f"check {SNOWFLAKE_USER} and {SNOWFLAKE_PASSWORD}; a service user (TYPE = SERVICE) cannot sign in with a "
        f"password: give it a key pair ({SNOWFLAKE_PRIVATE_KEY}) or a token ({SNOWFLAKE_TOKEN})"
    )


class KeyPairRejectedError(SignInError):
    hint = (
        f"check that {SNOWFLAKE_PRIVATE_KEY} is the private half of the key registered for {SNOWFLAKE_USER} "
        "(DESC USER shows RSA_PUBLIC_KEY_FP; ALTER USER ... SET RSA_PUBLIC_KEY sets it), and this machine's clock"
    )


class TokenRejectedError(SignInError):
    hint = (
        f"the programmatic access token in {SNOWFLAKE_TOKEN} is expired, revoked or another user's, or the user has "
        "no network policy (Snowflake requires one for tokens); make a new one with "
        "ALTER USER ... ADD PROGRAMMATIC ACCESS TOKEN"
    )


class RoleNotGrantedError(SignInError):
    hint = f"{SNOWFLAKE_ROLE} names a role that does not exist or is not granted to {SNOWFLAKE_USER}; fix or unset it"


class NetworkPolicyError(SignInError):
    hint = "a network policy does not allow this machine's IP address; ask an admin to allow it"


# Sign-in refusals by Snowflake code (the connector's CREDENTIAL_REJECTION_GS_CODES, plus role and network).
_SIGN_IN_ERRORS: dict[int, type[SignInError]] = {
    390100: CredentialsRejectedError,
    390144: KeyPairRejectedError,
    **dict.fromkeys(range(394300, 394307), KeyPairRejectedError),
    394400: TokenRejectedError,
    390189: RoleNotGrantedError,
    390422: NetworkPolicyError,
}
# Session-token codes: the connector renews the session; if one surfaces, a fresh attempt signs in anew.
_SESSION_ERRNOS = {390111, 390112, 390113, 390114, 390115}

# Statement errors that say "this will not work however often you try".
_PERMANENT_ERRNOS = {
    2003,  # object does not exist or not authorized
    2043,  # object does not exist / compilation
    1003,  # syntax error
}
_COULD_NOT_CONNECT = 250001
_ACCOUNT_HINT = f"the network and {SNOWFLAKE_ACCOUNT} / {SNOWFLAKE_HOST}"
# Statement-level failures Snowflake itself says are internal and retryable. Not 630 (a statement timeout):
# another try runs as long and is stopped again (sync/controls.py says which timeout and what to do).
_TRANSIENT_ERRNOS = {603, 604}


def _is_sign_in_refusal(errno: int | None) -> bool:
    """390xxx and 394xxx are the authentication service's codes; only the session-token ones are worth a retry."""
    return errno is not None and errno // 1000 in (390, 394) and errno not in _SESSION_ERRNOS


def from_snowflake(error: Exception, what: str) -> SyncError:
    """Wrap a connector error as transient or permanent; `what` says which table and phase."""
    errno = getattr(error, "errno", None)
    message = getattr(error, "raw_msg", None) or getattr(error, "msg", None) or str(error)
    text = f"{what}: Snowflake error {errno}: {message}" if errno else f"{what}: {message}"
    if _is_sign_in_refusal(errno):
        kind = _SIGN_IN_ERRORS.get(errno or 0, SignInError)
        return kind(f"{text} (not retried: {kind.hint})")
    if errno in _SESSION_ERRNOS:
        # The connector renews an expired session token itself; one that surfaces could not be renewed (its master
        # token expired too): a new try signs in afresh.
        return TransientError(text + " (the Snowflake session expired; a new try signs in again)")
    if errno == _COULD_NOT_CONNECT:
        # A dropped network and a mistyped account look alike; retry, and say what to check if it persists.
        return TransientError(text + f" (if it persists, check {_ACCOUNT_HINT})")
    if isinstance(error, sf.OperationalError | sf.InterfaceError) and errno not in _PERMANENT_ERRNOS:
        return TransientError(text + " (transient)")
    if errno in _TRANSIENT_ERRNOS:
        return TransientError(text + " (transient)")
    if isinstance(error, sf.DatabaseError) and errno in _PERMANENT_ERRNOS:
        return PermanentError(text)
    if isinstance(error, sf.ProgrammingError):
        return PermanentError(text)
    # Anything else (HTTP 5xx surfaced as DatabaseError, sockets, timeouts) is worth another try.
    return TransientError(text + " (transient)")
