"""`devserve check`: every finding code, its near misses, a clean site, the CLI and its formats.

Fixture trees are built in temporary folders. Each finding code has at least one
tree that produces it and one near miss that must not; a meta-test keeps that
true as codes are added. The resolver is compared with the real server, request
by request, so "as the server would serve it" is a tested claim.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from devserve import check as check_module
from devserve.check import (
    CODES,
    RULES,
    CheckConfig,
    CheckError,
    Finding,
    Report,
    check,
    css_references,
    decode_page,
    name_problems,
    parse_ignore,
    secret_kind,
    srcset_urls,
)
from devserve.cli import app
from devserve.console import (
    THEME,
    CheckProgress,
    check_summary,
    github_annotation,
    print_check_report,
)
from devserve.server import ThreadingHTTPServer
from tests.support import port_of, running_server

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# ------------------------------------------------------------------ fixture trees


@dataclass(frozen=True)
class Link:
    """A symlink to ``target`` (as written)."""

    target: str


@dataclass(frozen=True)
class File:
    """A file with an explicit mode."""

    content: str | bytes
    mode: int = 0o644


Node = str | bytes | Link | File
Tree = dict[str, Node]


def build(root: Path, tree: Tree) -> None:
    """Create ``tree`` below ``root``; keys ending in / are folders, ../ leaves the root."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, node in tree.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            if isinstance(node, File):
                path.chmod(node.mode)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(node, Link):
            path.symlink_to(node.target)
        elif isinstance(node, File):
            if isinstance(node.content, bytes):
                path.write_bytes(node.content)
            else:
                path.write_text(node.content)
            path.chmod(node.mode)
        elif isinstance(node, bytes):
            path.write_bytes(node)
        else:
            path.write_text(node)


