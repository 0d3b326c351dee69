"""The engine's shared types: how a sync reaches Snowflake and what it is told, kept apart from the
orchestrator (`pipeline.py`) so its siblings and the shell can name them without importing it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_project.sync.attempt import USER_STAGE
from sync_project.sync.mirror import Mirror
from sync_project.sync.state import Extract

# Snowflake's BYTES up to which `auto` reads a table's result set (paths.py says why).
DEFAULT_RESULTS_MAX_BYTES = 8 * 1024 * 1024
# Unloaded Parquet bytes from which a full sync loads its files as they arrive (feed.py): below it the whole
# download is small beside the DuckDB file, and a group's own round trips would cost more than the overlap saves.
DEFAULT_FEED_FROM_BYTES = 128 * 1024 * 1024  # the settings' too (settings.DEFAULT_FEED_FROM_BYTES)

# A new connector connection each call, as a context manager (the resource's get_connection, or a test's).
Connect = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class SyncOptions:
    mirror: Mirror  # where tables land: the DuckDB file or a DuckLake
    download_root: Path
    get_parallel: int = 10
    max_file_size: int = 16 * 1024 * 1024  # Snowflake's default; the settings' too (DEFAULT_MAX_FILE_SIZE)
    disk_reserve: int = 0  # bytes a sync must leave free on each disk it writes to
    stage: str = USER_STAGE  # "~" (no privilege needed) or a stage name; attempts unload below sync_project/
    extract: Extract = "auto"  # the way out of Snowflake: a stage, the result set, or auto (paths.py)
    results_max_bytes: int = DEFAULT_RESULTS_MAX_BYTES  # under auto, tables up to this size take the result set
    feed_from_bytes: int = DEFAULT_FEED_FROM_BYTES  # a full unload this big is loaded as its files arrive
