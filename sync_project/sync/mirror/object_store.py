"""A lake's data in S3-compatible object storage (AWS S3, MinIO, Ceph, R2's S3 API): `s3://bucket/prefix/`.

DuckLake writes and reads its Parquet files through DuckDB's `httpfs` extension (loaded from its package, like
the lake's other extensions). Credentials are not project settings: each process takes them from the standard
AWS variables it runs with (a worker's key that may write, an analyst's that may only read), so they never pass
through run config, metadata or logs. DuckDB is given them as a temporary secret scoped to the lake's bucket,
and storage errors are said with the bucket, the S3 error code and the fix, never with a key.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import duckdb

from sync_project.sync.errors import PermanentError, SyncError, TransientError
from sync_project.sync.extensions import load_extension
from sync_project.sync.setting_names import SYNC_DUCKLAKE_DATA_PATH, SYNC_S3_URL_STYLE
from sync_project.sync.tables import sql_string

S3_SCHEME = "s3://"
CREDENTIALS_NAME = "sync_lake_storage"  # what DuckDB calls the lake's credentials, not one of them
# What a process needs on the lake's prefix: a worker all four, an analyst the first two (README).
WRITER_ACTIONS = ("s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject")


def on_object_store(data_path: str) -> bool:
    return data_path.startswith(S3_SCHEME)


def bucket_and_prefix(data_path: str) -> tuple[str, str]:
    parsed = urlparse(data_path)
    return parsed.netloc, parsed.path.lstrip("/")


def check_data_path(data_path: str) -> None:
    """An `s3://` data path names a bucket and holds no credentials (it reaches run config and messages)."""
    if not on_object_store(data_path):
        if re.match(r"^[a-z][a-z0-9+.-]*://", data_path):
            raise PermanentError(
                f"{SYNC_DUCKLAKE_DATA_PATH}={data_path!r}: only s3:// object storage (or a folder) is supported; "
                "for GCS or R2 use their S3-compatible endpoint (AWS_ENDPOINT_URL_S3) with an s3:// path"
            )
        return
    bucket, _ = bucket_and_prefix(data_path)
    if "@" in bucket or ":" in bucket or not bucket:
        raise PermanentError(
            f"{SYNC_DUCKLAKE_DATA_PATH} must be s3://bucket/prefix/ with no credentials in it; give the key in "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which each process reads from its own environment"
        )


@dataclass(frozen=True)
class S3Access:
    """How this process reaches the bucket, from the standard AWS variables (SYNC_S3_URL_STYLE aside)."""

    key_id: str
    secret: str
    session_token: str
    region: str
    endpoint: str  # host[:port]; empty: AWS itself
    use_ssl: bool
    url_style: str  # path (MinIO and most S3-compatible servers) or vhost (AWS)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> S3Access:
        url = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or ""
        parsed = urlparse(url if "://" in url else f"https://{url}") if url else None
        style = environ.get(SYNC_S3_URL_STYLE) or ("path" if parsed else "vhost")
        if style not in ("path", "vhost"):
            raise PermanentError(f"{SYNC_S3_URL_STYLE}={style!r}: use path or vhost")
        return cls(
            key_id=environ.get("AWS_ACCESS_KEY_ID", ""),
            secret=environ.get("AWS_SECRET_ACCESS_KEY", ""),
            session_token=environ.get("AWS_SESSION_TOKEN", ""),
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint=parsed.netloc if parsed else "",
            use_ssl=parsed.scheme != "http" if parsed else True,
            url_style=style,
        )

    def describe(self) -> str:
        """Where and as whom, without the secret (the key's last four characters, as AWS's console shows)."""
        where = f"{'https' if self.use_ssl else 'http'}://{self.endpoint}" if self.endpoint else "AWS S3"
        who = f"key ...{self.key_id[-4:]}" if self.key_id else "no key (DuckDB's own secrets, or anonymous)"
        return f"{where} ({self.url_style}-style, region {self.region}), {who}"

    def redact(self, text: str) -> str:
        for value in (self.secret, self.session_token, self.key_id):
            if value:
                text = text.replace(value, "***")
        return re.sub(r"(X-Amz-[A-Za-z-]+=)[^&\s'\"]+", r"\1***", text)

    def boto3_client(self) -> Any:
        """An S3 client with the same access (the doctor's probe; boto3 comes with the Snowflake connector)."""
        import boto3
        from botocore.config import Config

        scheme = "https" if self.use_ssl else "http"
        return boto3.client(
            "s3",
            endpoint_url=f"{scheme}://{self.endpoint}" if self.endpoint else None,
            region_name=self.region,
            aws_access_key_id=self.key_id or None,
            aws_secret_access_key=self.secret or None,
            aws_session_token=self.session_token or None,
            config=Config(
                s3={"addressing_style": "path" if self.url_style == "path" else "virtual"}, retries={"max_attempts": 2}
            ),
        )


def use_object_store(con: duckdb.DuckDBPyConnection, data_path: str, access: S3Access | None = None) -> None:
    """Load httpfs and, when this process has a key, make it DuckDB's secret for the lake's bucket."""
    access = access or S3Access.from_environment()
    load_extension(con, "httpfs")
    if not access.key_id:
        return
    bucket, _ = bucket_and_prefix(data_path)
    options = {
        "KEY_ID": access.key_id,
        "SECRET": access.secret,
        "REGION": access.region,
        "URL_STYLE": access.url_style,
        "SCOPE": f"{S3_SCHEME}{bucket}",
    }
    if access.session_token:
        options["SESSION_TOKEN"] = access.session_token
    if access.endpoint:
        options["ENDPOINT"] = access.endpoint
    given = ", ".join(f"{name} {sql_string(value)}" for name, value in options.items())
    try:
        ssl = str(access.use_ssl).lower()
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {CREDENTIALS_NAME} (TYPE s3, {given}, USE_SSL {ssl})")
    except duckdb.Error as e:  # said without the statement, which holds the secret
        raise PermanentError(
            f"DuckDB refused the lake's S3 credentials ({type(e).__name__}); check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL_S3"
        ) from None


_REFUSED = re.compile(r"HTTP (?:code )?(40[0-9])|\((?:HTTP )?(40[0-9])[ )]")
_S3_CODE = re.compile(r"\b(AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|NoSuchBucket|ExpiredToken|"
                      r"InvalidToken|AllAccessDisabled|AccountProblem)\b")  # fmt: skip
_UNREACHABLE = ("could not connect", "could not resolve", "connection refused", "timed out", "timeout",
                "unable to connect", "connection reset", "returned nothing", "failure when receiving",
                "failure when sending", "http 5", "(http code 5", "service unavailable", "slowdown")  # fmt: skip


def storage_error(error: duckdb.Error, data_path: str, what: str, access: S3Access | None = None) -> SyncError | None:
    """What a storage failure of the lake's data means, said without credentials: a refusal (wrong key, no
    permission, no bucket) is permanent and names the fix; an endpoint that does not answer is transient.
    None for an error that is not about the lake's storage."""
    access = access or S3Access.from_environment()
    text = access.redact(str(error))
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    bucket, prefix = bucket_and_prefix(data_path)
    if f"/{bucket}/" not in text and f"s3://{bucket}" not in text and f"{bucket}." not in text:
        return None
    code = _S3_CODE.search(text)
    if code or _REFUSED.search(text):
        reason = code.group(1) if code else "refused"
        return PermanentError(
            f"{what}: the lake's storage s3://{bucket}/{prefix} refused this process ({reason}; {first}). "
            f"Give the key in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY {', '.join(WRITER_ACTIONS)} on that prefix "
            f"(a reader needs the first two), and check the bucket and AWS_ENDPOINT_URL_S3 ({access.describe()}). "
            "Nothing of this sync became visible; the previous tables are untouched"
        )
    if any(s in text.lower() for s in _UNREACHABLE):
        return TransientError(
            f"{what}: the lake's storage did not answer ({first}; {access.describe()}). Nothing of this sync "
            "became visible; the previous tables are untouched, and a later attempt syncs again (transient)"
        )
    return None


def probe_storage(data_path: str, access: S3Access | None = None) -> str:
    """Write, read back and delete a probe object under the lake's prefix: what a sync and maintenance do."""
    access = access or S3Access.from_environment()
    bucket, prefix = bucket_and_prefix(data_path)
    key = "/".join(part for part in (prefix.strip("/"), "_sync_project_probe", uuid.uuid4().hex) if part)
    client = access.boto3_client()
    body = b"sync_project doctor"
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body)
        read = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.delete_object(Bucket=bucket, Key=key)
    except Exception as e:  # botocore's errors; said without credentials
        raise PermanentError(access.redact(f"s3://{bucket}/{key}: {type(e).__name__}: {e}")) from None
    if read != body:
        raise PermanentError(f"s3://{bucket}/{key} read back other bytes than were written")
    return f"{data_path}: wrote, read and deleted a probe object through {access.describe()}"
