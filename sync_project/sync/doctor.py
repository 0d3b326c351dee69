"""`doctor`: will a sync work from here, and if not, what to fix. Seconds, not a failed run after retries.

Each check is one line, passed, failed or skipped (when an earlier failure makes it meaningless), with
what it saw and, when it failed, the fix. The stage check goes the whole way a sync goes (COPY INTO,
LIST, GET over the network path the connector uses, reading the Parquet back) on a few rows it makes
itself, and removes them. Nothing here prints a secret: the target names the auth mode, not the key.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow.parquet as pq
from snowflake.connector.errors import Error as SnowflakeError

from sync_project.sync.attempt import USER_STAGE, Attempt
from sync_project.sync.catalog import TableStats, describe_table, list_schemas
from sync_project.sync.disk import check_free_space
from sync_project.sync.doctor_extract import extract_paths, table_sizes
from sync_project.sync.errors import SyncError, from_snowflake
from sync_project.sync.mirror import Mirror
from sync_project.sync.options import SyncOptions
from sync_project.sync.setting_names import (
    SNOWFLAKE_DATABASE,
    SNOWFLAKE_WAREHOUSE,
    SYNC_DISK_RESERVE_BYTES,
    SYNC_DOWNLOAD_DIR,
    SYNC_STAGE,
)
from sync_project.sync.stage import (
    clear_location,
    configure_session,
    download_files,
    staged_names,
    unload_query_to_stage,
)
from sync_project.sync.tables import TableRef

Status = Literal["passed", "failed", "skipped"]
ROUND_TRIP_ROWS = 1000
ROUND_TRIP_FILE_SIZE = 16 * 1024 * 1024
LOCK_WAIT_SECONDS = 2.0  # the doctor reports a held file rather than waiting as long as a sync would


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str  # what was found, with the figure or the error
    fix: str = ""  # what to do when it failed

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Target:
    """What the checks talk to, as people configure it; never a secret."""

    snowflake: str  # "account acme-prod" or "the embedded Snowflake at http://..."
    user: str
    role: str | None
    warehouse: str | None
    database: str
    auth_mode: str
    stage: str

    def describe(self) -> str:
        stage = "@~ (the user stage)" if self.stage == USER_STAGE else f"@{self.stage}"
        return (
            f"{self.snowflake}; user {self.user}, role {self.role or '(the user default)'}, warehouse "
            f"{self.warehouse or '(none)'}, database {self.database}, auth {self.auth_mode}, stage {stage}"
        )


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _failed(name: str, error: Exception, fix: str = "") -> Check:
    return Check(name, "failed", str(error), fix)


def _skipped(name: str, why: str) -> Check:
    return Check(name, "skipped", f"not checked: {why}")


def _scalar(conn: Any, sql: str) -> Any:
    row = conn.cursor().execute(sql).fetchone()
    return row[0] if row else None


def _run(name: str, probe: Callable[[], str], fix: str = "") -> Check:
    """One check: the probe returns what it saw, or raises; Snowflake errors are said the sync's way."""
    try:
        return Check(name, "passed", probe())
    except SnowflakeError as e:
        return _failed(name, from_snowflake(e, name), fix)
    except (SyncError, OSError, duckdb.Error) as e:  # the local checks: a file, a folder, a disk
        return _failed(name, e, getattr(e, "fix", fix))  # an error that knows its own fix says it


def run_doctor(
    connect: Callable[[], Any], target: Target, tables: list[TableRef], options: SyncOptions
) -> DoctorReport:
    """Every check, Snowflake side then local side; `connect` returns a new connection (the caller's auth)."""
    checks, largest = _snowflake_checks(connect, target, tables, options)
    mirror = _mirror(options.mirror)
    storage = options.mirror.storage_probe()
    checks += [mirror, *([_run("lake storage", *storage)] if storage else []), _download_folder(options.download_root)]
    checks.append(_free_space(options, largest) if largest is not False else _skipped("disk space", "sign-in failed"))
    return DoctorReport(checks)


Largest = tuple[int, TableRef] | None | Literal[False]  # False: the sizes could not be read at all


