"""The SELECT over a sync's downloaded Parquet files, each column cast to its mapped type: the rows' batch and
the keys' (deletes.py) are read the same way."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sync_project.sync.catalog import Column
from sync_project.sync.tables import quote_identifier, sql_string


def _casts(columns: Sequence[Column]) -> str:
    return ", ".join(
        f"{c.mapping.load_expression(quote_identifier(c.name))} AS {quote_identifier(c.name)}" for c in columns
    )


def files_source(columns: Sequence[Column], files: Sequence[Path]) -> str:
    """SELECT over the files, each column cast to its mapped type; with no file (0 rows unloaded means none), an
    empty result with the right schema."""
    if files:
        file_list = "[" + ", ".join(sql_string(f) for f in files) + "]"
        return f"SELECT {_casts(columns)} FROM read_parquet({file_list})"
    nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {quote_identifier(c.name)}" for c in columns)
    return f"SELECT {_casts(columns)} FROM (SELECT {nulls}) WHERE false"