def page(body: str, head: str = "") -> str:
    """A well-formed UTF-8 page; ``body`` starts on line 9."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>t</title>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# Not a usable key: the PEM armour is what the check looks for.
PRIVATE_PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
OPENSSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\n-----END OPENSSH PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "project_id": "demo",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
    }
)
CGI: dict[str, Any] = {"cgi_directories": ("/cgi-bin",)}
SH = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho hi\n"


def run_check(root: Path, **options: Any) -> Report:
    settings: dict[str, Any] = {"watch_limit": 1_000_000, "runs_as_root": False}
    settings.update(options)
    return check(CheckConfig(directory=root, **settings))


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp is 0700, which nobody cannot search)."""
    base = Path(tempfile.mkdtemp(prefix="devserve-check-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


# ------------------------------------------------------------- every code, both ways


@dataclass(frozen=True)
class Case:
    code: str
    tree: Tree
    options: dict[str, Any]
    where: str | None = None  # "path" or "path:line" the finding must point at
    public: bool = False  # build under a folder nobody can reach (for DS606)


def case(
    code: str, tree: Tree, where: str | None = None, public: bool = False, **options: Any
) -> Case:
    return Case(code, tree, options, where, public)


REPORTED = [
    # -- exposure
    case("DS101", {".env": "API_KEY=abc"}, ".env", show_hidden=True),
    case("DS101", {".env.production": "DB_PASSWORD=x"}, ".env.production", show_hidden=True),
    case("DS101", {"config.txt": Link(".env"), ".env": "API_KEY=abc"}, "config.txt"),
    case("DS102", {".git/HEAD": "ref: refs/heads/main\n"}, ".git/", show_hidden=True),
    case("DS102", {"repo": Link("../project/.git"), "../project/.git/HEAD": "x"}, "repo/",
         follow_symlinks=True),
    case("DS103", {"certs/server.pem": PRIVATE_PEM}, "certs/server.pem"),
    case("DS103", {"backup/id_ed25519": OPENSSH_KEY}, "backup/id_ed25519"),
    case("DS103", {"tls.key": PRIVATE_PEM}, "tls.key"),
    case("DS103", {"client.p12": b"0\x82\x05"}, "client.p12"),
    case("DS104", {"admin/.htpasswd": "alice:$apr1$x$y"}, "admin/.htpasswd", show_hidden=True),
    case("DS105", {"config/service-account.json": SERVICE_ACCOUNT}, "config/service-account.json"),
    case("DS105", {"oauth.json": '{"web": {"client_secret": "GOCSPX-abcdefgh12"}}'}),
    case("DS106", {".netrc": "machine example.com login a password b"}, ".netrc",
         show_hidden=True),
    case("DS106", {".ssh/config": "Host *"}, ".ssh/", show_hidden=True),
    case("DS106", {".npmrc": "//registry.npmjs.org/:_authToken=npm_abc"}, show_hidden=True),
    # -- symlinks
    case("DS201", {"data.txt": Link("../outside.txt"), "../outside.txt": "x"}, "data.txt"),
    case("DS201", {"vendor": Link("../lib"), "../lib/x.js": "x"}, "vendor"),
    case("DS202", {"data.txt": Link("../outside.txt"), "../outside.txt": "x"}, "data.txt",
         follow_symlinks=True),
    case("DS203", {"gone.txt": Link("nowhere.txt")}, "gone.txt"),
    case("DS204", {"a": Link("b"), "b": Link("a")}, "a"),
    case("DS205", {"docs/up": Link(".."), "docs/x.txt": "x"}, "docs/up"),
    case("DS205", {"self": Link(".")}, "self"),
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
    case("DS504", {"a/b/": "", "c/": ""}, ".", watch_limit=3),
    case("DS504", {".git/objects/": ""}, ".", watch_limit=2),
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
    # -- names
    case("DS701", {"bad\x1bname.txt": "x"}, "bad\x1bname.txt"),
    case("DS702", {"bad\udcffname.txt": "x"}, "bad\\xffname.txt"),
    case("DS703", {" lead.txt": "x"}, " lead.txt"),
    case("DS703", {"trail/ ": ""}, "trail/ "),
    case("DS704", {"index.html": page('<a href="notes#1.html">x</a>'), "notes#1.html": page("")},
         "index.html:9"),
    case("DS704", {"index.html": page('<a href="q?.html">x</a>'), "q?.html": page("")}),
    case("DS705", {"index.html": page('<a href="my file.html">x</a>'), "my file.html": page("")},
         "index.html:9"),
]  # fmt: skip

NOT_REPORTED = [
    # -- exposure: hidden by default, templates, certificates, public keys, look-alikes
    case("DS101", {".env": "API_KEY=abc"}),
    case("DS101", {".env.example": "API_KEY="}, show_hidden=True),
    case("DS101", {"env.js": "export default {}"}),
    case("DS102", {".git/HEAD": "ref: refs/heads/main\n"}),
    case("DS102", {"git/HEAD": "x", "github.html": page("")}),
    case("DS103", {"certs/server.pem": CERT_PEM}),
    case("DS103", {"id_rsa.pub": "ssh-rsa AAAAB3Nza"}),
    case("DS103", {"slides.key": b"PK\x03\x04keynote"}),
    case("DS104", {".htpasswd": "alice:$apr1$x$y"}),
    case("DS104", {"htpasswd.md": "# how to make one"}),
    case("DS105", {"i18n/en.json": '{"password": "Password", "client_secret": ""}'}),
    case("DS105", {"package.json": '{"name": "site", "private": true}'}),
    case("DS106", {".npmrc": "registry=https://registry.npmjs.org/"}, show_hidden=True),
    case("DS106", {".netrc": "machine x"}),
    case("DS106", {"credentials.html": page("")}),
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
    case("DS504", {"a/b/": "", "c/": ""}, watch_limit=4),
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
    # -- names that are fine
    case("DS701", {"café-Ünïcode.txt": "x"}),
    case("DS702", {"café.txt": "x"}),
    case("DS703", {"in side.txt": "x"}),
    case("DS704", {"index.html": page('<a href="notes%231.html">x</a>'), "notes#1.html": ""}),
    case("DS704", {"index.html": page('<a href="page.html?x=1#y">x</a>'), "page.html": ""}),
    case("DS705", {"index.html": page('<a href="my%20file.html">x</a>'), "my file.html": ""}),
]  # fmt: skip


def _build_case(item: Case, tmp_path: Path, public: Path | None) -> Path:
    base = public if item.public and public is not None else tmp_path
    root = base / "site"
    build(root, item.tree)
    return root


def _case_id(item: Case) -> str:
    return f"{item.code}-{zlib.crc32(repr(item).encode()) % 10_000:04d}"


@pytest.mark.parametrize("item", REPORTED, ids=_case_id)
def test_finding_is_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    root = _build_case(item, tmp_path, public_tmp)
    report = run_check(root, **item.options)
    found = [f for f in report.findings if f.code == item.code]
    assert found, [f"{f.code} {f.path}: {f.message}" for f in report.findings]
    assert all(f.severity == CODES[item.code].severity for f in found)
    if item.where is not None:
        places = {f.path if f.line is None else f"{f.path}:{f.line}" for f in found}
        assert item.where in places


@pytest.mark.parametrize("item", NOT_REPORTED, ids=_case_id)
def test_near_miss_is_not_reported(item: Case, tmp_path: Path, public_tmp: Path) -> None:
    root = _build_case(item, tmp_path, public_tmp)
    report = run_check(root, **item.options)
    assert item.code not in {f.code for f in report.findings}, report.findings


def test_every_code_has_a_case_and_a_near_miss() -> None:
    assert {item.code for item in REPORTED} == set(CODES)
    assert {item.code for item in NOT_REPORTED} == set(CODES)


def test_codes_are_stable_and_documented() -> None:
    codes = [rule.code for rule in RULES]
    assert codes == sorted(codes)
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"DS[1-7]\d\d", code) for code in codes)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## `devserve check`", 1)[1].split("\n## ", 1)[0]
    for rule in RULES:
        row = re.search(rf"^\| `{rule.code}` \| (\w+) \|", section, re.M)
        assert row, f"{rule.code} is not in the README's table"
        assert row.group(1) == rule.severity


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