def _snowflake_checks(
    connect: Callable[[], Any], target: Target, tables: list[TableRef], options: SyncOptions
) -> tuple[list[Check], Largest]:
    download_root = options.download_root
    checks = [Check("configuration", "passed", target.describe())]
    try:
        conn = connect()
    except (SyncError, SnowflakeError) as e:
        checks.append(_failed("sign-in", e if isinstance(e, SyncError) else from_snowflake(e, "signing in")))
        skipped = ("warehouse", "database", "stage", "tables", "extract")
        return checks + [_skipped(n, "sign-in failed") for n in skipped], False
    try:
        checks.append(_run("sign-in", lambda: _signed_in(conn)))
        warehouse = _warehouse(conn, target)
        checks += [warehouse, _database(conn, target, tables)]
        if warehouse.passed:
            checks.append(_run("stage", lambda: _stage_round_trip(conn, target, download_root), _STAGE_FIX))
        else:
            checks.append(_skipped("stage", "COPY INTO needs a warehouse"))
        checks.append(_tables(conn, tables))
        if not warehouse.passed:
            return [*checks, _skipped("extract", "table sizes need a warehouse")], False
        sizes = table_sizes(conn, tables)  # read once: the extract line and the disk check both use them
        checks.append(_run("extract", lambda: extract_paths(conn, sizes, options)))
        return checks, _largest(sizes)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


_STAGE_FIX = (
    f"a privilege error: grant READ and WRITE on {SYNC_STAGE}, or unset it to use the user stage @~; a GET that "
    "fails or stalls: let this machine reach the stage's cloud storage over HTTPS (a proxy or firewall in "
    "between; SELECT SYSTEM$ALLOWLIST() lists the hosts)"
)


def _signed_in(conn: Any) -> str:
    configure_session(conn)
    row = conn.cursor().execute("SELECT CURRENT_USER(), CURRENT_ROLE()").fetchone()
    return f"signed in as {row[0]} with role {row[1]}; the session takes the sync's settings"


def _warehouse(conn: Any, target: Target) -> Check:
    if not target.warehouse:
        return Check(
            "warehouse",
            "failed",
            "no warehouse is set; the unload and the table listings need one (Snowflake error 000606 otherwise)",
            f"set {SNOWFLAKE_WAREHOUSE} to a warehouse this role may use",
        )

    def probe() -> str:
        current = _scalar(conn, "SELECT CURRENT_WAREHOUSE()")
        if current is None:
            raise SyncError(
                f"the session has no warehouse: {target.warehouse} does not exist or this role may not use it"
            )
        return f"{current} is the session's warehouse"

    return _run(
        "warehouse",
        probe,
        f"check the name in {SNOWFLAKE_WAREHOUSE}, and GRANT USAGE ON WAREHOUSE {target.warehouse} TO ROLE "
        f"{target.role or '<the role>'}",
    )


def _database(conn: Any, target: Target, tables: list[TableRef]) -> Check:
    def probe() -> str:
        current = _scalar(conn, "SELECT CURRENT_DATABASE()")
        if current is None:
            raise SyncError(f"the session has no database: {target.database} does not exist or this role cannot see it")
        visible = set(list_schemas(conn, target.database))
        wanted = sorted({t.schema for t in tables})
        if missing := [s for s in wanted if s not in visible]:
            raise SyncError(f"schema(s) {', '.join(missing)} of registered tables are not visible in {current}")
        return (
            f"{current} is visible, with the {len(wanted)} schema(s) of registered tables: {', '.join(wanted) or '-'}"
        )

    return _run(
        "database",
        probe,
        f"check {SNOWFLAKE_DATABASE}, and GRANT USAGE ON DATABASE {target.database} (and on each schema) TO ROLE "
        f"{target.role or '<the role>'}",
    )


