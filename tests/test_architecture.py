"""The house rules, checked on the code itself: imports run one way (no package imports a higher one, no
cycle), and every import of the project's own modules stands at the top of its module, where a reader sees
the graph. No rule on size: a module ends where its concept ends. docs/architecture.md draws the same."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .builders import ROOT

# Lower floors first: a module may import its own package or a lower floor, never a higher one.
FLOORS = ["demo.core", "demo.data", "demo.models", "demo.measuring", "demo.distill", "demo.serving", "demo"]


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


@pytest.mark.parametrize("path", sorted([*(ROOT / "demo").rglob("*.py"), ROOT / "app.py"]),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_projects_imports_stand_at_the_top_of_each_module(path):
    """Third-party imports may wait inside a function (onnxruntime, openvino, datasets: heavy and optional);
    the project's own never do."""
    inner = [f"line {node.lineno}: {node.module}" for fn in ast.walk(ast.parse(path.read_text()))
             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in ast.walk(fn)
             if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("demo"))]
    assert not inner, f"{path.name}: project imports inside functions: " + ", ".join(inner)


@pytest.mark.parametrize("path", sorted([*(ROOT / "demo").rglob("*.py"), ROOT / "app.py"]),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_commands_main_guard_comes_last(path):
    """`python -m demo.evaluate` runs main() where the guard stands: a function defined below it does not exist
    yet (the in-process tests, which import the module whole, would never see it)."""
    body = ast.parse(path.read_text()).body
    guards = [i for i, node in enumerate(body) if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    assert all(i == len(body) - 1 for i in guards), f"{path.name}: definitions follow its __main__ guard"
