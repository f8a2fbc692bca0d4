"""The house's layers (docs/architecture.md): every project import points down a floor or stays
on its own floor, and no two project modules import each other.

The imports are read with `ast` from the source, every `import` statement counted wherever it
stands (inside a function or under `TYPE_CHECKING` as well), so a lazy upward import fails too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FLOORS: dict[str, int] = {
    "envs": 0, "ppo": 0,
    "common": 1,
    "workers": 2, "transfer": 2, "evaluation": 2,
    "study": 3,
    "designsearch": 4, "sweeps": 4, "analysis": 4,
}
"""Ground floor first. A package imports only packages on its floor or below."""


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the layered packages."""
    modules = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, resolved to the longest known dotted name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imported_modules(path, known) - {name} for name, path in modules.items()}


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in graph.items()
                  for target in targets if floor(target) > floor(module))


def mutual_imports(graph: dict[str, set[str]]) -> list[str]:
    """Pairs of modules that import each other (a package importing its own submodules, as an
    `__init__` re-exporting them, is not a pair: a submodule importing its package's `__init__`
    is, unless the `__init__` imports nothing of it)."""
    return sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                  if a < b and a in graph.get(b, set()))


def test_every_project_import_points_down_or_sideways():
    assert upward_imports(import_graph()) == []


def test_no_two_modules_import_each_other():
    assert mutual_imports(import_graph()) == []


def test_no_package_cycle_on_a_floor():
    """Packages on one floor may use each other, one way only."""
    graph = import_graph()
    uses = {(a.split(".")[0], b.split(".")[0]) for a, targets in graph.items() for b in targets}
    assert sorted(f"{a} <-> {b}" for a, b in uses if a < b and (b, a) in uses) == []


def test_the_check_fails_on_an_upward_import(tmp_path, monkeypatch):
    """The test above is not vacuous: an `envs` module importing `study` is reported, and so is a
    pair of modules importing each other."""
    graph = import_graph()
    graph["envs.design"] = graph["envs.design"] | {"study.trainer"}
    graph["common.errors"] = graph["common.errors"] | {"common.config"}
    assert upward_imports(graph) == ["envs.design imports study.trainer"]
    assert "common.config <-> common.errors" in mutual_imports(graph)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_every_package_is_on_a_floor(package):
    assert (ROOT / package / "__init__.py").exists()


def test_no_package_is_left_off_the_floors():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - set(FLOORS) == set()
