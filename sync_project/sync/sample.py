"""Samples of a synced table: first or random rows as JSON lines, CSV or Parquet.

DuckDB's COPY writes the file itself, streaming, so a large sample is never
built in memory. Per-format projections keep every value exact: HUGEINT as
DECIMAL(38,0) in Parquet (DuckDB would write a DOUBLE), timestamps as
ISO-8601 and binary as base64 in JSON and CSV; decimals and HUGEINTs stay
exact number literals in JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sync_project.sync.duckdb_access import Log
from sync_project.sync.errors import PermanentError
from sync_project.sync.publish import published_default, read_mirror
from sync_project.sync.tables import TableRef, quote_identifier

SampleFormat = Literal["json", "csv", "parquet"]
SampleMode = Literal["first", "random"]


@dataclass(frozen=True)
class SampleResult:
    rows: int
    path: Path
    source: str  # which file was read: the working file, or the published copy while a sync held it


def _projection(columns: list[tuple[str, str]], fmt: SampleFormat) -> str:
    parts: list[str] = []
    for name, dtype in columns:
        col = quote_identifier(name)
        if fmt == "parquet":
            expr = f"CAST({col} AS DECIMAL(38,0))" if dtype == "HUGEINT" else col
        elif dtype == "TIMESTAMP WITH TIME ZONE":
            expr = f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%fZ')"  # readers run in UTC
        elif dtype.startswith("TIMESTAMP"):
            expr = f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%f')"
        elif dtype == "BLOB":
            expr = f"to_base64({col})"
        elif fmt == "csv" and dtype == "JSON":
            expr = f"CAST({col} AS VARCHAR)"
        else:
            expr = col
        parts.append(f"{expr} AS {col}")
    return ", ".join(parts)


def write_sample(
    duckdb_path: Path,
    table: TableRef,
    output: Path,
    *,
    rows: int,
    mode: SampleMode = "first",
    fmt: SampleFormat = "json",
    lock_timeout: float = 60.0,
    published: Path | None = None,
    log: Log = lambda _: None,
) -> SampleResult:
    """Write up to `rows` rows of the synced table to `output` (a file, or /dev/stdout).

    Reads the working file when it is free, else the published copy (never waiting for a sync then).
    """
    if rows < 0:
        raise PermanentError(f"sample size must be 0 or more, got {rows}")
    mirror = published or published_default(duckdb_path)
    with read_mirror(duckdb_path, mirror, lock_timeout, f"sampling {table}", log) as (con, read_from):
        con.execute("SET preserve_insertion_order = true")  # "first" means first as loaded
        columns = [
            (str(r[0]), str(r[1]))
            for r in con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index",
                [table.duckdb_schema, table.duckdb_table],
            ).fetchall()
        ]
        if not columns:
            raise PermanentError(f"{table} has not been synced yet: no table {table.duckdb_relation} in {read_from}")
        source = (
            f"(SELECT * FROM {table.duckdb_sql} USING SAMPLE reservoir({int(rows)} ROWS))"
            if mode == "random"
            else f"(SELECT * FROM {table.duckdb_sql} LIMIT {int(rows)})"
        )
        options = {
            "json": "FORMAT JSON",
            "csv": "FORMAT CSV, HEADER true",
            "parquet": "FORMAT PARQUET, COMPRESSION ZSTD",
        }[fmt]
        target = str(output).replace("'", "''")
        copied = con.execute(f"COPY (SELECT {_projection(columns, fmt)} FROM {source}) TO '{target}' ({options})")
        written = copied.fetchone()
    return SampleResult(int(written[0]) if written else 0, output, read_from)
