"""Previewing a site as it will be hosted, over real sockets (`Site.respond` on both paths).

Every table row is asked of `devserve serve`'s event loop and of its threaded
handler (sharing one site), which must answer byte for byte alike; then what
the loop remembers is checked to follow the files it was computed from: a
rule file created, changed or removed, a 404.html or about.html appearing.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devserve import _reporting, serving
from devserve._handler_dev import HandlerContext
from devserve._loop import LoopHTTPServer
from devserve.config import CGIConfig, ReloadConfig, ServeConfig
from devserve.reload.hub import ReloadHub
from tests.support import Collector, port_of, raw_exchange, running_devserve, status_of

NOT_FOUND_PAGE = b"<!doctype html><title>lost</title><body>Nothing here.</body>\n"
REDIRECTS = """\
# moved pages
/old-about /about 301
/news/* /blog/:splat 302
/store id=:id /blog/:id 307
/see-other /about 303
/temp /about 307!
/perm /about 308
/app/* /app/index.html 200
/en/* /en/404.html 404
/about /never 301
/forced-home /blog/hello 200!
/x /y 999
/to-script /cgi-bin/hello.py 200
"""
HEADERS = """\
/*
  X-Frame-Options: DENY
  X-Robots-Tag: noindex
/blog/*
  ! X-Frame-Options
  Cache-Control: public, max-age=60
  X-Post: :splat
/*.css
  X-Robots-Tag: nosnippet
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for folder in ("blog", "app", "en", "docs", "cgi-bin"):
        (root / folder).mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "about.html").write_text("<h1>about</h1>")
    (root / "404.html").write_bytes(NOT_FOUND_PAGE)
    (root / "blog" / "hello.html").write_text("<p>hello post</p>")
    (root / "app" / "index.html").write_text("<div id=app></div>")
    (root / "en" / "404.html").write_text("<p>not found, in English</p>")
    (root / "docs" / "index.html").write_text("docs")
    (root / "style.css").write_text("body{}")
    (root / "cgi-bin" / "hello.py").write_text("#!/bin/sh\necho secret source\n")
    (root / "_redirects").write_text(REDIRECTS)
    (root / "_headers").write_text(HEADERS)
    return root


# --------------------------------------------------------------------------- both paths


class ThreadsOnly(LoopHTTPServer):
    """devserve's handlers with no site in the loop: a thread answers every request."""

    def __init__(self, address: tuple[str, int], handler: Any, context: HandlerContext) -> None:
        self.context = context
        super().__init__(address, handler, site=None, journal=context.journal)


@contextlib.contextmanager
def both_paths(config: ServeConfig) -> Iterator[tuple[int, int, Collector]]:
    """Ports of `devserve serve`'s event loop and of its threaded handler, one site."""
    log = Collector()
    journal = _reporting.ServerJournal(serving.Stats(), log, config.quiet)
    hub = ReloadHub("host") if config.reload is not None else None
    root = serving.check_directory(config.directory)
    context = serving.handler_context(config, root, journal, hub, lambda key, text: None)
    loop = serving.DevServer(("127.0.0.1", 0), config, context, journal)
    threads = ThreadsOnly(("127.0.0.1", 0), loop.RequestHandlerClass, context)
    runners = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        for server in (loop, threads)
    ]
    for runner in runners:
        runner.start()
    try:
        yield port_of(loop), port_of(threads), log
    finally:
        if hub is not None:
            hub.close()
        for server in (loop, threads):
            server.shutdown()
            server.server_close()
        for runner in runners:
            runner.join(10)


def request(target: str, method: str = "GET", *fields: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: x", *fields, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def without_date(response: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", response)


class Response:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        self.status = status_of(raw)
        self.fields: dict[str, list[str]] = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            self.fields.setdefault(name.lower(), []).append(value.strip())

    def get(self, name: str) -> str | None:
        values = self.fields.get(name.lower())
        return ", ".join(values) if values else None


def ask_both(loop: int, threads: int, data: bytes) -> Response:
    """The loop's answer, once checked to be the threaded handler's too."""
    from_loop = raw_exchange(loop, data)
    from_thread = raw_exchange(threads, data)
    assert without_date(from_loop) == without_date(from_thread), data
    return Response(from_loop)


# (target, extra request fields, status, Location, a body fragment)
ROWS: list[tuple[str, tuple[str, ...], int, str | None, bytes | None]] = [
    ("/", (), 200, None, b"home"),
    ("/about", (), 200, None, b"about"),  # about.html, without --clean-urls
    ("/about.html", (), 200, None, b"about"),
    ("/docs", (), 301, "/docs/", None),  # a folder without docs.html: add the slash
    ("/old-about", (), 301, "/about", None),
    ("/old-about?utm=1", (), 301, "/about?utm=1", None),  # the query is kept
    ("/news/2024/a%20b", (), 302, "/blog/2024/a%20b", None),
    ("/store?id=hello", (), 307, "/blog/hello?id=hello", None),
    ("/store", (), 404, None, NOT_FOUND_PAGE),  # the parameter is missing: no rule
    ("/see-other", (), 303, "/about", None),
    ("/temp", (), 307, "/about", None),
    ("/perm", (), 308, "/about", None),
    ("/app/settings/profile", (), 200, None, b"id=app"),  # a rewrite keeps the URL
    ("/app/", (), 200, None, b"id=app"),  # content is there: the rule is shadowed
    ("/en/missing", (), 404, None, b"in English"),
    ("/forced-home", (), 200, None, b"hello post"),
    ("/x", (), 404, None, NOT_FOUND_PAGE),  # a rule with a bad status is ignored
    ("/to-script", (), 404, None, NOT_FOUND_PAGE),  # a rewrite never serves a script's source
    ("/_redirects", (), 404, None, NOT_FOUND_PAGE),  # hosts hide their rule files
    ("/_headers", (), 404, None, NOT_FOUND_PAGE),
    ("/%5Fheaders", (), 404, None, NOT_FOUND_PAGE),
    ("/missing", (), 404, None, NOT_FOUND_PAGE),
    ("/404.html", (), 200, None, NOT_FOUND_PAGE),
    ("/missing", ("If-None-Match: *",), 404, None, NOT_FOUND_PAGE),  # a 404 is never a 304
    ("/missing", ("Range: bytes=0-3",), 404, None, NOT_FOUND_PAGE),  # nor partial
    ("/blog/hello", ("If-None-Match: *",), 304, None, b""),
]


@pytest.mark.parametrize(("target", "fields", "status", "location", "body"), ROWS)
def test_host_conventions_on_the_loop_and_in_threads(
    site: Path,
    target: str,
    fields: tuple[str, ...],
    status: int,
    location: str | None,
    body: bytes | None,
) -> None:
    config = ServeConfig(directory=site, quiet=True, cgi=CGIConfig(directories=("/cgi-bin",)))
    with both_paths(config) as (loop, threads, _):
        reply = ask_both(loop, threads, request(target, "GET", *fields))
        assert reply.status == status
        assert reply.get("Location") == location
        if body is not None:
            assert reply.body == body if body in (NOT_FOUND_PAGE, b"") else body in reply.body
        if status == 404:
            assert reply.get("ETag") is None
            assert reply.get("Accept-Ranges") is None


def test_head_of_a_404_page_is_its_get_without_the_body(site: Path) -> None:
    with both_paths(ServeConfig(directory=site, quiet=True)) as (loop, threads, _):
        got = ask_both(loop, threads, request("/missing"))
        head = ask_both(loop, threads, request("/missing", "HEAD"))
    assert head.status == got.status == 404
    assert head.body == b""
    assert head.get("Content-Length") == got.get("Content-Length") == str(len(NOT_FOUND_PAGE))
    assert head.get("Content-Type") == got.get("Content-Type") == "text/html"


def test_a_large_404_page_is_sent_whole(site: Path) -> None:
    page = b"<p>" + b"x" * (400 * 1024) + b"</p>"  # beyond the file table: sent from disk
    (site / "404.html").write_bytes(page)
    with both_paths(ServeConfig(directory=site, quiet=True)) as (loop, threads, _):
        assert ask_both(loop, threads, request("/missing")).body == page


def test_rule_headers_and_their_precedence(site: Path) -> None:
    config = ServeConfig(directory=site, quiet=True, cors=True, headers=(("X-Robots-Tag", "all"),))
    with both_paths(config) as (loop, threads, _):
        page = ask_both(loop, threads, request("/about"))
        post = ask_both(loop, threads, request("/blog/hello"))
        css = ask_both(loop, threads, request("/style.css"))
        moved = ask_both(loop, threads, request("/old-about"))
        missing = ask_both(loop, threads, request("/missing"))
    assert page.get("X-Frame-Options") == "DENY"
    assert page.get("Cache-Control") == "no-cache"  # devserve's default
    assert page.get("X-Robots-Tag") == "all"  # --header wins over _headers
    assert page.get("Access-Control-Allow-Origin") == "*"
    assert post.get("X-Frame-Options") is None  # detached for /blog/*
    assert post.get("Cache-Control") == "public, max-age=60"  # _headers replaces the default
    assert post.get("X-Post") == "hello"
    assert css.get("X-Robots-Tag") == "all"
    assert moved.get("X-Frame-Options") is None  # redirects get no rule headers
    assert missing.get("X-Frame-Options") == "DENY"  # a 404 page does


def test_spa_routes_take_index_and_missing_assets_the_404_page(site: Path) -> None:
    config = ServeConfig(directory=site, quiet=True, spa=True)
    with both_paths(config) as (loop, threads, _):
        route = ask_both(loop, threads, request("/settings/profile"))
        asset = ask_both(loop, threads, request("/missing.js"))
        ruled = ask_both(loop, threads, request("/old-about"))
    assert (route.status, route.body) == (200, b"<h1>home</h1>")
    assert (asset.status, asset.body) == (404, NOT_FOUND_PAGE)
    assert ruled.status == 301  # a rule comes before the app's fallback


CLEAN_ROWS = [
    ("/about.html", 308, "/about"),
    ("/about.html?x=1", 308, "/about?x=1"),
    ("/about/", 308, "/about"),
    ("/index.html", 308, "/"),
    ("/docs/index.html", 308, "/docs/"),
    ("/about", 200, None),
    ("/docs/", 200, None),
    ("/404.html", 308, "/404"),
]


@pytest.mark.parametrize(("target", "status", "location"), CLEAN_ROWS)
def test_clean_urls_redirect_once_and_never_loop(
    site: Path, target: str, status: int, location: str | None
) -> None:
    config = ServeConfig(directory=site, quiet=True, clean_urls=True)
    with both_paths(config) as (loop, threads, _):
        reply = ask_both(loop, threads, request(target))
        assert (reply.status, reply.get("Location")) == (status, location)
        if location is not None:
            assert ask_both(loop, threads, request(location)).status == 200


def test_no_host_files_serves_them_as_files_and_applies_no_rule(site: Path) -> None:
    config = ServeConfig(directory=site, quiet=True, host_files=False)
    with both_paths(config) as (loop, threads, _):
        rules = ask_both(loop, threads, request("/_redirects"))
        moved = ask_both(loop, threads, request("/old-about"))
        page = ask_both(loop, threads, request("/about"))
    assert (rules.status, rules.body) == (200, REDIRECTS.encode())
    assert (moved.status, moved.body) == (404, NOT_FOUND_PAGE)  # 404.html still answers
    assert page.get("X-Frame-Options") is None


def test_a_displayed_404_page_gets_the_reload_script(site: Path) -> None:
    config = ServeConfig(directory=site, quiet=True, reload=ReloadConfig())
    with both_paths(config) as (loop, threads, _):
        shown = ask_both(loop, threads, request("/missing", "GET", "Sec-Fetch-Dest: document"))
        fetched = ask_both(loop, threads, request("/missing", "GET", "Sec-Fetch-Dest: empty"))
    assert shown.status == fetched.status == 404
    assert b"__devserve__" in shown.body
    assert shown.get("Cache-Control") == "no-store"
    assert shown.get("X-Frame-Options") == "DENY"
    assert fetched.body == NOT_FOUND_PAGE


def test_the_log_says_which_rule_answered(site: Path) -> None:
    with running_devserve(ServeConfig(directory=site)) as (server, log, _):
        port = port_of(server)
        for target in ("/old-about", "/app/x", "/missing", "/About"):
            raw_exchange(port, request(target))
    records = {record.path: record for record in log.records()}
    assert (records["/old-about"].served, records["/old-about"].note) == (
        "redirect",
        "_redirects line 2",
    )
    assert (records["/app/x"].served, records["/app/x"].note) == (
        "rewrite",
        "/app/index.html (_redirects line 8)",
    )
    assert records["/About"].note == "did you mean /about.html"  # still in the log
    assert "_redirects line 12 ignored: status 999" in " ".join(log.warnings())


# --------------------------------------------------------------------------- remembered


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read counts as settled, so the loop remembers replies at once."""
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)


def remembered(server: Any, data: bytes) -> bool:
    return server.replies is not None and server.replies.recall(data) is not None


def status(reply: Response) -> object:
    return reply.status


def shows_404_page(reply: Response) -> object:
    return reply.body == NOT_FOUND_PAGE


def frame_options(reply: Response) -> object:
    return reply.get("X-Frame-Options")


def body_is(expected: bytes) -> Any:
    return lambda reply: reply.body == expected


# (what is there first, target, the change, what is observed, before, after)
CHANGES: list[tuple[str | None, str, str, Any, object, object]] = [
    (None, "/about", "_headers: /*\n  X-Frame-Options: SAMEORIGIN\n", frame_options,
     "DENY", "SAMEORIGIN"),
    (None, "/about", "-_headers", frame_options, "DENY", None),
    ("-_headers", "/about", "_headers: /*\n  X-Frame-Options: DENY\n", frame_options,
     None, "DENY"),
    (None, "/old-about", "_redirects: /old-about /x 302\n", status, 301, 302),
    (None, "/old-about", "-_redirects", status, 301, 404),
    ("-_redirects", "/old-about", "_redirects: /old-about /x 302\n", status, 404, 302),
    (None, "/contact", "contact.html: hi", status, 404, 200),
    (None, "/gone", "-404.html", shows_404_page, True, False),
    ("-404.html", "/gone", "404.html: <p>lost</p>", body_is(b"<p>lost</p>"), False, True),
    (None, "/about", "about: plain", body_is(b"plain"), False, True),
]  # fmt: skip


def apply(site: Path, change: str) -> None:
    """``-name`` removes a file; ``name: text`` writes it."""
    if change.startswith("-"):
        (site / change[1:]).unlink()
    else:
        name, _, text = change.partition(": ")
        (site / name).write_text(text)


@pytest.mark.parametrize(("setup", "target", "change", "observe", "before", "after"), CHANGES)
def test_remembered_replies_follow_what_they_were_made_of(
    site: Path,
    settled: None,
    setup: str | None,
    target: str,
    change: str,
    observe: Any,
    before: object,
    after: object,
) -> None:
    if setup is not None:
        apply(site, setup)
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        port = port_of(server)
        data = request(target)
        first = Response(raw_exchange(port, data))
        assert remembered(server, data), "the loop should remember this reply"
        again = Response(raw_exchange(port, data))
        apply(site, change)
        second = Response(raw_exchange(port, data))
    assert observe(first) == observe(again) == before
    assert observe(second) == after


def test_nothing_is_remembered_while_a_rule_file_is_racy(site: Path) -> None:
    (site / "_redirects").write_text("/a /b 302\n")  # changed a moment ago
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        data = request("/about")
        assert Response(raw_exchange(port_of(server), data)).status == 200
        assert not remembered(server, data)


def test_a_reply_depends_on_its_file_and_the_absent_rule_files(site: Path, settled: None) -> None:
    (site / "_redirects").unlink()
    (site / "_headers").unlink()
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        data = request("/style.css")
        raw_exchange(port_of(server), data)
        assert isinstance(server, LoopHTTPServer)
        assert server.replies is not None
        again = server.replies.answers[data]
    assert again.deps == (
        (str(site / "style.css"), again.deps[0][1]),
        (str(site / "_redirects"), None),
        (str(site / "_headers"), None),
    )


def test_no_host_files_adds_nothing_to_what_a_reply_depends_on(site: Path, settled: None) -> None:
    config = ServeConfig(directory=site, quiet=True, host_files=False)
    with running_devserve(config) as (server, _, _):
        data = request("/style.css")
        raw_exchange(port_of(server), data)
        assert isinstance(server, LoopHTTPServer)
        assert server.replies is not None
        assert [path for path, _ in server.replies.answers[data].deps] == [str(site / "style.css")]


def test_a_rule_can_be_raced_by_nothing_but_a_new_request(site: Path, settled: None) -> None:
    """A kept-alive client sees a rule change on its very next request."""
    with (
        running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock,
    ):
        keep = b"GET /old-about HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(keep)
        assert b" 301 " in sock.recv(65536)
        sock.sendall(keep)
        assert b" 301 " in sock.recv(65536)
        (site / "_redirects").write_text("/old-about /elsewhere 302\n")
        sock.sendall(keep)
        assert b"Location: /elsewhere" in sock.recv(65536)


def test_start_up_problems_are_reported_before_any_request(site: Path) -> None:
    log = Collector()
    config = replace(ServeConfig(directory=site), port=0)
    server, _ = serving.create_server(config, log, serving.Stats())
    try:
        assert server.context.site.host is not None
        state = server.context.site.host.current()
        assert [str(p) for p in state.problems] == [
            "_redirects line 12 ignored: status 999 is not one a rule can give "
            "(200, 301, 302, 303, 307, 308 or 404)"
        ]
        assert log.warnings() == [str(state.problems[0])]
    finally:
        server.server_close()


def test_a_remembered_404_follows_its_page(site: Path, settled: None) -> None:
    (site / "errors").mkdir()
    (site / "errors" / "missing.html").write_text("<p>first</p>")
    config = ServeConfig(directory=site, quiet=True, not_found_page="errors/missing.html")
    with running_devserve(config) as (server, _, _):
        port = port_of(server)
        data = request("/gone")
        assert Response(raw_exchange(port, data)).body == b"<p>first</p>"
        assert remembered(server, data)
        (site / "errors" / "missing.html").write_text("<p>second one</p>")  # the folder stays
        assert Response(raw_exchange(port, data)).body == b"<p>second one</p>"
