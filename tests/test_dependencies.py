"""Every runtime import of the two packages is a declared dependency, and every declared dependency is used.

The imports are read with ``ast`` (nothing is imported), so an import that only runs in a rarely taken branch
is held to the same rule. An import under ``if TYPE_CHECKING:`` is not a runtime import. An optional extra
(torch) may only be imported inside a function, where a user without it never reaches it.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backtest", "pytest_forecast_mlflow")
OPTIONAL_EXTRAS = ("torch", "notify")  # features a user installs on purpose; test/bench/lint are not for the library


@dataclass(frozen=True)
class Import:
    module: str  # the top-level name: "matplotlib" for "from matplotlib.figure import Figure"
    where: str  # path:line, for the failure message
    lazy: bool  # inside a function: runs only when that function is called


class _Collector(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.depth = 0
        self.found: list[Import] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add(node.module, node)

    def _add(self, name: str, node: ast.stmt) -> None:
        self.found.append(Import(name.partition(".")[0], f"{self.path}:{node.lineno}", self.depth > 0))


def third_party_imports() -> list[Import]:
    found: list[Import] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            collector = _Collector(str(path.relative_to(ROOT)))
            collector.visit(ast.parse(path.read_text(), filename=str(path)))
            found.extend(collector.found)
    return [i for i in found if i.module not in sys.stdlib_module_names and i.module not in PACKAGES]


@functools.cache
def _module_owners() -> Mapping[str, list[str]]:
    return packages_distributions()


def distributions(module: str) -> set[str]:
    """The distributions that provide a top-level module (``_pytest`` -> pytest; ``mlflow`` -> mlflow, ...)."""
    return {canonicalize_name(name) for name in _module_owners().get(module, [module])}


def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(text).name) for text in requirements}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    required = names(project()["dependencies"])
    extras = project()["optional-dependencies"]
    optional = set().union(*(names(extras[extra]) for extra in OPTIONAL_EXTRAS))
    imports = third_party_imports()
    assert {i.module for i in imports} >= {"numpy", "mlflow"}, "the import scan found nothing: is ROOT right?"
    undeclared = [
        f"{i.where}: {i.module}"
        for i in imports
        if not distributions(i.module) & required and not (i.lazy and distributions(i.module) & optional)
    ]
    assert not undeclared, (
        "imported but not in [project].dependencies (an optional extra only inside a function):\n"
        + "\n".join(undeclared)
    )


def test_every_declared_dependency_is_imported() -> None:
    imported = set().union(*(distributions(i.module) for i in third_party_imports()))
    unused = sorted(names(project()["dependencies"]) - imported)
    assert not unused, f"declared in [project].dependencies but imported nowhere in {PACKAGES}: {unused}"


def test_the_scan_tells_module_level_from_lazy_imports_and_skips_type_checking_ones() -> None:
    source = "import torch\n\ndef load():\n    import torch\n\nif TYPE_CHECKING:\n    import hypothesis\n"
    collector = _Collector("example.py")
    collector.visit(ast.parse(source))
    assert collector.found == [Import("torch", "example.py:1", False), Import("torch", "example.py:4", True)]
