"""The second way out of Snowflake: the unload's own query, read through its result set into Parquet files.

Snowflake answers a query with its first rows inline and the rest as Arrow chunks in cloud storage, which the
connector downloads with the response's chunk headers and its own retries. The sync runs the same projection
as the unload (same aliases, epoch-microsecond timestamps, TO_JSON), turns each chunk into one Parquet file in
the attempt's download folder, and from there the load, the checks and the swap are the unload path's.

Why not `fetch_arrow_batches`: the connector serves Arrow tables only with pandas installed, and with pandas
installed `import snowflake.connector` imports it, about 0.5 s in every run process, whichever path it takes.
So the chunks are taken from the connector's result batches as bytes (the inline one as it came, each remote
one through the batch's own download, with its headers and retries) and decoded here, by the field metadata
Snowflake documents for its Arrow results (`logicalType`, `precision`, `scale`). Memory holds one chunk per
download in flight, whatever the table's size.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.attempt import Attempt, UnloadResult
from sync_project.sync.catalog import Column
from sync_project.sync.errors import PermanentError, TransientError, from_snowflake
from sync_project.sync.stage import Download, execute, unload_query

RESULT_FILE = "result_{:05d}.parquet"


def _chunks(conn: Any, batches: list[Any], prefetch: int) -> Iterator[bytes]:
    """Each chunk's Arrow IPC bytes in order, up to `prefetch` remote ones downloading at once."""

    def fetch(batch: Any) -> bytes:
        if batch._local:  # the inline first chunk (base64 in the response)
            data = batch._data
            return base64.b64decode(data) if isinstance(data, str) else bytes(data or b"")
        return bytes(batch._download(connection=conn).content)

    with ThreadPoolExecutor(max_workers=max(1, prefetch), thread_name_prefix="chunk") as pool:
        pending: deque[Future[bytes]] = deque()
        remaining = iter(batches)
        for batch in remaining:
            pending.append(pool.submit(fetch, batch))
            if len(pending) >= prefetch:
                break
        while pending:
            data = pending.popleft().result()
            if (batch := next(remaining, None)) is not None:
                pending.append(pool.submit(fetch, batch))
            yield data


def _metadata(field: pa.Field) -> tuple[str, int, int]:
    meta = field.metadata or {}
    logical = meta.get(b"logicalType", b"").decode().upper()
    return logical, int(meta.get(b"precision", b"38") or 38), int(meta.get(b"scale", b"0") or 0)


def _fixed(column: pa.Array, precision: int, scale: int) -> pa.Array:
    """Snowflake's FIXED: an integer of the narrowest width the chunk's values need (the unscaled value), or a
    128-bit decimal. Scale 0 with up to 18 digits is BIGINT; otherwise a decimal of the declared precision."""
    if scale == 0 and precision <= 18:
        return column.cast(pa.int64())
    if pa.types.is_integer(column.type):
        # The unscaled integer as a decimal of scale 0, read with the column's scale: the same bytes.
        column = column.cast(pa.decimal128(38, 0)).view(pa.decimal128(38, scale))
    elif column.type.scale != scale:
        column = column.view(pa.decimal128(column.type.precision, scale))
    return column.cast(pa.decimal128(precision, scale))


def _time(column: pa.Array, scale: int) -> pa.Array:
    """Snowflake's TIME: an integer count of 10^-scale seconds since midnight; DuckDB holds microseconds."""
    if pa.types.is_time(column.type):
        return column.cast(pa.time64("us"))
    ticks = column.cast(pa.int64())
    if scale > 6:
        ticks = pc.divide(ticks, 10 ** (scale - 6))
    elif scale < 6:
        ticks = pc.multiply(ticks, 10 ** (6 - scale))
    return ticks.view(pa.time64("us"))


def exact_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A chunk's columns as the values they stand for, by each field's Snowflake metadata."""
    arrays: list[pa.Array] = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        logical, precision, scale = _metadata(field)
        if logical == "FIXED":
            column = _fixed(column, precision, scale)
        elif logical == "DATE" and not pa.types.is_date(column.type):
            column = column.cast(pa.int32()).view(pa.date32())
        elif logical == "TIME":
            column = _time(column, scale)
        elif logical.startswith("TIMESTAMP"):
            # The projection turns every timestamp into epoch microseconds; a timestamp here is a bug of ours.
            raise PermanentError(f"column {field.name!r} came back as {logical}, which the projection never asks for")
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def extract_to_files(
    conn: Any, attempt: Attempt, columns: list[Column], where: str | None, prefetch: int
) -> tuple[UnloadResult, Download]:
    """Run the projection and write its result set, chunk by chunk, as Parquet files in the attempt's folder."""
    table = attempt.table
    query = unload_query(table, columns, where)
    cur = execute(conn, query, f"reading {table} through its result set", attempt)
    try:
        batches = list(cur.get_result_batches() or [])
    except SnowflakeError as e:
        raise from_snowflake(e, f"reading the result set of {table}") from None
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    files, rows, arrow_bytes = [], 0, 0
    try:
        for n, data in enumerate(_chunks(conn, batches, prefetch)):
            if not data:
                continue
            arrow_bytes += len(data)
            try:
                chunk = pa.ipc.open_stream(data).read_all()
            except pa.ArrowInvalid as e:
                raise TransientError(f"{table}: chunk {n + 1} of the result set arrived damaged ({e})") from None
            if not chunk.num_rows:
                continue
            path = attempt.local_dir / RESULT_FILE.format(n)
            exact = pa.Table.from_batches([exact_columns(b) for b in chunk.to_batches()])
            pq.write_table(exact, path, compression="zstd")
            files.append(path)
            rows += chunk.num_rows
    except SnowflakeError as e:
        raise from_snowflake(e, f"downloading the result set of {table}") from None
    expected = int(cur.rowcount or 0)
    if rows != expected:
        raise TransientError(f"{table}: the result set said {expected:,} rows and its chunks held {rows:,}")
    written = sum(f.stat().st_size for f in files)
    result = UnloadResult(
        query_id=str(cur.sfqid or ""), rows_unloaded=rows, input_bytes=arrow_bytes, output_bytes=written
    )
    return result, Download(files, [f.name for f in files], [], written)
