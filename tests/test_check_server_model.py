"""devserve.check.server_model: the resolver agrees with the real server, request by request."""

from __future__ import annotations

import functools
import http.client
from pathlib import Path
from typing import Any

import pytest

from devserve.check import CheckConfig, handler_class
from devserve.check.server_model import NAVIGATION_ACCEPT, ServerModel
from devserve.server import ThreadingHTTPServer
from tests.check_support import SH, File, Link, Tree, build
from tests.support import port_of, running_server

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


# Each configuration, and every answer the resolver must give for PARITY_PATHS
# under it (answered_by when ok, else the status): the checks below that depend
# on the answer cannot pass by never being reached.
_STATIC = {"file", "index", "listing", "missing", "hidden", "symlink"}
PARITY_CONFIGS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, _STATIC),
    ({"show_hidden": True}, _STATIC - {"hidden"}),
    ({"follow_symlinks": True}, _STATIC - {"symlink"}),
    ({"spa": True}, _STATIC | {"spa"}),
    ({"listing": False}, _STATIC - {"listing"} | {"no-listing"}),
    ({"spa": True, "listing": False, "show_hidden": True}, {"file", "index", "spa", "missing",
                                                           "symlink"}),
    ({"cgi_directories": ("/cgi-bin",)}, _STATIC | {"cgi", "forbidden"}),
]  # fmt: skip


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


@pytest.mark.parametrize(
    ("options", "answers"),
    PARITY_CONFIGS,
    ids=[",".join(options) or "default" for options, _ in PARITY_CONFIGS],
)
def test_resolution_matches_the_real_server(
    public_tmp: Path, options: dict[str, Any], answers: set[str]
) -> None:
    root = public_tmp / "site"  # scripts run as nobody when the tests run as root
    build(root, PARITY_TREE)
    handler = handler_class(CheckConfig(directory=root, **options), str(root))
    resolver = ServerModel(handler, str(root))
    factory = functools.partial(handler, directory=str(root))
    seen: set[str] = set()
    with running_server(ThreadingHTTPServer, factory) as server:
        for path in PARITY_PATHS:
            for navigation in (True, False):
                accept = NAVIGATION_ACCEPT if navigation else "*/*"
                status, body = _fetch(port_of(server), path, accept)
                outcome = resolver.resolve(path, navigation)
                seen.add(outcome.answered_by or outcome.status)
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
    assert seen == answers


@pytest.mark.parametrize(
    "options",
    [{}, {"show_hidden": True, "follow_symlinks": True}, {"spa": True, "listing": False}],
)
def test_the_handler_is_the_one_serve_builds(options: dict[str, Any], tmp_path: Path) -> None:
    handler = handler_class(CheckConfig(directory=tmp_path, **options), str(tmp_path))
    assert handler.show_hidden == options.get("show_hidden", False)
    assert handler.follow_symlinks == ("always" if options.get("follow_symlinks") else "inside")
    assert handler.list_directories == options.get("listing", True)
    assert handler.spa_fallback == ("index.html" if options.get("spa") else None)
