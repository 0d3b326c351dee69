"""Where synced tables live when they do not live in the one DuckDB file: a DuckLake.

A DuckDB file has one writer at a time, and a writer excludes readers. A DuckLake keeps tables as Parquet
files under a data path and their catalog in a database (a SQLite file on one machine, PostgreSQL for a
team): many writers commit at once with snapshot isolation, readers attach it read-only and never wait, and
every commit is a snapshot a reader can query later (`AT (VERSION => id)`).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sync_project.sync.errors import PermanentError, TransientError
from sync_project.sync.extensions import OFFLINE, load_extension
from sync_project.sync.mirror.access import Log, quiet, session_settings
from sync_project.sync.mirror.object_store import check_data_path, on_object_store, storage_error, use_object_store
from sync_project.sync.setting_names import SYNC_DUCKLAKE_CATALOG, SYNC_DUCKLAKE_DATA_PATH
from sync_project.sync.tables import sql_string

LAKE_ALIAS = "lake"  # the name the lake is attached under in every session
POSTGRES_PREFIX = "postgres:"


@dataclass(frozen=True)
class Lake:
    catalog: str  # a SQLite file path, or postgres:<libpq key=value conninfo>
    data_path: str  # the folder, or the s3://bucket/prefix/, that holds the lake's Parquet files

    def __post_init__(self) -> None:
        if not self.catalog or not self.data_path:
            raise PermanentError(
                f"a DuckLake target needs both {SYNC_DUCKLAKE_CATALOG} (a SQLite file, or postgres:dbname=... "
                f"host=...) and {SYNC_DUCKLAKE_DATA_PATH} (a folder for its Parquet files)"
            )
        if self.is_postgres and re.search(r"\bpassword\s*=", self.catalog, re.IGNORECASE):
            # The catalog string reaches run config and messages; a password there would too.
            raise PermanentError(
                f"{SYNC_DUCKLAKE_CATALOG} must not hold a password: set PGPASSWORD (or a ~/.pgpass entry), "
                "which PostgreSQL's client reads itself, and leave password= out of the catalog"
            )
        check_data_path(self.data_path)

    @property
    def on_object_store(self) -> bool:
        return on_object_store(self.data_path)

    @property
    def is_postgres(self) -> bool:
        return self.catalog.startswith(POSTGRES_PREFIX)

    @property
    def scanner(self) -> str:
        """The DuckDB extension that reaches the catalog database."""
        return "postgres_scanner" if self.is_postgres else "sqlite_scanner"

    @property
    def attach_path(self) -> str:
        return "ducklake:" + (self.catalog if self.is_postgres else f"sqlite:{self.catalog}")

    def describe(self) -> str:
        return f"the DuckLake {self.catalog} (data in {self.data_path})"


def lake_for(target: str, catalog: str, data_path: str) -> Lake | None:
    """The lake SYNC_TARGET names, or None for the DuckDB file."""
    return Lake(catalog, data_path) if target == "ducklake" else None


# A new Postgres catalog is created by the first attach; two writers that attach it at once race on
# CREATE TABLE and one gets Postgres's duplicate-key error. Once the other's creation has committed, an
# attach simply finds the catalog.
_CATALOG_RACE = ("duplicate key value", "already exists")
_CATALOG_RACE_RETRIES = (0.2, 0.5, 1.0, 2.0)
# libpq's words for a server that is down, restarting or unreachable: worth another attempt later.
_CATALOG_UNREACHABLE = (
    "could not connect",
    "connection refused",
    "server closed the connection",
    "the database system is",
    "no such file or directory",
    "terminating connection",
)


def attach_lake(
    con: duckdb.DuckDBPyConnection, lake: Lake, read_only: bool, what: str, log: Callable[[str], None]
) -> None:
    """Attach the lake as LAKE_ALIAS; a failure is transient (the catalog's server is down) or permanent."""
    attach = f"ATTACH {sql_string(lake.attach_path)} AS {LAKE_ALIAS} (DATA_PATH {sql_string(lake.data_path)}"
    for pause in (*_CATALOG_RACE_RETRIES, None):
        try:
            try:
                con.execute(attach + (", READ_ONLY)" if read_only else ")"))
            except duckdb.Error as e:
                # A lake that was never written has no catalog yet, and a read-only attach cannot make one;
                # an empty lake it makes is what a reader of a lake with no sync would see anyway.
                never_written = not lake.is_postgres and not Path(lake.catalog).exists()
                if not read_only or not (never_written or "does not exist" in str(e)):
                    raise
                con.execute(attach + ")")
            return
        except duckdb.Error as e:
            text = str(e)
            if pause is not None and any(s in text for s in _CATALOG_RACE):
                log(f"{what}: another writer is creating {lake.describe()}'s catalog; attaching again in {pause}s")
                time.sleep(pause)
                continue
            message = f"{what}: cannot attach {lake.describe()} ({text.splitlines()[0]})"
            if lake.is_postgres and any(s in text.lower() for s in _CATALOG_UNREACHABLE):
                raise TransientError(
                    f"{message}. The catalog's PostgreSQL did not answer (down or restarting); the previous "
                    "tables are untouched, and a later attempt syncs again (transient)"
                ) from None
            raise PermanentError(
                f"{message}. Check {SYNC_DUCKLAKE_CATALOG} and {SYNC_DUCKLAKE_DATA_PATH}, and that the catalog "
                "database is reachable."
            ) from None


@contextlib.contextmanager
def lake_session(
    lake: Lake, read_only: bool = False, what: str = "", log: Log | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short connection with the lake attached and in use: tables and `_sync` live in it, as in the file.

    No project lock: DuckLake commits concurrent transactions with snapshot isolation, so loads of
    different tables never wait for each other, and read-only sessions never wait at all.
    """
    con = duckdb.connect(config=OFFLINE)
    try:
        load_extension(con, lake.scanner)
        load_extension(con, "ducklake")
        if lake.on_object_store:
            use_object_store(con, lake.data_path)
        if not lake.is_postgres:
            Path(lake.catalog).parent.mkdir(parents=True, exist_ok=True)
        attach_lake(con, lake, read_only, what or "opening the lake", log or quiet)
        con.execute(f"USE {LAKE_ALIAS}")
        session_settings(con)
        yield con
    except duckdb.Error as e:
        said = storage_error(e, lake.data_path, what or "the lake") if lake.on_object_store else None
        if said is None:
            raise
        raise said from None
    finally:
        con.close()
