"""The console package as a whole: what it exports, and that --help does not load it.

Each module has its own tests: test_console_log (request lines), _writer (the log
thread), _banner, _check_report, _theme and _text.
"""

from __future__ import annotations

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
