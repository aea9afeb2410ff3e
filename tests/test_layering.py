"""The import rules of docs/architecture.md ("Layers"), checked on the source (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DRIFT = Path(__file__).resolve().parents[1] / "drift"

#: the numerics: pure functions and estimators on arrays, no database
NUMERICS = (
    "drift.detectors", "drift.calibration", "drift.stats", "drift.gate", "drift.metrics",
    "drift.performance",
)
#: the simulated production setting; only itself and the `drift demo` command may use it
DEMO = ("drift.demo", "drift.digits", "drift.calibration_stream")
DEMO_USERS = {"drift.cli.reporting", *DEMO}  # the `drift demo` command


def _module_name(path: Path) -> str:
    parts = path.relative_to(DRIFT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


MODULES = {
    _module_name(p): _imports(p)
    for p in sorted(DRIFT.rglob("*.py"))
    if "migrations" not in p.relative_to(DRIFT).parts
}


def test_the_rules_see_the_whole_package():
    assert {"drift.gate", "drift.cli.reporting", "drift.store.models", "drift.detectors.knn"} <= MODULES.keys()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, NUMERICS)))
def test_numerics_import_no_store(module):
    assert not {i for i in MODULES[module] if _within(i, ("drift.store",))}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in DEMO_USERS))
def test_production_code_imports_nothing_from_the_demo(module):
    assert not {i for i in MODULES[module] if _within(i, DEMO)}, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_library_imports_no_airflow(module):
    assert not {i for i in MODULES[module] if _within(i, ("airflow",))}, module
