"""Shared fixtures: one local Snowflake per test session, in its own process, on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from sync_project.local_snowflake import LocalSnowflakeProcess
from sync_project.local_snowflake.faults import clear_faults

DEMO_ROWS = 5_000


@pytest.fixture(scope="session")
def local_snowflake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSnowflakeProcess]:
    root = tmp_path_factory.mktemp("local_snowflake")
    process = LocalSnowflakeProcess(data_dir=root / "data", demo_rows=DEMO_ROWS, log_file=root / "server.log")
    with process:
        yield process


@pytest.fixture
def snowflake_conn(local_snowflake: LocalSnowflakeProcess) -> Iterator[Any]:
    clear_faults(local_snowflake.base_url)
    conn = snowflake.connector.connect(**local_snowflake.connection_settings())
    try:
        yield conn
    finally:
        conn.close()
        clear_faults(local_snowflake.base_url)


@pytest.fixture
def download_dir(tmp_path: Path) -> Path:
    path = tmp_path / "download"
    path.mkdir()
    return path
