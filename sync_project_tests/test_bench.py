"""The benchmark's own plumbing: figures read from its subprocesses survive whatever else they print."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb

from sync_project.demo_tables import DEMO_DATABASE, DEMO_SCHEMA
from sync_project.embedded_snowflake import emulator_python
from sync_project_tests.bench.sync_bench import measure_floor

# A query that takes DuckDB a few seconds (past the 2 s after which it draws its progress bar) and returns
# a few thousand rows: the floor's unload of it is slow enough to draw one, and cheap to write.
SLOW = "SELECT i AS id FROM range(700000000) t(i) WHERE hash(i) % 100000 = 0"


def test_the_floor_reads_its_figures_past_duckdbs_progress_bar(tmp_path: Path) -> None:
    snowflake = tmp_path / "snowflake"
    (snowflake / "databases").mkdir(parents=True)
    make = (
        "import sys, duckdb\n"
        "con = duckdb.connect(sys.argv[1])\n"
        f"con.execute('CREATE SCHEMA \"{DEMO_SCHEMA}\"')\n"
        f'con.execute(\'CREATE VIEW "{DEMO_SCHEMA}"."data" AS {SLOW}\')\n'
        'print(con.execute(\'SELECT count(*) FROM "{DEMO_SCHEMA}"."data"\').fetchone()[0])\n'
    )
    made = subprocess.run(
        [str(emulator_python()), "-c", make.replace("{DEMO_SCHEMA}", DEMO_SCHEMA),
         str(snowflake / "databases" / f"{DEMO_DATABASE}.db")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "%" in made.stdout, "the query was too quick for DuckDB's progress bar: make SLOW slower"
    floor = measure_floor(snowflake, tmp_path / "work")
    assert set(floor) == {"unload", "copy", "load", "total"} and floor["unload"] > 0
    assert abs(floor["total"] - (floor["unload"] + floor["copy"] + floor["load"])) < 0.01
    with duckdb.connect(str(tmp_path / "work" / "floor.duckdb"), read_only=True) as con:  # the floor built it all
        assert con.execute("SELECT count(*) FROM data").fetchone() == (int(made.stdout.split()[-1]),)