# --------------------------------------------------------------------- finding details


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


def test_exposure_says_which_flag_exposes_it(tmp_path: Path) -> None:
    build(tmp_path, {".env": "X=1", "keys/server.pem": PRIVATE_PEM})
    findings = {f.code: f for f in run_check(tmp_path, show_hidden=True).findings}
    assert findings["DS101"].message == "environment file served because of --show-hidden"
    assert findings["DS101"].fix.endswith("or serve without --show-hidden")
    assert findings["DS103"].message == "private key served with the default options"


def test_a_link_out_of_the_folder_exposes_what_it_leads_to(tmp_path: Path) -> None:
    build(tmp_path, {"site/keys": Link("../home/.ssh"), "home/.ssh/id_rsa": OPENSSH_KEY})
    findings = run_check(tmp_path / "site", follow_symlinks=True).findings
    assert [f.code for f in findings] == ["DS106", "DS202"]
    assert findings[0].message == "credential folder (.ssh) served because of --follow-symlinks"


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
    # v2 is checked at its own URL only; .private is served through its alias only
    assert sorted((f.code, f.path) for f in report.findings) == [
        ("DS301", "hidden-alias/index.html"),
        ("DS301", "v2/index.html"),
    ]


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


# ------------------------------------------------ the resolver agrees with the real server

PARITY_TREE: Tree = {
    "index.html": "home",
    "about.html": "about",
    "About.txt": "upper",
    "docs/index.html": "docs",
    "docs/page.html": "page",
    "docs/index.htm/": "",  # a folder named like an index page is not one
    "nolist/file.txt": "file",
    ".hidden.txt": "hidden",
    ".private/index.html": "private",
    ".well-known/x.txt": "well-known",
    "in.txt": Link("about.html"),
    "out.txt": Link("../outside.txt"),
    "../outside.txt": "outside",
    "dirlink": Link("docs"),
    "broken": Link("nowhere"),
    "app.js": "js",
    "a b.txt": "space",
    "café.txt": "cafe",
    "cgi-bin/hello.sh": File(SH, 0o755),
    "cgi-bin/sub/": "",
}
PARITY_PATHS = [
    "/", "/about.html", "/About.html", "/about.HTML", "/docs", "/docs/", "/docs/page.html",
    "/docs/page.html/", "/docs/index.htm/", "/nolist", "/nolist/", "/.hidden.txt", "/.private/",
    "/.well-known/x.txt", "/in.txt", "/out.txt", "/dirlink/page.html", "/dirlink/", "/broken",
    "/missing.html", "/some/route", "/missing.js", "/app.js", "/docs/../about.html",
    "/%2e%2e/outside.txt", "/a%20b.txt", "/caf%C3%A9.txt", "/about.html%00", "/cgi-bin/hello.sh",
    "/cgi-bin/nope.sh", "/cgi-bin/sub/", "/cgi-bin/", "/cgi-bin/hello.sh/extra/path",
]  # fmt: skip
PARITY_CONFIGS = [
    {},
    {"show_hidden": True},
    {"follow_symlinks": True},
    {"spa": True},
    {"listing": False},
    {"spa": True, "listing": False, "show_hidden": True},
    {"cgi_directories": ("/cgi-bin",)},
]


