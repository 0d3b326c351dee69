"""`COPY INTO @stage/path/ FROM (SELECT ...)`: unload a query result as Parquet files as Snowflake writes them.

The query is Snowflake SQL; fakesnow's own transforms turn it into DuckDB SQL.
DuckDB runs it; pyarrow writes the files with Snowflake's physical and logical
types rather than DuckDB's (so the sync is tested against the harder files):

- every NUMBER (DuckDB DECIMAL and the integer types alike) as DECIMAL(p,s) in a
  FIXED_LEN_BYTE_ARRAY, because Snowflake has no integer types and, with
  ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = FALSE, writes the logical type;
- TIMESTAMP_NTZ as INT64 TIMESTAMP(NANOS), TIME as INT64 TIME(NANOS): Snowflake
  keeps nine digits of fractional seconds. Values outside what nanoseconds since
  1970 can hold (before 1677-09-21, after 2262-04-11) wrap silently; Snowflake
  does not document what it writes for them, so the emulator does the worst thing;
- BINARY as BYTE_ARRAY, text as UTF8 BYTE_ARRAY, DATE as INT32 DATE.

Files are split by MAX_FILE_SIZE, named `data_<a>_<b>_<c>.snappy.parquet` as
Snowflake's parallel unload names them, and stored encrypted in the stage.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from local_snowflake.running import canceled_error
from local_snowflake.sqltext import ObjectName, OptionValue, sql_error
from local_snowflake.stages import StageStore

DEFAULT_MAX_FILE_SIZE = 16_777_216
MAX_MAX_FILE_SIZE = 5 * 1024**3
# Snowflake's unload runs in parallel threads, each writing its own files: data_<thread>_<slice>_<n>.
_WRITERS = 4


@dataclass(frozen=True)
class WrittenUnload:
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


def snowflake_parquet_type(arrow_type: pa.DataType) -> pa.DataType:
    """The Arrow type whose Parquet encoding matches what Snowflake writes for a column of this type."""
    if pa.types.is_integer(arrow_type):
        return pa.decimal128(38, 0)
    if pa.types.is_decimal(arrow_type):
        return pa.decimal128(arrow_type.precision, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("ns")
    if pa.types.is_time(arrow_type):
        return pa.time64("ns")
    if pa.types.is_floating(arrow_type):
        return pa.float64()
    if pa.types.is_large_string(arrow_type) or pa.types.is_string(arrow_type):
        return pa.string()
    if pa.types.is_large_binary(arrow_type) or pa.types.is_binary(arrow_type):
        return pa.binary()
    return arrow_type


def _as_snowflake_writes(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = []
    for column, target in zip(batch.columns, schema, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        # safe=False: nanoseconds wrap past 2262 rather than fail, as an unchecked writer would.
        columns.append(column.cast(target.type, safe=False))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _narrowest(column: pa.ChunkedArray) -> pa.DataType:
    """With ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION = TRUE (Snowflake's default) a file's schema follows its
    values, "the smallest data types and precision that support the values": whole numbers in the narrowest
    integer that holds them, other decimals with only the digits they need. Another file of the same unload,
    with other values, gets other types."""
    kind = column.type
    if not pa.types.is_decimal(kind) or column.null_count == len(column):
        return kind
    values = [v for v in column.to_pylist() if v is not None]
    if kind.scale == 0:
        low, high = int(min(values)), int(max(values))
        for width in (pa.int8(), pa.int16(), pa.int32(), pa.int64()):
            bits = width.bit_width - 1
            if -(2**bits) <= low and high < 2**bits:
                return width
    digits = max(len(v.as_tuple().digits) for v in values)
    return pa.decimal128(max(digits, kind.scale, 1), kind.scale)


def _optimise_physical_types(plain: Path) -> None:
    table = pq.read_table(plain)
    schema = pa.schema([pa.field(f.name, _narrowest(table.column(f.name))) for f in table.schema])
    pq.write_table(table.cast(schema), plain, compression="snappy", version="2.6")


def _file_order(name: str) -> tuple[int, int]:
    thread, _, number = name.split(".")[0].rsplit("_", 3)[-3:]
    return int(number), int(thread)


class _SharedReader:
    """The query's record batches, handed out one at a time to whichever writer asks; None at the end,
    and after any writer failed (so the others stop too)."""

    def __init__(self, reader: Any, cancelled: threading.Event) -> None:
        self._reader = reader
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self.failed = False

    def next(self) -> pa.RecordBatch | None:
        with self._lock:
            while not self.failed:
                if self._cancelled.is_set():  # SYSTEM$CANCEL_ALL_QUERIES or an abort request: stop between batches
                    raise canceled_error()
                try:
                    batch: pa.RecordBatch = self._reader.read_next_batch()
                except StopIteration:
                    return None
                if batch.num_rows:
                    return batch
            return None


@dataclass
class _FileWriter:
    """One unload thread: writes the batches it takes into files of about MAX_FILE_SIZE, named
    `<prefix>_<thread>_0_<n>.snappy.parquet`, and stores each one encrypted when it is full."""

    thread: int
    scratch: Path
    schema: pa.Schema
    batch_rows: int
    max_file_size: int
    prefix: str
    optimise: bool = True  # ENABLE_UNLOAD_PHYSICAL_TYPE_OPTIMIZATION
    files: list[str] = field(default_factory=list)
    rows: int = 0
    input_bytes: int = 0
    output_bytes: int = 0

    def run(self, batches: _SharedReader, store: Callable[[Path, str], int]) -> None:
        plain = self.scratch / f"part-{self.thread}.parquet"
        writer: pq.ParquetWriter | None = None
        try:
            while (batch := batches.next()) is not None:
                if writer is None:
                    sink = pa.OSFile(str(plain), "wb")
                    writer = pq.ParquetWriter(sink, self.schema, compression="snappy", version="2.6")
                writer.write_batch(_as_snowflake_writes(batch, self.schema), row_group_size=self.batch_rows)
                self.rows += batch.num_rows
                if sink.tell() >= self.max_file_size:
                    self._finish(writer, sink, plain, store)
                    writer = None
            if writer is not None:
                self._finish(writer, sink, plain, store)
                writer = None
        except BaseException:
            batches.failed = True
            if writer is not None:
                writer.close()
            raise

    def _finish(self, writer: pq.ParquetWriter, sink: Any, plain: Path, store: Callable[[Path, str], int]) -> None:
        writer.close()
        sink.close()
        if self.optimise:
            _optimise_physical_types(plain)
        meta: Any = pq.read_metadata(plain)
        self.input_bytes += sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        name = f"{self.prefix}_{self.thread}_0_{len(self.files)}.snappy.parquet"
        self.output_bytes += store(plain, name)
        plain.unlink()
        self.files.append(name)


# COPY INTO <location>'s options (copyOptions and the clauses after the query) and a Parquet FILE_FORMAT's, as
# Snowflake documents them; anything else is refused, so a misspelt option fails instead of being ignored.
UNLOAD_OPTIONS = frozenset(
    {"FILE_FORMAT", "HEADER", "OVERWRITE", "SINGLE", "MAX_FILE_SIZE", "INCLUDE_QUERY_ID", "DETAILED_OUTPUT",
     "VALIDATION_MODE", "ENCRYPTION"}
)  # fmt: skip
PARQUET_FORMAT_OPTIONS = frozenset({"TYPE", "FORMAT_NAME", "COMPRESSION", "SNAPPY_COMPRESSION", "NULL_IF"})


def _known_options(options: dict[str, OptionValue]) -> None:
    fmt = options.get("FILE_FORMAT")
    for given, allowed in ((options, UNLOAD_OPTIONS), (fmt if isinstance(fmt, dict) else {}, PARQUET_FORMAT_OPTIONS)):
        if unknown := sorted(set(given) - allowed):
            raise sql_error(f"SQL compilation error:\ninvalid parameter '{unknown[0]}'", errno=1008, sqlstate="22023")


def _unload_options(options: dict[str, OptionValue]) -> tuple[bool, bool, int]:
    """HEADER, OVERWRITE and MAX_FILE_SIZE, checked as Snowflake checks them."""
    _known_options(options)
    _file_format(options)
    max_file_size = options.get("MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE)
    if not isinstance(max_file_size, int) or not 1 <= max_file_size <= MAX_MAX_FILE_SIZE:
        raise sql_error(f"SQL compilation error:\ninvalid value {max_file_size!r} for MAX_FILE_SIZE", errno=1008)
    if options.get("SINGLE") is True:
        raise sql_error("SQL compilation error:\nSINGLE = TRUE is not supported by the local Snowflake", errno=2040)
    return bool(options.get("HEADER", False)), bool(options.get("OVERWRITE", False)), max_file_size


def _column_names(duck: duckdb.DuckDBPyConnection, duckdb_sql: str, header: bool) -> list[str]:
    """The Parquet column names (the query's with HEADER, else _COL_n); refuses what Snowflake cannot unload."""
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
    return [str(c[0]) if header else f"_COL_{i}" for i, c in enumerate(described)]


def write_unload(
    duck: duckdb.DuckDBPyConnection,
    duckdb_sql: str,
    stages: StageStore,
    stage: ObjectName,
    folder: str,
    prefix: str,
    options: dict[str, OptionValue],
    query_id: str,
    cancelled: threading.Event | None = None,
    optimise_physical_types: bool = True,
) -> WrittenUnload:
    """Write the query's rows into the stage under `folder` as encrypted `<prefix>_<a>_<b>_<c>.snappy.parquet`."""
    header, overwrite, max_file_size = _unload_options(options)
    names = _column_names(duck, duckdb_sql, header)
    stage_folder = stages.location_folder(stage, folder)
    existing = sorted(p.name for p in stage_folder.glob(f"{prefix}_*.parquet")) if stage_folder.is_dir() else []
    if existing and not overwrite:
        raise sql_error(
            "Files already existing at the unload destination. Use overwrite option to force unloading.",
            errno=100117,
            sqlstate="22000",
        )
    # OVERWRITE = TRUE replaces files of the same name only; others at the location stay (Snowflake's docs).

    # Small row groups let a small MAX_FILE_SIZE be honoured; large ones keep big unloads fast.
    batch_rows = max(2_048, min(122_880, max_file_size // 64))
    reader: Any = duck.sql(duckdb_sql).to_arrow_reader(batch_rows)
    arrow_schema = pa.schema(
        [pa.field(n, snowflake_parquet_type(f.type)) for n, f in zip(names, reader.schema, strict=True)]
    )
    scratch = Path(tempfile.mkdtemp(prefix=".unload-", dir=stages.root))
    writers = [
        _FileWriter(i, scratch, arrow_schema, batch_rows, max_file_size, prefix, optimise_physical_types)
        for i in range(_WRITERS)
    ]
    batches = _SharedReader(reader, cancelled or threading.Event())

    def store(plain: Path, name: str) -> int:
        return stages.store(stage, f"{folder}{name}", plain, query_id)

    # Several writers, as Snowflake's unload threads each write their own files; they cast, compress and
    # encrypt in pyarrow and OpenSSL, which release the GIL, so the files are written side by side.
    try:
        with concurrent.futures.ThreadPoolExecutor(_WRITERS, thread_name_prefix="unload") as pool:
            for done in [pool.submit(w.run, batches, store) for w in writers]:
                done.result()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    files = sorted((name for w in writers for name in w.files), key=_file_order)
    return WrittenUnload(
        sum(w.rows for w in writers),
        sum(w.input_bytes for w in writers),
        sum(w.output_bytes for w in writers),
        files,
    )


def new_query_id() -> str:
    return str(uuid.uuid4())