def _stage_round_trip(conn: Any, target: Target, download_root: Path) -> str:
    """A few rows the whole way a sync goes: COPY INTO the stage, LIST, GET, read back; then removed."""
    # ROW_NUMBER, not SEQ4: Snowflake documents that SEQ4 may leave gaps; the check wants exactly 0..N-1.
    query = (
        "SELECT ROW_NUMBER() OVER (ORDER BY SEQ4()) - 1 AS N, 'sync_project doctor' AS LABEL "
        f"FROM TABLE(GENERATOR(ROWCOUNT => {ROUND_TRIP_ROWS}))"
    )
    download_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="doctor-", dir=download_root) as folder:
        # An attempt like a sync's: the daily cleanup removes it should the doctor be killed half way.
        attempt = Attempt.new(TableRef(target.database, "sync_project", "doctor"), Path(folder), stage=target.stage)
        try:
            unload = unload_query_to_stage(conn, attempt, query, ROUND_TRIP_FILE_SIZE)
            names = staged_names(conn, attempt)
            if not names:
                raise SyncError(f"COPY INTO reported {unload.rows_unloaded} rows, but LIST shows no file")
            download = download_files(conn, attempt, unload, query, names, parallel=4)
            numbers = pq.read_table(download.files).column("N").to_pylist()
            if sorted(int(n) for n in numbers) != list(range(ROUND_TRIP_ROWS)):
                raise SyncError(f"GET brought back {len(numbers)} rows that are not the {ROUND_TRIP_ROWS} unloaded")
            size = sum(f.stat().st_size for f in download.files)
        finally:
            with contextlib.suppress(SyncError):
                clear_location(conn, attempt)
    return (
        f"COPY INTO {attempt.location}, LIST and GET brought {ROUND_TRIP_ROWS:,} rows back intact "
        f"({len(names)} file(s), {size:,} bytes); removed again"
    )


def _tables(conn: Any, tables: list[TableRef]) -> Check:
    if not tables:
        return Check("tables", "passed", "no table is registered yet (sync-project register SCHEMA.TABLE)")
    problems: list[str] = []
    columns = 0
    for table in tables:
        try:
            columns += len(describe_table(conn, table))
        except SyncError as e:
            problems.append(str(e))
        except SnowflakeError as e:
            problems.append(str(from_snowflake(e, f"describing {table}")))
    if problems:
        return Check(
            "tables",
            "failed",
            f"{len(problems)} of {len(tables)} registered table(s) cannot be synced: " + " | ".join(problems),
            "fix each table named, or deregister it (sync-project deregister KEY)",
        )
    return Check("tables", "passed", f"{len(tables)} registered table(s), {columns} columns, every column maps")


def _largest(sizes: dict[TableRef, TableStats | None] | None) -> Largest:
    """The largest registered table by Snowflake's bytes; False if no size could be read."""
    if sizes is None:
        return False
    known = [(stats.bytes, table) for table, stats in sizes.items() if stats is not None and stats.bytes is not None]
    largest: tuple[int, TableRef] | None = max(known, key=lambda size: size[0], default=None)
    return largest


def _mirror(mirror: Mirror) -> Check:
    """The mirror opens as a sync would open it (a file: under the lock; a lake: attached and written)."""
    return _run(mirror.check_name, lambda: mirror.probe(LOCK_WAIT_SECONDS), mirror.probe_fix())


def _download_folder(root: Path) -> Check:
    def probe() -> str:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root) as handle:
            handle.write(b"sync_project doctor")
        return f"{root} is writable"

    return _run("download folder", probe, f"make {root} writable, or set {SYNC_DOWNLOAD_DIR}")


def _free_space(options: SyncOptions, largest: tuple[int, TableRef] | None) -> Check:
    size, table = largest if largest else (0, None)

    def probe() -> str:
        purpose = f"sync the largest registered table, {table}" if table else "sync (no table registered yet)"
        check_free_space(options.download_root, size, purpose, options.disk_reserve)
        free = shutil.disk_usage(options.download_root).free
        what = f"the largest registered table ({table}, {size:,} bytes in Snowflake)" if table else "no table yet"
        return (
            f"{free:,} bytes free: room for {what} and {options.disk_reserve:,} kept free ({SYNC_DISK_RESERVE_BYTES})"
        )

    return _run("disk space", probe)
