"""The event loop in front of `devserve serve` (devserve._loop).

It answers every request the site serves itself, with exactly the bytes
devserve's threaded handler gives for it (compared here request by request, on a
property-based mix of requests and file states), hands everything else to a
thread, and reports each request once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devserve import _reporting, serving
from devserve import server as ds
from devserve._handler_dev import DevHandler
from devserve._loop import LoopHTTPServer
from devserve._overrides import LOOP_HOOKS, SITE_HOOKS, reproduces
from devserve._protocol import make_etag
from devserve.config import ReloadConfig, ServeConfig
from devserve.events import LogEvent
from tests.support import (
    Collector,
    WithContext,
    both_paths,
    normalized,
    port_of,
    raw_exchange,
    read_to_end,
    running_devserve,
    serving_in_thread,
    status_of,
)

SMALL = b"<p>small</p>\n"
MEDIUM = os.urandom(200 * 1024)  # kept in memory, but far more than one send to a slow reader
LARGE = os.urandom(3 * 1024 * 1024)  # sent with sendfile


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "small.html").write_bytes(SMALL)
    (site / "notes.txt").write_bytes(b"0123456789" * 10)
    (site / "medium.bin").write_bytes(MEDIUM)
    (site / "large.bin").write_bytes(LARGE)
    (site / "empty.txt").write_bytes(b"")
    (site / "dir").mkdir()
    (site / "dir" / "index.html").write_bytes(b"<html><body>index</body></html>")
    (site / "sub").mkdir()
    for name in ("b.txt", "a.txt", "c d.txt"):
        (site / "sub" / name).write_text(name)
    (site / ".hidden").write_text("hidden")
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    return site


def serve(root: Path, **options: Any) -> contextlib.AbstractContextManager[Any]:
    """`devserve serve ROOT` (in-process, port 0): server, log collector, stats."""
    return running_devserve(ServeConfig(directory=root, **options))


def exchange(port: int, request: bytes) -> bytes:
    return raw_exchange(port, request)


def read_response(sock: socket.socket, pending: bytearray, head_request: bool = False) -> bytes:
    """One complete response (framed by Content-Length) from a kept-alive connection."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a full response"
        pending += chunk
    end = pending.index(b"\r\n\r\n") + 4
    head = bytes(pending[:end])
    match = re.search(rb"\r\nContent-Length: (\d+)", head)
    length = int(match[1]) if match and not head_request else 0
    while len(pending) < end + length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        pending += chunk
    response = bytes(pending[: end + length])
    del pending[: end + length]
    return response


# --------------------------------------------------------------------------- the two paths


CONFIGS = {
    "default": ServeConfig(),
    "spa-cors-header": ServeConfig(spa=True, cors=True, headers=(("X-Frame-Options", "DENY"),)),
    "no-listing-hidden": ServeConfig(listing=False, show_hidden=True),
    "reload": ServeConfig(reload=ReloadConfig()),
    "http10-own-cache": ServeConfig(protocol="HTTP/1.0", headers=(("Cache-Control", "max-age=5"),)),
}

TARGETS = [
    "/small.html", "/notes.txt", "/medium.bin", "/empty.txt", "/dir", "/dir/", "/dir/index.html",
    "/sub/", "/sub", "/missing.html", "/smal.html", "/Small.html", "/settings/profile",
    "/app.js", "/.hidden", "/sub/?q=1", "/small.html?v=2", "/notes.txt/", "/%2e%2e/secret.txt",
    "/sub%2f", "/dir/../small.html", "/c%20d.txt", "/sub/c%20d.txt", "/__devserve__/worker.js",
    "/__devserve__/nope",
]  # fmt: skip
RANGES = ["bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-1,4-5,90-", "bytes=200-", "bytes=x",
          "items=0-1"]  # fmt: skip
DATES = ["Tue, 01 Jan 2019 00:00:00 GMT", "Sun, 01 Jan 2040 00:00:00 GMT", "garbage"]


