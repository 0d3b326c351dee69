"""Large query results as Snowflake sends them: the first rows inline, the rest as chunks in cloud storage.

A Snowflake query response carries its first rows in `rowsetBase64` and lists the others as `chunks`
(`url`, `rowCount`, `uncompressedSize`, `compressedSize`), with the `chunkHeaders` each download must send; the
connector fetches the chunks itself, in parallel, retrying what fails (its `result_batch.py`). On Google Cloud
the headers are a customer-supplied encryption key (`x-goog-encryption-*`), and storage refuses a request
for the object without them. The emulator does the same, so the connector's own chunk download, retries and
decoding run whenever a result is large.

Chunk sizes: `CLIENT_RESULT_CHUNK_SIZE` (MB, 48..160, default 160) caps each chunk's uncompressed size
(Snowflake's 2026_04 bundle). Snowflake does not document how many rows come inline or how the first chunks
grow; the emulator inlines at most `INLINE_BYTES` and starts remote chunks small, doubling up to the cap, so
even a modest result takes several chunks (the stricter case: more requests, each of which may fail).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import importlib
import json
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from local_snowflake.faults import FaultPlan

ROUTE = "/_local/results/{query}/{chunk}"
INLINE_BYTES = 64 * 1024
FIRST_CHUNK_BYTES = 256 * 1024
KEEP_SECONDS = 6 * 3600  # the connector's comment: result URLs live about six hours
_ALGORITHM = "x-goog-encryption-algorithm"
_KEY = "x-goog-encryption-key"
_KEY_SHA256 = "x-goog-encryption-key-sha256"


@dataclass
class LargeResult:
    """A query's Arrow table, handed from fakesnow's encoder straight to the chunker when it is too large to
    inline: encoded whole, as base64 inside JSON and parsed back, a 10,000,000-row result took over 20 GB."""

    table: pa.Table | None = None


# Set by the server around each query fakesnow answers (the encoder runs in the same task, not in a thread).
PENDING: ContextVar[LargeResult | None] = ContextVar("pending_large_result", default=None)


@contextlib.contextmanager
def handing_over() -> Iterator[LargeResult]:
    """Around fakesnow's answer to one query: what its encoder hands over, if the result is large."""
    held = LargeResult()
    pending = PENDING.set(held)
    try:
        yield held
    finally:
        PENDING.reset(pending)


def patch_fakesnow_result_encoding() -> None:
    """fakesnow encodes a query's whole result inline (`to_ipc`, then base64); a large one is handed over
    instead and encoded as chunks (`ResultChunks.chunked`). Applied once."""
    encoder = importlib.import_module("fakesnow.server")  # the package's `server` attribute is a function
    original = encoder.to_ipc
    if getattr(original, "hands_over_large_results", False):
        return

    def to_ipc(table: pa.Table) -> pa.Buffer:
        held = PENDING.get()
        if held is not None and table.nbytes > INLINE_BYTES:
            held.table = table
            return original(table.slice(0, 0))  # its rows go inline and in chunks, by `chunked`
        return original(table)

    to_ipc.hands_over_large_results = True  # type: ignore[attr-defined]
    encoder.to_ipc = to_ipc  # type: ignore[attr-defined]


