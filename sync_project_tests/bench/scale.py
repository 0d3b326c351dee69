"""Big tables: the engine's full sync as the table grows, beside the hand-written path in the same run.

`python -m sync_project_tests.bench.scale --rows 1000000 10000000 100000000` (`make bench-scale`; outside CI: at
100,000,000 rows it needs about 25 GB of disk and half an hour). The embedded Snowflake generates the demo table
once, of 10,000,000 rows at most; a smaller table is a copy of its first rows, a larger one of it again and
again. Per size: the hand-written COPY INTO / GET / CREATE TABLE AS, then the engine's full sync in a process of
its own, with its seconds, seconds per million rows, its peak RSS (VmHWM), the most its download folder held
(the sync's own figure) and the most the download folder and the DuckDB file held together (sampled every
0.05 s, so a peak between samples can be missed).

`--file-sizes`, `--parallel` and `--feed-from` measure each MAX_FILE_SIZE, GET PARALLEL and threshold of loading
files as they arrive (`sync/feed.py`) at the first size instead, `--repeat` times each, in turn.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.sync.tables import TableRef
from sync_project_tests.bench.engine_process import engine_sync
from sync_project_tests.bench.sync_bench import engine_connect, machine, measure_by_hand

# The demo table is generated at most this big: a statement that runs longer than the connector waits for an
# answer (the embedded Snowflake does not answer "query in progress" as Snowflake does) is sent again, and fails.
GENERATED_ROWS = 10_000_000


def copy_of_rows(process: LocalSnowflakeProcess, rows: int) -> TableRef:
    """A table of `rows` demo rows: the first ones, or the demo table again and again (ids repeat: a full sync
    does not mind)."""
    table = TableRef(DEMO_DATABASE, DEMO_SCHEMA, f"ROWS_{rows}")
    demo = f'{DEMO_DATABASE}.{DEMO_SCHEMA}."data"'
    with engine_connect(process) as conn:
        cursor = conn.cursor()
        cursor.execute(f'CREATE OR REPLACE TABLE {table.snowflake_sql} AS SELECT * FROM {demo} WHERE "id" < {rows}')
        for _ in range(rows // GENERATED_ROWS - 1):
            cursor.execute(f"INSERT INTO {table.snowflake_sql} SELECT * FROM {demo}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--file-sizes", type=int, nargs="*", default=[], help="MAX_FILE_SIZE values, MiB")
    parser.add_argument("--parallel", type=int, nargs="*", default=[], help="GET PARALLEL values")
    parser.add_argument("--feed-from", type=int, nargs="*", default=[], help="MiB from which files load as they come")
    parser.add_argument("--repeat", type=int, default=1, help="each setting this many times, in turn")
    parser.add_argument("--output", type=Path, default=Path(".local/bench-scale.json"))
    args = parser.parse_args()
    from sync_project.settings import DEFAULT_GET_PARALLEL as parallel, DEFAULT_MAX_FILE_SIZE as file_size
    from sync_project.sync.options import DEFAULT_FEED_FROM_BYTES as feed_from

    results: dict[str, Any] = {"machine": machine(), "sizes": [], "settings": []}
    with tempfile.TemporaryDirectory(prefix="sync-scale-") as tmp:
        root = Path(tmp)
        with LocalSnowflakeProcess(
            data_dir=root / "snowflake", demo_rows=min(max(args.rows), GENERATED_ROWS)
        ) as process:
            if args.file_sizes or args.parallel or args.feed_from:
                table = copy_of_rows(process, args.rows[0])
                combos = [
                    (size, get_parallel, fed)
                    for size in args.file_sizes or [file_size // 2**20]
                    for get_parallel in args.parallel or [parallel]
                    for fed in args.feed_from or [feed_from // 2**20]
                ]
                for size, get_parallel, fed in combos * args.repeat:
                    figures = engine_sync(process, table, root / "engine", size * 2**20, get_parallel, fed * 2**20)
                    setting = {"max_file_size_mib": size, "parallel": get_parallel, "feed_from_mib": fed}
                    results["settings"].append(setting | figures)
                    print(f"MAX_FILE_SIZE {size} MiB, PARALLEL {get_parallel}, files as they come from {fed} MiB: "
                          f"{_line(figures)}", flush=True)  # fmt: skip
            else:
                for rows in sorted(args.rows):
                    table = copy_of_rows(process, rows)
                    by_hand = measure_by_hand(process, table, root / f"by-hand-{rows}")
                    figures = engine_sync(process, table, root / "engine", file_size, parallel, feed_from)
                    figures |= {
                        "rows": rows,
                        "by_hand": by_hand,
                        "ratio_to_by_hand": round(figures["seconds"] / by_hand["total"], 2),
                    }
                    results["sizes"].append(figures)
                    print(f"{rows:,} rows: {_line(figures)}; by hand {by_hand['total']:.2f}s, the engine "
                          f"{figures['ratio_to_by_hand']}x", flush=True)  # fmt: skip
                    with engine_connect(process) as conn:
                        conn.cursor().execute(f"DROP TABLE {table.snowflake_sql}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


def _line(figures: dict[str, Any]) -> str:
    rows, parquet = figures["rows"], figures["bytes_downloaded"]
    peak = figures["download_peak_bytes"] if figures["download_peak_bytes"] is not None else parquet
    phases = ", ".join(f"{k} {v:.2f}" for k, v in figures["phases"].items())
    return (
        f"{figures['seconds']:.2f}s ({figures['seconds'] / rows * 1e6:.3f}s per million rows; {phases}), "
        f"{figures['files']} files, peak RSS {figures['peak_rss_kib'] / 1024:.0f} MiB, download folder at most "
        f"{peak:,} of {parquet:,} bytes ({peak / parquet:.0%}), download folder and DuckDB file at most "
        f"{figures['peak_disk_bytes']:,} bytes"
    )


if __name__ == "__main__":
    main()