@st.composite
def static_requests(draw: st.DrawFn, etags: dict[str, str]) -> bytes:
    """A request a browser (or curl) could send for a static resource."""
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    target = draw(st.sampled_from(TARGETS))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    lines = [f"{method} {target} {version}", "Host: x"]
    path = target.partition("?")[0]
    own = etags.get(path, '"nope"')
    if draw(st.booleans()):
        lines.append("If-None-Match: " + draw(st.sampled_from([own, f"W/{own}", '"x"', "*"])))
    if draw(st.booleans()):
        lines.append("If-Modified-Since: " + draw(st.sampled_from(DATES)))
    if draw(st.integers(0, 5)) == 0:
        lines.append("If-Match: " + draw(st.sampled_from([own, '"x"'])))
    if draw(st.integers(0, 5)) == 0:
        lines.append("If-Unmodified-Since: " + draw(st.sampled_from(DATES)))
    if draw(st.booleans()):
        lines.append("Range: " + draw(st.sampled_from(RANGES)))
        if draw(st.booleans()):
            lines.append("If-Range: " + draw(st.sampled_from([own, '"x"', DATES[1]])))
    if draw(st.booleans()):
        lines.append("Accept: " + draw(st.sampled_from(["text/html,*/*;q=0.8", "*/*"])))
    if draw(st.booleans()):
        lines.append("Sec-Fetch-Dest: " + draw(st.sampled_from(["document", "script", "image"])))
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_loop_answers_exactly_as_the_threaded_handler(root: Path, name: str) -> None:
    config = replace(CONFIGS[name], directory=root, quiet=True)
    etags = {}
    for target in ("/small.html", "/notes.txt", "/medium.bin", "/empty.txt", "/dir/index.html"):
        st_ = os.stat(str(root) + target)
        etags[target] = make_etag(st_.st_mtime_ns, st_.st_size, st_.st_ino)
    etags["/dir/"] = etags["/dir/index.html"]

    with both_paths(config) as (loop_port, thread_port, _):

        @settings(
            max_examples=120,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
            database=None,
        )
        @given(request=static_requests(etags), touch=st.sampled_from([None, "notes", "index"]))
        def check(request: bytes, touch: str | None) -> None:
            # File states change between examples: a rewrite (another size, or the
            # same size with the mtime kept), a new index page.
            if touch == "notes":
                path = root / "notes.txt"
                before = path.stat()
                path.write_bytes(os.urandom(1) * 100)
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            elif touch == "index":
                (root / "dir" / "index.html").write_bytes(b"<body>new %d</body>" % time.time_ns())
            loop = exchange(loop_port, request)
            threaded = exchange(thread_port, request)
            assert normalized(loop) == normalized(threaded), request

        check()


def test_every_static_kind_is_answered_in_the_loop(root: Path) -> None:
    kinds = [
        b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /small.html HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n",
        b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 01 Jan 2040 00:00:00 GMT"
        b"\r\n\r\n",
        b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n",
        b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-6\r\n\r\n",
        b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /dir HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /missing.html HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n",
        b'GET /notes.txt HTTP/1.1\r\nHost: x\r\nIf-Match: "nope"\r\n\r\n',
    ]
    statuses = [200, 200, 304, 304, 206, 206, 200, 301, 200, 404, 200, 412]
    for options in ({}, {"reload": ReloadConfig(), "spa": True, "cors": True}):
        with serve(root, **options) as (server, log, stats):
            port = port_of(server)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                pending = bytearray()
                for request, status in zip(kinds, statuses, strict=True):
                    sock.sendall(request)
                    reply = read_response(sock, pending, head_request=request.startswith(b"HEAD"))
                    assert status_of(reply) == status, request
            # Counted just after the reply is sent: the client may read it first.
            assert wait_for(lambda: server.answered_in_loop == len(kinds))
            threads = [t for t in threading.enumerate() if "process_request" in t.name]
            assert threads == []  # no handler thread ever ran
            assert wait_for(lambda: stats.requests == len(kinds))
            assert [r.status for r in log.records()] == statuses


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_large_files_go_out_whole_with_sendfile_from_the_loop(root: Path) -> None:
    with serve(root) as (server, _, _):
        reply = exchange(port_of(server), b"GET /large.bin HTTP/1.0\r\n\r\n")
        assert reply.partition(b"\r\n\r\n")[2] == LARGE
        ranged = exchange(
            port_of(server), b"GET /large.bin HTTP/1.0\r\nRange: bytes=1000000-1000009\r\n\r\n"
        )
        assert ranged.partition(b"\r\n\r\n")[2] == LARGE[1000000:1000010]
        assert wait_for(lambda: server.answered_in_loop == 2)


