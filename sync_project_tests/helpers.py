"""Small helpers shared by tests: connecting, comparing rows, running SQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import snowflake.connector

from sync_project.checks import ROW_COUNT_CHECK, SCHEMA_CHECK
from sync_project.definitions import build_definitions
from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.settings import Settings, project_root
from sync_project.sync.attempt import STAGE_FOLDER, USER_STAGE
from sync_project.sync.mirror import FileMirror, LakeMirror, mirror_for
from sync_project.sync.mirror.lake import Lake
from sync_project.sync.mirror.publish import published_default
from sync_project.sync.options import Connect, SyncOptions
from sync_project.sync.state import TableOptions, read_sync_state, write_all_options
from sync_project.sync.tables import TableRef
from sync_project_tests.emulator_controls import define_user

FQ = f"{DEMO_DATABASE}.{DEMO_SCHEMA}"


def demo_table(name: str) -> TableRef:
    return TableRef(DEMO_DATABASE, DEMO_SCHEMA, name)


def connector(process: LocalSnowflakeProcess) -> Connect:
    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        conn = snowflake.connector.connect(**snowflake_settings(process))
        try:
            yield conn
        finally:
            conn.close()

    return connect


def snowflake_settings(process: LocalSnowflakeProcess) -> dict[str, Any]:
    return process.connection_settings() | {"database": DEMO_DATABASE}


ACCOUNT_USER = "SYNC_SERVICE"
AUTH_MODES = ("password", "token", "key_pair")


def account_environment(process: LocalSnowflakeProcess, tmp_path: Path) -> dict[str, str]:
    """Environment for a real account's code path (SNOWFLAKE_ACCOUNT set), pointed at the local server.

    Credentials are left to the caller (`credential_environment`, and `allow_sign_in` on the server).
    """
    return {
        "SNOWFLAKE_ACCOUNT": "acme-prod",
        "SNOWFLAKE_USER": ACCOUNT_USER,
        "SNOWFLAKE_WAREHOUSE": "COMPUTE_WH",
        "SNOWFLAKE_DATABASE": "KEBOOLA_33",
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(process.port),
        "SNOWFLAKE_PROTOCOL": "http",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "SYNC_DUCKDB_PATH": str(tmp_path / "sync.duckdb"),
        "SYNC_DOWNLOAD_DIR": str(tmp_path / "downloads"),
    }


def credential_environment(auth: str, secret: str, passphrase: str = "") -> dict[str, str]:
    """The variables that select an auth mode: a password, a token, or a PEM key (with its passphrase)."""
    return {
        "password": {"SNOWFLAKE_PASSWORD": secret},
        "token": {"SNOWFLAKE_TOKEN": secret},
        "key_pair": {"SNOWFLAKE_PRIVATE_KEY": secret, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": passphrase},
    }[auth]


def allow_sign_in(
    process: LocalSnowflakeProcess, auth: str, secret: str, passphrase: str = "", user: str = ACCOUNT_USER
) -> None:
    """Make `user` known to the server with this one credential (a service user unless it is a password)."""
    define_user(
        process.base_url,
        user,
        password=secret if auth == "password" else None,
        tokens=[secret] if auth == "token" else [],
        rsa_public_key=public_key_pem(secret, passphrase) if auth == "key_pair" else None,
        service=auth != "password",
    )


def lake_for(target: str, tmp_path: Path, request: Any) -> Lake | None:
    """The lake a test's `target` names: none for "file", a SQLite catalog, or one on the session's PostgreSQL,
    its data in a folder or (a `-s3` target) in the session's S3 server (`request`: the test's pytest request,
    which starts those servers only for the tests that ask)."""
    data = str(tmp_path / "lake-data")
    if target.endswith("-s3"):  # the lake's data in the session's S3 server, as its worker
        s3 = request.getfixturevalue("s3")
        s3.use(request.getfixturevalue("monkeypatch"))
        data = s3.new_prefix()
    if target.startswith("ducklake-sqlite"):
        return Lake(str(tmp_path / "lake.sqlite"), data)
    if target.startswith("ducklake-postgres"):
        server = request.getfixturevalue("postgres")
        return Lake(f"postgres:{server.conninfo(server.new_database())}", data)
    return None


def options(
    tmp_path: Path,
    duckdb_path: Path | None = None,
    lake: Lake | None = None,
    lock_timeout: float = 30.0,
    **overrides: Any,
) -> SyncOptions:
    """A sync's options for a test: the mirror a file in `tmp_path` (or `duckdb_path`), or `lake`."""
    path = duckdb_path or tmp_path / "sync.duckdb"
    mirror = mirror_for(path, published_default(path), lock_timeout, lake)
    values: dict[str, Any] = {"download_root": tmp_path / "downloads", "get_parallel": 4, "extract": "unload"}
    values |= overrides
    return SyncOptions(mirror=mirror, **values)


