"""devserve.check.report: --ignore, the ignored count, the order of findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.check import CODES, CheckError, parse_ignore
from tests.check_support import Link, build, page, run_check


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], set()),
        (["DS301"], {"DS301"}),
        (["ds301", " DS302 "], {"DS301", "DS302"}),
        (["DS5xx"], {c for c in CODES if c.startswith("DS5")}),
        (["ds2XX", "DS301"], {c for c in CODES if c.startswith("DS2")} | {"DS301"}),
        (["DS9xx"], {"DS901"}),
    ],
)
def test_parse_ignore(codes: list[str], expected: set[str]) -> None:
    assert parse_ignore(codes) == expected


@pytest.mark.parametrize("code", ["DS999", "DS0xx", "DS99x", "301", "DS30", "DS3xxx", "*", ""])
def test_parse_ignore_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(CheckError, match="unknown finding code"):
        parse_ignore([code])


def test_ignore_drops_codes_and_counts_them(tmp_path: Path) -> None:
    build(tmp_path, {"index.html": page('<a href="x.html">x</a>'), "a": Link("b")})
    report = run_check(tmp_path, ignore=frozenset({"DS301"}))
    assert [f.code for f in report.findings] == ["DS203"]
    assert report.ignored == 1


def test_findings_are_sorted_by_severity_then_place(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "b.html": "<p>partial</p>",
            "a.html": page('<a href="x">x</a>\n<a href="y">y</a>'),
            "gone": Link("nowhere"),
        },
    )
    report = run_check(tmp_path)
    assert [(f.severity, f.path, f.line) for f in report.findings] == [
        ("error", "a.html", 9),
        ("error", "a.html", 10),
        ("warning", "gone", None),
        ("info", "b.html", None),
    ]
