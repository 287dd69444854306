"""BaseHTTPRequestHandler and the servers, over real sockets on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, ClassVar

import pytest

from devserve import server as ds
from tests.support import port_of, raw_exchange, read_to_end, running_server, status_of


class Recorder(ds.BaseHTTPRequestHandler):
    """Echoes what it saw as JSON and records log lines instead of printing them."""

    logged: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        self.logged.append(format % args)

    def _echo(self, extra: dict[str, Any] | None = None) -> None:
        facts = {
            "command": self.command,
            "path": self.path,
            "request_version": self.request_version,
            "requestline": self.requestline,
            "host": self.headers["Host"],
            "headers_type": type(self.headers).__name__,
            "is_message_class": isinstance(self.headers, self.MessageClass),
            "client": self.client_address[0],
            "server_port": self.server.server_port,
            "server_name_set": bool(self.server.server_name),
            "close_connection": self.close_connection,
            "rfile_is_buffered": hasattr(self.rfile, "read1"),
            "wfile_writable": self.wfile.writable(),
            **(extra or {}),
        }
        body = json.dumps(facts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/error/"):
            code = int(self.path.split("/")[2])
            self.send_error(code, "custom message", "custom <explain>")
        elif self.path == "/unframed":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"no length")
        elif self.path == "/split":
            self.send_response(200)
            try:
                self.send_header("X-Evil", "a\r\nSet-Cookie: stolen=1")
            except ValueError:
                self.send_header("X-Refused", "yes")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/boom":
            raise RuntimeError("handler bug")
        else:
            self._echo()

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self._echo({"body": self.rfile.read(length).decode()})

    def do_SPAM(self) -> None:
        self._echo()


class Recorder11(Recorder):
    protocol_version = "HTTP/1.1"


@pytest.fixture
def server() -> Iterator[ds.ThreadingHTTPServer]:
    Recorder.logged.clear()
    with running_server(ds.ThreadingHTTPServer, Recorder) as srv:
        assert isinstance(srv, ds.ThreadingHTTPServer)
        yield srv


@pytest.fixture
def server11() -> Iterator[ds.ThreadingHTTPServer]:
    Recorder.logged.clear()
    with running_server(ds.ThreadingHTTPServer, Recorder11) as srv:
        assert isinstance(srv, ds.ThreadingHTTPServer)
        yield srv


def get(port: int, path: str, method: str = "GET", **kw: Any) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, **kw)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_documented_class_attributes() -> None:
    handler = ds.BaseHTTPRequestHandler
    assert handler.protocol_version == "HTTP/1.0"
    assert handler.server_version == "BaseHTTP/0.6"
    assert handler.sys_version == "Python/" + sys.version.split()[0]
    assert handler.error_content_type == "text/html;charset=utf-8"
    assert handler.MessageClass is http.client.HTTPMessage
    assert handler.responses[404] == ("Not Found", "Nothing matches the given URI")
    assert handler.responses[200][0] == "OK"
    assert "%(code)d" in handler.error_message_format
    assert ds.SimpleHTTPRequestHandler.server_version == "SimpleHTTP/0.6"
    assert ds.SimpleHTTPRequestHandler.index_pages == ("index.html", "index.htm")
    assert ds.CGIHTTPRequestHandler.cgi_directories == ["/cgi-bin", "/htbin"]
    assert set(ds.__all__) >= {
        "HTTPServer",
        "ThreadingHTTPServer",
        "HTTPSServer",
        "ThreadingHTTPSServer",
        "BaseHTTPRequestHandler",
        "SimpleHTTPRequestHandler",
        "CGIHTTPRequestHandler",
    }


def test_server_records_name_and_port(server: ds.ThreadingHTTPServer) -> None:
    assert server.server_port == port_of(server) != 0
    assert isinstance(server.server_name, str) and server.server_name
    assert server.daemon_threads


def test_handler_sees_documented_instance_variables(server: ds.ThreadingHTTPServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=5)
    conn.request("GET", "/a/b?c=d")
    facts = json.loads(conn.getresponse().read())
    assert facts["command"] == "GET"
    assert facts["path"] == "/a/b?c=d"
    assert facts["request_version"] == "HTTP/1.1"
    assert facts["requestline"] == "GET /a/b?c=d HTTP/1.1"
    assert facts["host"] == f"127.0.0.1:{port_of(server)}"
    assert facts["headers_type"] == "HTTPMessage" and facts["is_message_class"]
    assert facts["client"] == "127.0.0.1"
    assert facts["server_port"] == port_of(server)
    assert facts["rfile_is_buffered"] and facts["wfile_writable"]
    # protocol_version HTTP/1.0: the connection closes after one request
    assert facts["close_connection"] is True


def test_post_body_and_custom_method(server: ds.ThreadingHTTPServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=5)
    conn.request("POST", "/p", body=b"hello body")
    assert json.loads(conn.getresponse().read())["body"] == "hello body"
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=5)
    conn.request("SPAM", "/s")
    assert json.loads(conn.getresponse().read())["command"] == "SPAM"


def test_unknown_method_is_501(server: ds.ThreadingHTTPServer) -> None:
    response = get(port_of(server), "/", method="BREW")
    assert response.status == 501
    assert Recorder.logged[0] == "code 501, message Unsupported method ('BREW')"


@pytest.mark.parametrize("code", [400, 403, 404, 418, 500, 599])
def test_send_error_body_and_headers(server: ds.ThreadingHTTPServer, code: int) -> None:
    raw = raw_exchange(port_of(server), f"GET /error/{code} HTTP/1.0\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    head += b"\r\n"
    assert status_of(raw) == code
    assert b"\r\nConnection: close\r\n" in head
    assert b"\r\nContent-Type: text/html;charset=utf-8\r\n" in head
    assert f"\r\nContent-Length: {len(body)}\r\n".encode() in head
    assert f"<p>Error code: {code}</p>".encode() in body
    assert b"<p>Message: custom message.</p>" in body
    assert f"Error code explanation: {code} - custom &lt;explain&gt;.".encode() in body
    if code == 599:
        assert head.startswith(b"HTTP/1.0 599 custom message\r\n")


@pytest.mark.parametrize("code", [204, 205, 304, 100, 101])
def test_send_error_without_body(server: ds.ThreadingHTTPServer, code: int) -> None:
    raw = raw_exchange(port_of(server), f"GET /error/{code} HTTP/1.0\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == code
    assert body == b""
    assert b"Content-Length" not in head
    assert b"Content-Type" not in head


def test_send_error_head_has_length_but_no_body(server: ds.ThreadingHTTPServer) -> None:
    class HeadError(Recorder):
        def do_HEAD(self) -> None:
            self.send_error(404)

    with running_server(ds.ThreadingHTTPServer, HeadError) as srv:
        raw = raw_exchange(port_of(srv), b"HEAD /x HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == 404
    assert body == b""
    match = re.search(rb"Content-Length: (\d+)", head)
    assert match is not None and int(match[1]) > 0


def test_unknown_code_uses_question_marks(server: ds.ThreadingHTTPServer) -> None:
    class Unknown(Recorder):
        def do_GET(self) -> None:
            self.send_error(599)

    with running_server(ds.ThreadingHTTPServer, Unknown) as srv:
        raw = raw_exchange(port_of(srv), b"GET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 599 ???\r\n")
    assert b"<p>Message: ???.</p>" in raw


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.x\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / extra HTTP/1.1\r\n\r\n", 400),
        (b"BLAH\r\n\r\n", 400),
        (b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 65536 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: x\r\n" % i for i in range(100)) + b"\r\n", 431),
    ],
)
def test_malformed_requests_get_their_status(
    server: ds.ThreadingHTTPServer, request_bytes: bytes, status: int
) -> None:
    raw = raw_exchange(port_of(server), request_bytes)
    assert status_of(raw) == status
    assert b"\r\nConnection: close\r\n" in raw


def test_99_headers_are_accepted(server: ds.ThreadingHTTPServer) -> None:
    many = b"".join(b"H%d: x\r\n" % i for i in range(98))
    raw = raw_exchange(port_of(server), b"GET / HTTP/1.0\r\nHost: h\r\n" + many + b"\r\n")
    assert status_of(raw) == 200


def test_431_explains_the_limit(server: ds.ThreadingHTTPServer) -> None:
    raw = raw_exchange(port_of(server), b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
    assert b"Line too long" in raw
    assert b"got more than 65536 bytes when reading header line" in raw


def test_http09_request_gets_a_bare_body(server: ds.ThreadingHTTPServer) -> None:
    raw = raw_exchange(port_of(server), b"GET /nine\r\n")
    assert raw.startswith(b"{")
    assert json.loads(raw)["request_version"] == "HTTP/0.9"


def test_empty_connection_gets_no_response(server: ds.ThreadingHTTPServer) -> None:
    assert raw_exchange(port_of(server), b"") == b""
    assert raw_exchange(port_of(server), b"\r\n") == b""


def test_keep_alive_many_requests_on_one_connection(server11: ds.ThreadingHTTPServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server11), timeout=5)
    sockets = set()
    for i in range(5):
        conn.request("GET", f"/n{i}")
        response = conn.getresponse()
        facts = json.loads(response.read())
        assert facts["path"] == f"/n{i}"
        assert facts["close_connection"] is False
        assert conn.sock is not None
        sockets.add(conn.sock.fileno())
    assert len(sockets) == 1
    conn.close()


def test_connection_close_header_is_honoured(server11: ds.ThreadingHTTPServer) -> None:
    raw = raw_exchange(
        port_of(server11), b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    assert status_of(raw) == 200  # raw_exchange returning at all proves the close


def test_pipelined_requests_are_answered_in_order(server11: ds.ThreadingHTTPServer) -> None:
    raw = raw_exchange(
        port_of(server11),
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert raw.index(b'"/one"') < raw.index(b'"/two"')


def test_http10_keep_alive_is_confirmed(server11: ds.ThreadingHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server11)), timeout=5) as sock:
        sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = sock.recv(65536)
        assert b"\r\nConnection: keep-alive\r\n" in first
        sock.sendall(b"GET /b HTTP/1.0\r\n\r\n")
        second = read_to_end(sock)
    assert b'"/b"' in second


def test_unframed_http11_response_closes_instead_of_hanging(
    server11: ds.ThreadingHTTPServer,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server11), timeout=5)
    conn.request("GET", "/unframed")
    response = conn.getresponse()
    assert response.getheader("Connection") == "close"
    assert response.read() == b"no length"


def test_expect_100_continue(server11: ds.ThreadingHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server11)), timeout=5) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        rest = read_to_end(sock)
    assert b'"body": "hello"' in interim + rest


def test_expect_100_refused_by_override() -> None:
    class Refuse(Recorder11):
        def handle_expect_100(self) -> bool:
            self.send_error(HTTPStatus.EXPECTATION_FAILED)
            return False

    with running_server(ds.ThreadingHTTPServer, Refuse) as srv:
        raw = raw_exchange(
            port_of(srv),
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
    assert status_of(raw) == 417


def test_send_header_refuses_response_splitting(server: ds.ThreadingHTTPServer) -> None:
    raw = raw_exchange(port_of(server), b"GET /split HTTP/1.0\r\n\r\n")
    assert b"Set-Cookie" not in raw
    assert b"\r\nX-Refused: yes\r\n" in raw


def test_handler_exception_answers_500_and_server_survives(
    server: ds.ThreadingHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = raw_exchange(port_of(server), b"GET /boom HTTP/1.0\r\n\r\n")
    assert status_of(raw) == 500
    assert status_of(raw_exchange(port_of(server), b"GET /ok HTTP/1.0\r\n\r\n")) == 200
    assert "RuntimeError: handler bug" in capsys.readouterr().err


def test_send_response_order_and_log(server: ds.ThreadingHTTPServer) -> None:
    raw = raw_exchange(port_of(server), b"GET /x HTTP/1.0\r\n\r\n")
    lines = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert lines[0] == b"HTTP/1.0 200 OK"
    assert lines[1] == f"Server: BaseHTTP/0.6 Python/{sys.version.split()[0]}".encode()
    assert lines[2].startswith(b"Date: ") and lines[2].endswith(b" GMT")
    assert Recorder.logged == ['"GET /x HTTP/1.0" 200 -']


def test_send_response_only_and_flush_headers() -> None:
    class Manual(Recorder):
        def do_GET(self) -> None:
            self.send_response_only(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with running_server(ds.ThreadingHTTPServer, Manual) as srv:
        raw = raw_exchange(port_of(srv), b"GET / HTTP/1.0\r\n\r\n")
    assert raw == b"HTTP/1.0 201 Created\r\nContent-Length: 2\r\n\r\nok"


def test_log_message_scrubs_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(ds.ThreadingHTTPServer, ds.BaseHTTPRequestHandler) as srv:
        raw_exchange(port_of(srv), b"GET /\x1b[31mred\x07\\ HTTP/1.0\r\n\r\n")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "/\\x1b[31mred\\x07\\\\" in err
    line = err.splitlines()[-1]
    assert re.match(r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] ", line), line


def test_helper_methods() -> None:
    handler = ds.BaseHTTPRequestHandler.__new__(ds.BaseHTTPRequestHandler)
    handler.client_address = ("10.1.2.3", 5555)
    assert handler.address_string() == "10.1.2.3"
    assert handler.version_string() == f"BaseHTTP/0.6 Python/{sys.version.split()[0]}"
    assert handler.date_time_string(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    now = time.strftime("%d/%b/%Y", time.localtime())
    assert handler.log_date_time_string().startswith(now)
    messages: list[str] = []
    handler.log_message = lambda fmt, *args: messages.append(fmt % args)  # type: ignore[method-assign]
    handler.requestline = "GET / HTTP/1.0"
    handler.log_request(HTTPStatus.NOT_FOUND, 12)
    handler.log_error("oops %s", "x")
    assert messages == ['"GET / HTTP/1.0" 404 12', "oops x"]


def test_client_disconnect_mid_response_is_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    sent = threading.Event()

    class Big(ds.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(64 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(1024):
                    self.wfile.write(b"x" * 65536)
            finally:
                sent.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with running_server(ds.ThreadingHTTPServer, Big) as srv:
        before = threading.active_count()
        fds_before = len(os.listdir("/proc/self/fd"))
        with socket.create_connection(("127.0.0.1", port_of(srv)), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            sock.recv(1000)
            # reset instead of an orderly close: the server's next write fails
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, bytes([1, 0, 0, 0, 0, 0, 0, 0]))
        assert sent.wait(10)
        deadline = time.monotonic() + 5
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert threading.active_count() <= before
        assert len(os.listdir("/proc/self/fd")) <= fds_before
    assert "Traceback" not in capsys.readouterr().err


def test_preopened_idle_socket_does_not_block_others(server11: ds.ThreadingHTTPServer) -> None:
    """Browsers open spare connections and send nothing; other requests go on."""
    spare = [socket.create_connection(("127.0.0.1", port_of(server11))) for _ in range(4)]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port_of(server11), timeout=5)
        conn.request("GET", "/after-spares")
        assert json.loads(conn.getresponse().read())["path"] == "/after-spares"
        conn.close()
    finally:
        for sock in spare:
            sock.close()


def test_ipv6_and_dual_stack() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    srv = ds.HTTPServer(("::", 0), Recorder)
    try:
        assert srv.address_family == socket.AF_INET6
        thread = threading.Thread(target=srv.handle_request)
        thread.start()
        raw = raw_exchange(srv.server_address[1], b"GET /v4 HTTP/1.0\r\n\r\n")
        thread.join(5)
        assert status_of(raw) == 200
    finally:
        srv.server_close()


def test_single_threaded_server_serves_sequential_requests() -> None:
    srv = ds.HTTPServer(("127.0.0.1", 0), Recorder)
    try:
        for path in ("/a", "/b"):
            thread = threading.Thread(target=srv.handle_request)
            thread.start()
            raw = raw_exchange(srv.server_port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
            thread.join(5)
            assert json.loads(raw.partition(b"\r\n\r\n")[2])["path"] == path
    finally:
        srv.server_close()


def test_server_close_does_not_wait_for_idle_keep_alive() -> None:
    with running_server(ds.ThreadingHTTPServer, Recorder11) as srv:
        sock = socket.create_connection(("127.0.0.1", port_of(srv)), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        response = b""
        while not response.endswith(b"}"):  # the whole JSON body, which ends in "}"
            response += sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
    # leaving the block shut the server down with the connection still open and idle
    assert time.monotonic() - started < 5
    assert sock.recv(10) == b""
    sock.close()
