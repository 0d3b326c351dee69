"""Keeping a DuckLake small: expire old snapshots, merge small files, delete what no snapshot needs.

Every sync commits a snapshot and writes new Parquet files; without maintenance a lake keeps every version
of every table forever. Snapshots younger than the retention stay queryable (`AT (VERSION => id)`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sync_project.sync.mirror.lake import LAKE_ALIAS, Lake, lake_session


@dataclass(frozen=True)
class LakeMaintenance:
    snapshots_expired: int
    files_merged: int  # small files rewritten into fewer
    files_written: int
    files_deleted: int
    seconds: float
    orphans_deleted: int = 0  # files no snapshot ever named: a failed load's, an upload cut short


# A file no snapshot names may belong to a load still in flight on another worker, whose commit will name it:
# only files older than this are taken for orphans.
ORPHAN_GRACE_SECONDS = 3600.0


def maintain_lake(
    lake: Lake, retention_days: float, orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS
) -> LakeMaintenance:
    """Expire snapshots older than `retention_days`, merge adjacent small files, delete unreferenced files
    (in object storage too: the objects are deleted), and orphans older than `orphan_grace_seconds`."""
    started = time.monotonic()
    cutoff = f"now() - INTERVAL {float(retention_days) * 86400:.0f} SECOND"
    grace = f"now() - INTERVAL {float(orphan_grace_seconds):.0f} SECOND"
    with lake_session(lake, what="maintaining the lake") as con:
        expired = con.execute(f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', older_than => {cutoff})").fetchall()
        merged = con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')").fetchall()
        # Files of the snapshots just expired, and the small files just merged: no remaining snapshot reads them.
        deleted = con.execute(f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)").fetchall()
        orphans = con.execute(f"CALL ducklake_delete_orphaned_files('{LAKE_ALIAS}', older_than => {grace})").fetchall()
    return LakeMaintenance(
        snapshots_expired=len(expired),
        files_merged=sum(int(r[2]) for r in merged),
        files_written=sum(int(r[3]) for r in merged),
        files_deleted=len(deleted),
        seconds=round(time.monotonic() - started, 3),
        orphans_deleted=len(orphans),
    )
