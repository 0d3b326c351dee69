"""Readers and syncs never block each other: the published copy, its snapshots, and honest waiting."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import snowflake.connector
from click.testing import CliRunner

from sync_project.cli import main
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess
from sync_project.jobs import PUBLISH_JOB, SYNC_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.publishing import PUBLISH_SENSOR, plan_publish
from sync_project.resources import build_resources
from sync_project.settings import Settings, project_root
from sync_project.sync.errors import LockTimeoutError
from sync_project.sync.mirror.access import duckdb_session, lock_path
from sync_project.sync.mirror.publish import current_snapshot, publish, remove_old_snapshots, snapshot_folder
from sync_project.sync.pipeline import sync_table
from sync_project.sync.report import WAIT_PHASE
from sync_project.sync.tables import TableRef
from sync_project_tests.daemon import DagsterProcesses
from sync_project_tests.helpers import (
    FQ,
    comparable,
    connector,
    demo_table,
    fetch,
    options,
    run_job,
    snowflake_settings,
)

VERSION = "v1.0.0"


def publish_now(tmp_path: Path) -> Any:
    return publish(tmp_path / "sync.duckdb", tmp_path / "mirror.duckdb", storage_version=VERSION, lock_timeout=30)


def spawn(code: str) -> subprocess.Popen[str]:
    """Another process, as an analyst's tool would be; it prints 'ready' once it holds what it holds."""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


@pytest.fixture
def big_table(local_snowflake: LocalSnowflakeProcess) -> Iterator[TableRef]:
    """A 1,000,000-row table of its own (each test may grow it)."""
    name = f"BIG_{uuid.uuid4().hex[:6].upper()}"
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(
            conn,
            f"CREATE TABLE {FQ}.{name} (ID NUMBER(38,0), AMOUNT NUMBER(12,2), LABEL VARCHAR(20), AT TIMESTAMP_NTZ(9))",
        )
        fetch(
            conn,
            f"INSERT INTO {FQ}.{name} SELECT SEQ8(), SEQ8() / 100, 'row ' || (SEQ8() % 1000), "
            "DATEADD(second, SEQ8(), '2024-01-01'::TIMESTAMP_NTZ) FROM TABLE(GENERATOR(ROWCOUNT => 1000000))",
        )
    yield demo_table(name)
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        fetch(conn, f"DROP TABLE IF EXISTS {FQ}.{name}")


READER = """
import duckdb, json, sys, time
path, relation, stop = sys.argv[1], sys.argv[2], sys.argv[3]
import os
counts, errors = {}, []
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        with duckdb.connect(path, read_only=True) as con:
            n = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
            counts[n] = counts.get(n, 0) + 1
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}"[:300])
print(json.dumps({"counts": counts, "errors": errors}), flush=True)
"""

DBEAVER = """
import duckdb, sys, time
# As DBeaver does: a read-write connection, kept open, that writes something (so a WAL exists).
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE my_scratch AS SELECT 42 AS answer")
print("ready", flush=True)
sys.stdin.readline()
print(con.execute("SELECT answer FROM my_scratch").fetchone()[0], flush=True)
"""


# Loaded as its files arrive (feed.py) from the first byte, in files of 2 MiB: a few groups per sync.
FED: dict[str, Any] = {"feed_from_bytes": 0, "max_file_size": 2 * 2**20}


