"""What every statement handler shares: the statement to answer (with the session, stages and fakesnow it may
need) and the small result sets the emulator builds itself.

`kinds.classify` names the kind; `statements.HANDLERS` maps it to its handler (one small function per kind, as
fakesnow's own transforms are: `fakesnow/transforms/stage.py`); a handler returns a `Result` (rows the connector
reads as JSON), a dict (GET's file-transfer answer) or None (fakesnow runs the statement after all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import duckdb
from fakesnow.fakes import FakeSnowflakeConnection
from fakesnow.instance import FakeSnow

from local_snowflake.access import Session
from local_snowflake.gcs import PresignedStorage
from local_snowflake.policies import Policies
from local_snowflake.running import Running, RunningQueries
from local_snowflake.sqltext import (
    OptionValue,
    sql_error,
)
from local_snowflake.stages import StageStore


@dataclass
class Result:
    """A small result set the emulator builds itself, sent as JSON rows."""

    columns: list[tuple[str, str]]  # (name, "text" | "fixed")
    rows: list[list[Any]]


Answer = Result | dict[str, Any] | None


@dataclass
class Statement:
    """One statement to answer, with what its handler may need: the session, the stages, fakesnow."""

    kind: str
    match: re.Match[str]
    sql: str
    token: str
    conn: FakeSnowflakeConnection
    base_url: str
    session: Session
    stages: StageStore
    storage: PresignedStorage
    fs: FakeSnow
    queries: RunningQueries
    running: Running
    policies: Policies  # this statement: a cancel sets it and interrupts what it runs

    @property
    def rest(self) -> str:
        return self.match.group("rest") if "rest" in self.match.groupdict() else ""

    @property
    def db(self) -> str | None:
        database: str | None = self.conn.database
        return database

    @property
    def schema(self) -> str | None:
        schema: str | None = self.conn.schema
        return schema

    @property
    def duck(self) -> duckdb.DuckDBPyConnection:
        duck: duckdb.DuckDBPyConnection = self.conn._duck_conn
        return duck


def only_options(options: dict[str, OptionValue], allowed: set[str], statement: str) -> dict[str, OptionValue]:
    """Snowflake refuses options a statement does not have; so does the emulator."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise sql_error(f"SQL compilation error:\ninvalid option {unknown[0]!r} for {statement}", errno=1003)
    return options


def message(text: str) -> Result:
    return Result([("status", "text")], [[text]])


DONE = "Statement executed successfully."