def file_of(opts: SyncOptions) -> Path:
    """The DuckDB file a file-target test's syncs write."""
    assert isinstance(opts.mirror, FileMirror), opts.mirror
    return opts.mirror.path


def create_orders(conn: Any, ref: TableRef) -> TableRef:
    """An ORDERS-like table: 1,000 rows, a key, and a timestamp cursor with many ties (10 rows a minute)."""
    fetch(
        conn,
        f"CREATE TABLE {ref.snowflake_sql} (ID NUMBER(38,0) NOT NULL, AMOUNT NUMBER(10,2), STATUS VARCHAR(20), "
        "UPDATED_AT TIMESTAMP_NTZ(9), PRIMARY KEY (ID))",
    )
    fetch(
        conn,
        f"INSERT INTO {ref.snowflake_sql} SELECT SEQ8(), SEQ8() / 10, 'new', "
        "DATEADD(minute, FLOOR(SEQ8() / 10), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) "
        "FROM TABLE(GENERATOR(ROWCOUNT => 1000))",
    )
    return ref


def new_schema(conn: Any, prefix: str) -> str:
    """A fresh schema of the demo database, so no other test's tables show up in it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8].upper()}"
    fetch(conn, f"CREATE SCHEMA {DEMO_DATABASE}.{schema}")
    return schema


def orders_in_a_new_schema(conn: Any, prefix: str) -> TableRef:
    """A fresh ORDERS table (`create_orders`) in a schema of its own."""
    return create_orders(conn, TableRef(DEMO_DATABASE, new_schema(conn, prefix), "ORDERS"))


def configure(opts: SyncOptions, table: TableRef, table_options: TableOptions) -> None:
    """Set a table's sync options in the mirror, as `register --strategy` does."""
    if isinstance(opts.mirror, FileMirror):
        opts.mirror.path.parent.mkdir(parents=True, exist_ok=True)
    with opts.mirror.session("configuring", wait=10) as con:
        write_all_options(con, [(table, table_options)])


def mark_of(opts: SyncOptions, table: TableRef) -> str | None:
    """The table's high-water mark as the mirror records it."""
    with opts.mirror.session("reading the mark", read_only=True, wait=10) as con:
        return read_sync_state(con, table).high_water_mark


def synced_rows(opts: SyncOptions, relation: str) -> list[tuple[Any, ...]]:
    """Every row of a synced table, read the way the project reads its mirror (the file or the lake)."""
    with opts.mirror.session("reading rows", read_only=True, wait=10) as con:
        return con.execute(f"SELECT * FROM {relation}").fetchall()


def mirror_tables(opts: SyncOptions) -> list[tuple[str, str]]:
    """(schema, table) of every table in the mirror, the sync's own state aside; [] if nothing was written."""
    if opts.mirror.is_empty():
        return []
    with opts.mirror.session("listing tables", read_only=True, wait=10) as con:
        return [
            (str(r[0]), str(r[1]))
            for r in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name != '_sync' ORDER BY 1, 2"
            ).fetchall()
        ]


def synced_types(opts: SyncOptions, schema: str, table: str) -> dict[str, str]:
    with opts.mirror.session("reading types", read_only=True, wait=10) as con:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? ORDER BY column_index",
                [schema, table],
            ).fetchall()
        )


def fetch(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(sql)
    return list(cur.fetchall())


def stage_leftovers(conn: Any, stage: str = USER_STAGE) -> list[str]:
    """Files the project left in a stage's sync_project/ folder (the user stage by default)."""
    return [str(r[0]) for r in fetch(conn, f"LIST '@{stage}/{STAGE_FOLDER}'")]


def comparable(value: Any) -> Any:
    """One representation for a value read from Snowflake (connector) or DuckDB."""
    if isinstance(value, bytearray | bytes):
        return bytes(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value, parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            return value
    if isinstance(value, float) and value == 0:
        return 0.0
    return value


def sorted_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(comparable(v) for v in r) for r in rows), key=repr)


