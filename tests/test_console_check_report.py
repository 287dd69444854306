"""The report of `devserve check` (console/check_report.py) from findings made by hand.

Reports of real trees, and the progress bar, are tested in test_check.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console

from devserve.check import CheckConfig, Finding, Report
from devserve.console import CheckFormat, check_summary, print_check_report
from tests.console_support import colour_console, plain_console

REPORT = Report(
    "site",  # relative: the github annotations' paths do not depend on the cwd
    CheckConfig(),
    (
        Finding("error", "DS301", "index.html", 9, "gone.html is not found (404)", "fix the link"),
        Finding("error", "DS301", "a,b:c%[red].html", 2, "x\ny% \x1b[2J", "f [b]"),
        Finding("warning", "DS203", "link", None, "broken symlink", "remove it"),
        Finding("info", "DS501", "frag.html", None, "no </body>: x", "add one"),
    ),
    ignored=2,
    files=10,
    pages=3,
    links=4,
    seconds=0.5,
)
CLEAN = Report("/srv", CheckConfig(), (), ignored=0, files=1, pages=1, links=0, seconds=0.01)

# Captured from devserve/console.py at d1b0c8a, before it became a package (TZ=UTC).
REPORT_BEFORE: dict[str, list[str]] = {
    "pretty": [
        "devserve check site\n",
        "\n",
        "✗ Errors (2)\n",
        "  DS301 index.html:9  gone.html is not found (404)\n",
        "        fix: fix the link\n",
        "  DS301 a,b:c%[red].html:2  x\\x0ay% \\x1b[2J\n",
        "        fix: f [b]\n",
        "\n",
        "! Warnings (1)\n",
        "  DS203 link  broken symlink\n",
        "        fix: remove it\n",
        "\n",
        "i Info (1)\n",
        "  DS501 frag.html  no </body>: x\n",
        "        fix: add one\n",
        "\n",
        "✗ 2 errors, 1 warning, 1 info (2 ignored) in 10 files, 3 pages, 4 links (0.50 s)\n",
    ],
    "pretty-colour": [
        "\x1b[1mdevserve check\x1b[0m site\n",
        "\n",
        "\x1b[1;31m✗ Errors (2)\x1b[0m\n",
        "  \x1b[1;31mDS301\x1b[0m \x1b[39mindex.html:9\x1b[0m  gone.html is not found (404)\n",
        "        \x1b[2mfix: fix the link\x1b[0m\n",
        "  \x1b[1;31mDS301\x1b[0m \x1b[39ma,b:c%[red].html:2\x1b[0m  x\\x0ay% \\x1b[2J\n",
        "        \x1b[2mfix: f [b]\x1b[0m\n",
        "\n",
        "\x1b[33m! Warnings (1)\x1b[0m\n",
        "  \x1b[33mDS203\x1b[0m \x1b[39mlink\x1b[0m  broken symlink\n",
        "        \x1b[2mfix: remove it\x1b[0m\n",
        "\n",
        "\x1b[39mi Info (1)\x1b[0m\n",
        "  \x1b[39mDS501\x1b[0m \x1b[39mfrag.html\x1b[0m  no </body>: x\n",
        "        \x1b[2mfix: add one\x1b[0m\n",
        "\n",
        (
            "\x1b[1;31m✗ 2 errors, 1 warning, 1 info (2 ignored) in 10 files, 3 pages, 4 links "
            "(0.50 s)\x1b[0m\n"
        ),
    ],
    "pretty-clean": [
        "devserve check /srv\n",
        "\n",
        "✓ no problems in 1 file, 1 page, 0 links (0.01 s)\n",
    ],
    "github": [
        (
            "::error file=site/index.html,line=9,title=DS301 broken link (404)::gone.html is not "
            "found (404) (fix: fix the link)\n"
        ),
        (
            "::error file=site/a%2Cb%3Ac%25[red].html,line=2,title=DS301 broken link "
            "(404)::x%0Ay%25 \x1b[2J (fix: f [b])\n"
        ),
        (
            "::warning file=site/link,title=DS203 broken symlink (404)::broken symlink (fix: "
            "remove it)\n"
        ),
        (
            "::notice file=site/frag.html,title=DS501 no </body> or </head>%3A the reload script "
            "is appended at the very end::no </body>: x (fix: add one)\n"
        ),
        "✗ 2 errors, 1 warning, 1 info (2 ignored) in 10 files, 3 pages, 4 links (0.50 s)\n",
    ],
    "json": [
        "{\n",
        '  "version": 1,\n',
        '  "directory": "site",\n',
        '  "options": {\n',
        '    "show_hidden": false,\n',
        '    "follow_symlinks": false,\n',
        '    "spa": false,\n',
        '    "listing": true,\n',
        '    "cgi_directories": [],\n',
        '    "ignore": [],\n',
        '    "lan": false,\n',
        '    "bind": null,\n',
        '    "tls": false\n',
        "  },\n",
        '  "summary": {\n',
        '    "errors": 2,\n',
        '    "warnings": 1,\n',
        '    "info": 1,\n',
        '    "ignored": 2,\n',
        '    "files": 10,\n',
        '    "pages": 3,\n',
        '    "links": 4,\n',
        '    "seconds": 0.5\n',
        "  },\n",
        '  "findings": [\n',
        "    {\n",
        '      "severity": "error",\n',
        '      "code": "DS301",\n',
        '      "path": "index.html",\n',
        '      "line": 9,\n',
        '      "message": "gone.html is not found (404)",\n',
        '      "fix": "fix the link"\n',
        "    },\n",
        "    {\n",
        '      "severity": "error",\n',
        '      "code": "DS301",\n',
        '      "path": "a,b:c%[red].html",\n',
        '      "line": 2,\n',
        '      "message": "x\\ny% \\u001b[2J",\n',
        '      "fix": "f [b]"\n',
        "    },\n",
        "    {\n",
        '      "severity": "warning",\n',
        '      "code": "DS203",\n',
        '      "path": "link",\n',
        '      "line": null,\n',
        '      "message": "broken symlink",\n',
        '      "fix": "remove it"\n',
        "    },\n",
        "    {\n",
        '      "severity": "info",\n',
        '      "code": "DS501",\n',
        '      "path": "frag.html",\n',
        '      "line": null,\n',
        '      "message": "no </body>: x",\n',
        '      "fix": "add one"\n',
        "    }\n",
        "  ]\n",
        "}\n",
    ],
}


@pytest.mark.parametrize(
    ("variant", "make", "output_format", "report"),
    [
        ("pretty", plain_console, "pretty", REPORT),
        ("pretty-colour", colour_console, "pretty", REPORT),
        ("pretty-clean", plain_console, "pretty", CLEAN),
        ("github", colour_console, "github", REPORT),
        ("json", colour_console, "json", REPORT),
    ],
)
def test_each_format_as_before(
    variant: str,
    make: Callable[[], tuple[Console, io.StringIO]],
    output_format: CheckFormat,
    report: Report,
) -> None:
    """Byte for byte what console.py wrote before it became a package."""
    console, out = make()
    print_check_report(console, report, output_format)
    assert out.getvalue().splitlines(keepends=True) == REPORT_BEFORE[variant]


@pytest.mark.parametrize(
    ("report", "summary"),
    [
        (REPORT, "✗ 2 errors, 1 warning, 1 info (2 ignored) in 10 files, 3 pages, 4 links"),
        (CLEAN, "✓ no problems in 1 file, 1 page, 0 links"),
        (
            Report("d", CheckConfig(), REPORT.findings[2:3], 0, 1, 0, 0, 1.0),
            "! 0 errors, 1 warning, 0 info in 1 file, 0 pages, 0 links",
        ),
    ],
)
def test_check_summary(report: Report, summary: str) -> None:
    assert check_summary(report) == f"{summary} ({report.seconds:.2f} s)"
