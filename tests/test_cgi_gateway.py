"""The CGI gateway's harder edges, with real scripts, real clients and real sockets.

Request bodies (chunked, Expect, limits), script output (nph, local redirects,
redirect loops), timeouts that kill a whole process group, scripts that cannot
be started, a compiled C program, Git's own ``git-http-backend`` driven by the
real ``git`` client, and the ``devserve cgi`` command end to end.

Environment notes (as in ``test_cgi.py``): the suite runs as root, so scripts run
as ``nobody``; every tree is the ``public_tmp`` folder (conftest) with 0755
directories and scripts, and Python scripts use ``/usr/bin/python3`` (the
venv's interpreter lies below ``/root``, which ``nobody`` cannot enter). The C
test needs ``gcc`` (Debian ``gcc`` with ``libc6-dev``), the Git tests ``git``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import io
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from devserve._loop import LoopHTTPServer
from devserve._scripts import ScriptGroup
from devserve.server import CGIHTTPRequestHandler, ThreadingHTTPServer
from tests.support import LogLines as Log
from tests.support import (
    devserve_env,
    devserve_process,
    port_of,
    raw_exchange,
    read_to_end,
    running_server,
    status_of,
    stop_and_read,
)

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0
MIB = 1024 * 1024
SYSTEM_PYTHON = "/usr/bin/python3"

# --------------------------------------------------------------------------- scripts

ECHO_PY = """#!/usr/bin/python3
import json, os, sys
data = sys.stdin.buffer.read()
names = ("REQUEST_METHOD", "CONTENT_LENGTH", "CONTENT_TYPE", "QUERY_STRING",
         "SCRIPT_NAME", "PATH_INFO", "HTTP_X_TRAILER", "HTTP_TRANSFER_ENCODING")
reply = {name: os.environ.get(name) for name in names}
reply["stdin"] = data.decode("latin-1")
sys.stdout.buffer.write(b"Content-Type: application/json\\r\\n\\r\\n")
sys.stdout.buffer.write(json.dumps(reply).encode("utf-8"))
"""

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *query = getenv("QUERY_STRING");
    const char *length = getenv("CONTENT_LENGTH");
    long count = 0;
    while (getchar() != EOF)
        count++;
    printf("Content-Type: text/plain\r\n\r\n");
    printf("query=%s length=%s stdin=%ld\n", query ? query : "(unset)",
           length ? length : "(unset)", count);
    return 0;
}
"""

SCRIPTS: dict[str, str] = {
    "cgi-bin/wc.sh": (
        "printf 'Content-Type: text/plain\\n\\n%s %s' \"$CONTENT_LENGTH\" \"$(wc -c | tr -d ' ')\""
    ),
    # Leaves a marker when it runs: a refused request must not run it.
    "cgi-bin/marker.sh": (": > '@MARKERS@/marker-ran'\nprintf 'Content-Type: text/plain\\n\\nran'"),
    "cgi-bin/nph-raw.sh": (
        "printf 'HTTP/1.0 299 Custom\\r\\nX-Raw: yes\\r\\nContent-Type: text/x-raw\\r\\n"
        "\\r\\nraw body, untouched\\n'"
    ),
    "cgi-bin/to-file.sh": "printf 'Location: /other.txt\\n\\n'",
    "cgi-bin/to-script.sh": "printf 'Location: /cgi-bin/echo.py?from=redirect\\n\\n'",
    "cgi-bin/loop-a.sh": "printf 'Location: /cgi-bin/loop-b.sh\\n\\n'",
    "cgi-bin/loop-b.sh": "printf 'Location: /cgi-bin/loop-a.sh\\n\\n'",
    "cgi-bin/see-other.sh": "printf 'Status: 303 See Other\\nLocation: /x\\n\\n'",
    # Never prints; starts a background child; both PIDs go to the markers.
    "cgi-bin/hang.sh": (
        "sleep 1000 &\n"
        "echo $! > '@MARKERS@/child.pid'\n"
        "echo $$ > '@MARKERS@/script.pid'\n"
        "sleep 1000"
    ),
    "cgi-bin/partial.sh": "printf 'Content-Type: text/plain\\n\\npartial-body'\nsleep 1000",
    # Starts a child in a session of its own (out of reach of killpg) that holds
    # the script's stdout, then hangs itself: only the run's mark can find the child.
    "cgi-bin/escape-hang.sh": (
        "printf 'Content-Type: text/plain\\n\\nbefore the escape\\n'\n"
        "setsid sh -c 'echo $$ > \"@MARKERS@/escaped.pid\"; exec sleep 1000' &\n"
        "sleep 1000"
    ),
    # The same child, but the script answers and exits: the reply must still end.
    "cgi-bin/escape-exit.sh": (
        "printf 'Content-Type: text/plain\\n\\nanswered\\n'\n"
        "setsid sh -c 'echo $$ > \"@MARKERS@/escaped.pid\"; exec sleep 1000' &\n"
        "exit 0"
    ),
    # A daemon: a session of its own and no stdout; answers at once. Only stopping
    # devserve ends the daemon.
    "cgi-bin/daemon.sh": (
        "setsid sh -c 'echo $$ > \"@MARKERS@/daemon.pid\"; exec sleep 1000' "
        "</dev/null >/dev/null 2>&1 &\n"
        "printf 'Content-Type: text/plain\\n\\nstarted\\n'"
    ),
    "cgi-bin/ids.sh": "printf 'Content-Type: text/plain\\n\\n%s %s %s' \"$(id -u)\" "
    '"$(id -g)" "$(id -G)"',
}


