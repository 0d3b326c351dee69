"""The first hour, as a new user meets it: commands that say what to do, samples that are fair and exact,
a demo that refuses to start twice and stops when told."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner, Result

from sync_project.cli import main
from sync_project.definitions import build_definitions
from sync_project.embedded_snowflake import LocalSnowflakeProcess, free_port
from sync_project.jobs import VERIFY_JOB
from sync_project.partitions import SNOWFLAKE_TABLES
from sync_project.settings import Settings, project_root
from sync_project.status import RunSummary, TableStatus
from sync_project.sync.mirror import MirrorTable, TableFacts
from sync_project.sync.pipeline import sync_table
from sync_project.sync.sample import write_sample
from sync_project.sync.state import SyncState
from sync_project.sync.tables import TableRef
from sync_project.sync_record import LastSync, SyncRecord
from sync_project_tests.conftest import DEMO_ROWS
from sync_project_tests.daemon import BIN, DagsterProcesses
from sync_project_tests.helpers import connector, demo_table, options

SCHEMA = "WORKSPACE_833213390"
DATA = f"{SCHEMA}.data"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def register_and_sync(key: str) -> None:
    assert cli("register", key).exit_code == 0
    job = build_definitions(Settings.from_env()).resolve_job_def("sync_tables")
    assert job.execute_in_process(tags={"dagster/partition": key}, instance=dg.DagsterInstance.get()).success


@pytest.fixture
def env(dagster_processes: DagsterProcesses) -> Path:
    return dagster_processes.home.parent


def test_random_rows_are_uniform_over_the_table(local_snowflake: LocalSnowflakeProcess, tmp_path: Path) -> None:
    table = demo_table("data")
    sync_table(connector(local_snowflake), table, options(tmp_path))
    ids: list[int] = []
    for seed in range(150):  # DuckDB's reservoir sample gave only ids from the first fifth for N = 3
        out = io.BytesIO()
        write_sample(options(tmp_path).mirror, table, out, rows=3, mode="random", seed=seed)
        ids += [json.loads(line)["id"] for line in out.getvalue().decode().splitlines()]
    tenths = Counter(min(int(i) * 10 // DEMO_ROWS, 9) for i in ids)
    assert len(ids) == 450 and all(20 <= tenths[t] <= 80 for t in range(10)), tenths  # about 45 each
    again = io.BytesIO()
    write_sample(options(tmp_path).mirror, table, again, rows=3, mode="random", seed=7)
    other = io.BytesIO()
    write_sample(options(tmp_path).mirror, table, other, rows=3, mode="random", seed=7)
    assert again.getvalue() == other.getvalue()  # a seed draws the same rows


def test_sample_goes_through_stdout_so_appends_and_pipes_keep_everything(env: Path) -> None:
    register_and_sync(DATA)
    target = env / "out.txt"
    target.write_text("kept\n")
    script = f"(echo header; {BIN / 'sync-project'} sample {DATA} --first 2; echo footer) >> {target}"
    subprocess.run(["bash", "-c", script], env=os.environ, check=True, capture_output=True)
    lines = target.read_text().splitlines()
    assert lines[0] == "kept" and lines[1] == "header" and lines[-1] == "footer" and len(lines) == 5
    first = json.loads(lines[2])
    assert first["id"] == 0
    assert '"amount":0.00' in lines[2]  # NUMBER(12,2) keeps its scale; DuckDB's JSON writer printed 0.0


def test_unknown_tables_exit_1_with_the_closest_key(env: Path) -> None:
    assert cli("register", DATA).exit_code == 0
    for args in (["status", f"{SCHEMA}.DATA"], ["sample", f"{SCHEMA}.DATA"], ["rebuild", f"{SCHEMA}.DATA"]):
        result = cli(*args)
        assert result.exit_code == 1 and f"did you mean {DATA}?" in result.output, (args, result.output)
    gone = cli("deregister", f"{SCHEMA}.NO_SUCH", "--drop")
    assert gone.exit_code == 1 and "is not registered" in gone.output
    schema = cli("tables", SCHEMA.lower())
    assert schema.exit_code == 1 and f"did you mean {SCHEMA}?" in schema.output
    nothing = cli("tables", SCHEMA, "--like", "ZZZ%")
    assert nothing.exit_code == 0 and "no table of" in nothing.stderr and "matches LIKE 'ZZZ%'" in nothing.stderr


def test_register_names_every_refusal_and_every_option_change(env: Path) -> None:
    both = cli("register", f"{SCHEMA}.NOPE_ONE", f"{SCHEMA}.ACTIVE_CUSTOMERS")
    assert both.exit_code == 1 and "NOPE_ONE" in both.output and "ACTIVE_CUSTOMERS is a view" in both.output
    assert "2 of 2 table(s) refused" in both.output
    assert cli("register", f"{SCHEMA}.ALL_TYPES").exit_code == 0
    same = cli("register", f"{SCHEMA}.ALL_TYPES")
    assert "registered already (options unchanged)" in same.output
    changed = cli("register", f"{SCHEMA}.ALL_TYPES", "--strategy", "incremental", "--cursor", "TS_NTZ")
    assert changed.exit_code == 0
    assert "options changed: full -> incremental on TS_NTZ, key ID" in changed.output


def test_a_kept_table_can_still_be_sampled_after_deregister(env: Path) -> None:
    register_and_sync(DATA)
    assert "is kept" in cli("deregister", DATA).output
    kept = cli("sample", DATA, "--first", "1", "--output", str(env / "one.json"))
    assert kept.exit_code == 0 and "not registered" in kept.stderr and "kept" in kept.stderr
    assert len((env / "one.json").read_text().splitlines()) == 1


def test_status_says_a_run_is_going_rather_than_none() -> None:
    status = TableStatus(
        table=TableRef.from_key(DATA, "KEBOOLA_33"),
        registered=True,
        last_run=RunSummary("r1", "STARTED", "2026-12-01T10:00:00+00:00", None),
        last_sync=LastSync(
            dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC), "r0", SyncRecord(strategy="full", rows=100001, bytes=2048)
        ),
        row_count_check=None,
        last_failure=None,
        mirror=TableFacts(MirrorTable(False, 0, {}), SyncState(), None, None),
        problem=None,
    )
    text = "\n".join(status.lines())
    assert "(still going)" in text and "None" not in text
    assert "the table had 100,001 rows after it; it unloaded 2.0 KiB of Parquet" in text


def test_the_checks_job_without_a_table_says_which_tag_to_set(settings: Settings) -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SNOWFLAKE_TABLES, [DATA])
        result = (
            build_definitions(settings)
            .resolve_job_def(VERIFY_JOB)
            .execute_in_process(instance=instance, raise_on_error=False)
        )
    failures = [e for e in result.all_events if e.is_step_failure]
    assert not result.success and failures
    message = str(failures[0].step_failure_data.error)
    assert "dagster/partition" in message and "DagsterInvariantViolationError" not in message


@pytest.fixture
def busy_port() -> Iterator[tuple[int, int]]:
    """A port some other process listens on."""
    port = free_port()
    holder = subprocess.Popen(
        ["python3", "-c", f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    yield port, holder.pid
    holder.kill()
    holder.wait()


def test_a_busy_port_is_refused_at_once_naming_its_holder(
    busy_port: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, pid = busy_port
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    alone = cli("local-snowflake", "--port", str(port), "--data-dir", str(tmp_path / "sf"), "--demo-rows", "10")
    assert alone.exit_code == 1 and f"port {port}" in alone.output and f"process {pid} (" in alone.output
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", str(port))
    demo = cli("demo", "--no-ui", "--rows", "10")
    assert demo.exit_code == 1 and f"process {pid} (" in demo.output and "another demo" in demo.output
    ui = free_port()
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", str(free_port()))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ui))
        taken.listen()
        refused = cli("demo", "--rows", "10", "--ui-port", str(ui))
    assert (
        refused.exit_code == 1 and "the Dagster UI" in refused.output and f"process {os.getpid()} (" in refused.output
    )
    assert not (tmp_path / "sf").exists()  # refused before the server started: nothing made


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_make_demo_on_other_ports_works_from_a_second_shell_and_stops_on_sigterm(
    dagster_processes: DagsterProcesses, tmp_path: Path
) -> None:
    """`make demo DEMO_ARGS="--snowflake-port N --ui-port M"`; a second shell runs the lines the demo printed and
    reaches that Snowflake (status, connect-info); SIGTERM to make then ends every process."""
    ui_port, snowflake_port = free_port(), free_port()
    env_without_port = {k: v for k, v in dagster_processes.env.items() if k != "LOCAL_SNOWFLAKE_PORT"}
    dagster_processes.env = env_without_port
    demo = dagster_processes.spawn(
        ["make", "--no-print-directory", "-C", str(project_root()), "demo",
         f"DEMO_ARGS=--rows 1000 --ui-port {ui_port} --snowflake-port {snowflake_port}"],
        "make-demo.log",
        LOCAL_SNOWFLAKE_DATA_DIR=str(tmp_path / "snowflake"),
    )  # fmt: skip
    dagster_processes.wait_for_ui(demo, ui_port, "make-demo.log")
    printed = (dagster_processes.home / "make-demo.log").read_text().splitlines()
    first = printed.index("for the README's commands, in another shell from the repository's root:")
    second_shell = [line.strip() for line in printed[first + 1 :] if line.startswith("  ")][:3]
    assert f"export LOCAL_SNOWFLAKE_PORT={snowflake_port}" in second_shell
    said = "\n".join(printed)
    # Quiet: the first syncs say their own lines, not Dagster's event log, and `dagster dev` starts without
    # warning that the repository's dagster.yaml template is not the instance's.
    assert "load took" in said and " - DEBUG - " not in said and "did not yield" not in said, said[-3000:]
    assert "Found a dagster instance configuration value" not in said, said[-3000:]
    commands = [*second_shell, "sync-project status WORKSPACE_833213390.data", "sync-project demo --connect-info"]
    shell = subprocess.run(
        ["bash", "-c", " && ".join(commands)], cwd=project_root(), env=env_without_port,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert f"http://127.0.0.1:{snowflake_port}" in shell.stdout
    plain = subprocess.run(  # a shell that ran none of those lines still learns the running demo's port
        [str(BIN / "sync-project"), "demo", "--connect-info"], env=env_without_port,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert f"http://127.0.0.1:{snowflake_port}" in plain.stdout, plain.stdout + plain.stderr
    family = _descendants(demo.pid)
    assert len(family) >= 4  # the demo, the embedded Snowflake, dagster dev and its webserver, daemon, ...
    os.kill(demo.pid, signal.SIGTERM)  # make only, as `kill <pid>` or a service manager would
    demo.wait(timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in family):
        time.sleep(0.5)
    alive = [pid for pid in family if Path(f"/proc/{pid}").exists()]
    assert alive == [], (alive, (dagster_processes.home / "make-demo.log").read_text()[-3000:])


def test_the_demo_says_how_to_reach_its_snowflake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_SNOWFLAKE_PORT", "8799")
    info = cli("demo", "--connect-info")
    assert info.exit_code == 0
    assert "http://127.0.0.1:8799" in info.output and '"warehouse": "COMPUTE_WH"' in info.output
    assert "SNOWFLAKE_HOST=127.0.0.1 SNOWFLAKE_PORT=8799" in info.output


def test_commands_print_no_beta_warning(env: Path) -> None:
    done = subprocess.run(
        [str(BIN / "sync-project"), "status", "--json"], env=os.environ, capture_output=True, text=True, check=True
    )
    assert "BetaWarning" not in done.stderr and "Warning" not in done.stderr


def test_preview_cells_read_as_people_expect() -> None:
    from decimal import Decimal

    from sync_project.sync_record import preview_cell

    assert preview_cell(b"\x00\xff\x10") == "0x00ff10"
    assert preview_cell(Decimal("0E-10")) == "0.0000000000" and preview_cell(Decimal("12.50")) == "12.50"
    assert preview_cell(None) == "NULL" and preview_cell("a\nb") == "a⏎b"


def test_check_metadata_is_text_and_rebuild_runs_belong_to_the_job(env: Path) -> None:
    assert cli("register", DATA).exit_code == 0
    assert cli("rebuild", DATA).exit_code == 0
    instance = dg.DagsterInstance.get()
    (run,) = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": DATA}))
    assert run.job_name == "sync_tables" and run.tags[".dagster/repository"] == "__repository__@sync_project"
    evaluations = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        if e.dagster_event is not None
    ]
    assert evaluations
    for evaluation in evaluations:
        values = [v.value for v in evaluation.metadata.values()]  # type: ignore[union-attr]
        assert values and all(isinstance(v, str) for v in values)  # nothing for Dagster to plot across tables


def test_register_with_the_wrong_case_says_which_name_was_meant(env: Path) -> None:
    """ "data" is a quoted, lower-case name: typed unquoted it means DATA, which does not exist."""
    wrong = cli("register", f"{SCHEMA}.DATA", f'{SCHEMA}."All_Types"')
    assert wrong.exit_code == 1
    assert f"Did you mean {SCHEMA}.data?" in wrong.output and f"Did you mean {SCHEMA}.ALL_TYPES?" in wrong.output
    nothing_close = cli("register", f"{SCHEMA}.NOPE_ONE")
    assert nothing_close.exit_code == 1 and "Did you mean" not in nothing_close.output


def test_rebuild_prints_the_syncs_lines_not_dagsters_debug_log(env: Path, dagster_processes: DagsterProcesses) -> None:
    assert cli("register", DATA).exit_code == 0
    done = dagster_processes.run([str(BIN / "sync-project"), "rebuild", DATA], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"rebuilt {DATA}" in said and "load took" in said  # the sync's own lines stay
    assert " - DEBUG - " not in said, said[-3000:]  # Dagster's event log (STEP_START, HANDLED_OUTPUT, ...) does not


def test_status_says_when_the_duckdb_file_cannot_be_written(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not "no table" and exit 0: what the next sync would fail on, naming the setting, and exit code 1."""
    assert cli("register", DATA).exit_code == 0
    readable = cli("status", DATA)
    assert readable.exit_code == 0 and "problem:" not in readable.output
    monkeypatch.setenv("SYNC_DUCKDB_PATH", "/sys/sync-project/sync.duckdb")  # /sys refuses even root
    shown = cli("status", DATA)
    assert shown.exit_code == 1, shown.output
    assert "problem:" in shown.output and "SYNC_DUCKDB_PATH" in shown.output and "/sys/sync-project" in shown.output
    as_json = cli("status", DATA, "--json")
    assert as_json.exit_code == 1 and "SYNC_DUCKDB_PATH" in json.loads(as_json.output)[0]["duckdb"]["problem"]


