"""What one sync did: `SyncReport`, the decisions and each phase's own result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sync_project.sync.attempt import UnloadResult
from sync_project.sync.catalog import Column, TableStats
from sync_project.sync.content import ContentReport
from sync_project.sync.deletes import KeyCheck, KeySet
from sync_project.sync.load import LoadResult
from sync_project.sync.stage import Download
from sync_project.sync.state import Strategy, TableOptions
from sync_project.sync.tables import TableRef

T = TypeVar("T")
WAIT_PHASE = "wait_for_duckdb"  # time a load waited for the DuckDB file, kept apart from the load itself


class _Figure(Generic[T]):
    """A report's figure that lives in one phase's result: `report.rows_loaded` is `report.load.rows_loaded`."""

    def __init__(self, phase: str, name: str, empty: T) -> None:
        self.phase, self.name, self.empty = phase, name, empty

    def __get__(self, report: object, owner: type | None = None) -> T:
        result = getattr(report, self.phase, None)
        return self.empty if result is None else cast(T, getattr(result, self.name))


@dataclass
class SyncReport:
    """What one sync did: the decisions, then each phase's own result (None until that phase has run)."""

    table: TableRef
    strategy: Strategy
    strategy_reason: str = ""
    options: TableOptions = field(default_factory=TableOptions)
    columns: list[Column] = field(default_factory=list)
    # Snowflake's figures read before the unload, so a change during the sync is seen by the next check.
    source: TableStats | None = None
    row_access_policy: str | None = None  # on the table, found when the unload saw fewer rows than it counts
    path: str = "unload"  # the way out of Snowflake: "unload" (a stage) or "results" (the result set); paths.py
    path_reason: str = ""
    noted: dict[str, str | None] = field(default_factory=dict)  # facts for the next syncs (state.py), None: forget
    unload: UnloadResult | None = None
    resumed_unload: bool = False
    download: Download | None = None
    download_peak_bytes: int | None = None  # the most the download folder held, when files were loaded as they came
    key_check: KeyCheck | None = None  # the keys' aggregates, on an incremental sync that detects deletes
    keys: KeySet | None = None  # every key Snowflake holds, read when the merged table's aggregates differ
    content_in_snowflake: list[Any] | None = None  # the content check's aggregates in Snowflake (verify: content)
    content: ContentReport | None = None  # both sides compared, after the load
    load: LoadResult | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)

    # The figures the shell reports, read from the phase results (their empty value until a phase has run).
    unload_query_id = _Figure("unload", "query_id", "")
    rows_unloaded = _Figure("unload", "rows_unloaded", 0)
    input_bytes = _Figure("unload", "input_bytes", 0)
    output_bytes = _Figure("unload", "output_bytes", 0)
    bytes_downloaded = _Figure("download", "bytes", 0)
    rows_loaded = _Figure("load", "rows_loaded", 0)
    rows_total = _Figure("load", "rows_total", 0)
    rows_updated = _Figure("load", "rows_updated", 0)
    rows_deleted = _Figure("load", "rows_deleted", 0)  # removed, or newly marked (deletes: mark)
    high_water_mark = _Figure[str | None]("load", "high_water_mark", None)
    schema_changes = _Figure[list[str]]("load", "schema_changes", [])
    duckdb_bytes = _Figure("load", "duckdb_bytes", 0)
    snapshot_id = _Figure[int | None]("load", "snapshot_id", None)  # on a lake: the snapshot the load committed
    preview_columns = _Figure[list[str]]("load", "preview_columns", [])
    preview_rows = _Figure[list[tuple[Any, ...]]]("load", "preview_rows", [])

    @property
    def files(self) -> int:
        return len(self.download.files) if self.download else 0

    @property
    def files_reused(self) -> int:
        return len(self.download.reused) if self.download else 0

    @property
    def total_seconds(self) -> float:
        return round(sum(self.phase_seconds.values()), 3)

    @property
    def rows_per_second(self) -> float:
        """Rows over the time spent working: waiting for the DuckDB file does not count."""
        working = self.total_seconds - self.phase_seconds.get(WAIT_PHASE, 0.0)
        return round(self.rows_loaded / working, 1) if working > 0 else 0.0
