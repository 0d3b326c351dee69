"""Statements in flight, per session, so they can be cancelled as on Snowflake.

Two ways in, both Snowflake's own: `SELECT SYSTEM$CANCEL_ALL_QUERIES(<session_id>)` (documented; a user cancels
their own sessions' statements and gets "<n> cancelled.") and the connector's abort request
(`POST /queries/v1/abort-request` with the statement's `requestId`, what it sends on Ctrl-C). A cancelled
statement answers 000604 (57014) "SQL execution canceled", the text the connector itself looks for
(`cursor.py`), when it stops: a held fault stops waiting, an unload stops between batches (its DuckDB query
interrupted). A statement fakesnow runs cannot be stopped, so it finishes and answers as it finished.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
from snowflake.connector.errors import ProgrammingError

from local_snowflake.sqltext import sql_error

CANCELED_ERRNO = 604
CANCELED_MESSAGE = "SQL execution canceled"
TIMEOUT_ERRNO = 630


def canceled_error() -> ProgrammingError:
    return sql_error(CANCELED_MESSAGE, errno=CANCELED_ERRNO, sqlstate="57014")


def timeout_error(seconds: int) -> ProgrammingError:
    """000630, as Snowflake answers a statement stopped by STATEMENT_TIMEOUT_IN_SECONDS (session or warehouse)."""
    return sql_error(
        f"Statement reached its statement or warehouse timeout of {seconds} second(s) and was canceled.",
        errno=TIMEOUT_ERRNO,
        sqlstate="57014",
    )


@dataclass
class Running:
    """One statement in flight: cancelling it sets `cancelled` and interrupts the DuckDB queries it runs."""

    request_id: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    timed_out_after: int | None = None  # seconds, when the statement timeout stopped it
    _ducks: list[duckdb.DuckDBPyConnection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            for duck in self._ducks:
                with contextlib.suppress(Exception):  # nothing running on it right now
                    duck.interrupt()

    def time_out(self, seconds: int) -> None:
        """STATEMENT_TIMEOUT_IN_SECONDS ran out: stop as a cancel does, answering 000630 instead of 000604."""
        self.timed_out_after = seconds
        self.cancel()

    def stop_error(self) -> ProgrammingError:
        return canceled_error() if self.timed_out_after is None else timeout_error(self.timed_out_after)

    @contextlib.contextmanager
    def timeout(self, seconds: int) -> Iterator[None]:
        """While inside, the statement times out after `seconds` (0: never)."""
        timer = threading.Timer(seconds, self.time_out, (seconds,)) if seconds > 0 else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise self.stop_error()

    @contextlib.contextmanager
    def interruptible(self, duck: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """While inside, a cancel interrupts what `duck` runs."""
        with self._lock:
            self.raise_if_cancelled()
            self._ducks.append(duck)
        try:
            yield
        except duckdb.Error:
            self.raise_if_cancelled()  # DuckDB's InterruptException is the cancel: say it as Snowflake does
            raise
        except ProgrammingError as e:
            if e.errno == CANCELED_ERRNO:  # stopped between batches: by a cancel, or by the statement timeout
                raise self.stop_error() from None
            raise
        finally:
            with self._lock:
                self._ducks.remove(duck)
        self.raise_if_cancelled()


@dataclass
class RunningQueries:
    """Every session's statements in flight, and the numeric session ids Snowflake hands out at sign-in."""

    _statements: dict[str, list[Running]] = field(default_factory=dict)  # session token -> in flight
    _session_ids: dict[int, tuple[str, str]] = field(default_factory=dict)  # session id -> (token, user)
    _next_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1_065_153_872_298))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open_session(self, token: str, user: str) -> int:
        with self._lock:
            session_id = next(self._next_id)
            self._session_ids[session_id] = (token, user)
        return session_id

    def renamed_session(self, old: str, new: str) -> None:
        with self._lock:
            self._session_ids = {k: (new if t == old else t, u) for k, (t, u) in self._session_ids.items()}
            if old in self._statements:
                self._statements[new] = self._statements.pop(old)

    def close_session(self, token: str) -> None:
        with self._lock:
            self._session_ids = {k: v for k, v in self._session_ids.items() if v[0] != token}
            self._statements.pop(token, None)

    @contextlib.contextmanager
    def running(self, token: str, request_id: str) -> Iterator[Running]:
        statement = Running(request_id)
        with self._lock:
            self._statements.setdefault(token, []).append(statement)
        try:
            yield statement
        finally:
            with self._lock, contextlib.suppress(KeyError, ValueError):
                self._statements[token].remove(statement)

    def cancel_session(self, session_id: int, user: str, caller: Running | None = None) -> int:
        """SYSTEM$CANCEL_ALL_QUERIES: the number of statements cancelled (not the caller itself, which may run in
        the same session). Another user's session needs privileges the emulator grants nobody, so it is
        refused, as an unknown session is."""
        with self._lock:
            token, owner = self._session_ids.get(session_id, ("", ""))
            if not token or owner != user:
                raise sql_error(f"Session {session_id} does not exist or not authorized.", errno=3001, sqlstate="42501")
            statements = [s for s in self._statements.get(token, []) if s is not caller]
        for statement in statements:
            statement.cancel()
        return len(statements)

    def cancel_request(self, token: str, request_id: str) -> bool:
        """The connector's abort request: cancel the session's statement sent with `request_id`."""
        with self._lock:
            found = [s for s in self._statements.get(token, []) if s.request_id == request_id]
        for statement in found:
            statement.cancel()
        return bool(found)
