"""What production modules may import: nothing from the demo."""

from __future__ import annotations

import ast
from pathlib import Path

import drift

DEMO_MODULES = {"drift.demo", "drift.digits"}
#: the demo itself, and the CLI's `drift demo` command that starts it
ALLOWED = {"demo.py", "digits.py", "cli.py"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_production_code_imports_nothing_from_the_demo() -> None:
    root = Path(drift.__file__).parent
    offenders = {
        str(path.relative_to(root)): sorted(imported_modules(path) & DEMO_MODULES)
        for path in root.rglob("*.py")
        if path.name not in ALLOWED or path.parent != root
    }
    assert {k: v for k, v in offenders.items() if v} == {}
