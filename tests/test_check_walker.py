"""devserve.check.walker: `check` end to end, the walk, symlinks (DS2xx), names (DS7xx),
DS504 and DS505."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.check import CheckConfig, CheckError, check, name_problems
from tests.check_support import (
    CGI,
    ROOT,
    Case,
    File,
    Link,
    Sparse,
    assert_not_reported,
    assert_reported,
    build,
    case,
    case_id,
    page,
    run_check,
)
from tests.test_check_pages import CLEAN_SITE

MIB = 1024 * 1024

REPORTED = [
    # -- symlinks
    case("DS201", {"data.txt": Link("../outside.txt"), "../outside.txt": "x"}, "data.txt"),
    case("DS201", {"vendor": Link("../lib"), "../lib/x.js": "x"}, "vendor"),
    case("DS202", {"data.txt": Link("../outside.txt"), "../outside.txt": "x"}, "data.txt",
         follow_symlinks=True),
    case("DS203", {"gone.txt": Link("nowhere.txt")}, "gone.txt"),
    case("DS204", {"a": Link("b"), "b": Link("a")}, "a"),
    case("DS205", {"docs/up": Link(".."), "docs/x.txt": "x"}, "docs/up"),
    case("DS205", {"self": Link(".")}, "self"),
    # -- folders for --reload to watch
    case("DS504", {"a/b/": "", "c/": ""}, ".", watch_limit=3),
    case("DS504", {".git/objects/": ""}, ".", watch_limit=2),
    # -- huge files
    case("DS505", {"media/dump.sql": Sparse(MIB * 100 + 1)}, "media/dump.sql"),
    case("DS505", {"big.mp4": Link("data/big.mp4"), "data/big.mp4": Sparse(MIB * 101)}, "big.mp4"),
    # -- names
    case("DS701", {"bad\x1bname.txt": "x"}, "bad\x1bname.txt"),
    case("DS702", {"bad\udcffname.txt": "x"}, "bad\\xffname.txt"),
    case("DS703", {" lead.txt": "x"}, " lead.txt"),
    case("DS703", {"trail/ ": ""}, "trail/ "),
]  # fmt: skip

NOT_REPORTED = [
    # -- symlinks inside the folder are fine
    case("DS201", {"data.txt": Link("../outside.txt"), "../outside.txt": "x"},
         follow_symlinks=True),
    case("DS201", {"alias.txt": Link("real.txt"), "real.txt": "x"}),
    case("DS202", {"data.txt": Link("../outside.txt"), "../outside.txt": "x"}),
    case("DS202", {"latest": Link("v2"), "v2/index.html": page("")}, follow_symlinks=True),
    case("DS203", {"alias.txt": Link("real.txt"), "real.txt": "x"}),
    case("DS203", {".gone": Link("nowhere")}),
    case("DS204", {"a": Link("b"), "b": Link("c"), "c": "x"}),
    case("DS205", {"docs/assets": Link("../assets"), "assets/x.css": ""}),
    # -- as many folders as can be watched
    case("DS504", {"a/b/": "", "c/": ""}, watch_limit=4),
    # -- huge, but not over the line, or not served
    case("DS505", {"video.mp4": Sparse(MIB * 100)}),
    case("DS505", {".cache/blob": Sparse(MIB * 101)}),
    case("DS505", {"out.bin": Link("../out.bin"), "../out.bin": Sparse(MIB * 101)}),
    case("DS505", {"cgi-bin/app": File(b"\x7fELF", 0o755)}, **CGI),
    # -- names that are fine
    case("DS701", {"café-Ünïcode.txt": "x"}),
    case("DS702", {"café.txt": "x"}),
    case("DS703", {"in side.txt": "x"}),
]  # fmt: skip


@pytest.mark.parametrize("item", REPORTED, ids=case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize("item", NOT_REPORTED, ids=case_id)
def test_near_miss_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_not_reported(item, tmp_path, public_tmp)


def test_a_directory_link_inside_the_folder_is_walked_once(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "v2/index.html": page('<a href="missing.html">x</a>'),
            "latest": Link("v2"),
            "hidden-alias": Link(".private"),
            ".private/index.html": page('<a href="gone.html">x</a>'),
        },
    )
    report = run_check(tmp_path)
    # v2 is checked at its own URL only; a link to the hidden .private is refused
    # like .private itself (the hidden-file rule applies to where a link leads)
    assert sorted((f.code, f.path) for f in report.findings) == [
        ("DS201", "hidden-alias"),
        ("DS301", "v2/index.html"),
    ]
    shown = run_check(tmp_path, show_hidden=True)
    assert ("DS301", ".private/index.html") in [(f.code, f.path) for f in shown.findings]


def test_check_never_prints(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    build(tmp_path, CLEAN_SITE | {"bad.html": page('<a href="nope">x</a>')})
    assert run_check(tmp_path).findings
    assert capfd.readouterr() == ("", "")


def test_progress_reports_both_stages(tmp_path: Path) -> None:
    build(tmp_path, {f"p{i}.html": page("") for i in range(60)})
    calls: list[tuple[str, int, int | None]] = []
    check(CheckConfig(directory=tmp_path), lambda *call: calls.append(call))
    assert ("scan", 60, 60) in calls
    assert ("pages", 25, 60) in calls
    assert calls[-1] == ("pages", 60, 60)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (CheckConfig(directory=Path("/definitely/not/here")), "directory not found"),
        (CheckConfig(directory=ROOT / "README.md"), "not a directory"),
        (CheckConfig(cgi_directories=("cgi-bin",)), "--cgi-dir must be a URL folder"),
        (CheckConfig(cgi_directories=("/",)), "--cgi-dir must be a URL folder"),
        (CheckConfig(ignore=frozenset({"DS999"})), "unknown finding code"),
    ],
)
def test_bad_configuration_raises_check_error(config: CheckConfig, message: str) -> None:
    with pytest.raises(CheckError, match=message):
        check(config)


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("index.html", []),
        ("café Ünï.txt", []),
        ("a\tb", ["DS701"]),
        ("a\x7fb", ["DS701"]),
        ("a\x9bb", ["DS701"]),
        ("a\udcffb", ["DS702"]),
        (" a", ["DS703"]),
        ("a ", ["DS703"]),
        ("a\u00a0", ["DS703"]),
        (" \x01", ["DS701", "DS703"]),
    ],
)
def test_name_problems(name: str, codes: list[str]) -> None:
    assert [code for code, _ in name_problems(name)] == codes


def test_a_huge_file_is_reported_with_its_size(tmp_path: Path) -> None:
    build(tmp_path, {"dumps/db.sql": Sparse(MIB * 150), "iso/disk.iso": Sparse(MIB * 2560)})
    found = [(f.code, f.severity, f.path, f.message) for f in run_check(tmp_path).findings]
    assert found == [
        ("DS505", "info", "dumps/db.sql", "150 MiB: usually served by accident"),
        ("DS505", "info", "iso/disk.iso", "2.5 GiB: usually served by accident"),
    ]
