"""--proxy with real parts: devserve on 127.0.0.1 port 0, a uvicorn backend process, real clients.

The backend (`tests.proxy_backend`) reports what it received, so each test
asserts what crossed devserve both ways: bytes, fields, framing, connections.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from unittest.mock import ANY

import pytest

from devserve._proxy import parse_route
from devserve.config import ProxyConfig, ReloadConfig, ServeConfig
from devserve.events import LogEvent, RequestRecord
from tests.support import (
    ROOT,
    Collector,
    devserve_process,
    port_of,
    raw_exchange,
    read_to_end,
    running_devserve,
    self_signed_certificate,
    status_of,
    stop_and_read,
)


class Backend(NamedTuple):
    port: int
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> list[dict[str, Any]]:
        """Every request the backend received so far (target and client port)."""
        status, _, body = request(self.port, "GET", "/log")
        assert status == 200
        result: list[dict[str, Any]] = json.loads(body)
        return result


@contextlib.contextmanager
def backend_process(*args: str) -> Iterator[Backend]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.proxy_backend", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = select.select([process.stdout], [], [], 30)[0]
        line = process.stdout.readline() if ready else ""
        assert line.strip().isdigit(), f"the backend did not start: {line!r}"
        yield Backend(int(line), process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    with backend_process() as running:
        yield running


def request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with http.client (on ``connection`` if given): status, headers, body."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        if connection is None:
            conn.close()


def echo(port: int, target: str, **kwargs: Any) -> dict[str, Any]:
    """What the backend's /echo saw of a request sent through devserve."""
    status, _, body = request(port, kwargs.pop("method", "GET"), target, **kwargs)
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def fields_of(report: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in report["headers"] if key == name]


def record_of(log: Collector, path: str, method: str = "GET") -> RequestRecord:
    """The log's record of the request ``method path``.

    A request is reported when its handler is done, just after the client has the
    answer: waited for (bounded), never assumed there.
    """
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in log.records() if (r.method, r.path) == (method, path)]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"no record of {path}"
        time.sleep(0.01)


def config_for(site: Path, *routes: str, **proxy: Any) -> ServeConfig:
    return ServeConfig(
        directory=site,
        quiet=False,
        proxy=ProxyConfig(tuple(parse_route(r) for r in routes), **proxy),
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>local</title><p>local page")
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "local.txt").write_text("never served: /api is the backend's")
    return tmp_path


@contextlib.contextmanager
def proxying(config: ServeConfig) -> Iterator[tuple[int, Collector, Any]]:
    with running_devserve(config) as (server, log, _):
        yield port_of(server), log, server


# --------------------------------------------------------------------------- paths and fields


def test_prefix_kept_when_the_url_has_no_path(site: Path, backend: Backend) -> None:
    with proxying(config_for(site, f"/echo={backend.url}")) as (port, log, _):
        report = echo(port, "/echo/a/b?x=1&y=%20")
        assert report["target"] == "/echo/a/b?x=1&y=%20"
        status, _, body = request(port, "GET", "/")  # the folder is still served
        assert status == 200
        assert b"local page" in body
    record = record_of(log, "/echo/a/b?x=1&y=%20")
    assert record.served == "proxy"
    assert record.note == f"→ {backend.url}/echo/a/b"


@pytest.mark.parametrize(
    ("route", "asked", "sent"),
    [
        ("/api/={url}/", "/api/echo/x?q=1", "/echo/x?q=1"),
        ("/api={url}/echo", "/api/deep/x", "/echo/deep/x"),
        ("/api={url}/echo/", "/api", "/echo/"),
        ("/api={url}", "/api/../echo/x", None),  # climbs out of the prefix: not forwarded
    ],
)
def test_prefix_replaced_by_the_urls_path(
    site: Path, backend: Backend, route: str, asked: str, sent: str | None
) -> None:
    with proxying(config_for(site, route.format(url=backend.url))) as (port, _, _):
        if sent is None:
            status, _, _ = request(port, "GET", asked)
            assert status == 404  # answered from the folder, which has no /echo
        else:
            assert echo(port, asked)["target"] == sent


