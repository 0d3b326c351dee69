"""DuckDB extensions loaded from their Python packages, never downloaded.

DuckDB fetches an extension from extensions.duckdb.org the first time a statement needs it; a machine with
only a package index (CI, many company networks) cannot. The `duckdb-extension-<name>` wheels carry each
extension built for one DuckDB release, and `LOAD '<file>'` needs no network. An extension built for another
release does not load at all, so the wheels are pinned to the DuckDB the project pins.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

from sync_project.sync.errors import PermanentError
from sync_project.sync.tables import sql_string

PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",  # a lake whose data is in object storage (s3://)
}
DuckDBConfig = dict[str, str | bool | int | float | list[str]]
# Settings for every connection that may need one of them: a missing extension is an error, not a download.
OFFLINE: DuckDBConfig = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def extension_file(name: str) -> Path:
    """The extension's file for the running DuckDB, from its package."""
    package = PACKAGES[name]
    spec = importlib.util.find_spec(package)
    wheel = package.replace("_", "-")
    if spec is None or not spec.submodule_search_locations:
        raise PermanentError(
            f"the DuckDB extension {name} is not installed: `pip install {wheel}=={duckdb.__version__}` "
            "(`make venv` does)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}"
    file = folder / f"{name}.duckdb_extension"
    if not file.is_file():
        built = ", ".join(sorted(p.name for p in folder.parent.glob("v*"))) or "none"
        raise PermanentError(
            f"the installed {wheel} has no build for DuckDB {duckdb.__version__} (it has {built}); "
            f"install {wheel}=={duckdb.__version__}"
        )
    return file


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"LOAD {sql_string(str(extension_file(name)))}")
