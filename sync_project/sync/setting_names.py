"""The name of every setting the project reads, in one table: the engine's messages and `settings.py` take
them from here, so a message never names a setting that does not exist. Each is the environment variable;
the `SnowflakeMirrorComponent` attribute of the same meaning (`component.py`) overrides it in `defs.yaml`."""

SNOWFLAKE_ACCOUNT = "SNOWFLAKE_ACCOUNT"  # unset: use the local (embedded) Snowflake
SNOWFLAKE_USER = "SNOWFLAKE_USER"
SNOWFLAKE_PASSWORD = "SNOWFLAKE_PASSWORD"  # noqa: S105 - a variable name; secret value
SNOWFLAKE_PRIVATE_KEY = "SNOWFLAKE_PRIVATE_KEY"  # secret: PEM text
SNOWFLAKE_PRIVATE_KEY_PATH = "SNOWFLAKE_PRIVATE_KEY_PATH"
SNOWFLAKE_PRIVATE_KEY_PASSPHRASE = "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"  # noqa: S105 - secret value
SNOWFLAKE_TOKEN = "SNOWFLAKE_TOKEN"  # noqa: S105 - secret value: programmatic access token
SNOWFLAKE_ROLE = "SNOWFLAKE_ROLE"
SNOWFLAKE_WAREHOUSE = "SNOWFLAKE_WAREHOUSE"
SNOWFLAKE_DATABASE = "SNOWFLAKE_DATABASE"
SNOWFLAKE_HOST = "SNOWFLAKE_HOST"
SNOWFLAKE_PORT = "SNOWFLAKE_PORT"
SNOWFLAKE_PROTOCOL = "SNOWFLAKE_PROTOCOL"
LOCAL_SNOWFLAKE_HOST = "LOCAL_SNOWFLAKE_HOST"
LOCAL_SNOWFLAKE_PORT = "LOCAL_SNOWFLAKE_PORT"
LOCAL_SNOWFLAKE_DATA_DIR = "LOCAL_SNOWFLAKE_DATA_DIR"
SYNC_DUCKDB_PATH = "SYNC_DUCKDB_PATH"
SYNC_DOWNLOAD_DIR = "SYNC_DOWNLOAD_DIR"
SYNC_LOCK_TIMEOUT_SECONDS = "SYNC_LOCK_TIMEOUT_SECONDS"
SYNC_GET_PARALLEL = "SYNC_GET_PARALLEL"
SYNC_MAX_FILE_SIZE = "SYNC_MAX_FILE_SIZE"
SYNC_FEED_FROM_BYTES = "SYNC_FEED_FROM_BYTES"  # full unloads this big are loaded as their files arrive
SYNC_DISK_RESERVE_BYTES = "SYNC_DISK_RESERVE_BYTES"  # a sync never leaves less free than this
SYNC_STAGE = "SYNC_STAGE"  # unset: the user stage @~ (no privilege, nothing created in source schemas)
SYNC_S3_URL_STYLE = "SYNC_S3_URL_STYLE"  # a lake on s3://: path (default with an endpoint) or vhost
SYNC_EXTRACT = "SYNC_EXTRACT"  # the way out of Snowflake: auto (default), unload (a stage), or results
SYNC_RESULTS_MAX_BYTES = "SYNC_RESULTS_MAX_BYTES"  # under auto, tables up to this size read the result set
SYNC_PUBLISHED_PATH = "SYNC_PUBLISHED_PATH"  # what readers open: a symlink to the latest complete snapshot
SYNC_PUBLISHED_STORAGE_VERSION = "SYNC_PUBLISHED_STORAGE_VERSION"  # the DuckDB storage version readers need
SYNC_PUBLISH_MINUTES = "SYNC_PUBLISH_MINUTES"  # during a burst of syncs, publish at most this often
SYNC_TARGET = "SYNC_TARGET"  # duckdb (the working file, default) or ducklake
SYNC_DUCKLAKE_CATALOG = "SYNC_DUCKLAKE_CATALOG"  # a SQLite file, or postgres:dbname=... host=... (no password)
SYNC_DUCKLAKE_DATA_PATH = "SYNC_DUCKLAKE_DATA_PATH"  # the folder for the lake's Parquet files
SYNC_DUCKLAKE_RETENTION_DAYS = "SYNC_DUCKLAKE_RETENTION_DAYS"  # snapshots younger than this stay queryable
DAGSTER_HOME = "DAGSTER_HOME"  # the instance (run history); default .local/dagster, as `make demo` uses
SYNC_SCHEDULE_CRON = "SYNC_SCHEDULE_CRON"
SYNC_SCHEDULE_TIMEZONE = "SYNC_SCHEDULE_TIMEZONE"
SYNC_CLEANUP_CRON = "SYNC_CLEANUP_CRON"  # the daily cleanup of what failed syncs left
SYNC_VERIFY_CRON = "SYNC_VERIFY_CRON"  # the weekly content check of every registered table (stopped until turned on)
SYNC_SCHEDULES = "SYNC_SCHEDULES"
SYNC_CHANGE_SENSOR_SECONDS = "SYNC_CHANGE_SENSOR_SECONDS"
SYNC_AUTO_REGISTER_SCHEMA = "SYNC_AUTO_REGISTER_SCHEMA"  # unset: the auto-registration sensor does nothing
SYNC_AUTO_REGISTER_LIKE = "SYNC_AUTO_REGISTER_LIKE"
SYNC_AUTO_DEREGISTER = "SYNC_AUTO_DEREGISTER"  # "true": also deregister tables that vanished
