"""`make bench`'s figures for the two ways out of Snowflake: where they cross, and small tables.

- `measure_paths`: one table at several sizes through each path (the engine, the best of three), which is
  where `auto`'s threshold comes from (`sync/paths.py`).
- `measure_small_tables`: many small tables through the nightly path (the schedule, the daemon, runs of up to 25
  tables) and the engine's one-process loop (`sync_tables` with a run's workers), beside a plain connector loop
  (`fetch_arrow_all`, then one `CREATE TABLE AS` each, one process): what Sling and dlt do for small tables.
  The plain loop runs in the embedded Snowflake's environment, which has pandas (the connector's Arrow fetch
  needs it; ours does not).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sync_project.assets import SYNC_WORKERS
from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import LocalSnowflakeProcess, emulator_python
from sync_project.sync.catalog import table_stats
from sync_project.sync.pipeline import sync_table, sync_tables
from sync_project.sync.state import Extract
from sync_project.sync.tables import TableRef
from sync_project_tests.bench.engine_process import PEAK_RSS_KIB
from sync_project_tests.bench.sync_bench import engine_connect, file_options, measure_nightly

PATH_ROWS = (10_000, 40_000, 200_000)
PLAIN_LOOP = """
import sys, time, duckdb, snowflake.connector
port, database, schema, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
names = sys.argv[5:]
started = time.monotonic()
conn = snowflake.connector.connect(account="local", user="local", password="local", host="127.0.0.1", port=port,
                                   protocol="http", database=database, warehouse="COMPUTE_WH")
with duckdb.connect(out) as con:
    for name in names:
        rows = conn.cursor().execute(f'SELECT * FROM {database}.{schema}."{name}"').fetch_arrow_all()
        con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM rows')
conn.close()
print("seconds", round(time.monotonic() - started, 3))
"""


def _copy_of_data(process: LocalSnowflakeProcess, schema: str, name: str, rows: int) -> TableRef:
    with engine_connect(process) as conn:
        conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DEMO_DATABASE}.{schema}")
        conn.cursor().execute(
            f"CREATE OR REPLACE TABLE {DEMO_DATABASE}.{schema}.{name} AS "
            f'SELECT * FROM {DEMO_DATABASE}.{DEMO_SCHEMA}."data" LIMIT {rows}'
        )
    return TableRef(DEMO_DATABASE, schema, name)


def measure_paths(process: LocalSnowflakeProcess, root: Path) -> list[dict[str, Any]]:
    """Seconds of a full sync by each path at each size (the best of three), with Snowflake's BYTES."""
    found = []
    for rows in PATH_ROWS:
        table = _copy_of_data(process, DEMO_SCHEMA, f"PATHS_{rows}", rows)
        with engine_connect(process) as conn:
            stats = table_stats(conn, table)
        seconds: dict[str, float] = {}
        for path in ("unload", "results") * 3:
            extract: Extract = "unload" if path == "unload" else "results"
            options = dataclasses.replace(
                file_options(root / f"paths-{rows}-{path}.duckdb", root / "paths"), extract=extract
            )
            started = time.monotonic()
            sync_table(lambda: engine_connect(process), table, options)
            took = time.monotonic() - started
            seconds[path] = round(min(seconds.get(path, took), took), 3)
        found.append({"rows": rows, "snowflake_bytes": stats.bytes if stats else None, **seconds})
    return found


RESULTS_IN_A_PROCESS = """
import dataclasses, sys, time
from pathlib import Path
import snowflake.connector
from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import connection_settings
from sync_project.sync.pipeline import sync_table
from sync_project.sync.stage import SESSION_PARAMETERS, SIGN_IN_ARGUMENTS
from sync_project.sync.tables import TableRef
from sync_project_tests.bench.sync_bench import file_options
port, root = int(sys.argv[1]), Path(sys.argv[2])
def connect():
    return snowflake.connector.connect(**connection_settings("127.0.0.1", port), database=DEMO_DATABASE,
                                       session_parameters=dict(SESSION_PARAMETERS), **SIGN_IN_ARGUMENTS)
options = dataclasses.replace(file_options(root / "results.duckdb", root / "results"), extract="results")
started = time.monotonic()
report = sync_table(connect, TableRef(DEMO_DATABASE, DEMO_SCHEMA, "data"), options)
print("seconds", round(time.monotonic() - started, 2), "rows", report.rows_loaded, "files", report.files,
      "peak_rss_kib", PEAK_RSS_KIB)
""".replace("PEAK_RSS_KIB", PEAK_RSS_KIB)