def _fetch(port: int, path: str, accept: str) -> tuple[int, bytes]:
    for _ in range(3):  # follow the directory redirect, as a browser does
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers={"Accept": accept})
            response = connection.getresponse()
            body = response.read()
            if response.status != 301:
                return response.status, body
            path = response.headers["Location"]
        finally:
            connection.close()
    raise AssertionError("redirect loop")


@pytest.mark.parametrize("options", PARITY_CONFIGS, ids=lambda o: ",".join(o) or "default")
def test_resolution_matches_the_real_server(public_tmp: Path, options: dict[str, Any]) -> None:
    root = public_tmp / "site"  # scripts run as nobody when the tests run as root
    build(root, PARITY_TREE)
    config = CheckConfig(directory=root, **options)
    handler = check_module.handler_class(config, str(root))
    resolver = check_module.server_model.ServerModel(handler, str(root))
    factory = functools.partial(handler, directory=str(root))
    with running_server(ThreadingHTTPServer, factory) as server:
        for path in PARITY_PATHS:
            for navigation in (True, False):
                accept = check_module.server_model.NAVIGATION_ACCEPT if navigation else "*/*"
                status, body = _fetch(port_of(server), path, accept)
                outcome = resolver.resolve(path, navigation)
                where = f"{path} navigation={navigation}: server {status}, check {outcome}"
                assert (status == 200) == (outcome.status == "ok"), where
                if outcome.status == "forbidden":
                    assert status == 403, where
                if status == 200 and outcome.answered_by in ("file", "index", "spa"):
                    assert outcome.fs_path is not None
                    assert body == Path(outcome.fs_path).read_bytes(), where
                if status == 200 and outcome.answered_by == "listing":
                    assert body.startswith(b"<!DOCTYPE HTML>"), where
                if outcome.answered_by == "cgi":
                    assert body == b"hi\n", where


@pytest.mark.parametrize(
    "options",
    [{}, {"show_hidden": True, "follow_symlinks": True}, {"spa": True, "listing": False}],
)
def test_the_handler_is_the_one_serve_builds(options: dict[str, Any], tmp_path: Path) -> None:
    handler = check_module.handler_class(CheckConfig(directory=tmp_path, **options), str(tmp_path))
    assert handler.show_hidden == options.get("show_hidden", False)
    assert handler.follow_symlinks == ("always" if options.get("follow_symlinks") else "inside")
    assert handler.list_directories == options.get("listing", True)
    assert handler.spa_fallback == ("index.html" if options.get("spa") else None)


# ---------------------------------------------------------------- pure helpers, as tables


@pytest.mark.parametrize(
    ("srcset", "urls"),
    [
        ("a.png", ["a.png"]),
        ("a.png 1x, b.png 2x", ["a.png", "b.png"]),
        ("a.png 480w,b.png 800w", ["a.png", "b.png"]),
        ("  a.png  ,  b.png 2x  ", ["a.png", "b.png"]),
        ("a,b.png 1x, c.png 2x", ["a,b.png", "c.png"]),
        ("a.png, b.png", ["a.png", "b.png"]),
        ("data:image/png;base64,iVBO 1x, b.png 2x", ["data:image/png;base64,iVBO", "b.png"]),
        ("a.png (weird, descriptor) 1x, b.png", ["a.png", "b.png"]),
        ("", []),
        (" , , ", []),
    ],
)
def test_srcset_urls(srcset: str, urls: list[str]) -> None:
    assert srcset_urls(srcset) == urls


