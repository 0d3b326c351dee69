"""The reliability report (RELIABILITY.md beside this file): each fault and hostile case and its outcome.

Tests call `observe(...)` with text built from what they measured. Every `make test` checks that the
report says exactly that, so it cannot drift from the code; `SYNC_WRITE_RELIABILITY=1 make test`
rewrites it from the observations (then review the diff and commit it).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPORT = Path(__file__).with_name("RELIABILITY.md")
WRITE_REPORT = "SYNC_WRITE_RELIABILITY"
KINDS = ("Fault", "Hostile input", "Hardened account", "Secrets", "Exposure")
HEADER = "| Kind | Case | What happened | What was verified | Test |"

PREAMBLE = """# Reliability report

Every row is written from what a test in `sync_project_tests/` observed, and every `make test`
checks that each row still matches its test's observation (`sync_project_tests/reliability.py`).
To rewrite the report after a deliberate change: `SYNC_WRITE_RELIABILITY=1 make test`, then read
the diff. Row counts are those of the test data (the demo table "data" has 5,000 rows in tests).
The last column names the test that observed the row (`file::test`); `test_report.py` checks it exists.

"""


@dataclass(frozen=True)
class Case:
    kind: str
    case: str
    happened: str
    verified: str
    test: str = ""  # file::function of the test that observed it


_observed: dict[str, Case] = {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(cases: list[Case]) -> str:
    ordered = sorted(cases, key=lambda c: (KINDS.index(c.kind), c.case))
    rows = [f"| {c.kind} | {_cell(c.case)} | {_cell(c.happened)} | {_cell(c.verified)} | `{c.test}` |" for c in ordered]
    return PREAMBLE + "\n".join([HEADER, "|---|---|---|---|---|", *rows]) + "\n"


def read_report(path: Path = REPORT) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    if not path.exists():
        return cases
    for line in path.read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| Kind |"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        test = cells[4].strip("`") if len(cells) > 4 else ""
        case = Case(cells[0], cells[1], cells[2], cells[3], test)
        cases[case.case] = case
    return cases


@functools.cache
def _committed() -> dict[str, Case]:
    """The report as committed; read once per session (hypothesis calls `observe` once per example)."""
    return read_report()


def current_test() -> str:
    """`file::function` of the running test, from pytest's own note (parameters left off: one function)."""
    node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" (", 1)[0]
    path, _, name = node.partition("::")
    return f"{Path(path).name}::{name.split('[')[0]}"


def observe(kind: str, case: str, happened: str, verified: str) -> None:
    """Record what a test saw; unless rewriting the report, fail when the report says otherwise."""
    assert kind in KINDS, kind
    observed = Case(kind, case, happened, verified, current_test())
    assert all("\n" not in text for text in (case, happened, verified)), observed
    _observed[case] = observed
    if os.environ.get(WRITE_REPORT):
        return
    committed = _committed().get(case)
    assert committed == observed, (
        f"{REPORT.name} says {committed} but the test observed {observed}. If the new outcome is right, "
        f"rewrite the report with `{WRITE_REPORT}=1 make test` and commit it."
    )


def write_report() -> None:
    """Observed rows replace or join the committed ones; rows no test claims are caught by test_report."""
    if _observed:
        REPORT.write_text(render(list((read_report() | _observed).values())))
