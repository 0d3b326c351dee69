"""The reliability report is complete, parses back, and claims nothing no test observes."""

from __future__ import annotations

from pathlib import Path

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
