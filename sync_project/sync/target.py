"""Where synced tables live when they do not live in the one DuckDB file: a DuckLake.

A DuckDB file has one writer at a time, and a writer excludes readers. A DuckLake keeps tables as Parquet
files under a data path and their catalog in a database (a SQLite file on one machine, PostgreSQL for a
team): many writers commit at once with snapshot isolation, readers attach it read-only and never wait, and
every commit is a snapshot a reader can query later (`AT (VERSION => id)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync_project.sync.errors import PermanentError

LAKE_ALIAS = "lake"  # the name the lake is attached under in every session
POSTGRES_PREFIX = "postgres:"


@dataclass(frozen=True)
class Lake:
    catalog: str  # a SQLite file path, or postgres:<libpq key=value conninfo>
    data_path: str  # the folder (or object-store prefix) that holds the lake's Parquet files

    def __post_init__(self) -> None:
        if not self.catalog or not self.data_path:
            raise PermanentError(
                "a DuckLake target needs both SYNC_DUCKLAKE_CATALOG (a SQLite file, or postgres:dbname=... "
                "host=...) and SYNC_DUCKLAKE_DATA_PATH (a folder for its Parquet files)"
            )
        if self.is_postgres and re.search(r"\bpassword\s*=", self.catalog, re.IGNORECASE):
            # The catalog string reaches run config and messages; a password there would too.
            raise PermanentError(
                "SYNC_DUCKLAKE_CATALOG must not hold a password: set PGPASSWORD (or a ~/.pgpass entry), "
                "which PostgreSQL's client reads itself, and leave password= out of the catalog"
            )

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