@pytest.mark.parametrize("fed", [False, True], ids=["downloaded-first", "fed"])
def test_readers_and_syncs_never_block_each_other(
    local_snowflake: LocalSnowflakeProcess, big_table: TableRef, tmp_path: Path, fed: bool
) -> None:
    opts = options(tmp_path, lock_timeout=60, **(FED if fed else {}))
    published = tmp_path / "mirror.duckdb"
    sync_table(connector(local_snowflake), big_table, opts)
    first = publish_now(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", DBEAVER, str(published)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    assert Path(str(first.snapshot) + ".wal").exists()  # the holder's write sits in its snapshot's WAL
    publish_now(tmp_path)  # the next publish: new readers move to a new snapshot, the holder stays put
    stop = tmp_path / "stop-reading"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(published), big_table.duckdb_sql, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    synced_counts = {1_000_000}
    reports: list[Any] = []
    sync_failures: list[str] = []
    publish_failures: list[str] = []
    publishes = 0
    with snowflake.connector.connect(**snowflake_settings(local_snowflake)) as conn:
        for i in range(20):
            # Each sync holds a different count, so a reader's count names the sync it saw, whole.
            fetch(conn, f"INSERT INTO {big_table.snowflake_sql} VALUES ({2_000_000 + i}, 1, 'new', '2030-01-01')")
            try:
                reports.append(sync_table(connector(local_snowflake), big_table, opts))
                synced_counts.add(reports[-1].rows_total)
            except Exception as e:
                sync_failures.append(repr(e))
            if i % 4 == 3:
                try:
                    publish_now(tmp_path)
                    publishes += 1
                except Exception as e:
                    publish_failures.append(repr(e))
    stop.touch()
    seen = json.loads(reader.communicate(timeout=60)[0].strip().splitlines()[-1])
    assert sync_failures == [] and publish_failures == [] and publishes == 5
    # Fed, the download folder never held a whole table (its peak is counted then); downloaded first, it did.
    assert all((r.download_peak_bytes is not None) == fed for r in reports)
    assert all((r.download_peak_bytes or 0) < r.bytes_downloaded for r in reports)
    assert seen["errors"] == []
    counts = {int(n): times for n, times in seen["counts"].items()}
    assert sum(counts.values()) > 20 and set(counts) <= synced_counts  # every query saw one complete sync
    assert len(counts) > 1  # and new readers did move on to newer snapshots
    # The holder's snapshot is kept while it is open, however many publishes pass.
    assert first.snapshot.exists()
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.communicate(timeout=30)[0].strip() == "42"  # its own work was never disturbed
    # Publishes keep a just-replaced snapshot for a minute (a reader may be half way into opening it); past
    # that, what no process holds goes, the holder's snapshot and its WAL too.
    last = publish_now(tmp_path)
    assert first.snapshot.exists()
    removed, still_open = remove_old_snapshots(published, grace_seconds=0)
    assert first.snapshot.parent.name in removed and not first.snapshot.exists() and still_open == []
    # No WAL, no leftover folder: the last snapshot's folder alone, holding its file alone.
    assert [p.name for p in snapshot_folder(published).iterdir()] == [last.snapshot.parent.name]
    assert list(last.snapshot.parent.iterdir()) == [last.snapshot]
    assert current_snapshot(published) == last.snapshot.resolve()


def test_an_old_duckdb_reads_every_type_of_the_published_copy(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    old = project_root() / ".local" / "duckdb-1.0.0"
    if not (old / "duckdb").exists():
        # A throwaway install of DuckDB 1.0.0 (June 2024), the oldest that reads storage version v1.0.0.
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--target", str(old), "duckdb==1.0.0"],
            check=True,
        )  # fmt: skip
    tables = [demo_table("ALL_TYPES"), demo_table("SEMI_STRUCTURED")]
    for table in tables:
        sync_table(connector(local_snowflake), table, options(tmp_path))
    publish_now(tmp_path)
    code = (
        "import duckdb, pickle, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "con.execute(\"SET TimeZone = 'UTC'\")\n"
        "out = {'version': duckdb.__version__}\n"
        "for relation in sys.argv[2:]:\n"
        "    described = con.execute(f'DESCRIBE {relation}').fetchall()\n"
        "    out[relation] = (described, con.execute(f'SELECT * FROM {relation} ORDER BY ID').fetchall())\n"
        "sys.stdout.buffer.write(pickle.dumps(out))\n"
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "mirror.duckdb"), *[t.duckdb_sql for t in tables]],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(old)},
        capture_output=True,
        check=True,
    )
    seen = pickle.loads(done.stdout)  # noqa: S301 - our own subprocess
    assert seen["version"] == "1.0.0"
    with duckdb.connect(str(tmp_path / "sync.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for table in tables:
            described, rows = seen[table.duckdb_sql]
            assert [r[:2] for r in described] == [r[:2] for r in con.execute(f"DESCRIBE {table.duckdb_sql}").fetchall()]
            expected = con.execute(f"SELECT * FROM {table.duckdb_sql} ORDER BY ID").fetchall()
            assert len(rows) == len(expected) >= 1000
            assert [tuple(map(comparable, r)) for r in rows] == [tuple(map(comparable, r)) for r in expected]


def test_the_published_copys_catalog_keeps_its_name_across_publishes(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    """An analyst's saved query that names the catalog (`mirror.SCHEMA.TABLE`) works after every publish: DuckDB
    names the catalog by the resolved file name, and each snapshot keeps the published file's name. The DuckDB
    CLI the README points analysts to is in the virtualenv."""
    table = demo_table("ALL_TYPES")
    rows = sync_table(connector(local_snowflake), table, options(tmp_path)).rows_total
    published = tmp_path / "mirror.duckdb"
    query = f"SELECT count(*) FROM mirror.{table.duckdb_relation}"
    seen = []
    for _ in range(2):
        snapshot = publish_now(tmp_path).snapshot
        with duckdb.connect(str(published), read_only=True) as con:
            seen.append((snapshot, con.execute("SELECT current_database()").fetchone(), con.execute(query).fetchone()))
    (first, *_), (second, *_) = seen
    assert first != second and first.exists() and second.exists()  # two snapshots, so a reader moved on
    assert rows > 0 and [(name, count) for _, name, count in seen] == [(("mirror",), (rows,))] * 2
    # The README's way in, the DuckDB CLI from the virtualenv, read-only, sees the same under the same name.
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "duckdb"), "-readonly", "-csv", "-noheader", str(published), "-c", query],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0 and cli.stdout.strip() == str(rows), cli.stdout + cli.stderr


def test_waiting_for_a_read_only_holder_says_so_and_is_not_the_load(
    local_snowflake: LocalSnowflakeProcess, tmp_path: Path
) -> None:
    table = demo_table("ALL_TYPES")
    sync_table(connector(local_snowflake), table, options(tmp_path))
    # A notebook left open read-only on the working file, for 3 s.
    notebook = spawn(
        f"import duckdb, time; c = duckdb.connect({str(tmp_path / 'sync.duckdb')!r}, read_only=True); "
        "print('ready', flush=True); time.sleep(3)"
    )
    lines: list[str] = []
    report = sync_table(connector(local_snowflake), table, options(tmp_path, lock_timeout=30), log=lines.append)
    notebook.wait()
    waits = [line for line in lines if "waiting for" in line]
    assert waits and f"process {notebook.pid} (" in waits[0] and "read-only" in waits[0]
    assert "giving up at" in waits[0] and "will be retried" not in " ".join(lines)
    assert report.phase_seconds[WAIT_PHASE] >= 1.0 and report.phase_seconds["load"] < report.phase_seconds[WAIT_PHASE]
    working = report.total_seconds - report.phase_seconds[WAIT_PHASE]
    assert report.rows_per_second == round(report.rows_loaded / working, 1)


@pytest.mark.parametrize("holder_reads_only", [True, False])
def test_lock_messages_name_the_holder_and_its_access(tmp_path: Path, holder_reads_only: bool) -> None:
    path = tmp_path / "sync.duckdb"
    duckdb.connect(str(path)).close()
    holder = spawn(
        f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only={holder_reads_only}); "
        "print('ready', flush=True); time.sleep(30)"
    )
    try:
        with pytest.raises(LockTimeoutError) as error, duckdb_session(path, 1, "loading X.Y"):
            pass
    finally:
        holder.kill()
        holder.wait()
    message = str(error.value)
    assert f"process {holder.pid} (" in message and "SYNC_LOCK_TIMEOUT_SECONDS" in message
    if holder_reads_only:
        assert "read-only" in message and "published copy" in message and "read-write" not in message
    else:
        assert "read-write" in message and "read-only" not in message
    assert "will be retried" not in message


