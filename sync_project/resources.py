"""Snowflake and DuckDB resources, built from settings.

Credentials are passed as `EnvVar`s, so their values are read only when a
connection is made and never sit in config, logs or a resource's repr.
Key-pair first, then a programmatic access token (through the connector's
PROGRAMMATIC_ACCESS_TOKEN authenticator), then a password, which service users
(TYPE = SERVICE) cannot use; with no SNOWFLAKE_ACCOUNT, the local (embedded)
Snowflake.

Why not dagster-snowflake's SnowflakeResource: importing it loads snowflake.core
and Snowpark, about 6 seconds in every process (`python -X importtime -c
"import dagster_snowflake"`), and every run pays it. This resource keeps its
field names and does only what the sync needs: open a connector connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from sync_project import settings as env
from sync_project.embedded_snowflake import LOCAL_ACCOUNT, LOCAL_PASSWORD, LOCAL_USER, LOCAL_WAREHOUSE
from sync_project.settings import Settings
from sync_project.sync.errors import PermanentError
from sync_project.sync.mirror import Mirror, mirror_for
from sync_project.sync.mirror.access import Waited
from sync_project.sync.mirror.lake import lake_for
from sync_project.sync.mirror.publish import published_default
from sync_project.sync.options import DEFAULT_RESULTS_MAX_BYTES, SyncOptions
from sync_project.sync.stage import SESSION_PARAMETERS, SIGN_IN_ARGUMENTS
from sync_project.sync.state import Extract


def _private_key_der(pem: bytes, passphrase: str | None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError):
        raise PermanentError(
            "the Snowflake private key could not be read: it is not a PEM private key, or the passphrase "
            f"({env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE}) does not match"
        ) from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class SnowflakeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A Snowflake connection through snowflake-connector-python (field names as in dagster-snowflake).

    Secret fields are left out of the repr, so printing the resource never shows them.
    """

    account: str = Field(description="The account identifier, e.g. myorg-myaccount (SNOWFLAKE_ACCOUNT)")
    user: str = Field(description="The user the sync signs in as (SNOWFLAKE_USER)")
    password: str | None = Field(default=None, repr=False, description="Last resort: prefer a key pair or a token")
    private_key: str | None = Field(default=None, repr=False, description="PEM text of a key pair's private key")
    private_key_path: str | None = Field(default=None, description="Or the path of that PEM file")
    private_key_password: str | None = Field(default=None, repr=False, description="The private key's passphrase")
    token: str | None = Field(default=None, repr=False, description="A programmatic access token")
    database: str | None = Field(default=None, description="The database partition keys name tables in")
    role: str | None = Field(default=None, description="The role to use; default: the user's default role")
    warehouse: str | None = Field(default=None, description="Runs the unload and the table listings")
    host: str | None = Field(default=None, description="Only for the local Snowflake")
    port: int | None = Field(default=None, description="Only for the local Snowflake")
    protocol: str | None = Field(default=None, description="https, or http for the local Snowflake")
    login_timeout: int = 60

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            key: value
            for key, value in {
                "account": self.account,
                "user": self.user,
                "password": self.password,
                "database": self.database,
                "role": self.role,
                "warehouse": self.warehouse,
                "host": self.host,
                "port": self.port,
                "protocol": self.protocol,
                "login_timeout": self.login_timeout,
                "application": "sync_project",
            }.items()
            if value is not None
        }
        # The sync's session settings at sign-in, so register, the sensors, the checks and the chores address
        # tables exactly as the sync does, whatever the account's defaults (QUOTED_IDENTIFIERS_IGNORE_CASE).
        args["session_parameters"] = dict(SESSION_PARAMETERS)
        args |= SIGN_IN_ARGUMENTS
        # A heartbeat every hour keeps the session alive through a long unload or GET (Snowflake ends an idle
        # session token after an hour; the connector renews it, but a long GET would otherwise outlive it).
        args["client_session_keep_alive"] = True
        mode = self.auth_mode
        if mode == "key-pair":
            args["private_key"] = _private_key_der(self._private_key_pem(), self.private_key_password)
            args.pop("password", None)
        elif mode == "token":
            # The connector's own authenticator for a programmatic access token (sent as TOKEN, not PASSWORD).
            args |= {"authenticator": "PROGRAMMATIC_ACCESS_TOKEN", "token": self.token}
            args.pop("password", None)
        return args

    @property
    def auth_mode(self) -> str:
        """key-pair, token or password: the first whose credentials are set (never the secret itself)."""
        if self.private_key or self.private_key_path:
            return "key-pair"
        return "token" if self.token else "password"

    def _private_key_pem(self) -> bytes:
        if self.private_key:
            return self.private_key.encode()
        path = Path(self.private_key_path or "")
        try:
            return path.read_bytes()
        except OSError as e:
            raise PermanentError(
                f"the Snowflake private key file {path} cannot be read ({e.strerror}); fix "
                f"{env.SNOWFLAKE_PRIVATE_KEY_PATH}"
            ) from None

    @property
    def sync_database(self) -> str:
        """The database partition keys name tables in (SNOWFLAKE_DATABASE): run-time code reads it here."""
        if not self.database:
            raise PermanentError(f"the Snowflake resource names no database: set {env.SNOWFLAKE_DATABASE}")
        return self.database

    def require_warehouse(self) -> None:
        if not self.warehouse:
            # COPY INTO and INFORMATION_SCHEMA queries need one (000606); say so now rather than after retries.
            raise PermanentError(
                f"no Snowflake warehouse is set: set {env.SNOWFLAKE_WAREHOUSE} to a warehouse this role may use "
                "(the unload and the table listings run on it)"
            )

    def resolved(self) -> SnowflakeResource:
        """This resource with its `EnvVar`s read, as Dagster reads them for a run, for code outside a run (the CLI).

        Not `process_config_and_initialize()`: its init context enters an ephemeral Dagster instance and never
        leaves it, so the next definitions loaded in the process find that dead instance's state storage
        ("Attempted to resolve undefined DagsterInstance weakref").
        """
        with self.process_config_and_initialize_cm() as resource:
            return resource  # type: ignore[no-any-return]

    def connect(self) -> Any:
        """A new connector connection; the caller closes it. Sign-in errors are the connector's."""
        import snowflake.connector

        return snowflake.connector.connect(**self.connect_args())

    @contextlib.contextmanager
    def get_connection(self) -> Iterator[Any]:
        self.require_warehouse()
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()


