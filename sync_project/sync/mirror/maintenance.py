"""Keeping a DuckLake small: expire old snapshots, merge small files, delete what no snapshot needs.

Every sync commits a snapshot and writes new Parquet files; without maintenance a lake keeps every version
of every table forever. Snapshots younger than the retention stay queryable (`AT (VERSION => id)`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sync_project.sync.mirror.access import lake_session
from sync_project.sync.mirror.lake import LAKE_ALIAS, Lake


@dataclass(frozen=True)
class LakeMaintenance:
    snapshots_expired: int
    files_merged: int  # small files rewritten into fewer
    files_written: int
    files_deleted: int
    seconds: float


def maintain_lake(lake: Lake, retention_days: float) -> LakeMaintenance:
    """Expire snapshots older than `retention_days`, merge adjacent small files, delete unreferenced files."""
    started = time.monotonic()
    cutoff = f"now() - INTERVAL {float(retention_days) * 86400:.0f} SECOND"
    with lake_session(lake, what="maintaining the lake") as con:
        expired = con.execute(f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', older_than => {cutoff})").fetchall()
        merged = con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')").fetchall()
        # Files of the snapshots just expired, and the small files just merged: no remaining snapshot reads them.
        deleted = con.execute(f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)").fetchall()
    return LakeMaintenance(
        snapshots_expired=len(expired),
        files_merged=sum(int(r[2]) for r in merged),
        files_written=sum(int(r[3]) for r in merged),
        files_deleted=len(deleted),
        seconds=round(time.monotonic() - started, 3),
    )
