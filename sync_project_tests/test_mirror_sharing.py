"""Sessions of one run that follow each other closely share one opening of the DuckDB file (sharing.py): it
go in together, stays open LINGER_SECONDS after a write for the next one, closes at once after a read
(Snowflake work follows), after a failure, and when the run ends."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import filelock
import pytest

from sync_project.sync.mirror import sharing as sharing_module
from sync_project.sync.mirror.access import lock_path
from sync_project.sync.mirror.sharing import LINGER_SECONDS, file_session, sharing
from sync_project.sync.mirror.waiting import wanted_elsewhere


def project_lock_is_free(path: Path) -> bool:
    """Whether another holder could take the project's lock now (a lock of its own, as another process has)."""
    lock = filelock.FileLock(str(lock_path(path)), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    lock.release()
    return True


def free_within(path: Path, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if project_lock_is_free(path):
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def test_a_write_keeps_the_opening_for_a_while_and_a_read_that_opened_it_closes_it(tmp_path: Path) -> None:
    path = tmp_path / "mirror.duckdb"
    with sharing(path):
        with file_session(path, 5.0, "first load") as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS n")
        assert not project_lock_is_free(path)  # still open for the next load
        with file_session(path, 5.0, "second load") as con:
            con.execute("INSERT INTO t VALUES (2)")
        with file_session(path, 5.0, "its check", read_only=True) as con:
            assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)
        assert not project_lock_is_free(path)  # a read that found it open leaves it so
        assert free_within(path, 10 * LINGER_SECONDS) is not None  # closed once no session came
        with file_session(path, 5.0, "a state read", read_only=True) as con:  # opens it again
            assert con.execute("SELECT sum(n) FROM t").fetchone() == (3,)
        assert project_lock_is_free(path)  # a read is followed by Snowflake work: nothing stays open
        with file_session(path, 5.0, "third load") as con:
            con.execute("INSERT INTO t VALUES (3)")
    assert project_lock_is_free(path)  # the run's end closes it at once
    with duckdb.connect(str(path), read_only=True) as con:  # and what it wrote is in the file
        assert con.execute("SELECT sum(n) FROM t").fetchone() == (6,)


def test_sessions_of_a_run_go_in_together_on_one_instance(tmp_path: Path) -> None:
    """A second table's load goes in, and commits, while the first table's load is still in its transaction:
    one long load holds up no other load of the run. Both are on one instance (an instance-wide setting the
    first made is seen by the second: a file opened anew would have the default)."""
    path = tmp_path / "mirror.duckdb"
    seen: list[object] = []

    def second() -> None:
        with file_session(path, 5.0, "second load") as con:
            seen.append(con.execute("SELECT current_setting('checkpoint_threshold')").fetchone())
            con.execute("CREATE TABLE b AS SELECT 2 AS n")

    with sharing(path):
        with file_session(path, 5.0, "first load") as con:
            con.execute("SET GLOBAL checkpoint_threshold = '64MiB'")
            con.execute("BEGIN TRANSACTION")
            con.execute("CREATE TABLE a AS SELECT 1 AS n")
            other = threading.Thread(target=second)
            other.start()
            other.join(timeout=60)  # a bound for a second load that waits for the first: it must not
            assert not other.is_alive(), "the second load waited for the first one's session"
            assert seen == [("64.0 MiB",)]
            con.execute("COMMIT")
            assert con.execute("SELECT (SELECT n FROM a) + (SELECT n FROM b)").fetchone() == (3,)
        assert not project_lock_is_free(path)  # the last one out leaves it open for the next load
    assert project_lock_is_free(path)


def test_a_session_that_fails_beside_another_closes_the_opening_once_that_one_leaves(tmp_path: Path) -> None:
    """The failed session's error is its own; the other's load commits; the instance then closes at once, not
    after lingering, and the next session opens it afresh."""
    path = tmp_path / "mirror.duckdb"
    errors: list[BaseException] = []

    def failing() -> None:
        try:
            with file_session(path, 5.0, "failing") as con:
                con.execute("SELECT * FROM missing")
        except BaseException as e:
            errors.append(e)

    with sharing(path):
        with file_session(path, 5.0, "first load") as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("CREATE TABLE t AS SELECT 1 AS n")
            other = threading.Thread(target=failing)
            other.start()
            other.join(timeout=60)
            assert not other.is_alive()
            assert [type(e) for e in errors] == [duckdb.CatalogException]
            assert not project_lock_is_free(path)  # this session is still in
            con.execute("COMMIT")
        assert project_lock_is_free(path)  # closed as the last session left
        with file_session(path, 5.0, "next", read_only=True) as con:
            assert con.execute("SELECT n FROM t").fetchone() == (1,)


def test_a_failed_session_closes_the_opening_at_once_and_the_next_one_opens_it_again(tmp_path: Path) -> None:
    path = tmp_path / "mirror.duckdb"
    with sharing(path):
        with pytest.raises(duckdb.CatalogException), file_session(path, 5.0, "failing") as con:
            con.execute("SELECT * FROM missing")
        assert project_lock_is_free(path)
        with file_session(path, 5.0, "next") as con:
            assert con.execute("SELECT 42").fetchone() == (42,)


def test_outside_a_run_each_session_opens_and_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mirror.duckdb"
    with file_session(path, 5.0, "alone") as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS n")
    assert project_lock_is_free(path)


ANOTHER_PROCESS = """
import sys
from pathlib import Path
from sync_project.sync.mirror.sharing import file_session
with file_session(Path(sys.argv[1]), 60.0, "another process's sync") as con:
    con.execute("INSERT INTO t VALUES (10)")
print("loaded", flush=True)
"""


def test_a_sync_of_another_process_waiting_for_the_file_goes_after_the_load_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run keeps loading (its opening would linger for ten minutes here); another process's sync that
    waits for the file gets it once the run's current load ends, not when the run ends."""
    monkeypatch.setattr(sharing_module, "LINGER_SECONDS", 600.0)
    path = tmp_path / "mirror.duckdb"
    with sharing(path):
        with file_session(path, 5.0, "first load") as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS n")
        other = subprocess.Popen([sys.executable, "-c", ANOTHER_PROCESS, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60  # a bound for a process that never starts waiting
            while not list(tmp_path.glob("mirror.duckdb.lock.wanted-*")):
                assert time.monotonic() < deadline and other.poll() is None, "the other sync never waited"
                time.sleep(0.02)
            with file_session(path, 5.0, "second load") as con:
                con.execute("INSERT INTO t VALUES (2)")
            output, _ = other.communicate(timeout=60)  # still inside the run: it made way
        finally:
            other.kill()
        assert other.returncode == 0 and "loaded" in output
        with file_session(path, 5.0, "third load") as con:  # the run opens the file again after it
            con.execute("INSERT INTO t VALUES (3)")
    with duckdb.connect(str(path), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT n FROM t").fetchall()) == [1, 2, 3, 10]


def test_a_note_left_by_a_waiter_that_died_asks_for_nothing_and_goes(tmp_path: Path) -> None:
    path = tmp_path / "mirror.duckdb"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    note = tmp_path / f"mirror.duckdb.lock.wanted-{int(gone.stdout)}-1"
    note.touch()
    assert not wanted_elsewhere(path)
    assert not note.exists()  # removed before its PID can be another process's
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f"mirror.duckdb.lock.wanted-{alive.pid}-1").touch()
        assert wanted_elsewhere(path)
    finally:
        alive.kill()
        alive.wait()
