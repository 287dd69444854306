"""The console package as a whole: what it exports, and that --help does not load it.

Each module has its own tests: test_console_log (request lines), _writer (the log
thread), _banner, _check_report, _theme and _text.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_help_and_completion_do_not_import_the_server() -> None:
    """`devserve --help` and completion requests stay light: no server, no watchfiles."""
    code = (
        "import sys\n"
        "from devserve.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='devserve')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('devserve.server', 'devserve.serving', 'watchfiles', 'segno',\n"
        "         'devserve.console', 'socketserver', 'ssl') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    for args in (["--help"], ["serve", "--help"], ["--version"]):
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert "HEAVY []" in result.stderr, (args, result.stderr)


def test_only_the_console_package_imports_rich() -> None:
    """Presentation depends on the core, never the other way (STYLE.md)."""
    package = ROOT / "devserve"
    importers = []
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).parts[0] == "console":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name == "rich" or name.startswith("rich.") for name in names):
                importers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert importers == []
    assert (package / "console" / "__init__.py").is_file()


def test_the_package_exports_what_its_callers_import() -> None:
    """Callers import from devserve.console, not from its modules (which may move)."""
    import devserve.console

    imported: set[str] = set()
    for folder in ("devserve", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.parent.name == "console":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "devserve.console":
                    imported.update(alias.name for alias in node.names)
    modules = {"log", "writer"}  # tests reach into these for their limits
    assert {"RequestLog", "make_console", "print_check_report"} <= imported
    assert sorted(imported - modules - set(devserve.console.__all__)) == []
    assert all(hasattr(devserve.console, name) for name in devserve.console.__all__)
