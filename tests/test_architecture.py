"""The house rules, checked on the code itself: imports run one way (no package imports a higher
one, no cycle), and a smoke alarm on size: no module over 500 lines, no function over 80 (the tests' own
modules too). A module ends where its concept ends; the alarm asks whether a file has become two concepts,
never to split one to fit. docs/architecture.md draws the same."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .builders import ROOT

# Lower floors first: a module may import its own package or a lower floor, never a higher one.
FLOORS = ["demo.core", "demo.data", "demo.models", "demo.measuring", "demo.distill", "demo.serving", "demo"]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80  # an alarm, not a shape


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "demo").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def floor_of(module: str) -> int:
    return max(i for i, package in enumerate(FLOORS) if module == package or module.startswith(package + "."))


def demo_imports(path: Path) -> set[str]:
    """The demo modules a file imports (at any depth of the file: lazy imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("demo"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("demo"))
    known = modules()
    return {m for m in out if m in known}


def test_imports_run_one_way_and_never_in_a_circle():
    graph = {name: demo_imports(path) for name, path in modules().items()}
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if floor_of(b) > floor_of(a)]
    assert not upward, "imports that run back up: " + ", ".join(upward)
    visiting, done = set(), set()

    def visit(node, trail):
        if node in visiting:
            raise AssertionError("import cycle: " + " -> ".join([*trail, node]))
        if node not in done:
            visiting.add(node)
            for target in graph[node]:
                visit(target, [*trail, node])
            visiting.discard(node)
            done.add(node)

    for name in graph:
        visit(name, [])


@pytest.mark.parametrize("path", sorted([*(ROOT / "demo").rglob("*.py"), ROOT / "app.py",
                                         *(ROOT / "tests").glob("*.py")]),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_and_functions_stay_small(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{path.name}: {len(lines)} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: " + ", ".join(long)
