"""The seam and the layering, read from the import graph (grimp, import-linter's engine).

* no skeleton module imports a feature: only ``server/features.py`` names one,
  so a feature can be deleted with its folders and that line;
* a feature imports no other feature, and nothing of the composition root;
* no two modules of the project import each other, directly or through others;
* the layer contracts of ``pyproject.toml`` (``lint-imports``) hold.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grimp
import pytest

from config import PROJECT_ROOT
from server.features import FEATURES

PACKAGES = ("app", "config", "server", "tornado_handlers", "wsgi_bridge")
FEATURE_LIST = "server.features"
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """Every import between the project's modules, function-level imports included."""
    return grimp.build_graph(*PACKAGES, include_external_packages=False)


def inside(module: str, packages: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``packages`` or below one of them."""
    return any(module == package or module.startswith(package + ".") for package in packages)


def feature_packages() -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(feature name, its packages)`` for every feature in use."""
    for feature in FEATURES:
        assert feature.packages, f"{feature!r} declares no packages"
        yield feature.name, feature.packages


def test_features_declare_packages_that_exist(graph: grimp.ImportGraph) -> None:
    for name, packages in feature_packages():
        for package in packages:
            assert package in graph.modules, f"feature {name}: no package {package}"


def test_no_skeleton_module_imports_a_feature(graph: grimp.ImportGraph) -> None:
    every_feature = tuple(p for _, packages in feature_packages() for p in packages)
    offenders = []
    for module in sorted(graph.modules):
        if inside(module, every_feature) or module == FEATURE_LIST:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if inside(imported, every_feature):
                offenders.append(f"{module} -> {imported}")
    assert offenders == [], "skeleton modules import a feature:\n" + "\n".join(offenders)


def test_features_import_neither_each_other_nor_the_server(graph: grimp.ImportGraph) -> None:
    features = dict(feature_packages())
    offenders = []
    for name, packages in features.items():
        others = tuple(p for other, ps in features.items() if other != name for p in ps)
        for module in sorted(m for m in graph.modules if inside(m, packages)):
            for imported in graph.find_modules_directly_imported_by(module):
                if inside(imported, (*others, "server")):
                    offenders.append(f"{module} -> {imported}")
    assert offenders == []


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                cycles.add(" -> ".join((module, *chain)))
    assert sorted(cycles) == []


def test_the_layer_contracts_hold() -> None:
    """``lint-imports`` with the contracts of ``pyproject.toml`` (layers; the bridge alone).

    In a process of its own: import-linter reconfigures logging as it runs.
    """
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS],
        cwd=PROJECT_ROOT,  # where it finds pyproject.toml
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
