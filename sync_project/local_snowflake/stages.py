"""Internal stages of the local Snowflake: a folder per stage under the data folder.

fakesnow keeps stage files in a throw-away temporary folder and knows no
unload or GET, so the emulator keeps its own: named stages persist with the
data folder; temporary stages belong to the session that made them and go
when it logs out or the server restarts, as on Snowflake.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sync_project.local_snowflake.sqltext import ObjectName, StageRef, sql_error
from sync_project.sync.tables import safe_file_part

MARKER = ".stage"


def safe_component(name: str) -> str:
    """A folder name for any identifier ('_' for the empty one)."""
    return safe_file_part(name) or "_"


@dataclass(frozen=True)
class StageFile:
    relative: str  # path inside the stage, '/'-separated
    size: int
    modified: float

    @property
    def basename(self) -> str:
        return self.relative.rsplit("/", 1)[-1]


@dataclass
class StageStore:
    root: Path
    _temporary: dict[str, set[ObjectName]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Temporary stages die with their sessions, and no session survives a restart.
        for marker in self.root.glob(f"*/*/*/{MARKER}"):
            if marker.read_text() == "temporary":
                shutil.rmtree(marker.parent, ignore_errors=True)

    def folder(self, stage: ObjectName) -> Path:
        return self.root / safe_component(stage.database) / safe_component(stage.schema) / safe_component(stage.name)

    def exists(self, stage: ObjectName) -> bool:
        return (self.folder(stage) / MARKER).is_file()

    def create(self, stage: ObjectName, *, session: str, temporary: bool, replace: bool, if_not_exists: bool) -> str:
        with self._lock:
            folder = self.folder(stage)
            if self.exists(stage):
                if if_not_exists:
                    return f"{stage.name} already exists, statement succeeded."
                if not replace:
                    raise sql_error(f"SQL compilation error:\nObject '{stage.display()}' already exists.", errno=2002)
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            (folder / MARKER).write_text("temporary" if temporary else "named")
            if temporary:
                self._temporary.setdefault(session, set()).add(stage)
            return f"Stage area {stage.name} successfully created."

    def drop(self, stage: ObjectName, *, if_exists: bool) -> str:
        with self._lock:
            if not self.exists(stage):
                if if_exists:
                    return "Drop statement executed successfully (stage already dropped)."
                raise self.not_found(stage)
            shutil.rmtree(self.folder(stage))
            for stages in self._temporary.values():
                stages.discard(stage)
            return f"{stage.name} successfully dropped."

    def show_rows(self, scope: tuple[str, str] | None, like: str | None) -> list[list[object]]:
        """SHOW STAGES [LIKE] [IN SCHEMA db.schema]: every stage, or those of one schema."""
        rows: list[list[object]] = []
        with self._lock:
            known = {self.folder(s): s for stages in self._temporary.values() for s in stages}
            for marker in sorted(self.root.glob(f"*/*/*/{MARKER}")):
                folder = marker.parent
                stage = known.get(folder) or self._name_of(folder)
                if scope and (stage.database, stage.schema) != scope:
                    continue
                if like and not re.fullmatch(like.replace("%", ".*").replace("_", "."), stage.name, re.IGNORECASE):
                    continue
                created = dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.UTC).isoformat()
                kind = "INTERNAL TEMPORARY" if marker.read_text() == "temporary" else "INTERNAL"
                rows.append([created, stage.name, stage.database, stage.schema, kind])
        return rows

    @staticmethod
    def _name_of(folder: Path) -> ObjectName:
        def decode(part: str) -> str:
            return re.sub(
                r"(?:_[0-9A-F]{2})+",
                lambda m: bytes.fromhex(m.group(0).replace("_", "")).decode("utf-8", "replace"),
                part,
            )

        return ObjectName(decode(folder.parent.parent.name), decode(folder.parent.name), decode(folder.name))

    def end_session(self, session: str) -> None:
        for stage in self._temporary.pop(session, set()):
            shutil.rmtree(self.folder(stage), ignore_errors=True)

    @staticmethod
    def not_found(stage: ObjectName) -> Exception:
        return sql_error(
            f"SQL compilation error:\nStage '{stage.display()}' does not exist or not authorized.",
            errno=2003,
            sqlstate="02000",
        )

    def location(self, ref: StageRef) -> Path:
        """The folder or file-name prefix a stage reference points at, refusing paths that leave the stage."""
        if not self.exists(ref.stage):
            raise self.not_found(ref.stage)
        folder = self.folder(ref.stage).resolve()
        target = (folder / ref.path).resolve() if ref.path else folder
        if target != folder and folder not in target.parents:
            raise sql_error("SQL compilation error:\nstage path leaves the stage", errno=1003)
        return target

    def files(self, ref: StageRef, pattern: str | None = None) -> list[StageFile]:
        """Files under the reference's path prefix (Snowflake matches paths as prefixes), sorted."""
        folder = self.folder(ref.stage)
        self.location(ref)
        regex = re.compile(pattern) if pattern else None
        found: list[StageFile] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".unload-")]
            for name in filenames:
                if name == MARKER:
                    continue
                full = Path(dirpath) / name
                relative = full.relative_to(folder).as_posix()
                if not relative.startswith(ref.path):
                    continue
                if regex and not regex.fullmatch(relative):
                    continue
                stat = full.stat()
                found.append(StageFile(relative, stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda f: f.relative)

    def list_rows(self, ref: StageRef, pattern: str | None) -> list[list[object]]:
        """LIST output: name (stage name lower-cased + path), size, md5, last_modified."""
        rows: list[list[object]] = []
        folder = self.folder(ref.stage)
        for f in self.files(ref, pattern):
            digest = hashlib.md5((folder / f.relative).read_bytes(), usedforsecurity=False).hexdigest()
            modified = email.utils.format_datetime(dt.datetime.fromtimestamp(f.modified, dt.UTC), usegmt=True)
            rows.append([f"{ref.stage.name.lower()}/{f.relative}", f.size, digest, modified])
        return rows

    def remove(self, ref: StageRef, pattern: str | None) -> list[list[object]]:
        folder = self.folder(ref.stage)
        rows: list[list[object]] = []
        for f in self.files(ref, pattern):
            (folder / f.relative).unlink()
            rows.append([f"{ref.stage.name.lower()}/{f.relative}", "removed"])
        return rows