@dataclasses.dataclass(frozen=True)
class Tree:
    root: Path
    markers: Path

    def ran(self, name: str) -> bool:
        return (self.markers / f"{name}-ran").exists()

    def write(self, rel: str, text: str, mode: int = 0o755) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
        return path


@pytest.fixture
def tree(public_tmp: Path) -> Tree:
    root = public_tmp
    markers = root / "markers"
    markers.mkdir()
    markers.chmod(0o777)
    t = Tree(root, markers)
    for rel, body in SCRIPTS.items():
        t.write(rel, "#!/bin/sh\n" + body.replace("@MARKERS@", str(markers)) + "\n")
    t.write("cgi-bin/echo.py", ECHO_PY)
    t.write("other.txt", "the other file\n", 0o644)
    return t


# --------------------------------------------------------------------------- server


@dataclasses.dataclass(frozen=True)
class Served:
    port: int
    log: Log


@contextlib.contextmanager
def serve(
    tree: Tree,
    protocol: str = "HTTP/1.1",
    timeout: float | None = None,
    max_body: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    seen: list[tuple[str, str, str | None]] | None = None,
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    scripts: ScriptGroup | None = None,
) -> Iterator[Served]:
    """Serve ``tree`` with a CGIHTTPRequestHandler subclass set up as asked.

    ``seen`` collects (method, path, Transfer-Encoding) of every CGI request;
    ``scripts`` is the record of started scripts (as `devserve cgi` keeps one).
    """
    log = Log()

    class Handler(CGIHTTPRequestHandler):
        protocol_version = protocol
        cgi_timeout = timeout
        cgi_max_body = max_body
        cgi_extra_env: Mapping[str, str] = dict(extra_env or {})
        cgi_scripts = scripts

        def run_cgi(self) -> None:
            if seen is not None:
                seen.append((str(self.command), self.path, self.headers.get("Transfer-Encoding")))
            super().run_cgi()

        def log_message(self, format: str, *args: Any) -> None:
            log.add(format % args)

    with running_server(server_class, Handler, directory=str(tree.root)) as server:
        yield Served(port_of(server), log)


class LoopServer(LoopHTTPServer):
    """`devserve cgi`'s arrangement: the event loop holds connections between requests."""


# --------------------------------------------------------------------------- clients


class _Unclosable(io.BytesIO):
    def close(self) -> None:
        """http.client closes its file after each response; keep it for the next one."""


class _RecordedSocket:
    """Bytes already received, shaped like a socket for ``http.client.HTTPResponse``."""

    def __init__(self, data: bytes) -> None:
        self.file = _Unclosable(data)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BytesIO:
        return self.file


def parse_responses(data: bytes, count: int, method: str = "GET") -> list[tuple[int, bytes]]:
    """Decode ``count`` consecutive responses (status, de-chunked body) from raw bytes."""
    sock = _RecordedSocket(data)
    replies = []
    for _ in range(count):
        response = http.client.HTTPResponse(cast(socket.socket, sock), method=method)
        response.begin()
        replies.append((response.status, response.read()))
    assert sock.file.read() == b"", "bytes after the last response"
    return replies


