"""The architecture's import rules (../shared/STYLE.md), checked on the source.

Only devserve/cli/ imports Typer; only devserve/console/ imports rich; the core
(everything else) never prints and never exits the process.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "devserve"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "core"


def _imports(tree: ast.AST) -> set[str]:
    """The top-level package of every module ``tree`` imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _calls(tree: ast.AST) -> set[str]:
    """Names of the functions ``tree`` calls: ``print``, ``sys.exit``, ``exit``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                found.add(func.id)
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.add(f"{func.value.id}.{func.attr}")
    return found


def test_the_rules_see_the_whole_package() -> None:
    layers = {_layer(path) for path in SOURCES}
    assert {"core", "cli", "console", "check", "reload"} <= layers
    assert len(SOURCES) > 40


@pytest.mark.parametrize(("library", "owner"), [("typer", "cli"), ("rich", "console")])
def test_only_one_layer_imports_each_front_end_library(library: str, owner: str) -> None:
    importers = {
        str(path.relative_to(PACKAGE))
        for path in SOURCES
        if library in _imports(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert importers, f"no module imports {library}: the rule checks nothing"
    assert {name for name in importers if not name.startswith(f"{owner}/")} == set()


def test_the_core_never_prints_or_exits() -> None:
    offenders = []
    for path in SOURCES:
        if _layer(path) in {"cli", "console"} or path.name in {"__main__.py", "_server_cli.py"}:
            continue  # the front ends: they own the terminal and the exit status
        called = _calls(ast.parse(path.read_text(encoding="utf-8")))
        bad = called & {"print", "sys.exit", "exit", "quit", "os._exit"}
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(bad)}")
    assert offenders == []
