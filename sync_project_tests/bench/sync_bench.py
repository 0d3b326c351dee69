"""Benchmark: sync the demo's "data" table through `dagster asset materialize` and through the engine alone.

Run with `make bench` (or `python -m sync_project_tests.bench.sync_bench --rows 1000000`). Prints a table and
writes it as JSON. Not a test: its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import snowflake.connector

from sync_project.local_snowflake import LocalSnowflakeProcess
from sync_project.local_snowflake.demo import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.sync.pipeline import SyncOptions, sync_table
from sync_project.sync.tables import TableRef


def materialize_via_cli(root: Path, env: dict[str, str], key: str) -> dict[str, Any]:
    """Whole process, Dagster start-up included; peak RSS of the run process from the kernel's accounting."""
    subprocess.run(
        [sys.executable, "-c", f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions("
         f"'snowflake_tables', [{key!r}])"],
        env=env, check=True,
    )  # fmt: skip
    # The CLI runs in a wrapper that reports its own peak RSS at exit (the run executes in this process).
    wrapper = (
        "import atexit, resource, sys\n"
        "atexit.register(lambda: print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " file=sys.stderr))\n"
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
    conn = snowflake.connector.connect(**process.connection_settings(), database=DEMO_DATABASE)
    try:
        yield conn
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=Path(".local/bench.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        root = Path(tmp)
        started = time.monotonic()
        with LocalSnowflakeProcess(data_dir=root / "snowflake", demo_rows=args.rows) as process:
            generate_seconds = time.monotonic() - started
            table = TableRef(DEMO_DATABASE, DEMO_SCHEMA, "data")
            options = SyncOptions(duckdb_path=root / "engine.duckdb", download_root=root / "engine-downloads")
            report = sync_table(lambda: engine_connect(process), table, options)
            (root / "dagster").mkdir()
            env = os.environ | {
                "DAGSTER_HOME": str(root / "dagster"),
                "LOCAL_SNOWFLAKE_PORT": str(process.port),
                "SYNC_DUCKDB_PATH": str(root / "dagster.duckdb"),
                "SYNC_DOWNLOAD_DIR": str(root / "dagster-downloads"),
            }
            cli = materialize_via_cli(root, env, table.key)
    result = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "rows": args.rows,
        "generate_seconds": round(generate_seconds, 2),
        "engine": {
            "seconds": report.total_seconds,
            "rows_per_second": report.rows_per_second,
            "phases": report.phase_seconds,
            "bytes_unloaded": report.output_bytes,
            "files": report.files,
        },
        "dagster_asset_materialize": cli | {"rows_per_second": round(args.rows / cli["seconds"], 1)},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(f"{'what':<34}{'seconds':>10}{'rows/s':>14}{'peak RSS MiB':>14}")
    print(f"{'engine alone':<34}{report.total_seconds:>10.2f}{report.rows_per_second:>14,.0f}{'':>14}")
    print(
        f"{'dagster asset materialize':<34}{cli['seconds']:>10.2f}"
        f"{args.rows / cli['seconds']:>14,.0f}{cli['peak_rss_mib']:>14.1f}"
    )
    print("engine phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.phase_seconds.items()))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
