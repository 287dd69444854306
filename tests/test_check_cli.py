"""`devserve check` on the command line: the config it builds, exit codes, and its output
formats (pretty, JSON, GitHub annotations, the progress bar) as devserve.console renders them."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from devserve import check as check_module
from devserve.check import CODES, CheckConfig, Finding, Report
from devserve.cli import app
from devserve.console import (
    THEME,
    CheckProgress,
    check_summary,
    github_annotation,
    print_check_report,
)
from tests.check_support import ROOT, Link, build, page, run_check

runner = CliRunner()


# ------------------------------------------------------------------------ rendering


def _report(tmp_path: Path) -> Report:
    build(
        tmp_path / "site",
        {
            "index.html": page('<a href="gone.html">x</a>'),
            "link": Link("nowhere"),
            "frag.html": "<p>x</p>",
        },
    )
    return run_check(tmp_path / "site")


def _render(report: Report, output_format: str) -> str:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, theme=THEME)
    print_check_report(console, report, output_format)  # type: ignore[arg-type]
    return out.getvalue()


def test_pretty_report_groups_by_severity(tmp_path: Path) -> None:
    text = _render(_report(tmp_path), "pretty")
    lines = text.splitlines()
    assert lines[0].startswith("devserve check /")
    headings = ("✗ Errors (1)", "! Warnings (1)", "i Info (1)")
    errors, warnings, info = (lines.index(heading) for heading in headings)
    assert errors < warnings < info
    assert lines[errors + 1] == "  DS301 index.html:9  gone.html is not found (404)"
    assert lines[errors + 2] == "        fix: fix the link or add the missing file"
    assert re.fullmatch(
        r"✗ 1 error, 1 warning, 1 info in 2 files, 2 pages, 1 link \(\d\.\d\d s\)", lines[-1]
    )


def test_pretty_report_of_a_clean_tree(tmp_path: Path) -> None:
    build(tmp_path, {"index.html": page("")})
    text = _render(run_check(tmp_path), "pretty")
    assert "Errors" not in text
    assert re.search(r"^✓ no problems in 1 file, 1 page, 0 links", text, re.M)


def test_pretty_report_escapes_markup_and_control_characters(tmp_path: Path) -> None:
    build(tmp_path, {"[red]x\x1b]0;t\x07.txt": "x"})
    text = _render(run_check(tmp_path), "pretty")
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "[red]x\\x1b]0;t\\x07.txt" in text


def test_json_report_schema(tmp_path: Path) -> None:
    report = _report(tmp_path)
    data = json.loads(_render(report, "json"))
    assert set(data) == {"version", "directory", "options", "summary", "findings"}
    assert data["version"] == 1
    assert data["directory"] == str((tmp_path / "site").resolve())
    assert data["options"] == {
        "show_hidden": False,
        "follow_symlinks": False,
        "spa": False,
        "listing": True,
        "cgi_directories": [],
        "ignore": [],
        "lan": False,
        "bind": None,
        "tls": False,
    }
    summary = data["summary"]
    assert set(summary) == {
        "errors", "warnings", "info", "ignored", "files", "pages", "links", "seconds"
    }  # fmt: skip
    assert (summary["errors"], summary["warnings"], summary["info"]) == (1, 1, 1)
    assert isinstance(summary["seconds"], float)
    assert data["findings"][0] == {
        "severity": "error",
        "code": "DS301",
        "path": "index.html",
        "line": 9,
        "message": "gone.html is not found (404)",
        "fix": "fix the link or add the missing file",
    }
    assert data["findings"][1]["line"] is None


def test_github_annotations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report(tmp_path)
    monkeypatch.chdir(tmp_path)
    lines = _render(report, "github").splitlines()
    assert lines[0] == (
        "::error file=site/index.html,line=9,title=DS301 broken link (404)::"
        "gone.html is not found (404) (fix: fix the link or add the missing file)"
    )
    assert lines[1].startswith("::warning file=site/link,title=DS203 broken symlink (404)::")
    assert lines[2].startswith("::notice file=site/frag.html,title=DS501 no </body> or </head>%3A ")
    assert lines[3].startswith("✗ 1 error, 1 warning, 1 info")


def test_github_escapes_what_would_end_the_command(tmp_path: Path) -> None:
    report = Report(
        str(tmp_path), CheckConfig(), (Finding("error", "DS301", "a,b:c%.html", 2, "x\ny%", "f"),),
        0, 1, 1, 1, 0.0,
    )  # fmt: skip
    annotation = github_annotation(report, report.findings[0])
    assert annotation.startswith(f"::error file={tmp_path}/a%2Cb%3Ac%25.html,line=2,")
    assert annotation.endswith("::x%0Ay%25 (fix: f)")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("terminal", "calls", "shown"),
    [
        (True, [("scan", 10, None)], False),  # small: nothing
        (True, [("scan", 5000, None), ("scan", 6000, 6000)], True),
        (True, [("scan", 100, 100), ("pages", 0, 300), ("pages", 300, 300)], True),
        (False, [("scan", 50_000, None), ("pages", 0, 5000)], False),  # not a terminal
    ],
)
def test_progress_bar_only_on_a_terminal_and_a_large_tree(
    terminal: bool, calls: list[tuple[str, int, int | None]], shown: bool
) -> None:
    out = _Terminal() if terminal else io.StringIO()
    console = Console(file=out, width=80, theme=THEME, force_terminal=terminal or None)
    progress = CheckProgress(console)
    for call in calls:
        progress(*call)
    progress.close()
    assert (out.getvalue() != "") == shown
    if shown:
        assert "scanning" in out.getvalue() or "checking pages" in out.getvalue()


def test_summary_counts_ignored(tmp_path: Path) -> None:
    build(tmp_path, {"a": Link("b")})
    report = run_check(tmp_path, ignore=frozenset({"DS203"}))
    assert check_summary(report).startswith("✓ no problems (1 ignored) in 0 files")


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[CheckConfig]:
    """Replace the core: the CLI's job ends at building the config."""
    configs: list[CheckConfig] = []

    def fake_check(config: CheckConfig, progress: Any = None) -> Report:
        configs.append(config)
        return Report(str(config.directory), config, (), 0, 0, 0, 0, 0.0)

    monkeypatch.setattr(check_module, "check", fake_check)
    return configs


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], CheckConfig()),
        (["site"], CheckConfig(directory=Path("site"))),
        (
            ["--show-hidden", "--follow-symlinks", "--spa", "--no-listing"],
            CheckConfig(show_hidden=True, follow_symlinks=True, spa=True, listing=False),
        ),
        (
            ["--cgi-dir", "/cgi-bin", "--cgi-dir", "/py"],
            CheckConfig(cgi_directories=("/cgi-bin", "/py")),
        ),
        (
            ["--ignore", "DS301", "--ignore", "ds7xx"],
            CheckConfig(ignore=frozenset({"DS301"} | {c for c in CODES if c.startswith("DS7")})),
        ),
    ],
)
def test_cli_builds_the_exact_config(
    captured: list[CheckConfig], args: list[str], expected: CheckConfig
) -> None:
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == 0, result.output
    assert captured == [expected]


