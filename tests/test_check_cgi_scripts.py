"""devserve.check.cgi_scripts: what stops a CGI script from running (DS6xx)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tests.check_support import (
    CGI,
    SH,
    Case,
    File,
    assert_not_reported,
    assert_reported,
    build,
    case,
    case_id,
    page,
    run_check,
)

REPORTED = [
    # -- CGI
    case("DS601", {"cgi-bin/hello.sh": File(SH, 0o644)}, "cgi-bin/hello.sh", **CGI),
    case("DS602", {"cgi-bin/run": File("echo hi\n", 0o755)}, "cgi-bin/run", **CGI),
    case("DS603", {"cgi-bin/a.py": File("#!/usr/bin/python9\nprint()\n", 0o755)},
         "cgi-bin/a.py", **CGI),
    case("DS603", {"cgi-bin/b.py": File("#!/usr/bin/env no-such-interpreter-x\n", 0o755)},
         **CGI),
    case("DS604", {"cgi-bin/win.sh": File(b"#!/bin/sh\r\necho\r\n", 0o755)}, "cgi-bin/win.sh",
         **CGI),
    case("DS605", {"cgi-bin/open.sh": File(SH, 0o757)}, "cgi-bin/open.sh", **CGI),
    case("DS605", {"cgi-bin/": File("", 0o777), "cgi-bin/ok.sh": File(SH, 0o755)}, "cgi-bin/",
         **CGI),
    case("DS606", {"cgi-bin/ok.sh": File(SH, 0o755)}, "cgi-bin/ok.sh", runs_as_root=True, **CGI),
    case("DS606", {"cgi-bin/mine.sh": File(SH, 0o700)}, "cgi-bin/mine.sh", public=True,
         runs_as_root=True, **CGI),
    case("DS607", {"index.html": page("")}, "cgi-bin", **CGI),
]  # fmt: skip

NOT_REPORTED = [
    # -- CGI scripts that run
    case("DS601", {"cgi-bin/hello.sh": File(SH, 0o755)}, **CGI),
    case("DS601", {"scripts/notes.txt": File("x", 0o644)}, **CGI),
    case("DS602", {"cgi-bin/hello.sh": File(SH, 0o755)}, **CGI),
    case("DS602", {"cgi-bin/prog": File(b"\x7fELF\x02\x01\x01", 0o755)}, **CGI),
    case("DS603", {"cgi-bin/a.sh": File("#!/usr/bin/env sh\necho\n", 0o755)}, **CGI),
    case("DS604", {"cgi-bin/a.sh": File(b"#!/bin/sh\necho\r\n", 0o755)}, **CGI),
    case("DS605", {"cgi-bin/a.sh": File(SH, 0o755)}, **CGI),
    case("DS606", {"cgi-bin/a.sh": File(SH, 0o755)}, public=True, runs_as_root=True, **CGI),
    case("DS606", {"cgi-bin/a.sh": File(SH, 0o755)}, **CGI),
    case("DS607", {"cgi-bin/a.sh": File(SH, 0o755)}, **CGI),
]  # fmt: skip


@pytest.mark.parametrize("item", REPORTED, ids=case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize("item", NOT_REPORTED, ids=case_id)
def test_near_miss_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_not_reported(item, tmp_path, public_tmp)


def test_cgi_folders_are_scripts_not_pages(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "index.html": page('<a href="cgi-bin/hello.sh?x=1">run</a> <a href="cgi-bin/no">x</a>'),
            "cgi-bin/hello.sh": File(SH, 0o755),
            "cgi-bin/page.html": File("<p>no body</p>", 0o755),
        },
    )
    report = run_check(tmp_path, **CGI)
    assert [(f.code, f.path) for f in report.findings] == [
        ("DS602", "cgi-bin/page.html"),  # run as a script, not parsed as a page
        ("DS301", "index.html"),  # cgi-bin/no; cgi-bin/hello.sh?x=1 is found
    ]


def test_nobody_is_told_which_folder_stops_it(tmp_path: Path) -> None:
    build(tmp_path, {"cgi-bin/a.sh": File(SH, 0o755)})
    (finding,) = run_check(tmp_path, runs_as_root=True, **CGI).findings
    assert finding.code == "DS606"
    assert re.search(r"nobody cannot search /\S+ \(drwx------ root\)", finding.message), finding


def test_world_writable_folder_is_reported_once(tmp_path: Path) -> None:
    build(tmp_path, {"cgi-bin/": File("", 0o777), "cgi-bin/a.sh": File(SH, 0o755),
                     "cgi-bin/b.sh": File(SH, 0o755)})  # fmt: skip
    found = [f for f in run_check(tmp_path, **CGI).findings if f.code == "DS605"]
    assert [(f.path, f.message) for f in found] == [
        ("cgi-bin/", "folder mode drwxrwxrwx: anyone can add or replace scripts")
    ]
    assert stat.S_IMODE((tmp_path / "cgi-bin").stat().st_mode) == 0o777
