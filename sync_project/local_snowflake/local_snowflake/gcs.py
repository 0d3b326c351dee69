"""The cloud storage behind the emulator's internal stages, answered as Google Cloud Storage answers presigned URLs.

On a real account GET does not stream files through Snowflake: it returns, per
file, a presigned URL on the stage's cloud storage plus the stage master key,
and the connector downloads each object itself (its `gcs_storage_client.py`)
and decrypts it with the key and IV from the object's `x-goog-meta-*` headers.
The emulator does the same, so the connector's remote download path, its
retries and its decryption run in every test.

Status codes follow GCS's XML API as the connector reads them: a tampered URL is
403 `SignatureDoesNotMatch`; an expired one is 400 `ExpiredToken`, which the
connector treats as "fetch a new URL" (`_has_expired_presigned_url`) and, for
GET, gives up on the second time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from local_snowflake.faults import FaultPlan
from local_snowflake.sqltext import ObjectName
from local_snowflake.stages import StageStore

ROUTE = "/_local/gcs/{object:path}"
BUCKET = "sfc-local-stage"
URL_LIFETIME_SECONDS = 3600


def _xml_error(status: int, code: str, message: str) -> Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status_code=status, media_type="application/xml")


class PresignedStorage:
    """Presigned, expiring URLs over the stage store, and the handler that serves them."""

    def __init__(self, stages: StageStore, faults: FaultPlan) -> None:
        self.stages = stages
        self.faults = faults
        self._secret = secrets.token_bytes(32)

    def object_name(self, stage: ObjectName, relative: str) -> str:
        return f"{self.stages.folder(stage).relative_to(self.stages.root).as_posix()}/{relative}"

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def presign(self, base_url: str, stage: ObjectName, relative: str) -> str:
        name = self.object_name(stage, relative)
        expires = int(time.time()) + URL_LIFETIME_SECONDS
        query = urllib.parse.urlencode(
            {
                "X-Goog-Algorithm": "GOOG4-HMAC-SHA256",
                "X-Goog-Expires": expires,
                "X-Goog-Signature": self._signature(name, expires),
            }
        )
        return f"{base_url}/_local/gcs/{BUCKET}/{urllib.parse.quote(name)}?{query}"

    def stage_location(self, stage: ObjectName) -> str:
        """stageInfo.location: bucket and the stage's prefix, as GET reports it."""
        return f"{BUCKET}/{self.stages.folder(stage).relative_to(self.stages.root).as_posix()}/"

    async def serve(self, request: Request) -> Response:
        full = request.path_params["object"]
        bucket, _, name = full.partition("/")
        try:
            expires = int(request.query_params.get("X-Goog-Expires", ""))
        except ValueError:
            expires = 0
        signature = request.query_params.get("X-Goog-Signature", "")
        if bucket != BUCKET or not hmac.compare_digest(signature, self._signature(name, expires)):
            return _xml_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        fault = self.faults.take("download")
        if fault is not None:
            await self.faults.delay(fault)
        if expires < time.time() or (fault is not None and fault.mode == "expired"):
            return _xml_error(400, "ExpiredToken", "The provided token has expired.")
        if fault is not None and fault.mode == "http_error":
            return _xml_error(fault.status, "InternalError", fault.message)
        path = self._stored_path(name)
        if path is None:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        stage_folder, relative = path
        key = self.stages.file_key_at(stage_folder, relative)
        headers = {
            "x-goog-meta-encryptiondata": json.dumps(
                {
                    "EncryptionMode": "FullBlob",
                    "WrappedContentKey": {
                        "KeyId": "symmKey1",
                        "EncryptedKey": key.wrapped_key,
                        "Algorithm": "AES_CBC_256",
                    },
                    "EncryptionAgent": {"Protocol": "1.0", "EncryptionAlgorithm": "AES_CBC_256"},
                    "ContentEncryptionIV": key.iv,
                    "KeyWrappingMetadata": {"EncryptionLibrary": "Java 5.3.0"},
                }
            ),
            "x-goog-meta-matdesc": key.matdesc,
            "x-goog-meta-sfc-digest": key.sha256,
        }
        stored = stage_folder / relative
        if fault is not None and fault.mode == "truncate":
            return self._truncated(stored, headers)
        return FileResponse(stored, headers=headers, media_type="application/octet-stream")

    def _stored_path(self, name: str) -> tuple[Path, str] | None:
        parts = name.split("/")
        if len(parts) < 4 or any(p in ("", ".", "..") for p in parts):
            return None
        stage_folder = self.stages.root.joinpath(*parts[:3])
        relative = "/".join(parts[3:])
        try:
            self.stages.stored_file(stage_folder, relative)
        except FileNotFoundError:
            return None
        return stage_folder, relative

    @staticmethod
    def _truncated(stored: Path, headers: dict[str, str]) -> Response:
        """Send the headers and half the object, then drop the connection: a download broken mid-file."""
        size = stored.stat().st_size
        data = stored.read_bytes()[: size // 2]

        async def body() -> AsyncIterator[bytes]:
            yield data
            raise ConnectionResetError("injected fault: connection dropped mid-download")

        return StreamingResponse(
            body(),
            headers=headers | {"content-length": str(size)},
            media_type="application/octet-stream",
        )