def test_a_run_of_an_unregistered_key_says_which_key_was_meant(env: Path) -> None:
    """`dagster job launch` queues a run for any tag (and exits 0: Dagster's); the run then fails at once, naming
    the key meant, not retried. `sync-project sync` refuses the key before queuing anything."""
    assert cli("register", DATA).exit_code == 0
    mistyped = f"{SCHEMA}.DATA"
    job = build_definitions(Settings.from_env()).resolve_job_def("sync_tables")
    result = job.execute_in_process(
        tags={"dagster/partition": mistyped}, instance=dg.DagsterInstance.get(), raise_on_error=False
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert f"{mistyped} is not registered; did you mean {DATA}?" in message and "sync-project sync" in message
    refused = cli("sync", mistyped)
    assert refused.exit_code == 1 and f"did you mean {DATA}?" in refused.output


def test_a_run_launched_with_only_its_partition_gets_the_short_tables_tag(env: Path) -> None:
    """The UI's partition picker and `dagster job launch` tag only `dagster/partition` (which the runs list cuts in
    the middle); the run adds the short `tables` tag itself, so every run's table reads in the list."""
    register_and_sync(DATA)  # tags: dagster/partition only
    (run,) = dg.DagsterInstance.get().get_runs(limit=1)
    assert run.tags.get("dagster/partition") == DATA and run.tags.get("tables") == "data"