def read_head(sock: socket.socket) -> bytes:
    """Bytes up to and including the first blank line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if text.strip():
            return int(text)
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.02)


# =========================================================================== request bodies


CHUNKED_POST = (
    b"POST /cgi-bin/echo.py?q=1 HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Content-Type: text/plain\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    b"5;name=value\r\nhello\r\n"
    b'1;quoted="a;b";flag\r\n \r\n'
    b"B\r\nworld, 10\r\n\r\n"
    b"0\r\n"
    b"X-Trailer: dropped\r\n"
    b"X-Another: too\r\n"
    b"\r\n"
)


def test_chunked_body_reaches_script_dechunked(tree: Tree) -> None:
    # A GET pipelined after the chunked POST proves the body (with its trailers)
    # was consumed exactly: a sloppy de-chunker would eat or leave bytes.
    pipelined = CHUNKED_POST + b"GET /other.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with serve(tree) as s:
        data = raw_exchange(s.port, pipelined, timeout=TIMEOUT)
    (status, body), (status2, body2) = parse_responses(data, 2)
    assert status == 200, data[:500]
    reply = json.loads(body)
    assert reply["stdin"] == "hello world, 10\r\n"
    assert reply["CONTENT_LENGTH"] == str(len("hello world, 10\r\n"))
    assert reply["REQUEST_METHOD"] == "POST"
    assert reply["CONTENT_TYPE"] == "text/plain"
    assert reply["QUERY_STRING"] == "q=1"
    assert reply["HTTP_X_TRAILER"] is None  # trailers are not request headers
    assert (status2, body2) == (200, b"the other file\n")


def test_chunked_body_over_http10_handler(tree: Tree) -> None:
    with serve(tree, protocol="HTTP/1.0") as s:
        data = raw_exchange(s.port, CHUNKED_POST, timeout=TIMEOUT)
    assert status_of(data) == 200, data[:500]
    reply = json.loads(data.partition(b"\r\n\r\n")[2])
    assert reply["stdin"] == "hello world, 10\r\n"
    assert reply["CONTENT_LENGTH"] == "17"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"zz\r\nhello\r\n0\r\n\r\n", id="not-hex"),
        pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", id="0x-prefix"),
        pytest.param(b"-5\r\nhello\r\n0\r\n\r\n", id="negative"),
        pytest.param(b"\r\nhello\r\n0\r\n\r\n", id="empty-size"),
        pytest.param(b"1" * 17 + b"\r\nhello\r\n0\r\n\r\n", id="size-over-16-digits"),
        pytest.param(b"5\r\nhelloXX0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(b"5\r\nhel", id="truncated-data"),
        pytest.param(b"5\r\nhello\r\n", id="no-last-chunk"),
        pytest.param(b"1" * 5000, id="overlong-size-line"),
        pytest.param(
            b"0\r\n" + b"".join(b"T%d: x\r\n" % i for i in range(150)) + b"\r\n",
            id="too-many-trailers",
        ),
    ],
)
def test_malformed_chunked_body_is_400_and_script_not_run(tree: Tree, body: bytes) -> None:
    head = b"POST /cgi-bin/marker.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(tree) as s:
        data = raw_exchange(s.port, head + body, timeout=TIMEOUT)
    assert status_of(data) == 400, data[:300]
    assert not tree.ran("marker")


@pytest.mark.parametrize(
    ("coding", "status"),
    # RFC 9112 6.3: a final coding other than chunked leaves the body's length
    # unknown: 400 and close. A chunked body in another coding the gateway cannot
    # undo: 501 (RFC 9112 6.1).
    [("gzip", 400), ("identity", 400), ("chunked, gzip", 400), ("gzip, chunked", 501)],
)
def test_unsupported_transfer_coding_is_refused_and_closes(
    tree: Tree, coding: str, status: int
) -> None:
    raw = (
        b"POST /cgi-bin/marker.sh HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: " + coding.encode() + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    with serve(tree) as s:
        data = raw_exchange(s.port, raw, timeout=TIMEOUT)
    assert status_of(data) == status, data[:300]
    assert b"Connection: close" in data.partition(b"\r\n\r\n")[0]
    assert not tree.ran("marker")


def test_content_length_over_limit_is_413_without_running(tree: Tree) -> None:
    with serve(tree, max_body=10) as s:
        status, _, _ = request(s.port, "POST", "/cgi-bin/marker.sh", b"x" * 11)
        assert status == 413
        assert not tree.ran("marker")
        # At the limit the body is accepted.
        status, _, body = request(s.port, "POST", "/cgi-bin/wc.sh", b"x" * 10)
        assert (status, body) == (200, b"10 10")


def test_chunked_body_over_limit_is_413_without_running(tree: Tree) -> None:
    raw = (
        b"POST /cgi-bin/marker.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nsix b.\r\n5\r\nfive.\r\n0\r\n\r\n"
    )
    with serve(tree, max_body=10) as s:
        data = raw_exchange(s.port, raw, timeout=TIMEOUT)
        assert status_of(data) == 413, data[:300]
        assert not tree.ran("marker")
        at_limit = raw.replace(b"marker.sh", b"wc.sh").replace(b"6\r\nsix b.", b"5\r\nsix b")
        data = raw_exchange(s.port, at_limit, timeout=TIMEOUT)
    assert parse_responses(data, 1) == [(200, b"10 10")]


def test_expect_100_continue_gets_interim_response_first(tree: Tree) -> None:
    head = (
        b"POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    with serve(tree) as s, socket.create_connection(("127.0.0.1", s.port), TIMEOUT) as sock:
        sock.sendall(head)
        # The body is sent only after the interim response arrived.
        assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        data = read_to_end(sock, TIMEOUT)
    ((status, body),) = parse_responses(data, 1)
    assert status == 200
    assert json.loads(body)["stdin"] == "hello"


def test_expect_100_is_not_sent_by_an_http10_handler(tree: Tree) -> None:
    raw = (
        b"POST /cgi-bin/echo.py HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\nhello"
    )
    with serve(tree, protocol="HTTP/1.0") as s:
        data = raw_exchange(s.port, raw, timeout=TIMEOUT)
    assert data.startswith(b"HTTP/1.0 200 "), data[:200]
    assert json.loads(data.partition(b"\r\n\r\n")[2])["stdin"] == "hello"


def test_large_chunked_upload_is_counted_exactly(tree: Tree) -> None:
    size = 20 * MIB
    block = os.urandom(65536)

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    seen: list[tuple[str, str, str | None]] = []
    with serve(tree, seen=seen) as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:
            conn.request("POST", "/cgi-bin/wc.sh", body=body(), encode_chunked=True)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == f"{size} {size}".encode()
        finally:
            conn.close()
    assert seen == [("POST", "/cgi-bin/wc.sh", "chunked")]


# =========================================================================== script output


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"])
def test_nph_script_output_passes_through_unchanged(tree: Tree, protocol: str) -> None:
    with serve(tree, protocol=protocol) as s:
        data = raw_exchange(
            s.port, b"GET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: x\r\n\r\n", timeout=TIMEOUT
        )
    assert data == (
        b"HTTP/1.0 299 Custom\r\nX-Raw: yes\r\nContent-Type: text/x-raw\r\n\r\n"
        b"raw body, untouched\n"
    )


def test_local_location_to_a_file_is_served_internally(tree: Tree) -> None:
    with serve(tree) as s:
        status, headers, body = request(s.port, "GET", "/cgi-bin/to-file.sh")
    assert status == 200
    assert body == b"the other file\n"
    assert headers.get("Location") is None
    assert headers.get_content_type() == "text/plain"


def test_local_location_to_a_script_runs_it_as_get(tree: Tree) -> None:
    with serve(tree) as s:
        status, _, body = request(
            s.port, "POST", "/cgi-bin/to-script.sh", b"a=1&b=2", {"Content-Type": "text/x-form"}
        )
    assert status == 200
    reply = json.loads(body)
    assert reply["REQUEST_METHOD"] == "GET"
    assert reply["QUERY_STRING"] == "from=redirect"
    assert reply["SCRIPT_NAME"] == "/cgi-bin/echo.py"
    assert reply["CONTENT_LENGTH"] == ""
    assert reply["CONTENT_TYPE"] == ""
    assert reply["stdin"] == ""


def test_local_redirect_keeps_the_connection_usable(tree: Tree) -> None:
    with serve(tree) as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
        try:
            first = None
            for path in ("/cgi-bin/to-file.sh", "/cgi-bin/to-script.sh", "/other.txt"):
                conn.request("GET", path)
                response = conn.getresponse()
                assert response.status == 200
                response.read()
                first = first or conn.sock
                assert conn.sock is first, f"connection closed after {path}"
        finally:
            conn.close()


def test_redirect_loop_between_scripts_ends_in_508(tree: Tree) -> None:
    with serve(tree) as s:
        status, _, _ = request(s.port, "GET", "/cgi-bin/loop-a.sh")
    assert status == 508


def test_local_location_with_status_is_a_real_redirect(tree: Tree) -> None:
    with serve(tree) as s:
        status, headers, _ = request(s.port, "GET", "/cgi-bin/see-other.sh")
    assert status == 303
    assert headers.get("Location") == "/x"


# =========================================================================== timeouts


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"])
def test_silent_hanging_script_gets_504_and_its_process_group_dies(
    tree: Tree, protocol: str
) -> None:
    with serve(tree, protocol=protocol, timeout=1.0) as s:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", s.port), TIMEOUT) as sock:
            sock.sendall(b"GET /cgi-bin/hang.sh HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_to_end(sock, TIMEOUT)
        elapsed = time.monotonic() - started
        log = s.log.wait_for_text("timed out")
    assert status_of(data) == 504, data[:300]
    assert elapsed < 8, f"504 only after {elapsed:.1f} s with a 1 s timeout"
    assert "timed out" in log
    script, child = (read_pid(tree.markers / name) for name in ("script.pid", "child.pid"))
    assert wait_dead(script), f"the script (pid {script}) is still running"
    assert wait_dead(child), f"the script's background child (pid {child}) is still running"


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"])
def test_script_hanging_mid_body_sends_partial_body_then_closes(tree: Tree, protocol: str) -> None:
    with serve(tree, protocol=protocol, timeout=1.0) as s:
        with socket.create_connection(("127.0.0.1", s.port), TIMEOUT) as sock:
            sock.sendall(b"GET /cgi-bin/partial.sh HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_to_end(sock, TIMEOUT)
        log = s.log.wait_for_text("timed out")
    head, _, body = data.partition(b"\r\n\r\n")
    assert status_of(data) == 200
    assert "timed out" in log
    if protocol == "HTTP/1.1":
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"c\r\npartial-body\r\n"  # no last chunk: the client sees the cut
        with pytest.raises(http.client.IncompleteRead):
            parse_responses(data, 1)
    else:
        assert body == b"partial-body"


# =========================================================================== launch failures


@pytest.mark.parametrize(
    ("text", "status", "logged"),
    [
        pytest.param("#!/nonexistent/interp\necho hi\n", 500, "/nonexistent/interp", id="shebang"),
        pytest.param("just some words\nnot a program\n", 500, "not a program", id="plain-text"),
        pytest.param("", 500, "not a program", id="empty-file"),
    ],
)
def test_script_that_cannot_start_is_500_and_logged(
    tree: Tree, text: str, status: int, logged: str
) -> None:
    tree.write("cgi-bin/broken", text)
    with serve(tree) as s:
        got, _, _ = request(s.port, "GET", "/cgi-bin/broken")
        log = s.log.wait_for_text(logged)
    assert got == status
    assert logged in log
    assert "/cgi-bin/broken" in log  # which script


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: scripts then run as nobody")
@pytest.mark.parametrize("case", ["private-directory", "private-script"])
def test_script_nobody_cannot_execute_is_403_and_logged(tree: Tree, case: str) -> None:
    if case == "private-directory":
        script = tree.write("cgi-bin/private/run.sh", "#!/bin/sh\necho hi\n")
        script.parent.chmod(0o700)  # root's: nobody cannot enter it
        path = "/cgi-bin/private/run.sh"
    else:
        script = tree.write("cgi-bin/mine.sh", "#!/bin/sh\necho hi\n", 0o700)
        path = "/cgi-bin/mine.sh"
    with serve(tree) as s:
        status, _, _ = request(s.port, "GET", path)
        log = s.log.wait_for_text("permission denied")
    assert status == 403
    assert f"{script}: permission denied" in log


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: scripts then run as nobody")
def test_script_runs_without_root_groups(tree: Tree) -> None:
    nobody = pwd.getpwnam("nobody")
    with serve(tree) as s:
        status, _, body = request(s.port, "GET", "/cgi-bin/ids.sh")
    assert status == 200
    uid, gid, groups = body.decode().split(" ", 2)
    assert int(uid) == nobody.pw_uid
    assert int(gid) == nobody.pw_gid, "the script kept root's group"
    assert "0" not in groups.split(), f"the script kept root's supplementary groups: {groups}"


# =========================================================================== a compiled program


def test_compiled_c_program_as_cgi_script(tree: Tree) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the C CGI program (Debian: apt-get install gcc)")
    source = tree.root / "prog.c"
    source.write_text(C_PROGRAM)
    binary = tree.root / "cgi-bin" / "prog"
    subprocess.run(
        [gcc, "-O1", "-o", str(binary), str(source)], check=True, timeout=60, capture_output=True
    )
    binary.chmod(0o755)
    with serve(tree) as s:
        get = request(s.port, "GET", "/cgi-bin/prog?name=value&x=%20y")
        post = request(s.port, "POST", "/cgi-bin/prog?a=1", b"z" * 100_000)
    assert get[0] == 200
    assert get[2] == b"query=name=value&x=%20y length= stdin=0\n"
    assert post[0] == 200
    assert post[2] == b"query=a=1 length=100000 stdin=100000\n"


# =========================================================================== git smart HTTP


def _git(*args: str, cwd: Path | None = None, env: Mapping[str, str]) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"git {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def _git_http_backend() -> str:
    if shutil.which("git") is None:
        pytest.fail("git is needed for the smart-HTTP test (Debian: apt-get install git)")
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    assert backend.exists(), f"no git-http-backend in {exec_path}"
    return str(backend)


@pytest.mark.parametrize("server_class", [ThreadingHTTPServer, LoopServer], ids=["threads", "loop"])
@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/1.0"])
def test_git_clone_and_large_push_over_smart_http(
    tree: Tree, tmp_path: Path, protocol: str, server_class: type[ThreadingHTTPServer]
) -> None:
    backend = _git_http_backend()
    repos = tree.root / "repos"
    client_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    # The bare repository, seeded with one commit, owned by the scripts' user.
    _git("init", "-q", "--bare", "-b", "main", str(repos / "repo.git"), env=client_env)
    _git("config", "http.receivepack", "true", cwd=repos / "repo.git", env=client_env)
    seed = tmp_path / "seed"
    _git("init", "-q", "-b", "main", str(seed), env=client_env)
    (seed / "README").write_text("seed\n")
    _git("add", "README", cwd=seed, env=client_env)
    _git("commit", "-q", "-m", "seed", cwd=seed, env=client_env)
    _git("push", "-q", str(repos / "repo.git"), "main", cwd=seed, env=client_env)
    nobody = pwd.getpwnam("nobody")
    for dirpath, dirnames, filenames in os.walk(repos):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, nobody.pw_uid, nobody.pw_gid)
    tree.write("cgi-bin/git", f"#!/bin/sh\nexec {backend}\n")
    extra_env = {
        "GIT_PROJECT_ROOT": str(repos),
        "GIT_HTTP_EXPORT_ALL": "1",
        "HOME": str(tree.root),  # not /root: git dies on a config file it cannot read
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": "*",
    }
    seen: list[tuple[str, str, str | None]] = []
    with serve(
        tree, protocol=protocol, extra_env=extra_env, seen=seen, server_class=server_class
    ) as s:
        url = f"http://127.0.0.1:{s.port}/cgi-bin/git/repo.git"
        first = tmp_path / "first"
        _git("clone", "-q", url, str(first), env=client_env)
        assert (first / "README").read_text() == "seed\n"

        payload = os.urandom(6 * MIB)  # incompressible: the pack is > 5 MiB
        (first / "big.bin").write_bytes(payload)
        _git("add", "big.bin", cwd=first, env=client_env)
        _git("commit", "-q", "-m", "six MiB of noise", cwd=first, env=client_env)
        _git("push", "-q", "origin", "main", cwd=first, env=client_env)
        pushed = _git("rev-parse", "HEAD", cwd=first, env=client_env).strip()

        second = tmp_path / "second"
        _git("clone", "-q", url, str(second), env=client_env)
        log = s.log.text()
    assert _git("rev-parse", "HEAD", cwd=second, env=client_env).strip() == pushed
    digest = hashlib.sha256(payload).hexdigest()
    assert hashlib.sha256((second / "big.bin").read_bytes()).hexdigest() == digest
    # The big push went up chunked (git does so past http.postBuffer): the point.
    assert any(
        method == "POST" and path.endswith("/git-receive-pack") and coding == "chunked"
        for method, path, coding in seen
    ), seen
    assert "exit code" not in log, log


# =========================================================================== the CLI


def cgi_process(
    directory: Path, *args: str, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[str], str]]:
    """`devserve cgi DIRECTORY --port 0 ...` as a subprocess, and its URL."""
    return devserve_process("cgi", str(directory), "--port", "0", *args, env=env)


def port_in(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


CLI_SCRIPTS = {
    "cgi-bin/hello.sh": "printf 'Content-Type: text/plain\\n\\nhello from cgi\\n'",
    "scripts/x.sh": "printf 'Content-Type: text/plain\\n\\nx from scripts\\n'",
    "cgi-bin/env.sh": (
        "printf 'Content-Type: text/plain\\n\\nFOO=%s SECRET=%s' \"${FOO-unset}\" "
        '"${SECRET_TOKEN-unset}"'
    ),
    "cgi-bin/wc.sh": SCRIPTS["cgi-bin/wc.sh"],
    "cgi-bin/hang.sh": "sleep 1000",
    "cgi-bin/stderr.sh": (
        "printf 'oops \\033[31mred\\n' >&2\nprintf 'Content-Type: text/plain\\n\\nok'"
    ),
}


@pytest.fixture
def cli_tree(tree: Tree) -> Tree:
    for rel, body in CLI_SCRIPTS.items():
        tree.write(rel, "#!/bin/sh\n" + body + "\n")
    return tree


def test_cli_runs_a_script_and_stops_on_sigint(cli_tree: Tree) -> None:
    with cgi_process(cli_tree.root) as (process, url):
        status, _, body = request(port_in(url), "GET", "/cgi-bin/hello.sh")
        assert (status, body) == (200, b"hello from cgi\n")
        log = stop_and_read(process)
    assert re.search(r"^\S+ 127\.0\.0\.1 GET /cgi-bin/hello\.sh 200 ", log, re.M), log
    assert re.search(r"^stopped: 1 requests?, .* 0 errors in [\d.]+ s$", log, re.M), log
    assert "Traceback" not in log


def test_cli_cgi_dir_replaces_the_defaults(cli_tree: Tree) -> None:
    with cgi_process(cli_tree.root, "--cgi-dir", "/scripts") as (process, url):
        port = port_in(url)
        assert request(port, "GET", "/scripts/x.sh")[::2] == (200, b"x from scripts\n")
        # /cgi-bin is an ordinary folder now: the script's source, not its output.
        status, _, body = request(port, "GET", "/cgi-bin/hello.sh")
        assert status == 200
        assert body == (cli_tree.root / "cgi-bin/hello.sh").read_bytes()
        assert request(port, "POST", "/cgi-bin/hello.sh", b"x")[0] == 501
        stop_and_read(process)


def test_cli_timeout_kills_a_hanging_script_with_504(cli_tree: Tree) -> None:
    with cgi_process(cli_tree.root, "--timeout", "1") as (process, url):
        started = time.monotonic()
        status, _, _ = request(port_in(url), "GET", "/cgi-bin/hang.sh")
        elapsed = time.monotonic() - started
        log = stop_and_read(process)
    assert status == 504
    assert elapsed < 8
    assert re.search(r"CGI script \S+hang\.sh timed out after 1(\.0)? s", log), log


def test_cli_env_and_pass_env(cli_tree: Tree) -> None:
    secret = {"SECRET_TOKEN": "hunter2"}
    with cgi_process(cli_tree.root, "--env", "FOO=bar", env=secret) as (process, url):
        assert request(port_in(url), "GET", "/cgi-bin/env.sh")[2] == b"FOO=bar SECRET=unset"
        stop_and_read(process)
    args = ("--pass-env", "SECRET_TOKEN")
    with cgi_process(cli_tree.root, *args, env=secret) as (process, url):
        assert request(port_in(url), "GET", "/cgi-bin/env.sh")[2] == b"FOO=unset SECRET=hunter2"
        stop_and_read(process)


def test_cli_max_body(cli_tree: Tree) -> None:
    with cgi_process(cli_tree.root, "--max-body", "10") as (process, url):
        port = port_in(url)
        assert request(port, "POST", "/cgi-bin/wc.sh", b"x" * 11)[0] == 413
        assert request(port, "POST", "/cgi-bin/wc.sh", b"x" * 10)[::2] == (200, b"10 10")
        stop_and_read(process)


def test_cli_bad_env_is_one_line_and_exit_2(cli_tree: Tree) -> None:
    command = [sys.executable, "-m", "devserve", "cgi", str(cli_tree.root), "--port", "0"]
    result = subprocess.run(
        [*command, "--env", "bad"],
        env=devserve_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    output = (result.stdout + result.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert "malformed --env 'bad'" in output


def test_cli_script_stderr_is_logged_scrubbed(cli_tree: Tree) -> None:
    with cgi_process(cli_tree.root) as (process, url):
        assert request(port_in(url), "GET", "/cgi-bin/stderr.sh")[::2] == (200, b"ok")
        log = stop_and_read(process)
    assert "\x1b" not in log
    assert "oops \\x1b[31mred" in log, log


def test_expect_100_is_not_sent_for_a_body_over_the_limit(tree: Tree) -> None:
    """The client is told 413 at once instead of being invited to upload."""
    with serve(tree, max_body=10) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            sock.sendall(
                b"POST /cgi-bin/marker.sh HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            reply = read_to_end(sock, TIMEOUT)
        assert reply.startswith(b"HTTP/1.1 413 ")
        assert b"100 Continue" not in reply
        assert not tree.ran("marker")


# =========================================================================== escaped descendants


def test_timeout_ends_the_reply_even_when_an_escaped_child_holds_it(tree: Tree) -> None:
    """A child in a session of its own is out of killpg's reach; its mark is not."""
    with serve(tree, "HTTP/1.0", timeout=1.0, scripts=ScriptGroup()) as s:  # body ends at close
        started = time.monotonic()
        status, _, body = request(s.port, "GET", "/cgi-bin/escape-hang.sh")
        elapsed = time.monotonic() - started
    assert (status, body) == (200, b"before the escape\n")  # cut off at the timeout
    assert elapsed < 4
    escaped = read_pid(tree.markers / "escaped.pid")
    assert wait_dead(escaped), "the escaped child outlived the request"


