"""Which way out of Snowflake a sync takes: an unload through a stage (COPY INTO, GET) or the query's result set.

Both run the same projection and end in the same Parquet files, load and checks; they differ in what they
cost. The unload pays fixed round trips (COPY INTO, LIST, GET and its storage requests, REMOVE) and then moves
data in parallel compressed files; the result set pays one statement and then Arrow chunks. `auto` reads a
table through its result set when Snowflake says it is small (its BYTES under `results_max_bytes`), and
whenever the account refuses unloads to internal stages (PREVENT_UNLOAD_TO_INTERNAL_STAGES), which it finds
from the unload's own refusal.

The threshold, measured (`python -m sync_project_tests.bench.sync_bench --rows 200000 --tables 0 --many 0`,
its `extract paths` lines; 2 cores, the embedded Snowflake): the two paths cross at about 1 MB, 10,000 rows of
the demo table (unload 0.25 s, result set 0.28 s); at 4.7 MB the result set costs 0.20 s more, about 0.04 s per
MB. The embedded Snowflake answers a statement in milliseconds; an account takes 100-300 ms per statement, and
the unload makes at least four more (COPY INTO, LIST, GET with its storage requests, REMOVE): 0.4 s or more,
which at the measured 0.04 s per MB keeps the result set ahead up to about 9 MB. `auto` takes 8 MiB, and
`SYNC_RESULTS_MAX_BYTES` moves it.
"""

from __future__ import annotations

import datetime as dt

from sync_project.sync.catalog import TableStats
from sync_project.sync.state import Extract, Fact

# A refused unload is remembered this long: then one sync tries again, in case an administrator lifted the control.
RECHECK_PREVENTED = dt.timedelta(days=1)


def choose_path(
    setting: Extract,
    source: TableStats | None,
    results_max_bytes: int,
    prevented: Fact | None = None,
    now: dt.datetime | None = None,
) -> tuple[str, str]:
    """("unload" | "results", why) for one sync, before any unload ran. `results_max_bytes` is Snowflake's BYTES
    (compressed storage) up to which `auto` takes the result set."""
    if setting != "auto":
        return setting, f"extract is set to {setting}"
    now = now or dt.datetime.now(dt.UTC)
    if prevented is not None and now - prevented.noted_at < RECHECK_PREVENTED:
        noted = prevented.noted_at.strftime("%Y-%m-%d %H:%M UTC")
        return "results", f"Snowflake refused unloads to internal stages at {noted}; to lift it, {prevented.value}"
    size = source.bytes if source is not None else None
    if size is not None and size <= results_max_bytes:
        return (
            "results",
            f"{size:,} bytes in Snowflake, at most {results_max_bytes:,}: one query beats a stage's round trips",
        )
    if size is None:
        return "unload", "Snowflake did not say the table's size"
    return "unload", f"{size:,} bytes in Snowflake, over {results_max_bytes:,}: parallel files beat one result set"
