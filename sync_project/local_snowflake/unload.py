"""`COPY INTO @stage/path/ FROM (SELECT ...)`: unload a query result as Snowflake-named Parquet files.

The query is Snowflake SQL; fakesnow's own transforms turn it into DuckDB
SQL, and DuckDB writes the Parquet files, split by MAX_FILE_SIZE, exactly
as fast as DuckDB can. Files are renamed as Snowflake names them.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from sync_project.local_snowflake.sqltext import OptionValue, sql_error

DEFAULT_MAX_FILE_SIZE = 16_777_216
MAX_MAX_FILE_SIZE = 5 * 1024**3


@dataclass(frozen=True)
class UnloadResult:
    rows_unloaded: int
    input_bytes: int
    output_bytes: int
    files: list[str]


def _file_format(options: dict[str, OptionValue]) -> None:
    fmt = options.get("FILE_FORMAT")
    kind = fmt.get("TYPE") if isinstance(fmt, dict) else None
    if kind != "PARQUET":
        raise sql_error(
            "SQL compilation error:\nthe local Snowflake unloads only FILE_FORMAT = (TYPE = PARQUET)",
            errno=2040,
        )


def unload_query(
    duck: duckdb.DuckDBPyConnection,
    duckdb_sql: str,
    folder: Path,
    prefix: str,
    options: dict[str, OptionValue],
) -> UnloadResult:
    """Write the query's rows into `folder` as `<prefix>_0_0_<n>.snappy.parquet` files."""
    _file_format(options)
    header = bool(options.get("HEADER", False))
    overwrite = bool(options.get("OVERWRITE", False))
    max_file_size = options.get("MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE)
    if not isinstance(max_file_size, int) or not 1 <= max_file_size <= MAX_MAX_FILE_SIZE:
        raise sql_error(f"SQL compilation error:\ninvalid value {max_file_size!r} for MAX_FILE_SIZE", errno=1008)
    if options.get("SINGLE") is True:
        raise sql_error("SQL compilation error:\nSINGLE = TRUE is not supported by the local Snowflake", errno=2040)

    described = duck.execute(f"DESCRIBE {duckdb_sql}").fetchall()
    for column in described:
        if str(column[1]).startswith("TIMESTAMP WITH TIME ZONE"):
            # Snowflake's answer to unloading TIMESTAMP_TZ / TIMESTAMP_LTZ to Parquet.
            raise sql_error(
                "Unloading TIMESTAMP_TZ and TIMESTAMP_LTZ data into Parquet is not supported. "
                f"Column '{column[0]}': convert it to TIMESTAMP_NTZ in the query.",
                errno=100171,
                sqlstate="22000",
            )
    if not header:
        projection = ", ".join(
            f'"{str(c[0]).replace(chr(34), chr(34) * 2)}" AS "_COL_{i}"' for i, c in enumerate(described)
        )
        duckdb_sql = f"SELECT {projection} FROM ({duckdb_sql})"

    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob(f"{prefix}_*.parquet"))
    if existing and not overwrite:
        raise sql_error(
            "Files already existing at the unload destination. Use overwrite option to force unloading.",
            errno=100117,
            sqlstate="22000",
        )
    for f in existing:
        f.unlink()

    scratch = folder / f".unload-{uuid.uuid4().hex}"
    # Small row groups let DuckDB honour a small MAX_FILE_SIZE; large ones keep big unloads fast.
    row_group_rows = max(2_048, min(122_880, max_file_size // 64))
    try:
        result = duck.execute(
            f"COPY ({duckdb_sql}) TO '{scratch}' (FORMAT PARQUET, COMPRESSION SNAPPY, "
            f"FILE_SIZE_BYTES {max_file_size}, ROW_GROUP_SIZE {row_group_rows}, FILENAME_PATTERN 'part_{{i}}')"
        ).fetchone()
        rows = int(result[0]) if result else 0
        parts = sorted(scratch.glob("part_*.parquet"), key=lambda p: int(p.stem.split("_")[1]))
        files: list[str] = []
        input_bytes = output_bytes = 0
        if rows:
            for index, part in enumerate(parts):
                meta: Any = pq.read_metadata(part)
                if meta.num_rows == 0:
                    continue
                input_bytes += sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
                name = f"{prefix}_0_0_{index}.snappy.parquet"
                part.rename(folder / name)
                output_bytes += (folder / name).stat().st_size
                files.append(name)
        return UnloadResult(rows, input_bytes, output_bytes, files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