@pytest.fixture
def mixed_site(tmp_path: Path) -> Path:
    """One error (DS301), one warning (DS203), one info (DS501)."""
    build(
        tmp_path,
        {
            "index.html": page('<a href="gone.html">x</a>'),
            "link": Link("nowhere"),
            "frag.html": "<p>x</p>",
        },
    )
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ([], 1),
        (["--strict"], 1),
        (["--ignore", "DS301"], 0),
        (["--ignore", "DS301", "--strict"], 1),
        (["--ignore", "DS301", "--ignore", "DS203", "--strict"], 0),  # info never fails
        (["--ignore", "DS3xx", "--ignore", "DS2xx", "--ignore", "DS5xx", "--strict"], 0),
        (["--format", "json"], 1),
        (["--format", "github", "--ignore", "DS301"], 0),
    ],
)
def test_cli_exit_codes(mixed_site: Path, args: list[str], code: int) -> None:
    result = runner.invoke(app, ["check", str(mixed_site), *args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/definitely/not/here"], "devserve: error: directory not found: /definitely/not/here"),
        ([str(ROOT / "README.md")], "devserve: error: not a directory"),
        ([".", "--ignore", "DS999"], "devserve: error: unknown finding code for --ignore: 'DS999'"),
        ([".", "--cgi-dir", "cgi-bin"], "devserve: error: --cgi-dir must be a URL folder"),
    ],
)
def test_cli_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_format_is_a_usage_error() -> None:
    result = runner.invoke(app, ["check", ".", "--format", "xml"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_cli_json_goes_to_stdout(mixed_site: Path) -> None:
    result = runner.invoke(app, ["check", str(mixed_site), "--format", "json"])
    assert result.exit_code == 1
    assert [f["code"] for f in json.loads(result.stdout)["findings"]] == [
        "DS301",
        "DS203",
        "DS501",
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    return {**env, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra}


def test_subprocess_run(mixed_site: Path) -> None:
    command = [sys.executable, "-m", "devserve", "check", str(mixed_site)]
    result = subprocess.run(
        [*command, "--format", "json"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == ""
    assert json.loads(result.stdout)["summary"]["errors"] == 1
    pretty = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=60)
    assert pretty.returncode == 1
    assert "\x1b" not in pretty.stdout
    assert "✗ Errors (1)" in pretty.stdout
    clean = subprocess.run(
        [*command, "--ignore", "DS301"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0
    missing = subprocess.run(
        [*command[:-1], str(mixed_site / "nope")], env=_env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.startswith("devserve: error: directory not found")
    assert "Traceback" not in missing.stderr


def test_cli_stays_quick_to_start() -> None:
    """--help must not import the checker, the server or rich's progress machinery."""
    code = (
        "import sys\n"
        "from devserve.cli import app\n"
        "try:\n    app(['check', '--help'], prog_name='devserve')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('devserve.check', 'devserve.serving', 'rich.progress')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
