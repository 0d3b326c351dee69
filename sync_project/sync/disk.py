"""The local disk a sync writes to: is there room, and how much did the files take."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from sync_project.sync.attempt import UnloadResult
from sync_project.sync.errors import NotEnoughDiskError
from sync_project.sync.options import SyncOptions
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


def needed_space(options: SyncOptions, unload: UnloadResult, at_once: int | None = None) -> dict[Path, int]:
    """What a download of `unload` needs on each disk, by the first folder on it (`space_needed`); `at_once`:
    the most the download folder holds at a time, when files are loaded and deleted as they arrive."""
    download = options.download_root
    download.mkdir(parents=True, exist_ok=True)
    database = options.mirror.growth_folder()  # None: the lake's files are not on this machine
    if database is not None:
        database.mkdir(parents=True, exist_ok=True)
    return space_needed(
        download, database, Path(tempfile.gettempdir()), unload, options.get_parallel, options.max_file_size, at_once
    )


def space_needed(
    download: Path,
    database: Path | None,
    temp: Path,
    unload: UnloadResult,
    parallel: int,
    max_file_size: int,
    at_once: int | None = None,
) -> dict[Path, int]:
    """Bytes each disk needs, by the first folder on it: the download takes output_bytes; the DuckDB file grows
    by about the uncompressed size; and GET decrypts each file in the connector's temporary folder ($TMPDIR)
    before moving it into place, up to PARALLEL files at once. Folders on one disk add up."""
    held = unload.output_bytes if at_once is None else min(unload.output_bytes, at_once)
    needs = [(download, held), (temp, min(unload.output_bytes, parallel * max_file_size))]
    if database is not None:
        needs.append((database, unload.input_bytes))
    by_disk: dict[int, tuple[Path, int]] = {}
    for folder, needed in needs:
        first, total = by_disk.get(folder.stat().st_dev, (folder, 0))
        by_disk[folder.stat().st_dev] = (first, total + needed)
    return dict(by_disk.values())