def test_a_prefix_matches_whole_segments_only(site: Path, backend: Backend) -> None:
    (site / "apix").write_text("local apix")
    with proxying(config_for(site, f"/api={backend.url}")) as (port, _, _):
        status, _, body = request(port, "GET", "/apix")
        assert (status, body) == (200, b"local apix")
        status, _, body = request(port, "GET", "/api/local.txt")
        assert status == 404  # the backend's answer, not the file under site/api
        assert body == b"no such thing"


def test_forwarded_fields_and_host(site: Path, backend: Backend) -> None:
    with proxying(config_for(site, f"/echo={backend.url}")) as (port, _, _):
        report = echo(
            port,
            "/echo/f",
            headers={
                "X-Forwarded-For": "203.0.113.9",
                "Forwarded": "for=203.0.113.9",
                "Connection": "X-Secret",
                "X-Secret": "hop-by-hop",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic eDp5",
            },
        )
    assert fields_of(report, "host") == [f"127.0.0.1:{backend.port}"]
    assert fields_of(report, "x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert fields_of(report, "x-forwarded-proto") == ["http"]
    assert fields_of(report, "x-forwarded-host") == [f"127.0.0.1:{port}"]
    assert fields_of(report, "forwarded") == [
        f'for=203.0.113.9, for=127.0.0.1;host="127.0.0.1:{port}";proto=http'
    ]
    assert fields_of(report, "via") == ["1.1 devserve"]
    for name in ("x-secret", "keep-alive", "proxy-authorization"):
        assert fields_of(report, name) == [], name


def test_keep_host_sends_the_clients_host(site: Path, backend: Backend) -> None:
    config = config_for(site, f"/echo={backend.url}", keep_host=True)
    with proxying(config) as (port, _, _):
        report = echo(port, "/echo/h", headers={"Host": "app.localhost:5173"})
    assert fields_of(report, "host") == ["app.localhost:5173"]
    assert fields_of(report, "x-forwarded-host") == ["app.localhost:5173"]


def test_location_to_the_backend_is_rewritten_and_head_has_no_body(
    site: Path, backend: Backend
) -> None:
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, _, _):
        status, headers, _ = request(port, "GET", "/api/redirect")
        assert status == 302
        assert headers["Location"] == "/api/echo/next"
        assert headers["Via"] == "1.1 devserve"
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(b"HEAD /api/echo/h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = read_to_end(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert status_of(response) == 200
    assert body == b""
    assert b"\r\nContent-Length: " in head  # the length a GET would have


# --------------------------------------------------------------------------- bodies


def test_post_with_content_length_arrives_exactly(site: Path, backend: Backend) -> None:
    payload = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a bit, every byte value
    with proxying(config_for(site, f"/echo={backend.url}")) as (port, _, _):
        report = echo(port, "/echo/upload", method="POST", body=payload)
    assert report["method"] == "POST"
    assert report["length"] == len(payload)
    assert report["sha256"] == hashlib.sha256(payload).hexdigest()
    assert fields_of(report, "content-length") == [str(len(payload))]
    assert fields_of(report, "transfer-encoding") == []


def test_chunked_upload_is_rechunked_and_arrives_exactly(site: Path, backend: Backend) -> None:
    pieces = [b"first piece;", b"x" * 100_000, b"", b"last"]
    chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    chunked += b"0\r\nTrailer-Field: dropped\r\n\r\n"
    with proxying(config_for(site, f"/echo={backend.url}")) as (port, _, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(
                b"POST /echo/chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + chunked
            )
            response = read_to_end(sock)
    assert status_of(response) == 200
    report = json.loads(response.partition(b"\r\n\r\n")[2])
    body = b"".join(pieces)
    assert (report["length"], report["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert fields_of(report, "transfer-encoding") == ["chunked"]
    assert fields_of(report, "trailer-field") == []


def test_expect_100_continue_relays_the_backends_answers(site: Path, backend: Backend) -> None:
    body = b"z" * 5000
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, _, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(
                b"POST /api/echo/expect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
            )
            interim = sock.recv(100)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            response = read_to_end(sock)
        assert status_of(response) == 200
        report = json.loads(response.partition(b"\r\n\r\n")[2])
        assert report["length"] == 5000
        assert fields_of(report, "expect") == ["100-continue"]
        # A backend that refuses at once: its answer, no 100, and the body never sent.
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(
                b"POST /api/refuse HTTP/1.1\r\nHost: x\r\n"
                b"Expect: 100-continue\r\nContent-Length: 999999\r\n\r\n"
            )
            response = read_to_end(sock)
    assert status_of(response) == 413
    assert b"\r\nConnection: close\r\n" in response
    assert response.endswith(b"too large")


# --------------------------------------------------------------------------- responses


def test_streamed_response_is_rechunked_for_11_and_close_delimited_for_10(
    site: Path, backend: Backend
) -> None:
    expected = b"".join(b"part %d\n" % i for i in range(5))
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, _, _):
        status, headers, body = request(port, "GET", "/api/stream?n=5")
        assert (status, body) == (200, expected)
        assert headers["Transfer-Encoding"] == "chunked"
        response = raw_exchange(port, b"GET /api/stream?n=5 HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding" not in head
    assert b"Content-Length" not in head
    assert body == expected


def test_server_sent_events_arrive_before_the_backend_finishes(
    site: Path, backend: Backend
) -> None:
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, _, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/sse", headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        # The backend holds the second event until /release: the first must be here now.
        assert response.readline() == b"data: one\n"
        assert response.readline() == b"\n"
        status, _, _ = request(backend.port, "GET", "/release")
        assert status == 200
        assert response.read() == b"data: two\n\n"
        conn.close()


def test_backend_connections_are_kept_alive_and_reused(site: Path, backend: Backend) -> None:
    with proxying(config_for(site, f"/echo={backend.url}")) as (port, _, server):
        ports = set()
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(5):  # one client connection
            ports.add(echo(port, "/echo/k", connection=client)["port"])
        client.close()
        for _ in range(5):  # a new client connection each time
            ports.add(echo(port, "/echo/k")["port"])
        (upstream,) = server.context.proxy.upstreams()
        opened = upstream.opened
    assert len(ports) == opened
    assert opened < 10
    assert opened <= 2


# --------------------------------------------------------------------------- failures


def test_nothing_listening_is_a_502_naming_the_backend(site: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
        with proxying(config_for(site, f"/api={dead}")) as (port, log, _):
            status, headers, body = request(port, "GET", "/api/x")
            assert status == 502
            assert headers["Content-Type"].startswith("text/html")
            assert dead.encode() in body
            assert b"refused the connection" in body
            status, _, _ = request(port, "POST", "/api/x", body=b"abc")
            assert status == 502
            status, _, body = request(port, "GET", "/")  # everything else is still served
            assert (status, b"local page" in body) == (200, True)
    record = record_of(log, "/api/x")
    assert record.status == 502
    assert record.note == f"backend {dead} refused the connection (is the backend running?)"


def test_a_backend_slower_than_the_timeout_is_a_504(site: Path, backend: Backend) -> None:
    config = config_for(site, f"/api/={backend.url}/", timeout=0.3)
    with proxying(config) as (port, log, _):
        started = time.monotonic()
        status, _, body = request(port, "GET", "/api/slow?s=3")
        assert time.monotonic() - started < 2.5
        assert status == 504
        assert backend.url.encode() in body
        assert b"did not answer in time" in body
        assert echo(port, "/api/echo/after")["target"] == "/echo/after"  # still serving
    record = record_of(log, "/api/slow?s=3")
    assert record.status == 504


def test_a_backend_dying_mid_response_closes_the_client_connection(
    site: Path, backend: Backend
) -> None:
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, log, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/cut")
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Content-Length"] == "1000"
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert len(cut.value.partial) == 100
        conn.close()
        # devserve goes on serving, the backend and its own files.
        assert echo(port, "/api/echo/next")["target"] == "/echo/next"
        assert request(port, "GET", "/")[0] == 200
    errors = [i.message for i in log.items if isinstance(i, LogEvent) and i.level == "error"]
    assert any("cut short" in message and backend.url in message for message in errors), errors


# --------------------------------------------------------------------------- smuggling


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400),
        (b"Content-Length: 3\r\nContent-Length: 4\r\n", 400),
        (b"Content-Length: 3, 4\r\n", 400),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501),
        (b"X-Folded: a\r\n b\r\nContent-Length: 3\r\n", 400),
        (b"Content-Length : 3\r\n", 400),
    ],
)
def test_smuggling_attempts_are_refused_and_never_forwarded(
    site: Path, backend: Backend, head: bytes, status: int
) -> None:
    marker = f"/api/echo/smuggle-{hashlib.sha256(head).hexdigest()[:12]}"
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, _, _):
        response = raw_exchange(
            port,
            b"POST " + marker.encode() + b" HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n"
            b"3\r\nabc\r\n0\r\n\r\nGET /api/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        )
    assert status_of(response) == status
    assert response.count(b"HTTP/1.1 ") == 1  # nothing after the refusal was read
    targets = [entry["target"] for entry in backend.log()]
    assert marker.removeprefix("/api") not in targets
    assert "/echo/smuggled" not in targets


def test_the_same_length_twice_is_sent_once(site: Path, backend: Backend) -> None:
    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, _, _):
        response = raw_exchange(
            port,
            b"POST /api/echo/twice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        )
    report = json.loads(response.partition(b"\r\n\r\n")[2])
    assert fields_of(report, "content-length") == ["3"]
    assert report["length"] == 3


# --------------------------------------------------------------------------- websocket


def test_websocket_echo_through_the_proxy(site: Path, backend: Backend) -> None:
    from websockets.sync.client import connect

    with proxying(config_for(site, f"/api/={backend.url}/")) as (port, log, _):
        with connect(f"ws://127.0.0.1:{port}/api/ws", open_timeout=10) as websocket:
            websocket.send("hello")
            assert websocket.recv(timeout=10) == "hello"
            big = bytes(range(256)) * 1024
            websocket.send(big)
            assert websocket.recv(timeout=10) == big
            for index in range(20):
                websocket.send(f"message {index}")
            assert [websocket.recv(timeout=10) for _ in range(20)] == [
                f"message {index}" for index in range(20)
            ]
        # The tunnel's request is logged when it ends, after the close handshake.
        record = record_of(log, "/api/ws")
    assert record.status == 101


# --------------------------------------------------------------------------- live reload


def test_reload_injects_into_proxied_pages_only(site: Path, backend: Backend) -> None:
    config = config_for(site, f"/api/={backend.url}/")
    config = ServeConfig(directory=site, proxy=config.proxy, reload=ReloadConfig())
    with proxying(config) as (port, _, _):
        status, headers, body = request(port, "GET", "/api/page")
        assert status == 200
        assert b"<script data-devserve-reload>" in body
        assert body.index(b"<script data-devserve-reload>") < body.index(b"</body>")
        assert headers["Content-Length"] == str(len(body))
        assert headers["Cache-Control"] == "no-store"
        assert headers["ETag"] is None
        # A page fetched by a script is passed on as it is.
        status, headers, body = request(
            port, "GET", "/api/page", headers={"Sec-Fetch-Dest": "empty"}
        )
        assert b"data-devserve-reload" not in body
        assert headers["ETag"] == '"v1"'
        # A compressed page is passed on untouched.
        status, headers, body = request(port, "GET", "/api/gzip-page")
        assert headers["Content-Encoding"] == "gzip"
        assert body[:2] == b"\x1f\x8b"
        # Page requests ask the backend for an uncompressed, whole, fresh page.
        report = echo(
            port, "/api/echo/nav", headers={"Accept-Encoding": "gzip", "If-None-Match": '"v1"'}
        )
        assert fields_of(report, "accept-encoding") == ["identity"]
        assert fields_of(report, "if-none-match") == []
        # The live-reload endpoints stay devserve's, even under a route for "/".
    config = ServeConfig(
        directory=site, proxy=ProxyConfig((parse_route(f"/={backend.url}"),)), reload=ReloadConfig()
    )
    with proxying(config) as (port, _, _):
        status, _, body = request(port, "GET", "/__devserve__/worker.js")
        assert status == 200
        assert b"no such thing" not in body


# --------------------------------------------------------------------------- TLS and the CLI


def test_https_backend_verified_with_proxy_ca(site: Path, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with backend_process("--tls", str(cert), str(key)) as tls_backend:
        url = f"https://127.0.0.1:{tls_backend.port}"
        with proxying(config_for(site, f"/api/={url}/", ca=cert)) as (port, _, _):
            assert echo(port, "/api/echo/tls")["target"] == "/echo/tls"
        # Without --proxy-ca the self-signed certificate is not trusted: 502.
        with proxying(config_for(site, f"/api/={url}/")) as (port, _, _):
            status, _, body = request(port, "GET", "/api/echo/tls")
    assert status == 502
    assert b"TLS" in body


def test_the_cli_serves_a_route(site: Path, backend: Backend) -> None:
    with devserve_process(
        "serve", str(site), "--port", "0", "--proxy", f"/api/={backend.url}/"
    ) as (_, url):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert echo(port, "/api/echo/cli")["target"] == "/echo/cli"


def test_http_09_requests_under_a_route_are_refused(site: Path, backend: Backend) -> None:
    (site / "api" / "only-09.txt").write_text("never served: /api is the backend's")
    with proxying(config_for(site, f"/api={backend.url}")) as (port, _, _):
        response = raw_exchange(port, b"GET /api/only-09.txt\r\n")
    assert b"never served" not in response
    assert b"505" in response
    assert "/api/only-09.txt" not in [entry["target"] for entry in backend.log()]


# --------------------------------------------------------------------------- odd backends


class RawBackend:
    """A backend written with bare sockets, for behaviour uvicorn never shows.

    Each connection is answered by ``answer(request_number_on_this_connection,
    head)``: the bytes to send (None: close without answering; a reply without a
    Content-Length is followed by the close). Every head and connection is counted.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.heads: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            reader = sock.makefile("rb")
            number = 0
            while True:
                head = b""
                while (line := reader.readline()) not in (b"\r\n", b""):
                    head += line
                if not head:
                    return
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if length:
                    reader.read(int(length[1]))
                self.heads.append(head)
                number += 1
                reply = self.answer(number, head)
                if reply is None:
                    return
                sock.sendall(reply)
                if b"content-length:" not in reply.lower():
                    return  # a body without a length ends with the connection

    def close(self) -> None:
        self.listener.close()
        for thread in self._threads:
            thread.join(5)


@contextlib.contextmanager
def raw_backend(answer: Any) -> Iterator[RawBackend]:
    backend = RawBackend(answer)
    try:
        yield backend
    finally:
        backend.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_kept_alive_connection_closed_by_the_backend_is_retried_once(site: Path) -> None:
    # The backend answers the first request on each connection and drops the second.
    with raw_backend(lambda number, head: OK if number == 1 else None) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            assert request(port, "GET", "/api/a", connection=client) == (200, ANY, b"ok")
            # Reuses the connection, which the backend drops: retried on a new one.
            assert request(port, "GET", "/api/b", connection=client)[0::2] == (200, b"ok")
            # A POST with a body is never sent twice: the dropped connection is a 502.
            status, _, body = request(port, "POST", "/api/c", body=b"xyz", connection=client)
            client.close()
    assert status == 502
    assert b"closed the connection without answering" in body
    posts = [head for head in backend.heads if head.startswith(b"POST")]
    assert len(posts) == 1
    assert backend.connections == 2


def test_a_close_delimited_response_is_chunked_for_the_client(site: Path) -> None:
    def answer(number: int, head: bytes) -> bytes | None:
        return (
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
            if number == 1
            else None
        )

    with raw_backend(answer) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with sock:
                sock.sendall(b"GET /api/old HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                response = read_to_end(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    assert body == b"d\r\nuntil the end\r\n0\r\n\r\n"


def test_a_malformed_backend_response_is_a_502(site: Path) -> None:
    with raw_backend(lambda number, head: b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n") as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            status, _, body = request(port, "GET", "/api/x")
    assert status == 502
    assert b"malformed header line" in body


def test_https_clients_are_told_to_the_backend(
    site: Path, backend: Backend, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    config = ServeConfig(
        directory=site,
        tls_cert=cert,
        tls_key=key,
        proxy=ProxyConfig((parse_route(f"/api/={backend.url}/"),)),
    )
    context = ssl.create_default_context(cafile=str(cert))
    with proxying(config) as (port, _, _):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        report = echo(port, "/api/echo/tls-client", connection=conn)
        conn.close()
    assert fields_of(report, "x-forwarded-proto") == ["https"]
    assert fields_of(report, "forwarded")[0].endswith("proto=https")


def test_a_backend_that_never_says_100_gets_the_body_after_devserves_own(site: Path) -> None:
    # An HTTP/1.0-style backend: it reads the body without a word, then answers.
    with raw_backend(lambda number, head: OK) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            with sock:
                sock.sendall(
                    b"PUT /api/file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"
                )
                assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
                sock.sendall(b"data")
                response = read_to_end(sock)
    assert status_of(response) == 200
    assert response.endswith(b"\r\n\r\nok")
    assert b"expect: 100-continue" in backend.heads[0].lower()


def test_bodiless_answers_keep_the_client_connection(site: Path) -> None:
    replies = {
        b"/api/304": b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\nContent-Length: 42\r\n\r\n',
        b"/api/204": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"/api/ok": OK,
    }

    def answer(number: int, head: bytes) -> bytes:
        return replies[head.split(b" ")[1]]

    with raw_backend(answer) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            status, headers, body = request(port, "GET", "/api/304", connection=client)
            assert (status, headers["Content-Length"], body) == (304, "42", b"")
            status, headers, body = request(port, "GET", "/api/204", connection=client)
            assert (status, headers["Content-Length"], body) == (204, None, b"")
            assert request(port, "GET", "/api/ok", connection=client)[0::2] == (200, b"ok")
            client.close()
    assert backend.connections == 1


def test_auth_guards_proxied_requests_and_keeps_its_password_from_the_backend(
    site: Path, backend: Backend
) -> None:
    from devserve._auth import User

    config = ServeConfig(
        directory=site,
        auth=(User("alice", "s3cret"),),
        proxy=ProxyConfig((parse_route(f"/api/={backend.url}/"),)),
    )
    with proxying(config) as (port, _, _):
        status, headers, _ = request(port, "GET", "/api/echo/unauthorized")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
        status, _, _ = request(port, "POST", "/api/echo/unauthorized", body=b"x")
        assert status == 401
        credentials = base64.b64encode(b"alice:s3cret").decode()
        report = echo(
            port, "/api/echo/authorized", headers={"Authorization": f"Basic {credentials}"}
        )
    assert report["target"] == "/echo/authorized"
    assert fields_of(report, "authorization") == []
    assert "/echo/unauthorized" not in [entry["target"] for entry in backend.log()]


def test_an_unauthenticated_preflight_is_answered_by_devserve_never_the_backend(
    site: Path, backend: Backend
) -> None:
    from devserve._auth import User

    config = ServeConfig(
        directory=site,
        auth=(User("alice", "s3cret"),),
        cors=True,
        proxy=ProxyConfig((parse_route(f"/api/={backend.url}/"),)),
    )
    preflight = (
        b"OPTIONS /api/echo/preflight-unverified HTTP/1.1\r\nHost: x\r\n"
        b"Origin: http://elsewhere.test\r\nAccess-Control-Request-Method: POST\r\n"
        b"Access-Control-Request-Headers: content-type\r\n"
        b"Content-Type: application/json\r\nContent-Length: 14\r\n\r\n"
        b'{"drop": true}'
    )
    credentials = base64.b64encode(b"alice:s3cret").decode()
    with proxying(config) as (port, _, _):
        # the body is dropped per its framing: the next request on the connection
        # is read as one, and gets its own 401
        after = (
            b"GET /api/echo/after-unverified-preflight HTTP/1.1\r\n"
            b"Host: x\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(preflight + after)
            replies = read_to_end(client)
        first, _, rest = replies.partition(b"\r\n\r\n")
        assert status_of(first) == 204, replies
        assert b"Access-Control-Allow-Headers: content-type" in first
        assert b"Access-Control-Allow-Origin: *" in first
        assert status_of(rest) == 401, rest
        # with the password, OPTIONS is an ordinary request: the backend answers it
        report = echo(
            port,
            "/api/echo/preflight-verified",
            method="OPTIONS",
            headers={
                "Authorization": f"Basic {credentials}",
                "Access-Control-Request-Method": "POST",
            },
        )
    assert report["method"] == "OPTIONS"
    assert report["target"] == "/echo/preflight-verified"
    targets = [entry["target"] for entry in backend.log()]
    assert "/echo/preflight-unverified" not in targets
    assert "/echo/after-unverified-preflight" not in targets


def test_an_unauthenticated_preflight_never_invites_its_body(site: Path, backend: Backend) -> None:
    from devserve._auth import User

    config = ServeConfig(
        directory=site,
        auth=(User("alice", "s3cret"),),
        cors=True,
        proxy=ProxyConfig((parse_route(f"/api/={backend.url}/"),)),
    )
    head = (
        b"OPTIONS /api/echo/preflight-expecting HTTP/1.1\r\nHost: x\r\n"
        b"Access-Control-Request-Method: PUT\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5\r\n\r\n"
    )
    with (
        proxying(config) as (port, _, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as client,
    ):
        client.sendall(head)  # the body waits for a 100 Continue that never comes
        reply = read_to_end(client)
    assert status_of(reply) == 204, reply
    assert b" 100 " not in reply
    assert "/echo/preflight-expecting" not in [entry["target"] for entry in backend.log()]


def test_websocket_over_tls_through_the_proxy(site: Path, backend: Backend, tmp_path: Path) -> None:
    from websockets.sync.client import connect

    cert, key = self_signed_certificate(tmp_path)
    config = ServeConfig(
        directory=site,
        tls_cert=cert,
        tls_key=key,
        proxy=ProxyConfig((parse_route(f"/api/={backend.url}/"),)),
    )
    context = ssl.create_default_context(cafile=str(cert))
    with (
        proxying(config) as (port, _, _),
        connect(f"wss://127.0.0.1:{port}/api/ws", ssl=context, open_timeout=10) as websocket,
    ):
        for index in range(50):  # both directions busy at once on the TLS socket
            websocket.send(f"message {index}" * 100)
        assert [websocket.recv(timeout=10) for _ in range(50)] == [
            f"message {index}" * 100 for index in range(50)
        ]


def test_ctrl_c_ends_proxied_event_streams_and_websockets_at_once(
    site: Path, backend: Backend
) -> None:
    from websockets.sync.client import connect

    with devserve_process(
        "serve", str(site), "--port", "0", "--proxy", f"/api/={backend.url}/"
    ) as (process, url):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/sse")
        events = conn.getresponse()
        assert events.readline() == b"data: one\n"
        # close_timeout: devserve is gone when the client's close handshake starts.
        with connect(
            f"ws://127.0.0.1:{port}/api/ws", open_timeout=10, close_timeout=0.1
        ) as websocket:
            websocket.send("open")
            assert websocket.recv(timeout=10) == "open"
            started = time.monotonic()
            log = stop_and_read(process)  # SIGINT; exit status 0
            # Not the 5 s grace requests in flight get: these streams have no end of their own.
            assert time.monotonic() - started < 3
        conn.close()
    assert "0 errors" in log
    assert "cut short" not in log
    assert request(backend.port, "GET", "/release")[0] == 200  # the backend's stream ends too


def test_devserve_cgi_forwards_too(site: Path, backend: Backend) -> None:
    from devserve.config import CGIConfig

    config = ServeConfig(
        directory=site, cgi=CGIConfig(), proxy=ProxyConfig((parse_route(f"/api/={backend.url}/"),))
    )
    with proxying(config) as (port, _, _):
        report = echo(port, "/api/echo/from-cgi", method="POST", body=b"abc")
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(
                b"POST /api/refuse HTTP/1.1\r\nHost: x\r\n"
                b"Expect: 100-continue\r\nContent-Length: 999999\r\n\r\n"
            )
            response = read_to_end(sock)
    assert (report["target"], report["length"]) == ("/echo/from-cgi", 3)
    assert status_of(response) == 413
    assert response.endswith(b"too large")  # the backend's answer, not the gateway's


def test_a_silent_websocket_is_closed_after_the_proxy_timeout(site: Path, backend: Backend) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    config = config_for(site, f"/api/={backend.url}/", timeout=0.5)
    with (
        proxying(config) as (port, _, _),
        connect(
            f"ws://127.0.0.1:{port}/api/ws", open_timeout=10, ping_interval=None, close_timeout=0.5
        ) as websocket,
    ):
        websocket.send("hello")
        assert websocket.recv(timeout=10) == "hello"
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            websocket.recv(timeout=10)  # nothing comes: devserve ends the silent tunnel
        assert 0.4 < time.monotonic() - started < 5


# ----------------------------------------------------------------- what a backend over-sends


POISON = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nSet-Cookie: session=attacker\r\n\r\nPWNED!"
)


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("GET", POISON),  # a whole second response behind the first
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ncaf\xc3\xa9"),  # length in characters
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG"),  # do_HEAD = do_GET
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nWRONG"),
    ],
)
def test_bytes_past_a_response_never_reach_another_request(
    site: Path, method: str, reply: bytes
) -> None:
    """What a backend sends past the response it framed is never read as the next
    response: that connection is closed, not pooled, and the next client (another
    connection) gets its own answer."""

    def answer(number: int, head: bytes) -> bytes:
        return reply if b"/api/first" in head else OK

    with raw_backend(answer) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            for _ in range(3):
                first = request(port, method, "/api/first")
                assert first[0] in (200, 204)
                status, headers, body = request(port, "GET", "/api/second")
                assert (status, body) == (200, b"ok")
                assert "Set-Cookie" not in headers
    # Each connection a first request used is closed after it; the second requests'
    # connections are reused by the next first request: 1 + 3.
    assert backend.connections == 4


def test_a_transfer_coding_devserve_cannot_frame_again_is_a_502(site: Path) -> None:
    gzip_chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n"
    )
    with raw_backend(lambda number, head: gzip_chunked) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            status, _, body = request(port, "GET", "/api/zipped")
    assert status == 502
    assert b"transfer coding" in body
    assert b"\x1f\x8b" not in body


def test_interim_answers_are_bounded_in_number(site: Path) -> None:
    flood = b"HTTP/1.1 102 Processing\r\n\r\n" * 40 + OK
    with raw_backend(lambda number, head: flood) as backend:
        config = config_for(site, f"/api=http://127.0.0.1:{backend.port}")
        with proxying(config) as (port, _, _):
            status, _, body = request(port, "GET", "/api/slow")
    assert status == 502
    assert b"interim" in body


def test_interim_answers_are_bounded_in_time(site: Path) -> None:
    """A backend that keeps saying 102 Processing gets the --proxy-timeout as a whole."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.recv(65536)
            while not stop.wait(0.2):
                try:
                    sock.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        port_of_backend = listener.getsockname()[1]
        config = config_for(site, f"/api=http://127.0.0.1:{port_of_backend}", timeout=1.0)
        with proxying(config) as (port, _, _):
            started = time.monotonic()
            status, _, _ = request(port, "GET", "/api/forever")
            took = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
        thread.join(5)
    assert status == 504
    assert took < 5  # the 102s alone would go on for ever