def test_http_09_is_answered_at_once_without_headers(root: Path) -> None:
    with (
        serve(root) as (server, log, _),
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock,
    ):
        sock.sendall(b"GET /small.html\r\n")  # and nothing more: no blank line follows
        assert read_to_end(sock) == SMALL
        assert wait_for(lambda: server.answered_in_loop == 1)
        assert wait_for(lambda: [r.path for r in log.records()] == ["/small.html"])


def test_keep_alive_mixes_the_loop_and_threads_in_order(root: Path) -> None:
    with (
        serve(root) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock,
    ):
        # pipelined: loop, thread (a POST), loop, loop, thread (a body), loop
        sock.sendall(
            b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /small.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /small.html HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        pending = bytearray()
        assert read_response(sock, pending).endswith(SMALL)
        assert status_of(read_response(sock, pending)) == 501
        # the 501 closes the connection (send_error); what followed is never read as a request
        assert read_to_end(sock) == b""


def test_bodies_and_odd_heads_go_to_a_thread(root: Path) -> None:
    with serve(root) as (server, _, _):
        port = port_of(server)
        smuggled = b"GET /medium.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        reply = exchange(
            port,
            b"GET /small.html HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled
            + b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert reply.count(b"HTTP/1.1 200 OK") == 2 and len(reply) < 10_000
        # The request after the body (the body's: a thread).
        assert wait_for(lambda: server.answered_in_loop == 1)
        for odd, status in (
            (b"GET /small.html HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            (b"GET /small.html HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET /small.html HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"GET /small.html HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ):
            assert status_of(exchange(port, odd)) == status, odd
        assert wait_for(lambda: server.answered_in_loop == 1)


def test_a_client_that_does_not_read_does_not_stall_the_loop(root: Path) -> None:
    request = b"GET /medium.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    count = 60  # 12 MiB of replies: far more than the socket buffers hold
    with serve(root) as (server, _, _):
        port = port_of(server)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(request * count)  # and read nothing yet
            assert wait_for(lambda: any(c.out is not None for c in list(server._conns.values())))
            started = time.monotonic()
            other = exchange(
                port, b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            # A stalled loop would answer only once the slow client reads: never.
            assert other.endswith(SMALL) and time.monotonic() - started < 5.0
            pending = bytearray()
            for _ in range(count):
                assert read_response(slow, pending).endswith(MEDIUM)
        assert wait_for(lambda: server.answered_in_loop == count + 1)


def test_a_partial_head_gets_the_request_timeout_not_the_idle_one(root: Path) -> None:
    with (
        serve(root, request_timeout=0.3, idle_timeout=30) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server))) as sock,
    ):
        sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\nGET /small.html HTTP/1.1\r\n")
        pending = bytearray()
        assert read_response(sock, pending).endswith(SMALL)
        started = time.monotonic()
        read_to_end(sock)
        assert time.monotonic() - started < 2


def test_a_head_cut_short_by_the_client_is_still_answered(root: Path) -> None:
    with (
        serve(root) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server))) as sock,
    ):
        sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n")
        sock.shutdown(socket.SHUT_WR)  # no blank line: the end of input ends the head
        reply = read_to_end(sock)
        assert status_of(reply) == 200 and reply.endswith(SMALL)


# --------------------------------------------------------------------------- stepping aside