@pytest.mark.parametrize(
    ("css", "refs"),
    [
        ("a { background: url(x.png) }", [(1, "x.png", "image")]),
        ("a { background: url( 'x y.png' ) }", [(1, "x y.png", "image")]),
        ('@import "a.css";\n@import url(b.css) screen;',
         [(1, "a.css", "style"), (2, "b.css", "style")]),
        ("@import url('c.css');", [(1, "c.css", "style")]),
        ("@font-face {\n src: url(f.woff2) format('woff2'),\n url(f.woff) }",
         [(2, "f.woff2", "font"), (3, "f.woff", "font")]),
        ("/* url(gone.png)\n */ b { background: URL(\"y.png\") }", [(2, "y.png", "image")]),
        ("a { color: red }", []),
    ],
)  # fmt: skip
def test_css_references(css: str, refs: list[tuple[int, str, str]]) -> None:
    assert [(r.line, r.url, r.kind) for r in css_references(css)] == refs


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"<p>plain</p>", None),
        ("<p>café</p>".encode(), None),
        (b"\xef\xbb\xbf<p>bom</p>", None),
        ("<p>x</p>".encode("utf-16"), None),
        ("<p>x</p>".encode("utf-16-le"), "wide"),
        ("<p>x</p>".encode("utf-16-be"), "wide"),
        ("<p>x</p>".encode("utf-32"), "wide"),
        (b"<p>caf\xe9</p>", "undeclared"),
        (b'<meta charset="windows-1252"><p>caf\xe9</p>', None),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=latin1">\xe9', None),
        (b'<meta charset="utf-8"><p>caf\xe9</p>', "undeclared"),
        (b'<meta charset="x-no-such-codec">\xe9', "undeclared"),
    ],
)
def test_decode_page(data: bytes, problem: str | None) -> None:
    assert decode_page(data).problem == problem


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


@pytest.mark.parametrize(
    ("name", "parent", "content", "code"),
    [
        (".env", "", "", "DS101"),
        (".env.local", "", "", "DS101"),
        (".envrc", "", "", "DS101"),
        (".env.sample", "", "", None),
        (".environment.js", "", "", None),
        (".htpasswd", "", "", "DS104"),
        (".htaccess", "", "", None),
        ("credentials", ".aws", "", "DS106"),
        ("credentials", "docs", "", None),
        (".git-credentials", "", "", "DS106"),
        ("id_rsa", "", OPENSSH_KEY, "DS103"),
        ("id_rsa.bak", "", OPENSSH_KEY, "DS103"),
        ("id_rsa.pub", "", "ssh-rsa AAAA", None),
        ("id_rsa", "", "not a key", None),
        ("key.pem", "", CERT_PEM + PRIVATE_PEM, "DS103"),
        ("key.ppk", "", "PuTTY-User-Key-File-3: ssh-ed25519", "DS103"),
        ("x.json", "", '{"refresh_token": "1//0gabcdefgh"}', "DS105"),
        ("x.json", "", '{"refresh_token": "short"}', None),
        ("x.json", "", '{"private_key_id": "abcdefghijk"}', None),
    ],
)
def test_secret_kind(
    tmp_path: Path, name: str, parent: str, content: str, code: str | None
) -> None:
    path = tmp_path / "file"
    path.write_text(content)
    found = secret_kind(name, parent, str(path))
    assert (found[0] if found else None) == code


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], set()),
        (["DS301"], {"DS301"}),
        (["ds301", " DS302 "], {"DS301", "DS302"}),
        (["DS5xx"], {c for c in CODES if c.startswith("DS5")}),
        (["ds2XX", "DS301"], {c for c in CODES if c.startswith("DS2")} | {"DS301"}),
    ],
)
def test_parse_ignore(codes: list[str], expected: set[str]) -> None:
    assert parse_ignore(codes) == expected


@pytest.mark.parametrize("code", ["DS999", "DS9xx", "301", "DS30", "DS3xxx", "*", ""])
def test_parse_ignore_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(CheckError, match="unknown finding code"):
        parse_ignore([code])


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
        r"✗ 1 error, 1 warning, 1 info in 2 files, 2 pages, 1 links \(\d\.\d\d s\)", lines[-1]
    )


def test_pretty_report_of_a_clean_tree(tmp_path: Path) -> None:
    build(tmp_path, {"index.html": page("")})
    text = _render(run_check(tmp_path), "pretty")
    assert "Errors" not in text
    assert re.search(r"^✓ no problems in 1 files, 1 pages, 0 links", text, re.M)


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


def test_world_writable_folder_is_reported_once(tmp_path: Path) -> None:
    build(tmp_path, {"cgi-bin/": File("", 0o777), "cgi-bin/a.sh": File(SH, 0o755),
                     "cgi-bin/b.sh": File(SH, 0o755)})  # fmt: skip
    found = [f for f in run_check(tmp_path, **CGI).findings if f.code == "DS605"]
    assert [(f.path, f.message) for f in found] == [
        ("cgi-bin/", "folder mode drwxrwxrwx: anyone can add or replace scripts")
    ]
    assert stat.S_IMODE((tmp_path / "cgi-bin").stat().st_mode) == 0o777