def measure_results_memory(process: LocalSnowflakeProcess, root: Path) -> dict[str, Any]:
    """The demo's "data" table (the bench's --rows) through the result set in a process of its own: seconds and
    the peak RSS the kernel accounted to it (memory is bounded by the chunks in flight, not by the table)."""
    done = subprocess.run(
        [sys.executable, "-c", RESULTS_IN_A_PROCESS, str(process.port), str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the result-set sync failed: {done.stderr[-2000:]}")
    words = done.stdout.strip().splitlines()[-1].split()  # its own last line
    found = dict(zip(words[::2], words[1::2], strict=True))
    return {
        "seconds": float(found["seconds"]),
        "rows": int(found["rows"]),
        "files": int(found["files"]),
        "peak_rss_mib": round(int(found["peak_rss_kib"]) / 1024, 1),
        # The emulator's own peak so far (its whole life: the table's generation and unloads too).
        "emulator_peak_rss_mib": _peak_rss_mib(process.pid),
    }


def _peak_rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024, 1)


def measure_small_tables(process: LocalSnowflakeProcess, root: Path, tables: int, rows: int) -> dict[str, Any]:
    schema = "SMALL"
    refs = [_copy_of_data(process, schema, f"S{i:03d}", rows) for i in range(tables)]
    engine, plain_seconds = float("inf"), float("inf")
    for attempt in range(2):  # the better of two, each into a new file, for both loops alike
        options = file_options(root / f"small-engine-{attempt}.duckdb", root / "small-engine")  # extract: auto
        started = time.monotonic()
        outcomes = list(sync_tables(lambda: engine_connect(process), refs, options, SYNC_WORKERS))  # as a run does
        engine = min(engine, round(time.monotonic() - started, 2))
        assert all(o.report is not None and o.report.path == "results" for o in outcomes), outcomes
        plain = subprocess.run(
            [str(emulator_python()), "-c", PLAIN_LOOP, str(process.port),
             DEMO_DATABASE, schema, str(root / f"small-plain-{attempt}.duckdb"), *[r.name for r in refs]],
            capture_output=True, text=True,
        )  # fmt: skip
        if plain.returncode:
            raise RuntimeError(f"the plain connector loop failed: {plain.stderr[-2000:]}")
        plain_seconds = min(plain_seconds, float(plain.stdout.rsplit("seconds", 1)[1].split()[0]))
    (root / "small").mkdir()
    nightly = measure_nightly(process, root / "small", [f"{schema}.{r.name}" for r in refs])
    return {
        "tables": tables,
        "rows": rows,
        "engine_one_process_loop": engine,
        "plain_connector_loop": plain_seconds,
        "ratio_engine_to_plain": round(engine / plain_seconds, 2),
        "nightly_runs": nightly["runs"],
        "nightly_schedule_with_daemon": nightly["seconds"],
        "nightly_cpu_busy_seconds": nightly["cpu_busy_seconds"],
        "nightly_cpu_window_seconds": nightly["cpu_window_seconds"],
    }


def print_figures(paths: list[dict[str, Any]], small: dict[str, Any], memory: dict[str, Any]) -> None:
    for p in paths:
        print(
            f"extract paths, {p['rows']:,} rows ({p['snowflake_bytes']:,} bytes in Snowflake): "
            f"unload {p['unload']:.2f}s, result set {p['results']:.2f}s"
        )
    if memory:
        print(
            f"{memory['rows']:,} rows through the result set in a process of its own: {memory['seconds']:.2f}s, "
            f"{memory['files']} chunk file(s), peak RSS {memory['peak_rss_mib']:.0f} MiB (the embedded Snowflake's "
            f"own peak so far {memory['emulator_peak_rss_mib']:.0f} MiB)"
        )
    if small:
        print(
            f"{small['tables']} tables x {small['rows']:,} rows through the result set: the nightly schedule with "
            f"the daemon ({small['nightly_runs']} runs) {small['nightly_schedule_with_daemon']:.2f}s; the engine's "
            f"one-process loop ({SYNC_WORKERS} workers) {small['engine_one_process_loop']:.2f}s, a plain connector "
            f"loop {small['plain_connector_loop']:.2f}s ({small['ratio_engine_to_plain']}x)"
        )
        cores = os.cpu_count() or 1
        print(
            f"the nightly path kept the machine's {cores} cores busy {small['nightly_cpu_busy_seconds']:.2f} of "
            f"{cores * small['nightly_cpu_window_seconds']:.2f} CPU-seconds (daemon, runs and the embedded "
            "Snowflake together)"
        )