@pytest.mark.parametrize("hook", ["do_GET", "send_head", "copyfile", "guess_type"])
def test_the_loop_steps_aside_for_overridden_hooks(root: Path, hook: str) -> None:
    calls: list[str] = []

    def record(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(hook)
        return getattr(DevHandler, hook)(self, *args, **kwargs)

    custom = type("Custom", (DevHandler,), {hook: record})
    assert not reproduces(custom) and reproduces(custom, LOOP_HOOKS)
    config = ServeConfig(directory=root, quiet=True)
    journal = _reporting.ServerJournal(serving.Stats(), Collector(), True)
    context = serving.handler_context(config, root, journal)
    with serving_in_thread(WithContext(("127.0.0.1", 0), custom, context, context.site)) as server:
        assert server.site is None  # the loop will not answer for this class
        for _ in range(3):
            reply = exchange(port_of(server), b"GET /small.html HTTP/1.0\r\n\r\n")
            assert reply.endswith(SMALL)
        assert wait_for(lambda: server.answered_in_loop == 0)
    assert calls == [hook] * 3  # every request reached the override, once


def test_which_classes_the_site_stands_in_for() -> None:
    class OwnHandle(ds.SimpleHTTPRequestHandler):
        def handle(self) -> None:
            super().handle()

    class SafeButOwnSetup(DevHandler):
        _site_safe = True

        def setup(self) -> None:
            super().setup()

    assert reproduces(DevHandler) and reproduces(ds.CGIHTTPRequestHandler)
    assert reproduces(ds.SimpleHTTPRequestHandler)
    assert not reproduces(OwnHandle, LOOP_HOOKS)
    assert not reproduces(SafeButOwnSetup, LOOP_HOOKS)  # site-safe promises nothing of setup
    assert not reproduces(object, LOOP_HOOKS)
    assert "send_head" in SITE_HOOKS and "setup" in LOOP_HOOKS


def test_the_documented_classes_never_get_answers_from_a_loop(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = type("Plain", (ds.SimpleHTTPRequestHandler,), {"protocol_version": "HTTP/1.1"})
    server = LoopHTTPServer(("127.0.0.1", 0), functools.partial(plain, directory=str(root)))
    with serving_in_thread(server):
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
            pending = bytearray()
            for _ in range(3):
                sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\n")
                read_response(sock, pending)
        assert wait_for(lambda: server.answered_in_loop == 0)
    # its documented log line, for every request
    assert capsys.readouterr().err.count('"GET /small.html HTTP/1.1" 200 -') == 3


# --------------------------------------------------------------------------- connections


def test_parked_connections_count_and_close_on_shutdown(root: Path) -> None:
    with serve(root) as (server, _, _):
        port = port_of(server)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        pending = [bytearray() for _ in socks]
        for sock, buf in zip(socks, pending, strict=True):
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert status_of(read_response(sock, buf)) == 501
            sock.close()
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        for sock, buf in zip(socks, pending, strict=True):
            sock.sendall(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, buf).endswith(b"</html>")
        assert wait_for(lambda: server.connection_count() == len(server._conns) == 6)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    for sock in socks:
        sock.settimeout(2)
        assert sock.recv(1) == b""  # closed by the shutdown
        sock.close()


def test_the_idle_timeout_closes_loop_connections(root: Path) -> None:
    with (
        serve(root, idle_timeout=0.3) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock,
    ):
        sock.sendall(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock, bytearray())
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert 0.2 < time.monotonic() - started < 2


def test_shutdown_lets_a_response_in_flight_finish(root: Path) -> None:
    huge = os.urandom(1 << 20) * 32  # more than the socket buffers hold: still in flight
    (root / "huge.bin").write_bytes(huge)
    with (
        serve(root) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock,
    ):
        sock.sendall(b"GET /huge.bin HTTP/1.0\r\n\r\n")
        first = sock.recv(4096)
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        time.sleep(0.2)  # the loop is stopping while most of the body is unsent
        received = first + read_to_end(sock)
        stopper.join(10)
        assert not stopper.is_alive()
    assert received.partition(b"\r\n\r\n")[2] == huge


# --------------------------------------------------------------------------- answers remembered


def test_an_answer_given_again_follows_every_change_to_what_it_came_from(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply is sent again for the same head only while the paths it was computed from hold.

    (RACY_SECONDS is 0 here so that files written by the test count as settled at once.)
    """
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)

    def get(port: int, target: str) -> bytes:
        return exchange(
            port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )

    with serve(root) as (server, _, _):
        port = port_of(server)
        # a 404 becomes the file once it exists
        assert status_of(get(port, "/new.txt")) == 404
        assert status_of(get(port, "/new.txt")) == 404
        assert server.replies.answers, "the 404 was remembered"
        (root / "new.txt").write_text("now here")
        assert get(port, "/new.txt").endswith(b"now here")
        # a rewrite (another size) is sent, never the remembered bytes
        (root / "new.txt").write_text("rewritten, longer")
        assert get(port, "/new.txt").endswith(b"rewritten, longer")
        # an index page that goes away turns the folder into a listing, and back
        assert get(port, "/dir/").endswith(b"index</body></html>")
        (root / "dir" / "index.html").rename(root / "dir" / "page.html")
        assert b"page.html" in get(port, "/dir/")
        (root / "dir" / "page.html").rename(root / "dir" / "index.html")
        assert get(port, "/dir/").endswith(b"index</body></html>")
        # a listing follows its folder
        (root / "sub" / "z.txt").write_text("z")
        assert b"z.txt" in get(port, "/sub/")
        # a file swapped for a link out of the folder is refused at once
        (root / "new.txt").unlink()
        (root / "new.txt").symlink_to(root.parent / "secret.txt")
        reply = get(port, "/new.txt")
        assert status_of(reply) == 404 and b"outside the root" not in reply


def test_answers_given_again_are_bounded_in_bytes(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)
    monkeypatch.setattr("devserve._loop_replies.ANSWERS_BYTES", 64 * 1024)
    with serve(root, quiet=True) as (server, _, _):
        port = port_of(server)
        for i in range(200):  # 200 spellings of one file, each remembered under its own head
            assert exchange(port, b"GET /notes.txt?v=%d HTTP/1.0\r\n\r\n" % i).endswith(b"789")
        assert 0 < server.replies.answers_size <= 64 * 1024
        assert len(server.replies.answers) < 200


# --------------------------------------------------------------------------- reports


def test_every_request_is_reported_once_on_either_path(root: Path) -> None:
    release = threading.Event()
    holding: list[str] = []

    class Failing(DevHandler):
        def send_head(self) -> Any:
            if self.path == "/boom":
                raise RuntimeError("a bug in a handler")
            if self.path == "/hold":  # busy until the test is done: a 503 cannot shed it
                holding.append(self.path)
                release.wait(10)
                self.close_connection = True
                return None
            return super().send_head()

    log = Collector()
    stats = serving.Stats()
    config = ServeConfig(directory=root, max_connections=2)
    journal = _reporting.ServerJournal(stats, log, quiet=False)
    context = serving.handler_context(config, root, journal)
    server = WithContext(("127.0.0.1", 0), Failing, context)  # threads answer everything
    server.max_connections = 2
    with serving_in_thread(server):
        port = port_of(server)
        assert exchange(port, b"GET /small.html\r\n") == SMALL  # HTTP/0.9, in a thread
        assert status_of(exchange(port, b"GET /boom HTTP/1.0\r\n\r\n")) == 500
        holders = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for holder in holders:
            holder.sendall(b"GET /hold HTTP/1.0\r\n\r\n")
        assert wait_for(lambda: len(holding) == 2)
        assert status_of(exchange(port, b"GET /small.html HTTP/1.0\r\n\r\n")) == 503
        release.set()
        for holder in holders:
            holder.close()
    records = [(r.method, r.path, r.status) for r in log.records()]
    assert records == [("GET", "/small.html", 200), ("GET", "/boom", 500), ("", "", 503)]
    assert stats.requests == 3
    assert stats.errors >= 1
    details = [item.detail for item in log.items if isinstance(item, LogEvent)]
    assert any("a bug in a handler" in detail for detail in details)


def test_a_connection_given_back_as_the_loop_stops_is_closed(root: Path) -> None:
    """A handler thread may give a kept-alive connection back just as the loop
    starts draining: the loop closes it rather than dropping it unclosed."""
    ours, theirs = socket.socketpair()
    with serve(root) as (server, _, _):
        handoff = server._handoff
        close = handoff.close

        def close_after_one_came_back() -> list[socket.socket]:
            if handoff.opened:  # the first close, at the start of the drain
                assert handoff.give_back(ours, ("127.0.0.1", 0), b"")
            closed: list[socket.socket] = close()
            return closed

        handoff.close = close_after_one_came_back
    try:
        assert ours.fileno() == -1  # closed by the server
        assert theirs.recv(1) == b""
    finally:
        ours.close()
        theirs.close()