def duckdb_rows(path: Path, relation: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(f"SELECT * FROM {relation}").fetchall()


def duckdb_types(path: Path, schema: str, table: str) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index",
                [schema, table],
            ).fetchall()
        )


def encrypted_private_key(passphrase: str) -> str:
    """A fresh RSA key as encrypted PKCS#8 PEM, as Snowflake key-pair auth uses."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()


def public_key_pem(private_pem: str, passphrase: str) -> str:
    """The public half of a PEM private key, as an admin registers it with ALTER USER ... SET RSA_PUBLIC_KEY."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=passphrase.encode() or None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def assert_exact_copy(
    process: LocalSnowflakeProcess, duckdb_path: Path, download_root: Path, table: TableRef, lake: Lake | None = None
) -> str:
    """The synced table is the Snowflake table row for row and nothing is left behind; says so for the report."""
    with snowflake.connector.connect(**snowflake_settings(process)) as conn:
        source = sorted_rows(fetch(conn, f"SELECT * FROM {table.snowflake_sql}"))
        stages = stage_leftovers(conn)
    if lake is None:
        assert sorted_rows(duckdb_rows(duckdb_path, table.duckdb_sql)) == source
    else:
        with LakeMirror(lake).session("comparing", read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            assert sorted_rows(con.execute(f"SELECT * FROM {table.duckdb_sql}").fetchall()) == source
    assert stages == [] and not any(download_root.rglob("*.parquet"))
    where = "DuckDB" if lake is None else "The DuckLake table"
    return f"{where} equals Snowflake row for row ({len(source):,} rows, no duplicates); no stage or Parquet file left"


def run_job(
    settings: Settings, instance: dg.DagsterInstance, job: str, partition: str, config: dict[str, Any] | None = None
) -> dg.ExecuteInProcessResult:
    definitions = build_definitions(settings)
    # The partition goes in as a run tag (as the UI and `dagster job launch` do it), which also works for the
    # checks-only job.
    return definitions.resolve_job_def(job).execute_in_process(
        tags={"dagster/partition": partition}, instance=instance, raise_on_error=False, run_config=config or {}
    )


def assert_both_checks_passed(result: dg.ExecuteInProcessResult) -> None:
    """The run succeeded and both checks of its partition ran and passed (no evaluation at all is a failure)."""
    checks = result.get_asset_check_evaluations()
    assert result.success and sorted(c.check_name for c in checks) == sorted([ROW_COUNT_CHECK, SCHEMA_CHECK])
    assert all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]


def events_of(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def failed_once(result: dg.ExecuteInProcessResult) -> str:
    """The message of a run's one step failure, asserting it failed at once: a permanent error, no retry."""
    assert not result.success and events_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = events_of(result, dg.DagsterEventType.STEP_FAILURE)
    return str(failure.step_failure_data.error.message)  # type: ignore[union-attr]


def create_numbered_tables(process: LocalSnowflakeProcess, prefix: str, count: int, rows: int) -> list[str]:
    """Tables T0..T<count-1> of `rows` + i rows (ID, AMOUNT, NOTE) in a new schema named `prefix`_<random>;
    their partition keys."""
    schema = f"{prefix}_{uuid.uuid4().hex[:6].upper()}"
    with snowflake.connector.connect(**snowflake_settings(process)) as conn:
        fetch(conn, f"CREATE SCHEMA KEBOOLA_33.{schema}")
        for i in range(count):
            fetch(conn, f"CREATE TABLE KEBOOLA_33.{schema}.T{i} (ID NUMBER(38,0), AMOUNT NUMBER(12,2), NOTE VARCHAR)")
            fetch(
                conn,
                f"INSERT INTO KEBOOLA_33.{schema}.T{i} SELECT SEQ8(), SEQ8() / 100, 'row ' || SEQ8() "
                f"FROM TABLE(GENERATOR(ROWCOUNT => {rows + i}))",
            )
    return [f"{schema}.T{i}" for i in range(count)]


def project_copy(root: Path) -> Path:
    """The project's sources in `root` (no virtualenv, state or caches), for a test that adds to its defs."""
    ignore = shutil.ignore_patterns(".venv", ".local", ".git", "__pycache__", "*_cache", "local_snowflake")
    for name in ("sync_project", "pyproject.toml", "dagster.yaml", "workspace.yaml"):
        source = project_root() / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy(source, root / name)
    return root
