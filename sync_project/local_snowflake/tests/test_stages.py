"""The stage store without a server: what LIST says of a stored file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from local_snowflake.sqltext import USER_STAGE_DATABASE, USER_STAGE_SCHEMA, ObjectName, StageRef
from local_snowflake.stages import StageStore, meta_of

USER_STAGE = ObjectName(USER_STAGE_DATABASE, USER_STAGE_SCHEMA, "SYNC_USER")


def stored(store: StageStore, relative: str) -> Path:
    return store.folder(USER_STAGE) / relative


def test_list_gives_the_md5_of_the_stored_encrypted_object_kept_when_it_was_written(tmp_path: Path) -> None:
    store = StageStore(tmp_path / "stages")
    plain = tmp_path / "plain.parquet"
    plain.write_bytes(b"PAR1" + bytes(range(256)) * 4000 + b"PAR1")
    size = store.store(USER_STAGE, "run/data_0_0_0.snappy.parquet", plain, "query-1")
    [row] = store.list_rows(StageRef(USER_STAGE, "run/"), None)
    encrypted = stored(store, "run/data_0_0_0.snappy.parquet").read_bytes()
    assert row[:3] == ["run/data_0_0_0.snappy.parquet", size, hashlib.md5(encrypted).hexdigest()]  # noqa: S324
    assert encrypted != plain.read_bytes()  # the object's, not the plain file's
    # Kept with the file's key, not hashed again: what the metadata says is what LIST says.
    meta = meta_of(stored(store, "run/data_0_0_0.snappy.parquet"))
    kept = json.loads(meta.read_text())
    assert kept["md5"] == row[2]
    meta.write_text(json.dumps(kept | {"md5": "0" * 32}))
    assert store.list_rows(StageRef(USER_STAGE, "run/"), None)[0][2] == "0" * 32
    # Metadata written before the MD5 was kept: LIST hashes the stored object.
    meta.write_text(json.dumps({k: v for k, v in kept.items() if k != "md5"}))
    assert store.list_rows(StageRef(USER_STAGE, "run/"), None)[0][2] == row[2]
