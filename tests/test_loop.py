"""The event loop in front of `devserve serve` (devserve._loop): replays and parking.

Replays must be the handler's own bytes (only Date differs), must never outlive a
change to the file, and must step aside for handlers that override what they skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserve import server as ds
from devserve import serving
from devserve._loop import LOOP_HOOKS, REPLAY_HOOKS, EventLoopMixIn, handler_allows
from tests.support import Collector, port_of, raw_exchange, running_server, status_of

SMALL = b"<p>small</p>\n"
MEDIUM = os.urandom(200 * 1024)  # cached (<= 256 KiB) but far more than one send on a slow reader


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "small.html").write_bytes(SMALL)
    (site / "medium.bin").write_bytes(MEDIUM)
    (site / "dir").mkdir()
    (site / "dir" / "index.html").write_bytes(b"index")
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    return site


@contextlib.contextmanager
def serve(
    root: Path,
    handler_base: type[ds.SimpleHTTPRequestHandler] = ds.SimpleHTTPRequestHandler,
    **options: Any,
) -> Iterator[tuple[Any, Collector, serving.Stats]]:
    """`devserve serve`'s server for ``root`` (as create_server builds it), running."""
    config = serving.ServeConfig(directory=root, port=0, **options)
    log, stats = Collector(), serving.Stats()
    server, _ = serving.create_server(config, log, stats, handler_base)
    assert isinstance(server, EventLoopMixIn)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server, log, stats
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def exchange(port: int, request: bytes) -> bytes:
    return raw_exchange(port, request)


