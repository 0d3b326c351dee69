"""Every environment variable the project reads, in one place, with its default.

Secrets (password, private key, passphrase, token) are only ever named here;
their values are read by Dagster's `EnvVar` in resources.py, so they never sit
in a settings object, a log line or a repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sync_project.sync.setting_names import (  # re-exported: settings.X is how the shell names them
    DAGSTER_HOME as DAGSTER_HOME,
    LOCAL_SNOWFLAKE_DATA_DIR as LOCAL_SNOWFLAKE_DATA_DIR,
    LOCAL_SNOWFLAKE_HOST as LOCAL_SNOWFLAKE_HOST,
    LOCAL_SNOWFLAKE_PORT as LOCAL_SNOWFLAKE_PORT,
    SNOWFLAKE_ACCOUNT as SNOWFLAKE_ACCOUNT,
    SNOWFLAKE_DATABASE as SNOWFLAKE_DATABASE,
    SNOWFLAKE_HOST as SNOWFLAKE_HOST,
    SNOWFLAKE_PASSWORD as SNOWFLAKE_PASSWORD,
    SNOWFLAKE_PORT as SNOWFLAKE_PORT,
    SNOWFLAKE_PRIVATE_KEY as SNOWFLAKE_PRIVATE_KEY,
    SNOWFLAKE_PRIVATE_KEY_PASSPHRASE as SNOWFLAKE_PRIVATE_KEY_PASSPHRASE,
    SNOWFLAKE_PRIVATE_KEY_PATH as SNOWFLAKE_PRIVATE_KEY_PATH,
    SNOWFLAKE_PROTOCOL as SNOWFLAKE_PROTOCOL,
    SNOWFLAKE_ROLE as SNOWFLAKE_ROLE,
    SNOWFLAKE_TOKEN as SNOWFLAKE_TOKEN,
    SNOWFLAKE_USER as SNOWFLAKE_USER,
    SNOWFLAKE_WAREHOUSE as SNOWFLAKE_WAREHOUSE,
    SYNC_AUTO_DEREGISTER as SYNC_AUTO_DEREGISTER,
    SYNC_AUTO_REGISTER_LIKE as SYNC_AUTO_REGISTER_LIKE,
    SYNC_AUTO_REGISTER_SCHEMA as SYNC_AUTO_REGISTER_SCHEMA,
    SYNC_CHANGE_SENSOR_SECONDS as SYNC_CHANGE_SENSOR_SECONDS,
    SYNC_CLEANUP_CRON as SYNC_CLEANUP_CRON,
    SYNC_DISK_RESERVE_BYTES as SYNC_DISK_RESERVE_BYTES,
    SYNC_DOWNLOAD_DIR as SYNC_DOWNLOAD_DIR,
    SYNC_DUCKDB_PATH as SYNC_DUCKDB_PATH,
    SYNC_DUCKLAKE_CATALOG as SYNC_DUCKLAKE_CATALOG,
    SYNC_DUCKLAKE_DATA_PATH as SYNC_DUCKLAKE_DATA_PATH,
    SYNC_DUCKLAKE_RETENTION_DAYS as SYNC_DUCKLAKE_RETENTION_DAYS,
    SYNC_EXTRACT as SYNC_EXTRACT,
    SYNC_FEED_FROM_BYTES as SYNC_FEED_FROM_BYTES,
    SYNC_GET_PARALLEL as SYNC_GET_PARALLEL,
    SYNC_LOCK_TIMEOUT_SECONDS as SYNC_LOCK_TIMEOUT_SECONDS,
    SYNC_MAX_FILE_SIZE as SYNC_MAX_FILE_SIZE,
    SYNC_PUBLISH_MINUTES as SYNC_PUBLISH_MINUTES,
    SYNC_PUBLISHED_PATH as SYNC_PUBLISHED_PATH,
    SYNC_PUBLISHED_STORAGE_VERSION as SYNC_PUBLISHED_STORAGE_VERSION,
    SYNC_RESULTS_MAX_BYTES as SYNC_RESULTS_MAX_BYTES,
    SYNC_SCHEDULE_CRON as SYNC_SCHEDULE_CRON,
    SYNC_SCHEDULE_TIMEZONE as SYNC_SCHEDULE_TIMEZONE,
    SYNC_SCHEDULES as SYNC_SCHEDULES,
    SYNC_STAGE as SYNC_STAGE,
    SYNC_TARGET as SYNC_TARGET,
    SYNC_VERIFY_CRON as SYNC_VERIFY_CRON,
)

if TYPE_CHECKING:
    from sync_project.sync.mirror import Mirror
    from sync_project.sync.mirror.lake import Lake

Number = TypeVar("Number", int, float)

# Defaults; the settings' names are in `sync/setting_names.py`.
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0
DEFAULT_GET_PARALLEL = 10
DEFAULT_MAX_FILE_SIZE = 16 * 1024 * 1024  # Snowflake's own default; what feed.py's groups need (tests README)
# Full unloads this big are loaded as their files arrive (sync/feed.py); the engine's default too.
DEFAULT_FEED_FROM_BYTES = 128 * 1024 * 1024
DEFAULT_RESULTS_MAX_BYTES = 8 * 1024 * 1024  # the engine's default too (sync/options.py), which paths.py explains
DEFAULT_DISK_RESERVE_BYTES = 512 * 1024 * 1024  # DuckDB spills and the OS needs room: never fill a disk
DEFAULT_STAGE = "~"
DEFAULT_PUBLISHED_STORAGE_VERSION = "v1.0.0"  # readable by DuckDB 0.10 and every later release
DEFAULT_PUBLISH_MINUTES = 5.0

DEFAULT_DUCKLAKE_RETENTION_DAYS = 7.0
TARGETS = ("duckdb", "ducklake")

# running (default) or stopped: whether the nightly sync and the cleanup tick before anyone starts them in the
# UI. A schedule started or stopped in the UI keeps that state; a test instance runs no schedule it is not about.
SCHEDULE_STATES = ("running", "stopped")
DEFAULT_SCHEDULE_CRON = "0 2 * * *"
DEFAULT_CLEANUP_CRON = "30 3 * * *"
DEFAULT_VERIFY_CRON = "0 4 * * 0"  # Sundays: a scan of every table in Snowflake, so weekly rather than nightly

DEFAULT_DATABASE = "KEBOOLA_33"
DEFAULT_LOCAL_HOST = "127.0.0.1"
DEFAULT_LOCAL_PORT = 8765


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _extract() -> str:
    from sync_project.sync.state import EXTRACTS

    value = _env(SYNC_EXTRACT, "auto").lower()
    if value not in EXTRACTS:
        raise ValueError(f"{SYNC_EXTRACT}={value!r}: give one of {', '.join(EXTRACTS)}")
    return value


def _env_number(name: str, default: Number) -> Number:
    """A non-negative number (of the default's type) from the environment; an error naming the variable if not."""
    text = _env(name, str(default))
    kind = type(default)
    try:
        value = kind(text)
    except ValueError:
        value = kind(-1)
    if value < 0:
        raise ValueError(f"{name}={text!r} is not a non-negative {kind.__name__}; fix or unset it")
    return value


def _target() -> str:
    target = _env(SYNC_TARGET, "duckdb").lower()
    if target not in TARGETS:
        raise ValueError(
            f"{SYNC_TARGET}={target!r} is not a target: use duckdb (one DuckDB file, the default) or ducklake "
            f"(with {SYNC_DUCKLAKE_CATALOG} and {SYNC_DUCKLAKE_DATA_PATH})"
        )
    return target


def _database() -> str:
    """SNOWFLAKE_DATABASE; the demo's database only for the embedded Snowflake: an account has no KEBOOLA_33."""
    database = os.environ.get(SNOWFLAKE_DATABASE, "").strip()
    if not database and os.environ.get(SNOWFLAKE_ACCOUNT, "").strip():
        raise ValueError(
            f"{SNOWFLAKE_ACCOUNT} is set but {SNOWFLAKE_DATABASE} is not: set it to the database whose tables you "
            f"sync (partition keys are SCHEMA.TABLE in it); only the embedded Snowflake defaults to {DEFAULT_DATABASE}"
        )
    return database or DEFAULT_DATABASE


def _schedules_running() -> bool:
    state = _env(SYNC_SCHEDULES, "running").lower()
    if state not in SCHEDULE_STATES:
        raise ValueError(
            f"{SYNC_SCHEDULES}={state!r} is not a schedule state: use running (the nightly sync and the cleanup "
            "tick by themselves, the default) or stopped (they tick once started in the UI)"
        )
    return state == "running"


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def local_state_dir() -> Path:
    """Where the demo keeps its state (`.local/`, ignored by git)."""
    return project_root() / ".local"


# The connection's variables the resource takes as EnvVars when set (secrets among them).
SNOWFLAKE_SIGN_IN = (
    SNOWFLAKE_PRIVATE_KEY, SNOWFLAKE_PRIVATE_KEY_PATH, SNOWFLAKE_PRIVATE_KEY_PASSPHRASE, SNOWFLAKE_TOKEN,
    SNOWFLAKE_PASSWORD, SNOWFLAKE_ROLE, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_HOST, SNOWFLAKE_PROTOCOL, SNOWFLAKE_PORT,
)  # fmt: skip

# Settings that name a local file or folder: a relative one means relative to the directory it was set in.
PATH_SETTINGS = (
    SNOWFLAKE_PRIVATE_KEY_PATH, LOCAL_SNOWFLAKE_DATA_DIR, SYNC_DUCKDB_PATH, SYNC_DOWNLOAD_DIR, SYNC_PUBLISHED_PATH,
    SYNC_DUCKLAKE_DATA_PATH, DAGSTER_HOME,
)  # fmt: skip


def absolute_paths(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a process started in another directory: path settings made absolute (from here)."""
    return {
        name: str(Path(value).absolute()) if name in PATH_SETTINGS and value and "://" not in value else value
        for name, value in environ.items()
    }


def dagster_home() -> Path:
    """DAGSTER_HOME, or the demo's `.local/dagster`, made ready with the project's dagster.yaml."""
    home = Path(os.environ.get(DAGSTER_HOME) or local_state_dir() / "dagster").absolute()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text((project_root() / "dagster.yaml").read_text())
    os.environ[DAGSTER_HOME] = str(home)
    return home


@dataclass(frozen=True)
class LocalSnowflake:
    """Where the embedded Snowflake's own process listens and keeps its data: no resource can hold these,
    because the process runs before any definitions load (`sync-project demo`, `local-snowflake`)."""

    host: str
    port: int
    data_dir: Path

    @classmethod
    def from_env(cls) -> LocalSnowflake:
        return cls(
            host=_env(LOCAL_SNOWFLAKE_HOST, DEFAULT_LOCAL_HOST),
            port=_env_number(LOCAL_SNOWFLAKE_PORT, DEFAULT_LOCAL_PORT),
            data_dir=Path(_env(LOCAL_SNOWFLAKE_DATA_DIR, str(local_state_dir() / "snowflake"))),
        )


@dataclass(frozen=True)
class Settings:
    """The environment's value for each attribute of a mirror, read once, where definitions are built.

    Only `SnowflakeMirrorComponent.build_defs` reads them (and tests, which build a mirror against their own
    folders); the component's attributes go over them, the resources are built from the result, and from then
    on every job, sensor, chore and CLI command reads the built resources (test_shape.py holds this).
    Secrets are not here: the resources read them as `EnvVar`s.
    """

    snowflake_account: str | None
    snowflake_database: str
    local_host: str
    local_port: int
    local_data_dir: Path
    duckdb_path: Path
    download_dir: Path
    lock_timeout_seconds: float
    get_parallel: int
    max_file_size: int
    feed_from_bytes: int = DEFAULT_FEED_FROM_BYTES
    disk_reserve_bytes: int = DEFAULT_DISK_RESERVE_BYTES
    stage: str = DEFAULT_STAGE
    extract: str = "auto"  # unload | results | auto (sync/paths.py)
    results_max_bytes: int = DEFAULT_RESULTS_MAX_BYTES
    published_path: Path | None = None  # unset: mirror.duckdb beside the working file
    published_storage_version: str = DEFAULT_PUBLISHED_STORAGE_VERSION
    publish_minutes: float = DEFAULT_PUBLISH_MINUTES
    schedule_cron: str = DEFAULT_SCHEDULE_CRON
    schedule_timezone: str = "UTC"
    cleanup_cron: str = DEFAULT_CLEANUP_CRON
    verify_cron: str = DEFAULT_VERIFY_CRON
    schedules_running: bool = True
    change_sensor_seconds: int = 300
    auto_register_schema: str | None = None
    auto_register_like: str = "%"
    auto_deregister: bool = False
    target: str = "duckdb"
    ducklake_catalog: str = ""
    ducklake_data_path: str = ""
    ducklake_retention_days: float = DEFAULT_DUCKLAKE_RETENTION_DAYS
    # Which sign-in variables are set: their names decide the credential kind and which EnvVars the resource
    # gets; a secret's value is never read here. The role and the key's path are not secret.
    snowflake_set: frozenset[str] = frozenset()
    snowflake_role: str | None = None
    private_key_path: str | None = None

    def has(self, name: str) -> bool:
        """Whether the environment sets this Snowflake variable (to anything but blank)."""
        return name in self.snowflake_set

    @property
    def mirror_path(self) -> Path:
        """What readers open: SYNC_PUBLISHED_PATH, or mirror.duckdb beside the working file."""
        from sync_project.sync.mirror.publish import published_default

        return self.published_path or published_default(self.duckdb_path)

    @property
    def lake(self) -> Lake | None:
        """The DuckLake tables land in (SYNC_TARGET=ducklake), or None for the DuckDB file."""
        from sync_project.sync.mirror.lake import lake_for

        return lake_for(self.target, self.ducklake_catalog, self.ducklake_data_path)

    @property
    def mirror(self) -> Mirror:
        """Where the tables land, as every reader and writer reaches it (see `sync/mirror`)."""
        from sync_project.sync.mirror import mirror_for

        return mirror_for(self.duckdb_path, self.mirror_path, self.lock_timeout_seconds, self.lake)

    @property
    def uses_local_snowflake(self) -> bool:
        return self.snowflake_account is None

    @classmethod
    def from_env(cls) -> Settings:
        state = local_state_dir()
        local = LocalSnowflake.from_env()
        return cls(
            snowflake_account=os.environ.get(SNOWFLAKE_ACCOUNT, "").strip() or None,
            snowflake_database=_database(),
            local_host=local.host,
            local_port=local.port,
            local_data_dir=local.data_dir,
            duckdb_path=Path(_env(SYNC_DUCKDB_PATH, str(state / "sync.duckdb"))),
            download_dir=Path(_env(SYNC_DOWNLOAD_DIR, str(state / "downloads"))),
            lock_timeout_seconds=_env_number(SYNC_LOCK_TIMEOUT_SECONDS, DEFAULT_LOCK_TIMEOUT_SECONDS),
            get_parallel=_env_number(SYNC_GET_PARALLEL, DEFAULT_GET_PARALLEL),
            max_file_size=_env_number(SYNC_MAX_FILE_SIZE, DEFAULT_MAX_FILE_SIZE),
            feed_from_bytes=_env_number(SYNC_FEED_FROM_BYTES, DEFAULT_FEED_FROM_BYTES),
            disk_reserve_bytes=_env_number(SYNC_DISK_RESERVE_BYTES, DEFAULT_DISK_RESERVE_BYTES),
            stage=_env(SYNC_STAGE, DEFAULT_STAGE),
            extract=_extract(),
            results_max_bytes=_env_number(SYNC_RESULTS_MAX_BYTES, DEFAULT_RESULTS_MAX_BYTES),
            published_path=Path(p) if (p := os.environ.get(SYNC_PUBLISHED_PATH, "").strip()) else None,
            published_storage_version=_env(SYNC_PUBLISHED_STORAGE_VERSION, DEFAULT_PUBLISHED_STORAGE_VERSION),
            publish_minutes=_env_number(SYNC_PUBLISH_MINUTES, DEFAULT_PUBLISH_MINUTES),
            schedule_cron=_env(SYNC_SCHEDULE_CRON, DEFAULT_SCHEDULE_CRON),
            schedule_timezone=_env(SYNC_SCHEDULE_TIMEZONE, "UTC"),
            cleanup_cron=_env(SYNC_CLEANUP_CRON, DEFAULT_CLEANUP_CRON),
            verify_cron=_env(SYNC_VERIFY_CRON, DEFAULT_VERIFY_CRON),
            schedules_running=_schedules_running(),
            change_sensor_seconds=_env_number(SYNC_CHANGE_SENSOR_SECONDS, 300),
            auto_register_schema=os.environ.get(SYNC_AUTO_REGISTER_SCHEMA, "").strip() or None,
            auto_register_like=_env(SYNC_AUTO_REGISTER_LIKE, "%"),
            auto_deregister=_env(SYNC_AUTO_DEREGISTER, "false").lower() in ("1", "true", "yes"),
            target=_target(),
            ducklake_catalog=_env(SYNC_DUCKLAKE_CATALOG, str(state / "lake.sqlite")),
            ducklake_data_path=_env(SYNC_DUCKLAKE_DATA_PATH, str(state / "lake-data")),
            ducklake_retention_days=_env_number(SYNC_DUCKLAKE_RETENTION_DAYS, DEFAULT_DUCKLAKE_RETENTION_DAYS),
            snowflake_set=frozenset(name for name in SNOWFLAKE_SIGN_IN if os.environ.get(name)),
            snowflake_role=os.environ.get(SNOWFLAKE_ROLE) or None,
            private_key_path=os.environ.get(SNOWFLAKE_PRIVATE_KEY_PATH) or None,
        )
