"""DuckLake's extensions come from their packages, pinned to the project's DuckDB, and need no network."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sync_project.sync.errors import PermanentError
from sync_project.sync.extensions import OFFLINE, PACKAGES, extension_file, load_extension


def test_the_lake_extensions_load_from_their_packages_with_downloads_off(tmp_path: Path) -> None:
    con = duckdb.connect(config=OFFLINE)
    for name in PACKAGES:
        load_extension(con, name)
    loaded = {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert set(PACKAGES) <= loaded
    con.execute(f"ATTACH 'ducklake:sqlite:{tmp_path}/catalog.sqlite' AS lake (DATA_PATH '{tmp_path}/data/')")
    nines = "9" * 38  # the largest NUMBER(38,0): exact, not a double
    con.execute(f"CREATE TABLE lake.t AS SELECT '{nines}'::DECIMAL(38,0) AS n, '{{\"a\": 1}}'::JSON AS j")
    assert con.execute("SELECT n::VARCHAR, j::VARCHAR FROM lake.t").fetchall() == [(nines, '{"a": 1}')]


def test_an_extension_built_for_another_duckdb_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb, "__version__", "9.9.9")
    with pytest.raises(
        PermanentError,
        match=r"no build for DuckDB 9\.9\.9 \(it has v1\.5\.5\); install "
        r"duckdb-extension-ducklake==9\.9\.9",
    ):
        extension_file("ducklake")
