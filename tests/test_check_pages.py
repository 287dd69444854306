"""devserve.check.pages: links (DS3xx), content types (DS4xx), live reload (DS501-DS503),
names in links (DS704, DS705); a realistic clean site and a clean single-page app."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserve.check import Finding
from tests.check_support import (
    Case,
    Link,
    Tree,
    assert_not_reported,
    assert_reported,
    build,
    case,
    case_id,
    page,
    run_check,
)

REPORTED = [
    # -- links
    case("DS301", {"index.html": page('<a href="missing.html">x</a>')}, "index.html:9"),
    case("DS301", {"index.html": page('<img src="a.png" srcset="a.png 1x, b.png 2x">'),
                   "a.png": b""}, "index.html:9"),
    case("DS301", {"style.css": "body {\n  background: url(img/bg.png);\n}\n"}, "style.css:2"),
    case("DS301", {"index.html": page("", "<style>\n@import 'gone.css';\n</style>")},
         "index.html:7"),
    case("DS301", {"index.html": page('<script src="/app.js"></script>')}, spa=True),
    case("DS301", {"index.html": page('<video poster="p.jpg"></video>')}, "index.html:9"),
    case("DS302", {"index.html": page('<a href="About.html">x</a>'), "about.html": page("")},
         "index.html:9"),
    case("DS302", {"index.html": page('<img src="IMG/Logo.png">'), "img/logo.png": b""}),
    case("DS303", {"index.html": page('<a href="files/">x</a>'), "files/a.txt": "a"},
         "index.html:9", listing=False),
    case("DS304", {"index.html": page('<link rel="stylesheet" href=".theme/site.css">'),
                   ".theme/site.css": "body{}"}, "index.html:9"),
    case("DS304", {"index.html": page('<a href="data.txt">x</a>'),
                   "data.txt": Link("../outside.txt"), "../outside.txt": "x"}),
    case("DS305", {"index.html": page('<script src="app.js"></script>'), "app.js": ""},
         "index.html:9", spa=True),
    # -- MIME
    case("DS401", {"index.html": page('<script type="module" src="main.ts"></script>'),
                   "main.ts": "export {}"}, "index.html:9"),
    case("DS401", {"index.html": page('<link rel="modulepreload" href="lib.jsx">'),
                   "lib.jsx": ""}),
    case("DS402", {"index.html": page('<script src="legacy.coffee"></script>'),
                   "legacy.coffee": ""}, "index.html:9"),
    case("DS403", {"index.html": page('<link rel="stylesheet" href="theme.scss">'),
                   "theme.scss": ""}, "index.html:9"),
    case("DS403", {"site.css": "@import url(vars.less);", "vars.less": ""}, "site.css:1"),
    case("DS404", {"pkg/app.bin": b"\x00asm\x01\x00\x00\x00"}, "pkg/app.bin"),
    case("DS405", {"fonts/inter": b"wOF2\x00\x01\x00\x00"}, "fonts/inter"),
    case("DS405", {"site.css": "@font-face {\n  font-family: X;\n  src: url(x.font);\n}",
                   "x.font": b""}, "site.css:3"),
    case("DS406", {"index.html": page('<link rel="manifest" href="site.manifest">'),
                   "site.manifest": "{}"}, "index.html:9"),
    case("DS407", {"index.html": page('<a href="LICENSE">license</a>'), "LICENSE": "MIT"},
         "index.html:9"),
    # -- live reload
    case("DS501", {"partial.html": "<nav><a href='/'>home</a></nav>\n"}, "partial.html"),
    case("DS501", {"odd.html": "<bodyguard>x</bodyguard>"}, "odd.html"),
    case("DS502", {"old.html": b"<html><body>caf\xe9</body></html>"}, "old.html"),
    case("DS503", {"wide.html": "<html><body>x</body></html>".encode("utf-16-le")}, "wide.html"),
    case("DS503", {"wider.html": "<html><body>x</body></html>".encode("utf-32")}),
    # -- names written in links
    case("DS704", {"index.html": page('<a href="notes#1.html">x</a>'), "notes#1.html": page("")},
         "index.html:9"),
    case("DS704", {"index.html": page('<a href="q?.html">x</a>'), "q?.html": page("")}),
    case("DS705", {"index.html": page('<a href="my file.html">x</a>'), "my file.html": page("")},
         "index.html:9"),
]  # fmt: skip

NOT_REPORTED = [
    # -- links that work
    case("DS301", {"index.html": page('<a href="about.html?x=1#top">x</a>'),
                   "about.html": page("")}),
    case("DS301", {"index.html": page('<a href="https://example.com/missing">x</a>'
                                      '<a href="mailto:a@b.c">m</a><a href="#nowhere">f</a>'
                                      '<img src="data:image/gif;base64,R0lG">')}),
    case("DS301", {"index.html": page('<a href="/dashboard/users">app</a>')}, spa=True),
    case("DS301", {"index.html": page('<a href="docs">x</a>'), "docs/index.html": page("")}),
    case("DS301", {"style.css": "/* url(missing.png) */ body { color: red }"}),
    case("DS301", {"index.html": page('<a href="{{ url }}">t</a><img src="${src}">')}),
    case("DS302", {"index.html": page('<a href="about.html">x</a>'), "about.html": page("")}),
    case("DS303", {"index.html": page('<a href="files/">x</a>'), "files/a.txt": "a"}),
    case("DS303", {"index.html": page('<a href="docs/">x</a>'), "docs/index.htm": "<p></p>"},
         listing=False),
    case("DS303", {"index.html": page('<a href="files/">x</a>'), "files/a.txt": "a"},
         listing=False, spa=True),
    case("DS304", {"index.html": page('<a href=".well-known/security.txt">x</a>'),
                   ".well-known/security.txt": "Contact: x"}),
    case("DS304", {"index.html": page('<link rel="stylesheet" href=".theme/site.css">'),
                   ".theme/site.css": "body{}"}, show_hidden=True),
    case("DS305", {"index.html": page('<script src="/app.js"></script>'), "app.js": ""},
         spa=True),
    case("DS305", {"index.html": page('<script src="app.js"></script>', '<base href="/">'),
                   "app.js": ""}, spa=True),
    case("DS305", {"index.html": page('<script src="app.js"></script>'), "app.js": ""}),
    # -- types browsers accept
    case("DS401", {"index.html": page('<script type="module" src="main.mjs"></script>'),
                   "main.mjs": ""}),
    case("DS402", {"index.html": page('<script src="legacy.js"></script>'
                                      '<script type="text/x-template" src="t.tpl"></script>'),
                   "legacy.js": "", "t.tpl": ""}),
    case("DS403", {"index.html": page('<link rel="stylesheet/less" href="theme.less">'),
                   "theme.less": ""}),
    case("DS404", {"pkg/app.wasm": b"\x00asm\x01\x00\x00\x00"}),
    case("DS405", {"fonts/inter.woff2": b"wOF2\x00\x01\x00\x00",
                   "site.css": "@font-face { src: url(fonts/inter.woff2) }"}),
    case("DS406", {"index.html": page('<link rel="manifest" href="site.webmanifest">'),
                   "site.webmanifest": "{}"}),
    case("DS406", {"index.html": page('<link rel="manifest" href="manifest.json">'),
                   "manifest.json": "{}"}),
    case("DS407", {"index.html": page('<a href="LICENSE.txt">license</a>'), "LICENSE.txt": ""}),
    case("DS407", {"CNAME": "example.com"}),
    case("DS407", {"index.html": page('<a download href="data.bin">get</a>'), "data.bin": b""}),
    # -- pages the reload script goes into cleanly
    case("DS501", {"index.html": page("")}),
    case("DS501", {"head-only.html": "<html><head><title>t</title></head>"}),
    case("DS501", {"empty.html": ""}),
    case("DS502", {"old.html": b'<meta charset="iso-8859-1"><body>caf\xe9</body>'}),
    case("DS502", {"new.html": "<body>café</body>"}),
    case("DS503", {"bom.html": "<html><body>x</body></html>".encode("utf-16")}),
    # -- names written in links, encoded
    case("DS704", {"index.html": page('<a href="notes%231.html">x</a>'), "notes#1.html": ""}),
    case("DS704", {"index.html": page('<a href="page.html?x=1#y">x</a>'), "page.html": ""}),
    case("DS705", {"index.html": page('<a href="my%20file.html">x</a>'), "my file.html": ""}),
]  # fmt: skip


@pytest.mark.parametrize("item", REPORTED, ids=case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_reported(item, tmp_path, public_tmp)


@pytest.mark.parametrize("item", NOT_REPORTED, ids=case_id)
def test_near_miss_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    assert_not_reported(item, tmp_path, public_tmp)


# ------------------------------------------------------------------ a realistic clean site

CLEAN_SITE: Tree = {
    "index.html": page(
        "\n".join(
            [
                '<a href="docs/">Docs</a> <a href="docs">Docs</a> <a href="./docs/#install">x</a>',
                '<a href="blog/2024/post.html#comments">Post</a>',
                '<a href="about.html?ref=home">About</a> <a href="#main">skip</a>',
                '<a href="">me</a>',
                '<a href="?page=2">2</a> <a href="my%20notes.html">notes</a>',
                '<a href="caf%C3%A9.html">café</a> <a href="café.html">café</a>',
                '<a href="files/">files</a> <a href="/downloads/report.pdf">pdf</a>',
                '<a href="mailto:a@example.com">mail</a> <a href="tel:+15555550100">tel</a>',
                '<a href="javascript:void(0)">js</a> <a href="//cdn.example.com/x.js">cdn</a>',
                '<a href="https://example.org/missing">ext</a> <a href="redirect.html">old</a>',
                '<a href=".well-known/security.txt">security</a> <a href="50%25off.html">sale</a>',
                '<img src="img/hero.png" srcset="img/hero-480.png 480w, img/hero-800.png 800w"'
                ' sizes="(max-width: 600px) 480px, 800px" alt="">',
                '<picture><source srcset="img/hero.webp 1x,img/hero@2x.webp 2x" type="image/webp">'
                '<img src="img/hero.png" alt=""></picture>',
                '<video poster="img/poster.jpg" src="media/clip.mp4">'
                '<track src="media/clip.vtt" kind="captions"></video>',
                '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="">',
                "<div style=\"background: url('img/bg.png')\"></div>",
                "<style>\n@font-face { font-family: X; src: url(fonts/inter.woff2) format(woff2) }"
                '\n.hero { background-image: url( "img/bg.png" ); }\n</style>',
                '<svg><use href="img/icons.svg#star"></use></svg>',
            ]
        ),
        "\n".join(
            [
                '<link rel="stylesheet" href="css/site.css?v=3">',
                '<link rel="icon" href="/favicon.ico">',
                '<link rel="manifest" href="/app.webmanifest">',
                '<link rel="preconnect" href="https://fonts.example.com">',
                '<link rel="canonical" href="https://example.com/">',
                '<link rel="preload" href="fonts/inter.woff2" as="font" crossorigin>',
                '<script type="module" src="js/app.mjs"></script>',
                '<script src="js/legacy.js" defer></script>',
                '<script type="importmap">{"imports": {"lib": "./js/lib.mjs"}}</script>',
            ]
        ),
    ),
    "docs/index.html": page(
        '<a href="../">home</a> <a href="../about.html">about</a> <a href="guide/">guide</a>'
        '<img src="../img/hero.png" alt="">'
    ),
    # <base href> changes where relative links lead: without it these would be 404s.
    "docs/guide/index.html": page(
        '<a href="guide/">self</a> <a href="../about.html">about</a> <img src="../img/hero.png">',
        '<base href="/docs/">',
    ),
    "blog/2024/post.html": page(
        '<a href="../../index.html">home</a> <a href="../../docs/guide/#install">guide</a>'
        '<a href="../../../../../about.html">clamped at the root</a>',
        '<link rel="stylesheet" href="/css/site.css">',
    ),
    "about.html": page("<p>about</p>"),
    "my notes.html": page("<p>notes</p>"),
    "café.html": page("<p>café</p>"),
    "50%off.html": page("<p>sale</p>"),
    "redirect.html": page("", '<meta http-equiv="refresh" content="0; url=about.html">'),
    "css/site.css": (
        '@import url("base.css");\n@import "print.css" print;\n'
        "body { background: url(../img/bg.png) }\n"
        '@font-face { font-family: X; src: url("../fonts/inter.woff2") format("woff2"),\n'
        "  url(../fonts/inter.woff) format('woff'); }\n"
        "/* url(missing.png) is only a comment */\n"
        ".x { background: url(data:image/png;base64,iVBORw0KGgo=) }\n"
    ),
    "css/base.css": "body { margin: 0 }",
    "css/print.css": "body { color: black }",
    "js/app.mjs": "import './lib.mjs'",
    "js/lib.mjs": "export {}",
    "js/legacy.js": "",
    "img/hero.png": b"\x89PNG",
    "img/hero-480.png": b"\x89PNG",
    "img/hero-800.png": b"\x89PNG",
    "img/hero.webp": b"RIFF",
    "img/hero@2x.webp": b"RIFF",
    "img/poster.jpg": b"\xff\xd8",
    "img/bg.png": b"\x89PNG",
    "img/icons.svg": "<svg/>",
    "fonts/inter.woff2": b"wOF2",
    "fonts/inter.woff": b"wOFF",
    "media/clip.mp4": b"",
    "media/clip.vtt": "WEBVTT",
    "favicon.ico": b"\x00\x00\x01\x00",
    "app.webmanifest": "{}",
    "files/data.csv": "a,b",
    ".well-known/security.txt": "Contact: mailto:security@example.com",
    "downloads/report.pdf": b"%PDF-1.7",
    ".gitignore": "node_modules/",
    ".git/HEAD": "ref: refs/heads/main",
}


def test_a_realistic_clean_site_has_no_findings(tmp_path: Path) -> None:
    build(tmp_path, CLEAN_SITE)
    report = run_check(tmp_path)
    assert report.findings == ()
    assert report.pages == 9
    assert report.links == 50  # every local URL above, externals and fragments left out
    assert not report.failed(strict=True)


def test_a_clean_single_page_app(tmp_path: Path) -> None:
    build(
        tmp_path,
        {
            "index.html": page(
                '<a href="/dashboard">d</a> <a href="/users/42">u</a> <a href="/">home</a>',
                '<script type="module" src="/assets/app.js"></script>'
                '<link rel="stylesheet" href="/assets/app.css">',
            ),
            "assets/app.js": "",
            "assets/app.css": "",
        },
    )
    assert run_check(tmp_path, spa=True, listing=False).findings == ()
    # the same page without --spa: its routes are 404s
    codes = [f.code for f in run_check(tmp_path).findings]
    assert codes == ["DS301", "DS301"]


def test_the_broken_base_href_makes_the_difference(tmp_path: Path) -> None:
    build(tmp_path, {"docs/guide/index.html": page('<img src="../img/a.png">'), "img/a.png": ""})
    report = run_check(tmp_path)
    assert [(f.code, f.path, f.line) for f in report.findings] == [
        ("DS301", "docs/guide/index.html", 9)
    ]
    assert "did you mean" not in report.findings[0].message


def test_link_findings_name_the_file_the_line_and_a_suggestion(tmp_path: Path) -> None:
    body = '<p>one</p>\n<p>two</p>\n<a href="docs/gude.html">guide</a>'
    build(tmp_path, {"index.html": page(body), "docs/guide.html": page("")})
    (finding,) = run_check(tmp_path).findings
    assert finding == Finding(
        "error",
        "DS301",
        "index.html",
        11,
        "docs/gude.html is not found (404); did you mean /docs/guide.html?",
        "fix the link or add the missing file",
    )