def _xml_error(status: int, code: str, message: str) -> Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status_code=status, media_type="application/xml")


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def split_rows(table: pa.Table, cap_bytes: int) -> Iterator[pa.Table]:
    """The inline part, then chunks growing from FIRST_CHUNK_BYTES to `cap_bytes` (by the table's bytes per row)."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    start, size = 0, INLINE_BYTES
    while start < table.num_rows:
        rows = max(1, size // per_row)
        yield table.slice(start, rows)
        start += rows
        size = FIRST_CHUNK_BYTES if size == INLINE_BYTES else min(size * 2, cap_bytes)


@dataclass
class ResultChunks:
    """Chunks of large results, kept in the data folder under a per-query key until they are old."""

    root: Path
    faults: FaultPlan
    _keys: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)  # results do not outlive the server
        self.root.mkdir(parents=True, exist_ok=True)

    def chunked_response(
        self, response: Response, base_url: str, cap_megabytes: object, table: pa.Table | None = None
    ) -> Response:
        """The response, chunked; `cap_megabytes` is the session's CLIENT_RESULT_CHUNK_SIZE; `table`, the rows
        the encoder handed over (`LargeResult`), else those inline in the response."""
        answer = json.loads(bytes(response.body))
        if not answer.get("success") or not isinstance(answer.get("data"), dict):
            return response
        cap = cap_megabytes if isinstance(cap_megabytes, int) else 160
        answer["data"] = self.chunked(answer["data"], base_url, cap, table)
        return JSONResponse(answer, status_code=response.status_code)

    def chunked(
        self, data: dict[str, Any], base_url: str, cap_megabytes: int, table: pa.Table | None = None
    ) -> dict[str, Any]:
        """A successful Arrow response's data, with whatever exceeds the inline part moved into chunks."""
        if table is None:
            encoded = data.get("rowsetBase64") or ""
            if data.get("queryResultFormat") != "arrow" or len(encoded) * 3 // 4 <= INLINE_BYTES:
                return data
            table = pa.ipc.open_stream(base64.b64decode(encoded)).read_all()
        parts = list(split_rows(table, cap_megabytes * 1024 * 1024))
        if len(parts) == 1:
            return {**data, "rowsetBase64": base64.b64encode(_ipc(parts[0])).decode()}
        self._sweep()
        query = f"{data.get('queryId') or secrets.token_hex(8)}-{secrets.token_hex(4)}"
        key = secrets.token_bytes(32)
        folder = self.root / query
        folder.mkdir()
        chunks = []
        for n, part in enumerate(parts[1:]):
            raw = _ipc(part)
            stored = gzip.compress(raw, compresslevel=1)
            (folder / str(n)).write_bytes(stored)
            chunks.append(
                {
                    "url": f"{base_url}/_local/results/{query}/{n}",
                    "rowCount": part.num_rows,
                    "uncompressedSize": len(raw),
                    "compressedSize": len(stored),
                }
            )
        with self._lock:
            self._keys[query] = key
        return {
            **data,
            "rowsetBase64": base64.b64encode(_ipc(parts[0])).decode(),
            "chunks": chunks,
            "chunkHeaders": {
                _ALGORITHM: "AES256",
                _KEY: base64.b64encode(key).decode(),
                _KEY_SHA256: base64.b64encode(hashlib.sha256(key).digest()).decode(),
            },
        }

    def _sweep(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        for folder in self.root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                with self._lock:
                    self._keys.pop(folder.name, None)

    async def serve(self, request: Request) -> Response:
        query, chunk = request.path_params["query"], request.path_params["chunk"]
        with self._lock:
            key = self._keys.get(query)
        path = self.root / query / chunk
        if key is None or not chunk.isdigit() or not path.is_file():
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        given = request.headers.get(_KEY, "")
        if request.headers.get(_ALGORITHM) != "AES256" or not given:
            return _xml_error(
                400,
                "ResourceIsEncryptedWithCustomerEncryptionKey",
                "The target object is encrypted by a customer-supplied encryption key.",
            )
        if (
            given != base64.b64encode(key).decode()
            or request.headers.get(_KEY_SHA256) != base64.b64encode(hashlib.sha256(key).digest()).decode()
        ):
            return _xml_error(
                400,
                "ResourceNotEncryptedWithCustomerEncryptionKey",
                "The provided encryption key is incorrect.",
            )
        fault = self.faults.take("result_chunk")
        if fault is not None:
            await self.faults.delay(fault)
            if fault.mode == "http_error":
                return _xml_error(fault.status, "InternalError", fault.message)
        stored = path.read_bytes()
        if fault is not None and fault.mode == "truncate":
            return _cut_short(stored)
        return Response(stored, media_type="application/octet-stream")


def _cut_short(stored: bytes) -> Response:
    """Headers and half the object, then the connection drops: a chunk download broken midway."""

    async def body() -> AsyncIterator[bytes]:
        yield stored[: len(stored) // 2]
        raise ConnectionResetError("injected fault: connection dropped mid-chunk")

    return StreamingResponse(
        body(), headers={"content-length": str(len(stored))}, media_type="application/octet-stream"
    )
