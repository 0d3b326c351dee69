"""The package's shape, as the code reads: one home per idea, kept. Each test names the rule it holds, so a
change that breaks one says which idea lost its home."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sync_project"
ENGINE = PACKAGE / "sync"
MIRROR = ENGINE / "mirror"
# The embedded Snowflake: a distribution of its own (its package and tests); the product only starts it and
# talks to it over HTTP, through one client module.
EMULATOR = PACKAGE / "local_snowflake"
CLIENT = PACKAGE / "embedded_snowflake.py"
TESTS = PACKAGE.parent / "sync_project_tests"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 350


def modules(under: Path = PACKAGE) -> Iterator[Path]:
    yield from sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    """As Python names it: the emulator's modules from its own distribution's folder."""
    root = EMULATOR if path.is_relative_to(EMULATOR) else PACKAGE.parent
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function (a hidden import is still an arrow)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def outside(*homes: Path) -> Iterator[Path]:
    for path in modules():
        if not any(path.is_relative_to(home) for home in (*homes, EMULATOR)):
            yield path


def test_the_engine_imports_neither_dagster_nor_the_emulator_nor_the_shell() -> None:
    wrong = {
        f"{module_name(path)} imports {name}"
        for path in modules(ENGINE)
        for name in imports(path)
        if name.split(".")[0] in ("dagster", "dagster_duckdb")
        or (name.startswith("sync_project.") and not name.startswith("sync_project.sync"))
    }
    assert not wrong, sorted(wrong)


def test_the_emulator_imports_nothing_of_the_product() -> None:
    """The embedded Snowflake runs in its own environment, as Snowflake would run apart from us: no code of the
    sync may make it kinder, or break when the sync changes."""
    wrong = {
        f"{module_name(path)} imports {name}"
        for path in modules(EMULATOR)
        for name in imports(path)
        if name.split(".")[0] in ("sync_project", "sync_project_tests")
    }
    assert not wrong, sorted(wrong)


def test_the_emulators_environment_cannot_reach_the_product() -> None:
    """Not by the source tree either: it runs isolated (`-I`), so neither PYTHONPATH nor the working folder
    lends it sync_project. Run from the repository's root, where `import sync_project` would otherwise work."""
    from sync_project.embedded_snowflake import emulator_command

    python, isolated = emulator_command()[:2]
    probe = "import importlib.util as u; print(u.find_spec('local_snowflake') is not None, u.find_spec('sync_project'))"
    done = subprocess.run(
        [python, isolated, "-c", probe], cwd=PACKAGE.parent, env={"PYTHONPATH": str(PACKAGE.parent)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["True", "None"]


def test_the_product_reaches_the_emulator_through_one_client_only() -> None:
    """Nothing imports it (it is not installed beside the product), and one module knows how to start it."""
    product = [p for p in (*modules(), *modules(TESTS)) if not p.is_relative_to(EMULATOR)]
    importers = sorted(
        str(p.relative_to(PACKAGE.parent))
        for p in product
        if any(name.split(".")[0] == "local_snowflake" or name.startswith("sync_project.local_snowflake")
               for name in imports(p))
    )  # fmt: skip
    start = '"-m", ' + '"local_snowflake"'  # in two pieces, or this file would count
    starters = sorted(str(p.relative_to(PACKAGE.parent)) for p in product if start in p.read_text())
    assert (importers, starters) == ([], [str(CLIENT.relative_to(PACKAGE.parent))])


def test_no_module_imports_in_a_circle() -> None:
    """Counting imports inside functions, which hide a circle rather than remove it."""
    names = {module_name(p): p for p in modules()}
    graph = {name: {i for i in imports(path) if i in names and i != name} for name, path in names.items()}
    for name, targets in graph.items():  # importing a.b runs a's __init__ too
        targets |= {t.rsplit(".", 1)[0] for t in set(targets) if t.rsplit(".", 1)[0] in names} - {name}
        targets -= {p for p in list(targets) if name.startswith(p + ".")}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += graph[name]
        return seen

    circles = sorted(name for name in graph if name in reachable(name))
    assert not circles, circles


@pytest.mark.parametrize(
    ("rule", "pattern", "home"),
    [
        ("DuckDB is opened by the mirror only", r"\bduckdb\.connect\(", MIRROR),
        ("which kind of mirror it is, the mirror alone knows", r"\blake is (not )?None\b|\bis_lake\(", MIRROR),
        ("the sync record alone reads sync metadata", r"\.metadata(\[|\.get\()|[\"']figures[\"']|\bFIGURES\b", None),
        ("SQL is the engine's (and the demo data's)", r"[\"'](SELECT|SHOW|CREATE|DROP|BEGIN|COMMIT)\b", ENGINE),
    ],
)
def test_an_idea_lives_in_its_home(rule: str, pattern: str, home: Path | None) -> None:
    homes = [home, PACKAGE / "demo_tables.py"] if home == ENGINE else [home] if home else [PACKAGE / "sync_record.py"]
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in outside(*homes)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not found, f"{rule}; found elsewhere: {found}"


def test_no_function_or_module_outgrows_a_reading() -> None:
    too_long = []
    for path in modules():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE.parent)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.name}: {length} lines")
    assert not too_long, too_long


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of a module and of its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_the_environment_is_read_where_definitions_are_built() -> None:
    """One configuration path: the environment's settings are read by `Settings.from_env`, which only the
    component calls (under its attributes); everything after reads the built resources. A second reading
    (a sensor or a CLI command calling `from_env`, a module reading a SNOWFLAKE_ or SYNC_ variable itself)
    would let an override of the resource reach one consumer and not another."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in outside(PACKAGE / "settings.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (
            re.search(r"os\.environ(\.get\(|\[)(env\.)?(SNOWFLAKE|SYNC)_|os\.getenv\(", line)
            and not re.search(r"os\.environ\[\w+\] = ", line)  # handing a value to child processes
        )
        or (re.search(r"\bSettings\.from_env\(", line) and path != PACKAGE / "component.py")
    ]
    assert not found, found


def test_the_engines_messages_take_setting_names_from_the_one_table() -> None:
    """No text in the engine spells a setting's name: messages interpolate it from `sync/setting_names.py`, so a
    renamed setting cannot leave a message naming the old one."""
    from sync_project.sync import setting_names

    names = {value for key, value in vars(setting_names).items() if key.isupper() and isinstance(value, str)}
    spelled = []
    for path in modules(PACKAGE / "sync"):
        if path.name == "setting_names.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                spelled += [f"{path.name}:{node.lineno}: {name}" for name in names if name in node.value]
    assert not spelled


def test_loading_the_mirrors_definitions_imports_no_dbt() -> None:
    """A run process loads its code location's definitions; the mirror's must not import dagster-dbt or dbt (the
    `dbt` extra, installed beside it, costs about 2 s), not even through dg's discovery of component types."""
    probe = "import sys; from sync_project.definitions import defs; print(sorted(m for m in sys.modules if 'dbt' in m))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert loaded.stdout.strip() == "[]"
