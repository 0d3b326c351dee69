"""One attempt at syncing one table: where its files live (a stage folder, a download folder), what it has
done so far (the manifest a retry resumes from), and the names and stamps the cleanup job recognises.

Nothing here talks to Snowflake or DuckDB: `stage.py` runs the statements, `load.py` reads the files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sync_project.sync.errors import PermanentError
from sync_project.sync.setting_names import SYNC_STAGE
from sync_project.sync.tables import TableRef

# Attempt folders the project creates (in the stage and locally) carry this prefix and a UTC timestamp,
# so a cleanup job can recognise leftovers and their age.
STAGE_PREFIX = "SYNC_PROJECT_"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST = "unload.json"
# Every attempt unloads below this folder of the stage, so the project's files never mix with anything else there.
STAGE_FOLDER = "sync_project/"
USER_STAGE = "~"  # the user stage: every user has one and needs no privilege for it


def validate_stage(stage: str) -> str:
    """`~` (the user stage) or a stage name as SQL writes it (`DB.SCHEMA.STAGE`, parts maybe double-quoted)."""
    stage = stage.strip().removeprefix("@")
    if stage == USER_STAGE:
        return stage
    if not stage or any(c in stage for c in "'/\\") or any(c.isspace() or not c.isprintable() for c in stage):
        raise PermanentError(
            f"{SYNC_STAGE}={stage!r} is not a stage name: give it as SQL names it (MYDB.SYNC.MIRROR_STAGE, parts in "
            'double quotes if they need them) without @, quotes or a path, or unset it to use the user stage "~"'
        )
    return stage


@dataclass(frozen=True)
class Attempt:
    """One sync of one table: its own folder in the stage and its own download folder.

    A retry of the same run (or a re-execution of it) gets the same attempt, so it can reuse what the
    failed try already unloaded and downloaded.
    """

    table: TableRef
    name: str  # SYNC_PROJECT_<stamp>_<token>
    stage: str  # "~" or a stage name as SQL writes it
    local_dir: Path

    @property
    def path(self) -> str:
        """The attempt's folder inside the stage, ending with '/'."""
        return f"{STAGE_FOLDER}{self.name}/"

    @property
    def location(self) -> str:
        """The stage location as a single-quoted SQL string, which any path characters need (Snowflake's docs)."""
        return f"'@{self.stage}/{self.path}'"

    @property
    def manifest(self) -> Path:
        """Where the attempt records its unload and the files it verified: what a retry resumes from."""
        return self.local_dir / MANIFEST

    @classmethod
    def new(
        cls,
        table: TableRef,
        download_root: Path,
        attempt_id: str | None = None,
        started: dt.datetime | None = None,
        stage: str = USER_STAGE,
    ) -> Attempt:
        stamp = (started or dt.datetime.now(dt.UTC)).strftime(STAMP_FORMAT)
        token = (
            hashlib.sha256(f"{attempt_id}\x00{table}".encode()).hexdigest()[:8] if attempt_id else secrets.token_hex(4)
        )
        name = f"{STAGE_PREFIX}{stamp}_{token}"
        return cls(
            table=table, name=name, stage=validate_stage(stage), local_dir=download_root / table.folder_name / name
        )


@dataclass(frozen=True)
class UnloadResult:
    query_id: str
    rows_unloaded: int
    input_bytes: int
    output_bytes: int


@dataclass(frozen=True)
class StagedFile:
    name: str  # file name without folders
    size: int  # as GET reported it: the decrypted file's size (never LIST's, which is the stored, encrypted size)


def save_manifest(
    attempt: Attempt, unload: UnloadResult, query: str, verified: list[StagedFile] | None = None, complete: bool = False
) -> None:
    """Remember a finished unload and the files GET has delivered and verified so far, so a retry can skip them."""
    attempt.local_dir.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Any] = {"query": query, **asdict(unload), "complete": complete}
    saved["files"] = [asdict(f) for f in verified or []]
    attempt.manifest.write_text(json.dumps(saved))


def _read_manifest(attempt: Attempt, query: str) -> dict[str, Any] | None:
    try:
        saved: dict[str, Any] = json.loads(attempt.manifest.read_text())
    except (OSError, ValueError):
        return None
    return saved if saved.pop("query", None) == query else None


def load_manifest(attempt: Attempt, query: str) -> UnloadResult | None:
    """The earlier unload of this attempt, if it was of the same query."""
    saved = _read_manifest(attempt, query)
    if saved is None:
        return None
    return UnloadResult(**{k: saved[k] for k in ("query_id", "rows_unloaded", "input_bytes", "output_bytes")})


def _intact(attempt: Attempt, saved: dict[str, Any]) -> dict[str, int]:
    """Files a manifest lists as verified (name -> the size GET reported) that are still here at that size."""
    files = [StagedFile(**f) for f in saved.get("files", [])]
    return {
        f.name: f.size
        for f in files
        if (attempt.local_dir / f.name).is_file() and (attempt.local_dir / f.name).stat().st_size == f.size
    }


def verified_files(attempt: Attempt, query: str) -> dict[str, int]:
    """Files an earlier try of the same query downloaded and verified that are still here intact."""
    return _intact(attempt, _read_manifest(attempt, query) or {})


def downloaded_files(attempt: Attempt, query: str) -> list[Path] | None:
    """Every file of this attempt's finished download of the same query, if an earlier try left them intact."""
    saved = _read_manifest(attempt, query)
    if saved is None or not saved.get("complete"):
        return None
    intact = _intact(attempt, saved)
    if len(intact) != len(saved["files"]):
        return None
    return [attempt.local_dir / name for name in sorted(intact)]


def remove_local_files(attempt: Attempt) -> None:
    shutil.rmtree(attempt.local_dir, ignore_errors=True)
    # Drop the per-table folder too once it is empty.
    with contextlib.suppress(OSError):
        attempt.local_dir.parent.rmdir()


def parse_stamp(name: str) -> dt.datetime | None:
    """When a stage or folder the project made was created (from its name), or None if it is not ours."""
    match = re.match(rf"{STAGE_PREFIX}(\d{{8}}T\d{{6}}Z)_", name, re.IGNORECASE)
    if not match:
        return None
    return dt.datetime.strptime(match.group(1).upper(), STAMP_FORMAT).replace(tzinfo=dt.UTC)
