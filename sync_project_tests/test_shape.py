"""The package's shape, as the code reads: one home per idea, kept. Each test names the rule it holds, so a
change that breaks one says which idea lost its home."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sync_project"
ENGINE = PACKAGE / "sync"
MIRROR = ENGINE / "mirror"
EMULATOR = PACKAGE / "local_snowflake"  # a program of its own: the product only starts it and talks HTTP to it
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 350


def modules(under: Path = PACKAGE) -> Iterator[Path]:
    yield from sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


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
        if name == "sync_project" or (name.startswith("sync_project.") and not name.startswith(module_name(EMULATOR)))
    }
    assert not wrong, sorted(wrong)


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
        ("SQL is the engine's", r"[\"'](SELECT|SHOW|CREATE|DROP|BEGIN|COMMIT)\b", ENGINE),
    ],
)
def test_an_idea_lives_in_its_home(rule: str, pattern: str, home: Path | None) -> None:
    homes = [home] if home else [PACKAGE / "sync_record.py"]
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