def test_timeout_ends_the_reply_without_a_record_of_scripts(tree: Tree) -> None:
    """The documented handler keeps no record, but its reply still ends on time."""
    with serve(tree, "HTTP/1.0", timeout=1.0) as s:
        started = time.monotonic()
        status, _, body = request(s.port, "GET", "/cgi-bin/escape-hang.sh")
        elapsed = time.monotonic() - started
    assert (status, body) == (200, b"before the escape\n")
    assert elapsed < 4
    with contextlib.suppress(ProcessLookupError):
        os.kill(read_pid(tree.markers / "escaped.pid"), signal.SIGKILL)  # not ours to end


def test_an_escaped_child_cannot_hold_a_finished_reply_open(tree: Tree) -> None:
    with serve(tree, scripts=ScriptGroup()) as s:
        started = time.monotonic()
        status, _, body = request(s.port, "GET", "/cgi-bin/escape-exit.sh")
        elapsed = time.monotonic() - started
    assert (status, body) == (200, b"answered\n")
    assert elapsed < 4
    assert wait_dead(read_pid(tree.markers / "escaped.pid"))


def test_stopping_devserve_cgi_ends_running_scripts_and_their_daemons(tree: Tree) -> None:
    """Nothing a script started keeps running (as nobody, under root) once devserve is gone."""
    with cgi_process(tree.root, "--timeout", "300") as (process, url):
        port = port_in(url)
        assert request(port, "GET", "/cgi-bin/daemon.sh")[::2] == (200, b"started\n")
        daemon = read_pid(tree.markers / "daemon.pid")
        assert alive(daemon)  # a script may leave a daemon while devserve runs

        def hang() -> None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                request(port, "GET", "/cgi-bin/escape-hang.sh")

        threading.Thread(target=hang, daemon=True).start()
        escaped = read_pid(tree.markers / "escaped.pid")
        log = stop_and_read(process)
    assert wait_dead(daemon), "a script's daemon outlived devserve"
    assert wait_dead(escaped), "a running script's escaped child outlived devserve"
    assert "Traceback" not in log
