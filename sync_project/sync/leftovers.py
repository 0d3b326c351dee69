"""Leftovers: attempt folders a killed sync left in the stage and on disk, removed once they are old enough
that no live sync can own them."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_project.sync.attempt import STAGE_FOLDER, STAGE_PREFIX, parse_stamp, validate_stage
from sync_project.sync.stage import execute


@dataclass(frozen=True)
class Leftovers:
    stage_folders: list[str]  # attempt folders removed from the stage
    folders: list[Path]  # local download folders removed


_ATTEMPT_IN_NAME = re.compile(rf"(?:^|/){re.escape(STAGE_FOLDER)}({STAGE_PREFIX}[^/]+)/", re.IGNORECASE)


def remove_leftovers(
    conn: Any, stage: str, download_root: Path, older_than: dt.timedelta, now: dt.datetime
) -> Leftovers:
    """Remove attempt folders (in the stage and locally) this project made longer ago than `older_than`.

    A live sync's folders are younger than that, so they are left alone; nothing outside the project's
    `sync_project/` folder of the stage is touched.
    """
    cutoff = now - older_than
    stage = validate_stage(stage)
    location = f"'@{stage}/{STAGE_FOLDER}'"
    cur = execute(conn, f"LIST {location}", f"listing {location}")
    attempts = sorted({m.group(1) for r in cur.fetchall() if (m := _ATTEMPT_IN_NAME.search(str(r[0])))})
    removed_stage: list[str] = []
    for name in attempts:
        stamp = parse_stamp(name)
        if stamp is not None and stamp < cutoff:
            target = f"'@{stage}/{STAGE_FOLDER}{name}/'"
            execute(conn, f"REMOVE {target}", f"removing {target}")
            removed_stage.append(f"@{stage}/{STAGE_FOLDER}{name}/")
    removed: list[Path] = []
    for folder in sorted(download_root.glob(f"*/{STAGE_PREFIX}*")) if download_root.exists() else []:
        stamp = parse_stamp(folder.name)
        if folder.is_dir() and stamp is not None and stamp < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return Leftovers(removed_stage, removed)
