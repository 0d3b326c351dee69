"""Internal stages of the local Snowflake: a folder per stage under the data folder, files encrypted.

fakesnow keeps stage files in a throw-away temporary folder and knows no
unload or GET, so the emulator keeps its own: named stages persist with the
data folder; temporary stages belong to the session that made them and go
when it logs out or the server restarts, as on Snowflake; each user has a
user stage `@~` that always exists and needs no privilege.

Files are stored as Snowflake stores them on an internal stage: client-side
encrypted with AES-256-CBC and PKCS5 padding under a random per-file key, that
key wrapped (AES-ECB) by the stage's master key (the scheme of the connector's
`encryption_util.py`). LIST therefore reports the stored, encrypted size and
MD5, and only a client that decrypts with the master key GET hands it gets the
file back.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from local_snowflake.sqltext import ObjectName, StageRef, is_user_stage, sql_error

MARKER = ".stage"
EXTERNAL_URL = ".stage-url"  # an external stage's URL (CREATE STAGE ... URL = '...'); internal stages have none
MASTER_KEY = ".stage-key"  # the stage master key (base64) and its id
META_SUFFIX = ".sfc-meta"  # per-file encryption metadata, as GCS keeps it in the object's metadata headers
_BLOCK = 16
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileKey:
    """What GET hands the connector to decrypt one file: the wrapped file key, its IV, the material descriptor."""

    wrapped_key: str
    iv: str
    matdesc: str
    sha256: str
    # The stored (encrypted) object's MD5, computed once as it is written, as cloud storage keeps an object's
    # ETag: LIST reads it rather than the file (a metadata lookup on Snowflake). Empty in metadata written
    # before it was kept; LIST then hashes the file.
    md5: str = ""


@dataclass(frozen=True)
class MasterKey:
    key: str  # base64 of 32 bytes
    smk_id: int


def encrypt_file(source: Path, target: Path, master: MasterKey, query_id: str) -> FileKey:
    """Encrypt `source` into `target` exactly as the connector's SnowflakeEncryptionUtil.encrypt_stream does."""
    file_key = secrets.token_bytes(32)
    iv = secrets.token_bytes(_BLOCK)
    encryptor = Cipher(algorithms.AES(file_key), modes.CBC(iv)).encryptor()
    padder = padding.PKCS7(_BLOCK * 8).padder()  # PKCS5 padding generalised to 16-byte blocks, as the connector pads
    digest, stored = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with source.open("rb") as src, target.open("wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            encrypted = encryptor.update(padder.update(chunk))
            stored.update(encrypted)
            out.write(encrypted)
        encrypted = encryptor.update(padder.finalize()) + encryptor.finalize()
        stored.update(encrypted)
        out.write(encrypted)
    wrapper = Cipher(algorithms.AES(base64.b64decode(master.key)), modes.ECB()).encryptor()  # noqa: S305 - Snowflake's key wrapping
    key_padder = padding.PKCS7(_BLOCK * 8).padder()
    wrapped = wrapper.update(key_padder.update(file_key) + key_padder.finalize()) + wrapper.finalize()
    matdesc = json.dumps({"queryId": query_id, "smkId": str(master.smk_id), "keySize": "256"}, separators=(",", ":"))
    return FileKey(
        base64.b64encode(wrapped).decode(),
        base64.b64encode(iv).decode(),
        matdesc,
        base64.b64encode(digest.digest()).decode(),
        stored.hexdigest(),
    )


def meta_of(stored: Path) -> Path:
    """Where a stored file's metadata (its key, digests) is kept."""
    return stored.with_name(stored.name + META_SUFFIX)


def _stored_md5(path: Path) -> str:
    """The MD5 kept in a stored file's metadata; hashed from the file when none was kept."""
    meta = meta_of(path)
    kept = str(json.loads(meta.read_text()).get("md5", "")) if meta.is_file() else ""
    if kept:
        return kept
    with path.open("rb") as stored:
        return hashlib.file_digest(stored, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def safe_component(name: str) -> str:
    """A folder name for any identifier ('_' for the empty one): [A-Za-z0-9-] kept, every other byte written
    as _HH, so it is injective and never '.', '..', '/', '%' or a space."""
    kept = (c if c.isascii() and (c.isalnum() or c == "-") else "".join(f"_{b:02X}" for b in c.encode()) for c in name)
    return "".join(kept) or "_"


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
        if is_user_stage(stage):
            return True  # every user has one, without CREATE STAGE
        return (self.folder(stage) / MARKER).is_file()

    def master_key(self, stage: ObjectName) -> MasterKey:
        """The stage's master key, made on first use (Snowflake keeps one per stage; GET hands it out per query)."""
        folder = self.folder(stage)
        path = folder / MASTER_KEY
        with self._lock:
            if not path.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                key = MasterKey(base64.b64encode(secrets.token_bytes(32)).decode(), secrets.randbelow(10**12) + 1)
                path.write_text(json.dumps({"key": key.key, "smk_id": key.smk_id}))
            saved = json.loads(path.read_text())
        return MasterKey(saved["key"], int(saved["smk_id"]))

    def store(self, stage: ObjectName, relative: str, plain: Path, query_id: str) -> int:
        """Encrypt a plain file into the stage at `relative` (replacing a file of that name); the stored size."""
        target = self.folder(stage) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        key = encrypt_file(plain, target, self.master_key(stage), query_id)
        meta_of(target).write_text(json.dumps(key.__dict__))
        return target.stat().st_size

    @staticmethod
    def stored_file(stage_folder: Path, relative: str) -> Path:
        """The stored (encrypted) object behind a stage file; FileNotFoundError for anything else."""
        folder = stage_folder.resolve()
        target = (folder / relative).resolve()
        if (
            folder not in target.parents
            or target.name.endswith(META_SUFFIX)
            or target.name in (MARKER, MASTER_KEY)
            or not target.is_file()
        ):
            raise FileNotFoundError(relative)
        return target

    def file_key_at(self, stage_folder: Path, relative: str) -> FileKey:
        target = self.stored_file(stage_folder, relative)
        return FileKey(**json.loads(meta_of(target).read_text()))

    def create(
        self,
        stage: ObjectName,
        *,
        session: str,
        temporary: bool,
        replace: bool,
        if_not_exists: bool,
        url: str | None = None,
    ) -> str:
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
            if url:
                (folder / EXTERNAL_URL).write_text(url)
            if temporary:
                self._temporary.setdefault(session, set()).add(stage)
            return f"Stage area {stage.name} successfully created."

    def url_of(self, stage: ObjectName) -> str | None:
        """An external stage's URL; None for an internal stage (the user stage included)."""
        if is_user_stage(stage):
            return None
        marker = self.folder(stage) / EXTERNAL_URL
        return marker.read_text() if marker.exists() else None

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
                url = (folder / EXTERNAL_URL).read_text() if (folder / EXTERNAL_URL).exists() else ""
                kind = "EXTERNAL" if url else "INTERNAL"
                kind += " TEMPORARY" if marker.read_text() == "temporary" else ""
                rows.append([created, stage.name, stage.database, stage.schema, url, kind])
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

    def renamed_session(self, old: str, new: str) -> None:
        """A renewed session token: its temporary stages go with it."""
        with self._lock:
            if old in self._temporary:
                self._temporary[new] = self._temporary.pop(old)

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
        return self.location_folder(ref.stage, ref.path)

    def location_folder(self, stage: ObjectName, path: str) -> Path:
        if not self.exists(stage):
            raise self.not_found(stage)
        folder = self.folder(stage).resolve()
        target = (folder / path).resolve() if path else folder
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
                if name in (MARKER, MASTER_KEY, EXTERNAL_URL) or name.endswith(META_SUFFIX):
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
        """LIST output: name, size and MD5 of the stored (encrypted) object, last_modified.

        Names carry the stage name lower-cased for a named stage, and only the path for the user stage.
        """
        rows: list[list[object]] = []
        folder = self.folder(ref.stage)
        for f in self.files(ref, pattern):
            digest = _stored_md5(folder / f.relative)
            modified = email.utils.format_datetime(dt.datetime.fromtimestamp(f.modified, dt.UTC), usegmt=True)
            rows.append([self.display_name(ref.stage, f.relative), f.size, digest, modified])
        return rows

    @staticmethod
    def display_name(stage: ObjectName, relative: str) -> str:
        return relative if is_user_stage(stage) else f"{stage.name.lower()}/{relative}"

    def remove(self, ref: StageRef, pattern: str | None) -> list[list[object]]:
        folder = self.folder(ref.stage)
        rows: list[list[object]] = []
        for f in self.files(ref, pattern):
            (folder / f.relative).unlink()
            meta_of(folder / f.relative).unlink(missing_ok=True)
            rows.append([self.display_name(ref.stage, f.relative), "removed"])
        return rows