class SyncDuckDBResource(DuckDBResource):
    """The DuckDB file the tables land in, plus how the sync reaches it.

    The sync opens DuckDB itself, briefly and under a cross-process writer lock,
    because DuckDB allows one writing process per file.
    """

    download_dir: str = Field(description="Where GET puts the unloaded files, per table and attempt")
    lock_timeout_seconds: float = Field(
        default=env.DEFAULT_LOCK_TIMEOUT_SECONDS, description="How long a load waits for the DuckDB file"
    )
    get_parallel: int = Field(default=env.DEFAULT_GET_PARALLEL, description="GET's PARALLEL: files at a time")
    max_file_size: int = Field(default=env.DEFAULT_MAX_FILE_SIZE, description="The unload's MAX_FILE_SIZE, bytes")
    feed_from_bytes: int = Field(
        default=env.DEFAULT_FEED_FROM_BYTES,
        description="Full unloads this big are loaded as their files arrive, the download folder bounded",
    )
    disk_reserve_bytes: int = Field(
        default=env.DEFAULT_DISK_RESERVE_BYTES, description="Space a sync must leave free on each disk it writes"
    )
    stage: str = Field(default=env.DEFAULT_STAGE, description="Where unloads go: ~ (the user stage) or a stage name")
    extract: Extract = Field(default="auto", description="The way out of Snowflake: unload, results or auto")
    results_max_bytes: int = Field(
        default=DEFAULT_RESULTS_MAX_BYTES, description="Under auto, tables up to this size read the result set"
    )
    published_path: str = Field(default="", description="What readers open (SYNC_PUBLISHED_PATH); default beside it")
    published_storage_version: str = Field(
        default=env.DEFAULT_PUBLISHED_STORAGE_VERSION, description="DuckDB storage version readers need at least"
    )
    target: str = Field(default="duckdb", description="duckdb (the one file) or ducklake (SYNC_TARGET)")
    ducklake_catalog: str = Field(default="", description="The lake's catalog: a SQLite file or postgres:...")
    ducklake_data_path: str = Field(
        default="", description="The lake's Parquet files: a folder, or s3://bucket/prefix/"
    )
    ducklake_retention_days: float = Field(
        default=env.DEFAULT_DUCKLAKE_RETENTION_DAYS, description="Snapshots younger than this stay queryable"
    )

    @property
    def mirror(self) -> Mirror:
        """Where the tables land: the DuckDB file (with its published copy) or, with target=ducklake, the lake."""
        published = Path(self.published_path) if self.published_path else published_default(Path(self.database))
        lake = lake_for(self.target, self.ducklake_catalog, self.ducklake_data_path)
        return mirror_for(Path(self.database), published, self.lock_timeout_seconds, lake)

    @contextlib.contextmanager
    def get_connection(  # type: ignore[override]
        self,
        read_only: bool = False,
        what: str = "a query of the mirror",
        lock_timeout: float | None = None,
        waited: Waited | None = None,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short connection to the mirror: the file through the project's writer lock (dagster-duckdb's own
        would open it unlocked, and hold it while a sync waits), or the lake attached and in use."""
        with self.mirror.session(what, read_only=read_only, wait=lock_timeout, waited=waited) as con:
            yield con

    def sync_options(self) -> SyncOptions:
        return SyncOptions(
            mirror=self.mirror,
            download_root=Path(self.download_dir),
            get_parallel=self.get_parallel,
            max_file_size=self.max_file_size,
            feed_from_bytes=self.feed_from_bytes,
            disk_reserve=self.disk_reserve_bytes,
            stage=self.stage,
            extract=self.extract,
            results_max_bytes=self.results_max_bytes,
        )


def _credentials(settings: Settings) -> dict[str, Any]:
    """Pick one auth method by which variables are set; pass secrets only as EnvVar references."""
    if settings.has(env.SNOWFLAKE_PRIVATE_KEY) or settings.private_key_path:
        creds: dict[str, Any] = (
            {"private_key": dg.EnvVar(env.SNOWFLAKE_PRIVATE_KEY)}
            if settings.has(env.SNOWFLAKE_PRIVATE_KEY)
            else {"private_key_path": settings.private_key_path}
        )
        if settings.has(env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE):
            creds["private_key_password"] = dg.EnvVar(env.SNOWFLAKE_PRIVATE_KEY_PASSPHRASE)
        return creds
    if settings.has(env.SNOWFLAKE_TOKEN):
        return {"token": dg.EnvVar(env.SNOWFLAKE_TOKEN)}
    if settings.has(env.SNOWFLAKE_PASSWORD):
        return {"password": dg.EnvVar(env.SNOWFLAKE_PASSWORD)}
    raise dg.DagsterInvalidDefinitionError(
        f"{env.SNOWFLAKE_ACCOUNT} is set but no credentials are: set {env.SNOWFLAKE_PRIVATE_KEY} or "
        f"{env.SNOWFLAKE_PRIVATE_KEY_PATH} (key-pair, preferred), {env.SNOWFLAKE_TOKEN}, or {env.SNOWFLAKE_PASSWORD}"
    )


def snowflake_resource(settings: Settings) -> SnowflakeResource:
    if settings.uses_local_snowflake:
        return SnowflakeResource(
            account=LOCAL_ACCOUNT,
            user=LOCAL_USER,
            password=LOCAL_PASSWORD,
            warehouse=LOCAL_WAREHOUSE,
            role=settings.snowflake_role,
            database=settings.snowflake_database,
            host=settings.local_host,
            port=settings.local_port,
            protocol="http",
        )
    values: dict[str, Any] = {
        "account": dg.EnvVar(env.SNOWFLAKE_ACCOUNT),
        "user": dg.EnvVar(env.SNOWFLAKE_USER),
        "database": settings.snowflake_database,
    }
    for key, name in (
        ("role", env.SNOWFLAKE_ROLE),
        ("warehouse", env.SNOWFLAKE_WAREHOUSE),
        ("host", env.SNOWFLAKE_HOST),
        ("protocol", env.SNOWFLAKE_PROTOCOL),
    ):
        if settings.has(name):
            values[key] = dg.EnvVar(name)
    if settings.has(env.SNOWFLAKE_PORT):
        values["port"] = dg.EnvVar.int(env.SNOWFLAKE_PORT)
    return SnowflakeResource(**values, **_credentials(settings))


# Resource fields named as the settings they come from; the resource's `sync_options()` is the one place
# they become the engine's options.
_FROM_SETTINGS = (
    "lock_timeout_seconds",
    "get_parallel",
    "max_file_size",
    "feed_from_bytes",
    "disk_reserve_bytes",
    "stage",
    "extract",
    "results_max_bytes",
    "published_storage_version",
    "target",
    "ducklake_catalog",
    "ducklake_data_path",
    "ducklake_retention_days",
)


def duckdb_resource(settings: Settings) -> SyncDuckDBResource:
    return SyncDuckDBResource(
        database=str(settings.duckdb_path),
        download_dir=str(settings.download_dir),
        published_path=str(settings.mirror_path),
        **{name: getattr(settings, name) for name in _FROM_SETTINGS},
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    return {"snowflake": snowflake_resource(settings), "duckdb": duckdb_resource(settings)}