def test_a_project_process_holding_the_lock_is_named_with_what_it_does(tmp_path: Path) -> None:
    path = tmp_path / "sync.duckdb"
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom sync_project.sync.mirror.access import writer_lock\n"
        f"with writer_lock(Path({str(path)!r}), 5, 'loading KEBOOLA_33.S.BIG'):\n"
        "    print('ready', flush=True)\n    time.sleep(30)\n"
    )
    holder = spawn(code)
    lines: list[str] = []
    try:
        with pytest.raises(LockTimeoutError), duckdb_session(path, 1, "reading S.OTHER", log=lines.append):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert lines and f"held by process {holder.pid}" in lines[0] and "loading KEBOOLA_33.S.BIG" in lines[0]
    # The holder was killed: the lock is free again, and its stale note names no one.
    with duckdb_session(path, 1, "reading S.OTHER"):
        assert lock_path(path).exists()


def test_status_and_sample_read_the_published_copy_while_a_sync_holds_the_working_file(
    dagster_processes: DagsterProcesses, local_snowflake: LocalSnowflakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = dagster_processes.home.parent
    key = "WORKSPACE_833213390.ALL_TYPES"
    dg.DagsterInstance.get().add_dynamic_partitions(SNOWFLAKE_TABLES, [key])
    settings = Settings.from_env()
    assert run_job(settings, dg.DagsterInstance.get(), SYNC_JOB, key).success
    publish_now(home)
    code = (
        "import time\nfrom pathlib import Path\nfrom sync_project.sync.mirror.access import writer_lock\n"
        f"with writer_lock(Path({str(home / 'sync.duckdb')!r}), 5, 'loading a big table'):\n"
        "    print('ready', flush=True)\n    time.sleep(60)\n"
    )
    holder = spawn(code)
    try:
        status = CliRunner().invoke(main, ["status", key, "--json", "--wait", "30"], catch_exceptions=False)
        sample = CliRunner().invoke(
            main,
            ["sample", key, "--first", "3", "--wait", "30", "--output", str(home / "sample.json")],
            catch_exceptions=False,
        )
    finally:
        holder.kill()
        holder.wait()
    assert status.exit_code == 0 and sample.exit_code == 0
    (report,) = json.loads(status.stdout)
    assert "published copy" in report["duckdb"]["read_from"] and report["duckdb"]["rows"] == 1000
    assert len((home / "sample.json").read_text().splitlines()) == 3 and "published copy" in sample.stderr
    # Neither waited for the sync: the holder keeps the working file for 60 s, past both commands' 30 s wait.
    assert "waiting for" not in status.stderr + sample.stderr
    free = CliRunner().invoke(main, ["status", key, "--json"], catch_exceptions=False)
    assert "working file" in json.loads(free.stdout)[0]["duckdb"]["read_from"]


def test_the_publish_job_says_what_it_holds(settings: Settings, local_snowflake: LocalSnowflakeProcess) -> None:
    keys = ["WORKSPACE_833213390.ALL_TYPES", "WORKSPACE_833213390.data"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, keys)
        for key in keys:
            assert run_job(settings, instance, SYNC_JOB, key).success
        result = build_definitions(settings).resolve_job_def(PUBLISH_JOB).execute_in_process(instance=instance)
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    metadata = output.step_output_data.metadata
    table = metadata["tables"]
    assert isinstance(table, dg.TableMetadataValue)
    held = {r.data["relation"]: r.data for r in table.records}
    assert held['"WORKSPACE_833213390"."data"']["rows"] == 5000 and held['"WORKSPACE_833213390"."data"']["synced_at"]
    assert metadata["bytes"].value == os.path.getsize(current_snapshot(settings.mirror_path) or "")
    assert metadata["storage_version"].value == VERSION
    with duckdb.connect(str(settings.mirror_path), read_only=True) as con:
        tag = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal").fetchone()
        assert tag == ("v1.0.0+",)
        assert con.execute('SELECT count(*) FROM "WORKSPACE_833213390"."data"').fetchone() == (5000,)


@pytest.mark.parametrize(
    ("latest", "through", "in_flight", "last", "now", "publish", "reason"),
    [
        (None, 0, 0, 0.0, 1000.0, False, "no sync since"),
        (7, 7, 0, 0.0, 1000.0, False, "no sync since"),
        (8, 7, 0, 990.0, 1000.0, True, "finished"),
        (8, 7, 3, 990.0, 1000.0, False, "publishing when they finish"),
        (8, 7, 3, 600.0, 1000.0, True, "5 minutes have passed"),
        (8, 7, 3, None, 1000.0, False, "or in 300s"),  # a burst first seen now: the minutes start now
        (8, 7, 0, None, 1000.0, True, "finished"),
    ],
)
def test_publishes_are_coalesced(
    latest: int | None, through: int, in_flight: int, last: float | None, now: float, publish: bool, reason: str
) -> None:
    decision = plan_publish(latest, through, in_flight, last, now, 5)
    assert decision.publish is publish and reason in decision.reason
    assert decision.run_key == (f"publish-through-{latest}" if publish else "")


def test_the_sensor_asks_for_one_publish_after_syncs(
    settings: Settings, local_snowflake: LocalSnowflakeProcess
) -> None:
    key = "WORKSPACE_833213390.ALL_TYPES"
    definitions = build_definitions(settings)
    sensor = definitions.get_sensor_def(PUBLISH_SENSOR)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [key])
        resources = build_resources(settings)  # the sensor reads the target from the duckdb resource
        nothing = sensor(dg.build_sensor_context(instance=instance, definitions=definitions, resources=resources))
        assert isinstance(nothing, dg.SkipReason) and "no sync" in str(nothing.skip_message)
        assert run_job(settings, instance, SYNC_JOB, key).success
        # Another sync still going at the sensor's first sight of it: no publish yet; the minutes start now.
        going = instance.run_storage.add_run(dg.DagsterRun(job_name=SYNC_JOB, status=dg.DagsterRunStatus.STARTED))
        waiting = sensor(dg.build_sensor_context(instance=instance, definitions=definitions, resources=resources))
        assert isinstance(waiting, dg.SensorResult) and not waiting.run_requests
        assert "still going" in str(waiting.skip_reason) and "at" in json.loads(waiting.cursor or "{}")
        instance.delete_run(going.run_id)
        result = sensor(dg.build_sensor_context(instance=instance, definitions=definitions, resources=resources))
        assert isinstance(result, dg.SensorResult) and len(result.run_requests or []) == 1
        again = sensor(
            dg.build_sensor_context(
                instance=instance, cursor=result.cursor, definitions=definitions, resources=resources
            )
        )
        assert isinstance(again, dg.SkipReason)


def test_a_working_file_in_another_storage_version_is_rewritten_once(tmp_path: Path) -> None:
    working = tmp_path / "sync.duckdb"
    with duckdb.connect(str(working), config={"storage_compatibility_version": "v1.5.0"}) as con:  # not v1.0.0
        con.execute("CREATE SCHEMA s; CREATE TABLE s.t AS SELECT range AS i FROM range(1000)")
    first = publish_now(tmp_path)
    second = publish_now(tmp_path)
    assert first.rewrote_working_file and not second.rewrote_working_file
    with duckdb.connect(str(working), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM s.t").fetchone() == (1000,)
        assert con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal").fetchone() == (
            "v1.0.0+",
        )
    assert [t.relation for t in second.tables] == ['"s"."t"']
