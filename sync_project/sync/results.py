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
import ctypes
import functools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
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
# Chunk bytes downloading at once, beside the one being written: Snowflake's largest chunks (160 MB) download one
# at a time, small ones up to `prefetch` at once.
BYTES_IN_FLIGHT = 64 * 1024 * 1024


def _chunks(conn: Any, batches: list[Any], prefetch: int) -> Iterator[bytes]:
    """Each chunk's Arrow IPC bytes in order: up to `prefetch` remote ones downloading at once, and no more than
    BYTES_IN_FLIGHT of them (by the sizes the response gives) unless one chunk alone is larger."""

    def fetch(batch: Any) -> bytes:
        if batch._local:  # the inline first chunk (base64 in the response)
            data = batch._data
            return base64.b64decode(data) if isinstance(data, str) else bytes(data or b"")
        return bytes(batch._download(connection=conn).content)

    def size(batch: Any) -> int:
        return int(batch.uncompressed_size or 0)

    with ThreadPoolExecutor(max_workers=max(1, prefetch), thread_name_prefix="chunk") as pool:
        pending: deque[tuple[int, Future[bytes]]] = deque()
        waiting = deque(batches)
        while waiting or pending:
            if not pending and waiting and waiting[0]._local:  # inline: no thread for what is already here
                yield fetch(waiting.popleft())
                continue
            while waiting and len(pending) < max(1, prefetch):
                in_flight = sum(n for n, _ in pending)
                if pending and in_flight + size(waiting[0]) > BYTES_IN_FLIGHT:
                    break
                batch = waiting.popleft()
                pending.append((size(batch), pool.submit(fetch, batch)))
            yield pending.popleft()[1].result()


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


# glibc's mallopt(3) parameter for the number of malloc arenas (MALLOC_ARENA_MAX, from <malloc.h>).
_M_ARENA_MAX = -8


@functools.cache
def _glibc() -> Any:
    """The C library, if it is glibc (None elsewhere): the memory calls below are glibc's."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@functools.cache
def _share_malloc_arenas() -> None:
    """At most two glibc malloc arenas in this process from now on. glibc gives each thread that allocates an
    arena of its own (up to 8 per core), and memory freed in one is kept for that arena: the chunk threads'
    arenas kept hundreds of MiB at 10,000,000 rows that neither the load nor `malloc_trim` got back, and the
    load's peak stood on them. MALLOC_ARENA_MAX=2 is glibc's own tunable for this; it caps the arenas made
    after it is set (`make bench`'s result-set line gives the peak)."""
    if (libc := _glibc()) is not None:
        libc.mallopt(_M_ARENA_MAX, 2)


def _give_back_memory() -> None:
    """Return what the chunks used to the system before the load asks DuckDB for its own: Arrow's allocator and
    C's keep freed memory for reuse, which the load would otherwise stand on."""
    pa.default_memory_pool().release_unused()
    if (libc := _glibc()) is not None:
        libc.malloc_trim(0)


def _write_chunk(data: bytes, path: Path) -> int:
    """One chunk as one Parquet file, record batch by record batch (memory: the chunk and one converted batch);
    returns its rows (no file for none)."""
    reader = pa.ipc.open_stream(data)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in reader:
            if not batch.num_rows:
                continue
            exact = exact_columns(batch)
            if writer is None:
                writer = pq.ParquetWriter(path, exact.schema, compression="zstd")
            writer.write_batch(exact)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def extract_to_files(
    conn: Any, attempt: Attempt, columns: list[Column], where: str | None, prefetch: int
) -> tuple[UnloadResult, Download]:
    """Run the projection and write its result set, chunk by chunk, as Parquet files in the attempt's folder."""
    _share_malloc_arenas()  # before the chunk threads allocate
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
            path = attempt.local_dir / RESULT_FILE.format(n)
            try:
                chunk_rows = _write_chunk(data, path)
            except pa.ArrowInvalid as e:
                raise TransientError(f"{table}: chunk {n + 1} of the result set arrived damaged ({e})") from None
            del data  # the chunk's bytes go before the next one is taken
            if chunk_rows:
                files.append(path)
                rows += chunk_rows
    except SnowflakeError as e:
        raise from_snowflake(e, f"downloading the result set of {table}") from None
    if arrow_bytes > BYTES_IN_FLIGHT:  # a small table's few megabytes are not worth a trim of the whole heap
        _give_back_memory()
    expected = int(cur.rowcount or 0)
    if rows != expected:
        raise TransientError(f"{table}: the result set said {expected:,} rows and its chunks held {rows:,}")
    written = sum(f.stat().st_size for f in files)
    result = UnloadResult(
        query_id=str(cur.sfqid or ""), rows_unloaded=rows, input_bytes=arrow_bytes, output_bytes=written
    )
    return result, Download(files, [f.name for f in files], [], written)
