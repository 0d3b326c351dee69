"""Samples of a synced table: first or random rows as JSON lines, CSV or Parquet.

DuckDB's COPY writes CSV and Parquet itself, streaming; JSON lines are built
here in batches (DuckDB's JSON writer drops a decimal's scale). A large sample
is never built in memory. Per-format projections keep every value exact:
HUGEINT as DECIMAL(38,0) in Parquet (DuckDB would write a DOUBLE), timestamps
as ISO-8601 and binary as base64 in JSON and CSV; decimals (with their scale)
and HUGEINTs stay exact number literals in JSON.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror import Mirror
from sync_project.sync.mirror.access import Log
from sync_project.sync.tables import TableRef, quote_identifier, sql_string

SampleFormat = Literal["json", "csv", "parquet"]
SampleMode = Literal["first", "random"]
JSON_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class SampleResult:
    rows: int
    path: Path | None  # None when written to a stream
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


def _json_value(value: Any, dtype: str) -> str:
    """One JSON value, exact: decimals keep their scale (0.00, not 0.0), JSON columns go in as they are."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))  # JSON has no NaN or Infinity
    if dtype == "JSON":
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _write_json_lines(cursor: Any, columns: list[tuple[str, str]], stream: BinaryIO) -> int:
    """JSON lines built here, batch by batch (bounded memory): DuckDB's writer would print 0.00 as 0.0."""
    keys = [json.dumps(name, ensure_ascii=False) + ":" for name, _ in columns]
    types = [dtype for _, dtype in columns]
    written = 0
    while batch := cursor.fetchmany(JSON_BATCH_ROWS):
        lines = [
            "{" + ",".join(k + _json_value(v, t) for k, v, t in zip(keys, row, types, strict=True)) + "}\n"
            for row in batch
        ]
        stream.write("".join(lines).encode())
        written += len(batch)
    return written


def write_sample(
    mirror: Mirror,
    table: TableRef,
    output: Path | BinaryIO,
    *,
    rows: int,
    mode: SampleMode = "first",
    fmt: SampleFormat = "json",
    wait: float | None = None,
    log: Log = lambda _: None,
    seed: int | None = None,
) -> SampleResult:
    """Write up to `rows` rows of the synced table to `output`: a file, or a stream such as stdout.

    A stream gets what is written through it (so `>>` appends and pipes work); DuckDB is never handed a
    path like /dev/stdout, which it would reopen and truncate. Random rows are uniform over the table
    (ordered by a hash of the row id and `seed`); DuckDB's reservoir sample favours the first rows of a
    parallel scan when N is small. Reads the working file when it is free, else the published copy.
    """
    if rows < 0:
        raise PermanentError(f"sample size must be 0 or more, got {rows}")
    with mirror.read(f"sampling {table}", log, wait) as (con, read_from):
        con.execute("SET preserve_insertion_order = true")  # "first" means first as loaded
        columns = [
            (str(r[0]), str(r[1]))
            for r in con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? ORDER BY column_index",
                [table.duckdb_schema, table.duckdb_table],
            ).fetchall()
        ]
        if not columns:
            raise PermanentError(f"{table} has not been synced yet: no table {table.duckdb_relation} in {read_from}")
        if mode == "random":
            salt = seed if seed is not None else secrets.randbits(62)
            source = f"(SELECT * FROM {table.duckdb_sql} ORDER BY hash(rowid, {int(salt)}) LIMIT {int(rows)})"
        else:
            source = f"(SELECT * FROM {table.duckdb_sql} LIMIT {int(rows)})"
        query = f"SELECT {_projection(columns, fmt)} FROM {source}"
        if fmt == "json":
            cursor = con.execute(query)
            if isinstance(output, Path):
                with output.open("wb") as handle:
                    written = _write_json_lines(cursor, columns, handle)
            else:
                written = _write_json_lines(cursor, columns, output)
            return SampleResult(written, output if isinstance(output, Path) else None, read_from)
        options = "FORMAT CSV, HEADER true" if fmt == "csv" else "FORMAT PARQUET, COMPRESSION ZSTD"
        with tempfile.TemporaryDirectory(prefix="sample-") as folder:
            target = output if isinstance(output, Path) else Path(folder) / f"sample.{fmt}"
            copied = con.execute(f"COPY ({query}) TO {sql_string(target)} ({options})").fetchone()
            if not isinstance(output, Path):
                with target.open("rb") as handle:
                    shutil.copyfileobj(handle, output)
    return SampleResult(int(copied[0]) if copied else 0, output if isinstance(output, Path) else None, read_from)
