"""devserve.check.host_files: _redirects and _headers (DS8xx), each code both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from devserve.cli import app
from tests.check_support import (
    Case,
    assert_not_reported,
    assert_reported,
    build,
    case,
    case_id,
    page,
    run_check,
)

HOME = {"index.html": page(""), "about.html": page("")}

REPORTED = [
    # -- DS801 lines not understood
    case("DS801", {**HOME, "_redirects": "/a /about 301\n/b about\n"}, "_redirects:2"),
    case("DS801", {**HOME, "_redirects": "/a/*/b/* /about\n"}, "_redirects:1"),
    case("DS801", {**HOME, "_headers": "/*\n  X-Frame-Options DENY\n"}, "_headers:2"),
    case("DS801", {**HOME, "_headers": "  X-A: 1\n/*\n  X-B: 2\n"}, "_headers:1"),
    case("DS801", {**HOME, "_headers": "/*\n  Content-Length: 3\n"}, "_headers:2"),
    # -- DS802 a status no rule can give
    case("DS802", {**HOME, "_redirects": "/a /about 999\n"}, "_redirects:1"),
    case("DS802", {**HOME, "_redirects": "/a /about 418!\n"}, "_redirects:1"),
    # -- DS803 a host feature devserve does not preview
    case("DS803", {**HOME, "_redirects": "/ /fr/ 302 Country=fr\n"}, "_redirects:1"),
    case("DS803", {**HOME, "_redirects": "/api/* https://api.example.com/:splat 200\n"}),
    case("DS803", {**HOME, "_headers": "https://example.com/*\n  X-A: 1\n"}, "_headers:1"),
    # -- DS804 redirect loops
    case("DS804", {**HOME, "_redirects": "/a /b 301\n/b /a 302\n"}, "_redirects:1"),
    case("DS804", {**HOME, "_redirects": "/blog/* /blog/:splat 301\n"}, "_redirects:1"),
    case("DS804", {**HOME, "_redirects": "/blog/ /blog 301\n"}, "_redirects:1"),  # one slash
    case("DS804", {**HOME, "_redirects": "/about /about?v=2 301!\n"}, "_redirects:1"),
    case("DS804", {**HOME, "_redirects": "/* /index.html 302!\n"}, "_redirects:1"),
    # -- DS805 rules that never match
    case("DS805", {**HOME, "_redirects": "/news/* /about 301\n/news/today /index.html 301\n"},
         "_redirects:2"),
    case("DS805", {**HOME, "_redirects": "/a /about\n/a /index.html\n"}, "_redirects:2"),
    case("DS805", {**HOME, "_redirects": "/p/:id /about\n/p/:slug /index.html 302\n"},
         "_redirects:2"),
    case("DS805", {**HOME, "_redirects": "/s /about\n/s id=:id /index.html\n"},
         "_redirects:2"),
    # -- DS806 destinations that are not there
    case("DS806", {**HOME, "_redirects": "/app/* /app.html 200\n"}, "_redirects:1"),
    case("DS806", {**HOME, "_redirects": "/old /new-page 301\n"}, "_redirects:1"),
    case("DS806", {**HOME, "_redirects": "/en/* /en/404.html 404\n"}, "_redirects:1"),
]  # fmt: skip

NOT_REPORTED = [
    case("DS801", {**HOME, "_redirects": "# comment\n\n/a /about 301 # why\n"}),
    case("DS801", {**HOME, "_headers": "# all\n/*\n  X-Frame-Options: DENY\n  ! ETag\n"}),
    case("DS801", {**HOME, "_redirects": "/b about\n"}, host_files=False),
    case("DS802", {**HOME, "_redirects": "/a /about 308\n/b /about 200!\n/c /about 404\n"}),
    case("DS803", {**HOME, "_redirects": "/go https://example.com/ 302\n"}),  # a redirect out
    case("DS804", {**HOME, "_redirects": "/a /b 301\n/b /about 302\n"}),  # a chain that ends
    case("DS804", {**HOME, "_redirects": "/* /index.html 302\n"}),  # shadowed by the page
    case("DS804", {**HOME, "_redirects": "/old/* /new/:splat 301\n/new/* /about 302\n"}),
    case("DS805", {**HOME, "_redirects": "/news/today /index.html 301\n/news/* /about 301\n"}),
    case("DS805", {**HOME, "_redirects": "/p/:id /about\n/p/:id/more /index.html\n"}),
    case("DS805", {**HOME, "_redirects": "/news/:slug /about\n/news/* /index.html\n"}),
    case("DS805", {**HOME, "_redirects": "/s id=:id /about\n/s /index.html\n"}),
    case("DS806", {**HOME, "_redirects": "/x /about 200\n/y /about.html 301\n"}),
    case("DS806", {**HOME, "_redirects": "/blog/* /posts/:splat 301\n"}),  # from the request
    case("DS806", {**HOME, "_redirects": "/a /b 301\n/b /about 301\n"}),  # another rule
    case("DS806", {**HOME, "en/404.html": page(""), "_redirects": "/en/* /en/404.html 404\n"}),
]  # fmt: skip


@pytest.mark.parametrize("item", REPORTED, ids=case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize("item", NOT_REPORTED, ids=case_id)
def test_near_miss_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_not_reported(item, tmp_path, public_tmp)


def test_findings_say_what_the_server_says(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            **HOME,
            "_redirects": "/a /b 301\n/b /c 301\n/c /a 301\n/x /y 999\n/a /about\n",
            "_headers": "/*\n  X-A: €\n",
        },
    )
    found = [(f.code, f.path, f.line, f.message) for f in run_check(tmp_path).findings]
    assert found == [
        ("DS801", "_headers", 2, "'X-A: €': header values must be Latin-1 "
         "(percent-encode other characters)"),
        ("DS804", "_redirects", 1, "redirect loop: /a → /b → /c → /a (lines 1, 2, 3)"),
        ("DS802", "_redirects", 4, "status 999 is not one a rule can give "
         "(200, 301, 302, 303, 307, 308 or 404)"),
        ("DS805", "_redirects", 5, "/a never matches: line 1 (/a) matches every request "
         "it does first"),
    ]  # fmt: skip


def test_check_cli_takes_no_host_files(tmp_path: Path) -> None:
    build(tmp_path, {**HOME, "_redirects": "/a /b 999\n"})
    runner = CliRunner()
    reported = runner.invoke(app, ["check", str(tmp_path), "--format", "json"])
    assert reported.exit_code == 1
    assert '"DS802"' in reported.output
    ignored = runner.invoke(app, ["check", str(tmp_path), "--no-host-files"])
    assert ignored.exit_code == 0, ignored.output
