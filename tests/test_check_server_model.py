"""devserve.check.server_model: its answers agree with the real server, request by request,
and with the server's own functions (the gateway, the reload injector) case by case."""

from __future__ import annotations

import codecs
import dataclasses
import http.client
import os
from pathlib import Path
from typing import Any

import pytest

from devserve.check import CheckConfig, decode_page
from devserve.check.server_model import NAVIGATION_ACCEPT, ServerModel, _Unheard, serve_config
from devserve.reload.inject import CannotInject, inject_html
from tests.check_support import SH, File, Link, Tree, build
from tests.support import port_of, running_devserve


def _model_and_config(config: CheckConfig, root: Path) -> tuple[ServerModel, Any]:
    """The model check builds, and the configuration `devserve serve` would run with."""
    return ServerModel.for_config(config, str(root)), serve_config(config, str(root))


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
    resolver, config = _model_and_config(CheckConfig(directory=root, **options), root)
    seen: set[str] = set()
    with running_devserve(config) as (server, _, _):
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
def test_the_policy_is_the_one_serve_builds(options: dict[str, Any], tmp_path: Path) -> None:
    model = ServerModel.for_config(CheckConfig(directory=tmp_path, **options), str(tmp_path))
    policy = model.policy
    assert policy.show_hidden == options.get("show_hidden", False)
    assert policy.follow_symlinks == ("always" if options.get("follow_symlinks") else "inside")
    assert policy.list_directories == options.get("listing", True)
    assert policy.spa_fallback == ("index.html" if options.get("spa") else None)


# ------------------------------------------------ the CGI answers agree with the gateway


@pytest.mark.parametrize(
    ("cgi_dir", "runs_in"),
    [("/cgi-bin", {"/cgi-bin"}), ("/a/cgi", {"/a/cgi"}), ("/cgi-bin/", {"/cgi-bin"})],
)
def test_cgi_folders_are_where_the_gateway_runs_scripts(
    public_tmp: Path, cgi_dir: str, runs_in: set[str]
) -> None:
    """A trailing slash names the same folder (it once made scripts be served as text)."""
    root = public_tmp / "site"
    build(root, {"cgi-bin/hello.sh": File(SH, 0o755), "a/cgi/hello.sh": File(SH, 0o755)})
    model, config = _model_and_config(CheckConfig(directory=root, cgi_directories=(cgi_dir,)), root)
    runs: set[str] = set()
    with running_devserve(config) as (s, _, _):
        for folder in ("/cgi-bin", "/a/cgi", "/a"):
            status, body = _fetch(port_of(s), f"{folder}/hello.sh", "*/*")
            if status == 200 and body == b"hi\n":
                runs.add(folder)
    assert {f for f in ("/cgi-bin", "/a/cgi", "/a") if model.is_cgi_folder(f)} == runs
    assert runs == runs_in


def test_the_gateway_refuses_the_scripts_the_model_says(public_tmp: Path) -> None:
    root = public_tmp / "site"
    build(root, {"cgi-bin/on.sh": File(SH, 0o755), "cgi-bin/off.sh": File(SH, 0o644)})
    check = CheckConfig(directory=root, cgi_directories=("/cgi-bin",))
    model, config = _model_and_config(check, root)
    refused = set()
    with running_devserve(config) as (s, _, _):
        for name in ("on.sh", "off.sh"):
            status, _ = _fetch(port_of(s), f"/cgi-bin/{name}", "*/*")
            assert (status == 403) == model.script_not_executable(str(root / "cgi-bin" / name))
            if status == 403:
                refused.add(name)
    assert refused == {"off.sh"}


PRINT_PATH = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\nprintf '%s' \"$PATH\"\n"


@pytest.mark.parametrize("extra_env", [(), (("PATH", "/usr/bin:/bin:/opt/devserve-test"),)])
def test_scripts_get_the_search_path_the_model_says(
    public_tmp: Path, extra_env: tuple[tuple[str, str], ...]
) -> None:
    root = public_tmp / "site"
    build(root, {"cgi-bin/path.sh": File(PRINT_PATH, 0o755)})
    check = CheckConfig(directory=root, cgi_directories=("/cgi-bin",))
    config = serve_config(check, str(root))
    assert config.cgi is not None
    config = dataclasses.replace(config, cgi=dataclasses.replace(config.cgi, env=extra_env))
    from devserve import serving

    model = ServerModel(serving.handler_context(config, root, _Unheard()))
    with running_devserve(config) as (s, _, _):
        status, body = _fetch(port_of(s), "/cgi-bin/path.sh", "*/*")
    assert status == 200
    assert body.decode() == model.script_search_path()


