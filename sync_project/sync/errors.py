"""Two kinds of failure: worth retrying (TransientError) or not (PermanentError).

The Dagster shell retries the first with backoff and fails the second at once.
Every message names the table and says what to do; none carries a secret.
"""

from __future__ import annotations

from snowflake.connector import errors as sf


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


# Snowflake error numbers that say "this will not work however often you try".
_PERMANENT_ERRNOS = {
    2003,  # object does not exist or not authorized
    2043,  # object does not exist / compilation
    1003,  # syntax error
    390100,  # incorrect username or password
    390144,  # JWT token invalid
    390318,  # user locked / disabled
    390422,  # IP not allowed
}
_COULD_NOT_CONNECT = 250001
_ACCOUNT_HINT = "the network and SNOWFLAKE_ACCOUNT / SNOWFLAKE_HOST"
# Statement-level failures Snowflake itself says are internal and retryable.
_TRANSIENT_ERRNOS = {603, 604, 630}


def from_snowflake(error: Exception, what: str) -> SyncError:
    """Wrap a connector error as transient or permanent; `what` says which table and phase."""
    errno = getattr(error, "errno", None)
    message = getattr(error, "raw_msg", None) or getattr(error, "msg", None) or str(error)
    text = f"{what}: Snowflake error {errno}: {message}" if errno else f"{what}: {message}"
    if errno == _COULD_NOT_CONNECT:
        # A dropped network and a mistyped account look alike; retry, and say what to check if it persists.
        return TransientError(text + f" (will be retried; if it persists, check {_ACCOUNT_HINT})")
    if isinstance(error, sf.OperationalError | sf.InterfaceError) and errno not in _PERMANENT_ERRNOS:
        return TransientError(text + " (transient; will be retried)")
    if errno in _TRANSIENT_ERRNOS:
        return TransientError(text + " (transient; will be retried)")
    if isinstance(error, sf.DatabaseError) and errno in _PERMANENT_ERRNOS:
        return PermanentError(text)
    if isinstance(error, sf.ProgrammingError):
        return PermanentError(text)
    # Anything else (HTTP 5xx surfaced as DatabaseError, sockets, timeouts) is worth another try.
    return TransientError(text + " (transient; will be retried)")
