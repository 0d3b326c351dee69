"""A run of several tables writes its lines to Dagster together (run_log.py); a run of one, each as it comes."""

from __future__ import annotations

import threading

from sync_project.run_log import RunLog


def test_lines_said_together_become_one_message_in_their_order() -> None:
    written: list[str] = []
    with RunLog(written.append, every=3600) as log:  # no timer fires during the test: only flush writes
        log("T1: full sync")
        log("T2: full sync")
        assert written == []
        log.flush()
        log("T1: load took 0.05s")
    assert written == ["T1: full sync\nT2: full sync", "T1: load took 0.05s"]  # leaving wrote the rest


def test_a_line_is_written_within_the_interval_without_anyone_flushing() -> None:
    arrived = threading.Event()
    written: list[str] = []

    def write(message: str) -> None:
        written.append(message)
        arrived.set()

    log = RunLog(write, every=0.05)
    log("T1: unload took 2.00s")
    assert arrived.wait(timeout=30), "the timer never wrote the line"
    assert written == ["T1: unload took 2.00s"]
    log.flush()  # nothing left: no empty message
    assert written == ["T1: unload took 2.00s"]


def test_with_no_interval_each_line_is_written_as_it_comes() -> None:
    written: list[str] = []
    log = RunLog(written.append, every=0.0)  # a run of one table
    log("T1: full sync")
    assert written == ["T1: full sync"]
    log("T1: load took 0.05s")
    assert written == ["T1: full sync", "T1: load took 0.05s"]