@pytest.mark.parametrize(
    ("pass_env", "extra_env", "expected"),
    [
        ((), (), os.environ.get("PATH", os.defpath)),  # PATH is always passed
        (("LANG",), (("PATH", "/opt/x"),), "/opt/x"),
    ],
)
def test_search_path_follows_the_gateway_settings(
    tmp_path: Path,
    pass_env: tuple[str, ...],
    extra_env: tuple[tuple[str, str], ...],
    expected: str,
) -> None:
    from devserve import serving
    from devserve.config import CGIConfig, ServeConfig

    config = ServeConfig(directory=tmp_path, cgi=CGIConfig(env=extra_env, pass_env=pass_env))
    model = ServerModel(serving.handler_context(config, tmp_path, _Unheard()))
    assert model.script_search_path() == expected


# ------------------------------------------------ live reload, against inject_html itself

SNIPPET = "<script>reload()</script>"


def _survives_reload(data: bytes) -> bool:
    """Whether a browser reads the page --reload sends as the page plus the snippet."""
    try:
        injected = inject_html(data, SNIPPET)
    except CannotInject:
        return True  # served as it is
    before, after = decode_page(data).text, decode_page(injected).text
    at = after.find(SNIPPET)
    return at >= 0 and after[:at] + after[at + len(SNIPPET) :] == before


BODY = "<html><body>x</body></html>"


@pytest.mark.parametrize(
    ("data", "corrupts"),
    [
        (BODY.encode(), False),
        (codecs.BOM_UTF8 + BODY.encode(), False),
        (b"<html><body>caf\xe9</body></html>", False),  # windows-1252, guessed
        (codecs.BOM_UTF16_LE + BODY.encode("utf-16-le"), False),  # re-encoded by the server
        (codecs.BOM_UTF16_BE + BODY.encode("utf-16-be"), False),
        (BODY.encode("utf-16-le"), True),  # no byte-order mark: edited as ASCII bytes
        (BODY.encode("utf-16-be"), True),
        (codecs.BOM_UTF32_LE + BODY.encode("utf-32-le"), True),  # taken for UTF-16
        (codecs.BOM_UTF32_BE + BODY.encode("utf-32-be"), True),
    ],
)
def test_reload_corrupts_the_pages_inject_html_breaks(data: bytes, corrupts: bool) -> None:
    decoded = decode_page(data)
    assert ServerModel.reload_corrupts(data, "text/html", decoded.codec, decoded.wide) == corrupts
    assert _survives_reload(data) == (not corrupts)


@pytest.mark.parametrize(
    ("page", "at_end"),
    [
        (BODY, False),
        ("<html><head><title>t</title></head>x", False),
        ("<BODY>x</BODY >", False),
        ("café</body>", False),
        ("x</body", False),  # the tag at the very end still counts
        ("<p>x</p>", True),
        ("<bodyguard>x</bodyguard>", True),
        ("x</body\x0b>", True),  # a vertical tab does not end the tag name for the server
        ("x</body\xa0>", True),  # nor does a no-break space
    ],
)
def test_reload_script_goes_where_inject_html_puts_it(page: str, at_end: bool) -> None:
    assert ServerModel.reload_appended_at_end(page) == at_end
    assert inject_html(page.encode(), SNIPPET).endswith(SNIPPET.encode()) == at_end
    utf16 = codecs.BOM_UTF16_LE + page.encode("utf-16-le")  # edited as text, not bytes
    assert inject_html(utf16, SNIPPET).endswith(SNIPPET.encode("utf-16-le")) == at_end


def test_only_html_gets_the_reload_script() -> None:
    assert ServerModel.injects_reload("text/html")
    assert not ServerModel.injects_reload("text/css")
    assert not ServerModel.injects_reload("application/xhtml+xml")


# ------------------------------------------------------------------------ names to paths


@pytest.mark.parametrize(
    "name",
    ["plain.txt", "a b.txt", "50%off.html", "notes#1.html", "q?.html", "café.txt",
     "bad\udcffname.txt", "semi;colon+plus&amp"],
)  # fmt: skip
def test_url_for_is_the_inverse_of_translate_path(tmp_path: Path, name: str) -> None:
    root = str(tmp_path)
    model = ServerModel.for_config(CheckConfig(directory=tmp_path), root)
    assert model.fs_path(f"/dir/{name}") == os.path.join(root, "dir", name)