def without_date(response: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", response)


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
    if b" 304 " in head.split(b"\r\n", 1)[0]:
        length = 0
    while len(pending) < end + length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        pending += chunk
    response = bytes(pending[: end + length])
    del pending[: end + length]
    return response


@contextlib.contextmanager
def warmed(root: Path, **options: Any) -> Iterator[tuple[Any, int]]:
    """serve() with /small.html answered once by a thread: the loop replays it from now on."""
    with serve(root, **options) as (server, _, _):
        port = port_of(server)
        exchange(port, b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        yield server, port


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@contextlib.contextmanager
def get_small_on_one_connection(port: int, count: int) -> Iterator[socket.socket]:
    """GET /small.html ``count`` times on one kept-alive connection, checking each reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        pending = bytearray()
        for _ in range(count):
            sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, pending).endswith(SMALL)
        yield sock


REQUESTS = [
    b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"HEAD /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /small.html HTTP/1.0\r\n\r\n",
    b"GET /small.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /small.html HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    b"GET /small.html HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n"
    b"Connection: close\r\n\r\n",
    b"GET /medium.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", REQUESTS, ids=range(len(REQUESTS)))
def test_a_replay_is_the_handlers_own_response(root: Path, request_bytes: bytes) -> None:
    with serve(root) as (server, log, stats):
        port = port_of(server)
        first = exchange(port, request_bytes)  # a handler thread answers and records it
        assert server.replay_count == 0
        second = exchange(port, request_bytes)
        third = exchange(port, request_bytes)
        assert server.replay_count == 2
    assert status_of(first) == 200
    assert without_date(second) == without_date(first)
    assert without_date(third) == without_date(first)
    # The replays are reported like any request: logged and counted.
    records = log.records()
    assert len(records) == 3 and stats.requests == 3
    assert {(r.method, r.path, r.status, r.served) for r in records} == {
        (request_bytes.split(b" ")[0].decode(), request_bytes.split(b" ")[1].decode(), 200, "file")
    }
    assert records[1].size == records[0].size == len(first)


def test_keep_alive_mixes_replays_and_threads_in_order(root: Path) -> None:
    with warmed(root) as (server, port), socket.create_connection(("127.0.0.1", port)) as sock:
        pending = bytearray()
        for _ in range(3):  # sequential requests on one connection
            sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, pending).endswith(SMALL)
            sock.sendall(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, pending).endswith(b"index")
        # pipelined: replayed, threaded, conditional (threaded), replayed
        sock.sendall(
            b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /small.html HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n"
            b"HEAD /small.html HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /small.html HTTP/1.1\r\nHost: x\r\nRange: bytes=0-2\r\n\r\n"
            b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        replies = [read_response(sock, pending, head_request=i == 3) for i in range(5)]
        last = bytes(pending) + read_to_end(sock)
        assert replies[0].endswith(SMALL)
        assert replies[1].endswith(b"index")
        assert status_of(replies[2]) == 304
        assert status_of(replies[3]) == 200 and replies[3].endswith(b"\r\n\r\n")
        assert status_of(replies[4]) == 206 and replies[4].endswith(SMALL[:3])
        assert last.startswith(b"HTTP/1.1 200 ") and last.endswith(SMALL)
        assert server.replay_count >= 3 + 3


def test_a_changed_file_is_never_replayed_stale(root: Path, tmp_path: Path) -> None:
    page = root / "small.html"
    request = b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with serve(root) as (server, _, _):
        port = port_of(server)
        for _ in range(2):
            assert exchange(port, request).endswith(SMALL)
        assert server.replay_count == 1
        page.write_bytes(b"<p>SMALL</p>\n")  # same size, new bytes
        os.utime(page, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert exchange(port, request).endswith(b"<p>SMALL</p>\n")
        assert exchange(port, request).endswith(b"<p>SMALL</p>\n")
        page.unlink()
        assert status_of(exchange(port, request)) == 404
        # A link to a file outside the root is refused by the handler, never replayed.
        page.symlink_to(tmp_path / "secret.txt")
        for _ in range(2):
            reply = exchange(port, request)
            assert status_of(reply) == 404 and b"outside the root" not in reply


def test_a_reply_recorded_for_another_url_never_mixes_versions(root: Path) -> None:
    """Two URLs of one file: a new version recorded under one must not meet old headers."""
    page = root / "small.html"
    plain = b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    query = b"GET /small.html?v=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with serve(root) as (server, _, _):
        port = port_of(server)
        for request in (plain, query, plain, query):
            assert exchange(port, request).endswith(SMALL)
        assert server.replay_count == 2
        page.write_bytes(b"<p>a longer page</p>\n")
        assert exchange(port, plain).endswith(b"<p>a longer page</p>\n")  # re-recorded
        reply = exchange(port, query)
        assert reply.endswith(b"<p>a longer page</p>\n")
        assert b"\r\nContent-Length: 21\r\n" in reply


def test_connection_tokens_are_read_as_the_handler_reads_them(root: Path) -> None:
    with warmed(root) as (server, port), socket.create_connection(("127.0.0.1", port)) as sock:
        # latin-1 NBSP around "close": str.strip() removes it, as parse_request does
        sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\xa0\r\n\r\n")
        reply = read_to_end(sock)  # returns: the server closed the connection
        assert reply.endswith(SMALL) and server.replay_count == 1


def test_a_partial_head_gets_the_request_timeout_not_the_idle_one(root: Path) -> None:
    with (
        warmed(root, request_timeout=0.3, idle_timeout=30) as (_server, port),
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        # one full request, then the start of the next in the same packet
        sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n\r\nGET /small.html HTTP/1.1\r\n")
        pending = bytearray()
        assert read_response(sock, pending).endswith(SMALL)
        started = time.monotonic()
        while sock.recv(65536):
            pass
        assert time.monotonic() - started < 2


def test_a_head_cut_short_by_the_client_is_still_answered(root: Path) -> None:
    with warmed(root) as (_server, port), socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /small.html HTTP/1.1\r\nHost: x\r\n")
        sock.shutdown(socket.SHUT_WR)  # no blank line: the end of input ends the head
        reply = read_to_end(sock)
        assert status_of(reply) == 200 and reply.endswith(SMALL)


def test_bodies_and_odd_heads_go_to_a_thread(root: Path) -> None:
    with serve(root) as (server, _, _):
        port = port_of(server)
        exchange(port, b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        before = server.replay_count
        # A body on a GET: read and dropped by the handler, not taken for the next request.
        smuggled = b"GET /medium.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        reply = exchange(
            port,
            b"GET /small.html HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled
            + b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert reply.count(b"HTTP/1.1 200 OK") == 2 and len(reply) < 10_000
        # Folded, NUL-bearing and bare-LF heads are the handler's to judge.
        for odd in (
            b"GET /small.html HTTP/1.1\r\nHost: x\r\n folded\r\nConnection: close\r\n\r\n",
            b"GET /small.html HTTP/1.1\r\nX: a\x00b\r\nConnection: close\r\n\r\n",
            b"GET /small.html HTTP/1.1\nHost: x\nConnection: close\n\n",
            b"GET /small.html HTTP/1.1\r\nHost : x\r\nConnection: close\r\n\r\n",
            b"GET /small.html HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
        ):
            status_of(exchange(port, odd))
        assert server.replay_count == before + 1  # only the request after the body


def test_a_client_that_does_not_read_does_not_stall_the_loop(root: Path) -> None:
    request = b"GET /medium.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    count = 100  # 20 MiB of replies: far more than the socket buffers hold
    with serve(root) as (server, _, _):
        port = port_of(server)
        exchange(port, request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(request * count)  # and read nothing yet
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                conn.out is not None for conn in list(server._conns.values())
            ):
                time.sleep(0.01)
            assert any(conn.out is not None for conn in list(server._conns.values()))
            started = time.monotonic()
            other = exchange(
                port, b"GET /small.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert other.endswith(SMALL) and time.monotonic() - started < 1.0
            pending = bytearray()
            for _ in range(count):
                assert read_response(slow, pending).endswith(MEDIUM)
        assert server.replay_count == count  # (/small.html was a first request: a thread)


class LoopServer(EventLoopMixIn, ds.ThreadingHTTPServer):
    """The loop over the documented server, with a handler of the test's choosing."""


@pytest.mark.parametrize("hook", ["do_GET", "send_head", "copyfile", "log_message"])
def test_the_loop_steps_aside_for_overridden_hooks(root: Path, hook: str) -> None:
    calls: list[str] = []

    def record(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(hook)
        if hook == "log_message":
            return None
        return getattr(ds.SimpleHTTPRequestHandler, hook)(self, *args, **kwargs)

    custom = type(
        "Custom", (ds.SimpleHTTPRequestHandler,), {hook: record, "protocol_version": "HTTP/1.1"}
    )
    assert not handler_allows(custom, REPLAY_HOOKS) and handler_allows(custom, LOOP_HOOKS)
    with running_server(LoopServer, custom, directory=str(root)) as server:
        assert isinstance(server, LoopServer)
        with get_small_on_one_connection(port_of(server), 5):
            pass
        assert server.replay_count == 0
    assert len(calls) >= 5  # every request reached the override


def test_the_documented_handler_is_parked_but_never_replayed(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = type("Plain", (ds.SimpleHTTPRequestHandler,), {"protocol_version": "HTTP/1.1"})
    with running_server(LoopServer, plain, directory=str(root)) as server:
        assert isinstance(server, LoopServer)
        with get_small_on_one_connection(port_of(server), 3):
            pass
        assert server.replay_count == 0
    # its documented log line, for every request
    assert capsys.readouterr().err.count('"GET /small.html HTTP/1.1" 200 -') == 3


def test_handlers_managing_their_connection_get_no_loop(root: Path) -> None:
    class OwnHandle(ds.SimpleHTTPRequestHandler):
        def handle(self) -> None:
            super().handle()

    assert not handler_allows(OwnHandle, LOOP_HOOKS)
    with serve(root, handler_base=OwnHandle) as (server, _, _):
        with get_small_on_one_connection(port_of(server), 3):
            assert server.connection_count() == 1  # held by its thread, not parked
        assert server.replay_count == 0


def test_declared_safe_classes_keep_replays() -> None:
    class Safe(ds.SimpleHTTPRequestHandler):
        _replay_safe = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Plain(ds.SimpleHTTPRequestHandler):
        server_version = "Other/1"  # attributes are recorded with the response

    class UnsafeBelowSafe(Safe):
        def send_head(self) -> Any:
            return super().send_head()

    class SafePlain(Plain):
        _replay_safe = True

    assert handler_allows(Safe, REPLAY_HOOKS, opt_in=True)
    assert handler_allows(SafePlain, REPLAY_HOOKS, opt_in=True)
    assert handler_allows(Plain, REPLAY_HOOKS) and not handler_allows(Plain, REPLAY_HOOKS, True)
    assert not handler_allows(UnsafeBelowSafe, REPLAY_HOOKS)
    assert not handler_allows(ds.CGIHTTPRequestHandler, REPLAY_HOOKS)
    assert handler_allows(ds.CGIHTTPRequestHandler, LOOP_HOOKS)
    assert not handler_allows(object, LOOP_HOOKS)

    class SafeButOwnSetup(ds.SimpleHTTPRequestHandler):
        _replay_safe = True

        def setup(self) -> None:
            super().setup()

    # replay-safe promises nothing about the connection: no loop for it
    assert not handler_allows(SafeButOwnSetup, LOOP_HOOKS)
    assert not handler_allows(SafeButOwnSetup, REPLAY_HOOKS, opt_in=True)


def test_parked_connections_count_and_close_on_shutdown(root: Path) -> None:
    with serve(root) as (server, _, _):
        port = port_of(server)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        pending = [bytearray() for _ in socks]
        for sock, buf in zip(socks, pending, strict=True):
            sock.sendall(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, buf).endswith(b"index")

        def parked() -> bool:  # all six open, and no handler thread holds one
            handlers = [t for t in threading.enumerate() if "process_request" in t.name]
            return server.connection_count() == len(server._conns) == 6 and not handlers

        deadline = time.monotonic() + 5
        while not parked() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert parked()
        started = time.monotonic()
    assert time.monotonic() - started < 2
    for sock in socks:
        sock.settimeout(2)
        assert sock.recv(1) == b""  # closed by the shutdown
        sock.close()


def test_the_idle_timeout_closes_parked_connections(root: Path) -> None:
    with (
        serve(root, idle_timeout=0.3) as (server, _, _),
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock,
    ):
        sock.sendall(b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock, bytearray())
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert 0.2 < time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("sent", "left"),
    [(0, [b"head", b"body"]), (2, [b"ad", b"body"]), (4, [b"body"]), (6, [b"dy"]), (8, [])],
)
def test_what_a_partial_send_leaves(sent: int, left: list[bytes]) -> None:
    from devserve._loop import _unsent

    buffers = [memoryview(b"head"), memoryview(b"body")]
    assert [bytes(b) for b in _unsent(buffers, sent)] == left
