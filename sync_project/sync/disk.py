"""The local disk a sync writes to: is there room, and how much did the files take."""

from __future__ import annotations

import shutil
from pathlib import Path

from sync_project.sync.errors import NotEnoughDiskError
from sync_project.sync.setting_names import SYNC_DISK_RESERVE_BYTES, SYNC_DOWNLOAD_DIR, SYNC_DUCKDB_PATH


def check_free_space(folder: Path, needed: int, purpose: str, reserve: int = 0) -> None:
    """Refuse before downloading when the files (plus the space to leave free) would not fit."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + reserve:
        kept = f" and {reserve:,} bytes kept free ({SYNC_DISK_RESERVE_BYTES})" if reserve else ""
        raise NotEnoughDiskError(
            f"not enough disk to {purpose}: it needs about {needed:,} bytes in {folder} "
            f"(download, DuckDB growth and the files GET decrypts in TMPDIR at once){kept} but only {free:,} are "
            f"free. Free some space or point {SYNC_DOWNLOAD_DIR} / {SYNC_DUCKDB_PATH} / TMPDIR at a larger disk."
        )


def files_size(files: list[Path]) -> int:
    """Bytes on disk of downloaded files."""
    return sum(f.stat().st_size for f in files)
