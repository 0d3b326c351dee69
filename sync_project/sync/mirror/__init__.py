"""The mirror: where synced tables live, and the only way into it.

Two kinds, one interface. A DuckDB file (`FileMirror`) has one writer at a time, so every session goes through
the project's lock and readers are sent to a published copy; a DuckLake (`LakeMirror`) commits concurrent
writers with snapshot isolation and lets readers attach it read-only, so it needs neither. Everything that
differs between the two is answered here, once: the rest of the project asks the mirror and never which
kind it has.
"""

from __future__ import annotations

from pathlib import Path

from sync_project.sync.mirror.base import (
    Mirror,
    MirrorTable,
    NothingToDo,
    TableFacts,
    live_rows,
    mirror_table,
    table_columns,
)
from sync_project.sync.mirror.ducklake import LakeMirror
from sync_project.sync.mirror.file import FileMirror
from sync_project.sync.mirror.lake import Lake

__all__ = [
    "FileMirror",
    "LakeMirror",
    "Mirror",
    "MirrorTable",
    "NothingToDo",
    "TableFacts",
    "live_rows",
    "mirror_for",
    "mirror_table",
    "table_columns",
]


def mirror_for(duckdb_path: Path, published: Path, lock_timeout: float, lake: Lake | None) -> Mirror:
    """The mirror the settings name: the lake when SYNC_TARGET=ducklake, else the DuckDB file."""
    if lake is not None:
        return LakeMirror(lake, lock_timeout)
    return FileMirror(duckdb_path, published, lock_timeout)
