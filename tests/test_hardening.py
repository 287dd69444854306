"""Bad clients and faults: slow, idle, flooding, malformed, vanishing files.

Each test asserts the outcome for the bad client *and* that a normal client is
still answered afterwards, and that threads and file descriptors come back.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devserve import server as ds
from devserve._loop import LoopHTTPServer
from devserve._servers import client_key
from devserve.config import CGIConfig, ServeConfig
from devserve.events import LogEvent, RequestRecord
from tests.support import (
    Collector,
    port_of,
    raw_exchange,
    read_to_end,
    running_devserve,
    running_server,
    serving_in_thread,
    status_of,
)

ERRORS: list[str] = []


class Quiet(ds.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        ERRORS.append(format % args)


class Limited(ds.ThreadingHTTPServer):
    request_timeout: ClassVar[float | None] = 0.5  # type: ignore[misc]
    idle_timeout: ClassVar[float | None] = 0.5  # type: ignore[misc]
    max_connections: ClassVar[int | None] = 8  # type: ignore[misc]


class ErrorLog(Collector):
    """`devserve serve`'s reporter for these tests: its error lines go to ERRORS."""

    def __call__(self, item: RequestRecord | LogEvent) -> None:
        if isinstance(item, LogEvent):
            ERRORS.append(item.message)


# Every bad-client test runs against the plain threaded server (the documented
# classes) and `devserve serve`'s own server, whose event loop answers static files.
KINDS = ("loop", "threads")


@contextlib.contextmanager
def serving_kind(kind: str, root: Path, timeout: float = 0.5) -> Iterator[ds.ThreadingHTTPServer]:
    """The server of ``kind`` with the same limits, serving ``root``, running.

    ``timeout`` is both the request and the idle timeout.
    """
    if kind == "threads":
        limits = {"request_timeout": timeout, "idle_timeout": timeout}
        server_class = type("Limits", (Limited,), limits)
        with running_server(server_class, Quiet, directory=str(root)) as srv:
            assert isinstance(srv, ds.ThreadingHTTPServer)
            yield srv
        return
    config = ServeConfig(
        directory=root, request_timeout=timeout, idle_timeout=timeout, max_connections=8, quiet=True
    )
    with running_devserve(config, ErrorLog()) as (srv, _, _):
        assert isinstance(srv, LoopHTTPServer)
        yield srv


@pytest.fixture(autouse=True)
def back_to_baseline(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test here, threads and file descriptors return to where they were."""
    if "fuzz_target" in request.fixturenames:
        request.getfixturevalue("fuzz_target")  # the shared server is part of the baseline
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    yield
    assert wait_for(lambda: threading.active_count() <= threads, 10), "threads leaked"
    # Now, so that a socket dropped unclosed warns (an error) in this test's teardown.
    gc.collect()
    assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds, 10), "descriptors leaked"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "small.txt").write_text("small")
    (tmp_path / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    return tmp_path


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(root: Path, kind: str) -> Iterator[ds.ThreadingHTTPServer]:
    ERRORS.clear()
    with serving_kind(kind, root) as srv:
        assert normal_request_works(port_of(srv))
        if isinstance(srv, LoopHTTPServer):
            # Static files are the loop's to answer (counted just after the reply is sent).
            assert wait_for(lambda: srv.answered_in_loop == 1)
        yield srv


def normal_request_works(port: int) -> bool:
    reply = raw_exchange(port, b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return status_of(reply) == 200 and reply.endswith(b"small")


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closes ``sock`` within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_slowloris_headers_are_cut_off(server: ds.ThreadingHTTPServer) -> None:
    port = port_of(server)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        stopped_early = False
        for i in range(40):  # one header byte every 50 ms: never finishes in time
            try:
                sock.sendall(b"X-Slow-%d: y\r\n" % i)
            except OSError:
                stopped_early = True
                break
            if i == 3:  # meanwhile, a normal client is answered
                assert normal_request_works(port)
            time.sleep(0.05)
        assert stopped_early or closed_by_server(sock, 2)
        assert time.monotonic() - started < 2.5
    assert wait_for(lambda: any("timed out" in e for e in ERRORS))
    assert normal_request_works(port)


def test_silent_connection_is_closed_after_the_request_timeout(
    server: ds.ThreadingHTTPServer,
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, 3)
        assert 0.4 < time.monotonic() - started < 2


def test_idle_keep_alive_is_closed(server: ds.ThreadingHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"small"):
            reply += sock.recv(65536)
        started = time.monotonic()
        assert closed_by_server(sock, 3)
        assert 0.4 < time.monotonic() - started < 2


def busy_connection(port: int) -> socket.socket:
    """A connection the server is busy with: it asked for 32 MiB and reads none of it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_connections_over_the_limit_get_503_when_every_one_is_busy(
    server: ds.ThreadingHTTPServer,
) -> None:
    port = port_of(server)
    held = [busy_connection(port) for _ in range(8)]
    try:
        assert wait_for(lambda: server.connection_count() == 8)
        reply = raw_exchange(port, b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(reply) == 503
        assert b"Retry-After: 1" in reply
    finally:
        for sock in held:
            sock.close()
    assert wait_for(lambda: normal_request_works(port))


@pytest.fixture
def patient_server(root: Path, kind: str) -> Iterator[ds.ThreadingHTTPServer]:
    """The server of ``kind`` with 30 s timeouts: only the connection cap acts."""
    with serving_kind(kind, root, timeout=30) as srv:
        yield srv


def test_slow_heads_at_the_limit_make_room_oldest_first(
    patient_server: ds.ThreadingHTTPServer,
) -> None:
    """A full house of clients trickling request heads cannot lock a real client out."""
    server = patient_server
    port = port_of(server)
    held: list[socket.socket] = []

    def hold() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        held.append(sock)  # closed below even if the server has already dropped it
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        time.sleep(0.01)  # accepted in this order

    try:
        for _ in range(8):
            hold()
        for turn in range(3):
            assert wait_for(lambda: server.connection_count() == 8)
            assert normal_request_works(port)
            assert closed_by_server(held[turn], 1)  # the oldest went first
            hold()
        assert not any(closed_by_server(sock, 0.05) for sock in held[3:])
        # A busy connection is never the one pushed out.
        with busy_connection(port) as busy:
            assert wait_for(lambda: server.connection_count() >= 6)
            assert normal_request_works(port)
            busy.settimeout(5)
            assert busy.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


def test_idle_keep_alives_make_room_after_slow_heads(
    patient_server: ds.ThreadingHTTPServer,
) -> None:
    server = patient_server
    port = port_of(server)

    def kept_alive() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"small"):
            reply += sock.recv(65536)
        time.sleep(0.01)
        return sock

    idle = [kept_alive() for _ in range(4)]
    slow = []
    for _ in range(4):
        slow.append(socket.create_connection(("127.0.0.1", port)))
        slow[-1].sendall(b"GET /small.txt HT")
    try:
        assert wait_for(lambda: server.connection_count() == 8)
        for sock in slow:  # each new client (kept alive afterwards) pushes out a slow head
            idle.append(kept_alive())
            assert closed_by_server(sock, 1)
        assert not any(closed_by_server(sock, 0.05) for sock in idle)
        idle.append(kept_alive())  # only idle ones are left: the oldest goes
        assert closed_by_server(idle[0], 1)
        assert not any(closed_by_server(sock, 0.05) for sock in idle[1:])
    finally:
        for sock in idle + slow:
            sock.close()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        (("127.0.0.1", 1), None),
        (("127.9.8.7", 1), None),
        (("::1", 1, 0, 0), None),
        (("::ffff:127.0.0.1", 1, 0, 0), None),
        (("192.168.1.20", 1), "192.168.1.20"),
        (("::ffff:10.0.0.7", 1, 0, 0), "10.0.0.7"),
        (("fe80::1%eth0", 1, 0, 2), "fe80::1"),
        (("2001:db8::1", 1, 0, 0), "2001:db8::1"),
        ("", None),
    ],
)
def test_the_per_client_cap_counts_by_address_and_exempts_this_machine(
    address: Any, key: str | None
) -> None:
    assert client_key(address) == key


def test_one_address_cannot_take_more_than_its_share() -> None:
    """verify_request with a made-up LAN address (tests may only use loopback)."""

    class Capped(ds.ThreadingHTTPServer):
        max_connections = 10
        max_connections_per_client = 2

    server = Capped(("127.0.0.1", 0), Quiet, bind_and_activate=False)
    pairs = [socket.socketpair() for _ in range(6)]
    try:
        lan, other = ("10.1.2.3", 5000), ("10.1.2.4", 5000)
        verdicts = [server.verify_request(pairs[i][0], lan) for i in range(3)]
        assert verdicts == [True, True, False]
        assert pairs[2][1].recv(100).startswith(b"HTTP/1.1 503")
        assert server.verify_request(pairs[3][0], other)  # another address has its own share
        assert server.verify_request(pairs[4][0], ("127.0.0.1", 5000))  # loopback: exempt
        server.shutdown_request(pairs[0][0])  # one of lan's ends: it may open another
        assert server.verify_request(pairs[5][0], lan)
        assert server._per_client == {"10.1.2.3": 2, "10.1.2.4": 1}
    finally:
        server.server_close()
        for a, b in pairs:
            a.close()
            b.close()


def test_client_that_stops_reading_does_not_pin_a_thread(root: Path) -> None:
    class Timed(Quiet):
        timeout = 0.5  # StreamRequestHandler's documented socket timeout

    with running_server(ds.ThreadingHTTPServer, Timed, directory=str(root)) as srv:
        before = threading.active_count()
        sock = socket.create_connection(("127.0.0.1", port_of(srv)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)  # then never read again
        assert wait_for(lambda: threading.active_count() > before, 2)
        assert wait_for(lambda: threading.active_count() <= before, 10)
        sock.close()
        assert normal_request_works(port_of(srv))


def test_file_truncated_while_being_sent(server: ds.ThreadingHTTPServer, root: Path) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        received = sock.recv(65536)
        with (root / "big.bin").open("r+b") as f:
            f.truncate(1024 * 1024)
        received += read_to_end(sock, 5)
    body = received.partition(b"\r\n\r\n")[2]
    assert len(body) < 32 * 1024 * 1024  # cut short, and the connection was closed
    assert wait_for(lambda: any("shrank" in e for e in ERRORS))
    assert normal_request_works(port_of(server))


def test_served_directory_removed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_text("a")
    with running_server(ds.ThreadingHTTPServer, Quiet, directory=str(site)) as srv:
        shutil.rmtree(site)
        for target in (b"/a.txt", b"/", b"/missing"):
            reply = raw_exchange(port_of(srv), b"GET " + target + b" HTTP/1.0\r\n\r\n")
            assert status_of(reply) == 404
        site.mkdir()
        (site / "a.txt").write_text("back")
        reply = raw_exchange(port_of(srv), b"GET /a.txt HTTP/1.0\r\n\r\n")
        assert reply.endswith(b"back")


def test_threads_and_descriptors_return_to_baseline(root: Path, kind: str) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    with serving_kind(kind, root) as srv:
        port = port_of(srv)
        for _ in range(20):
            normal_request_works(port)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        raw_exchange(port, b"GET /\x00 HTTP/1.1\r\n\r\n")
        for sock in idle:
            sock.close()
    assert wait_for(lambda: threading.active_count() <= threads_before, 5)
    assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds_before, 5)


# --------------------------------------------------------------------------- fuzzing

_TOKENS = [
    b"GET", b"HEAD", b"POST", b"PUT", b"BREW", b"G\x00T", b"",
    b"/", b"/small.txt", b"/big.bin", b"/%", b"/%zz", b"/%00", b"/..%2f..", b"//x",
    b"/\xff\xfe", b"*", b"http://x/small.txt", b"/cgi-bin/echo.sh", b"/cgi-bin/echo.sh/x?y",
    b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.x", b"HTTP/9",
]  # fmt: skip
_HEADERS = [
    b"Host: x", b"Range: bytes=0-1", b"Range: bytes=-1,5-", b"Range: bytes=999999999999-",
    b"Range: items=1-2", b"Range: bytes=" + b"0-0," * 200, b"If-None-Match: *",
    b"If-Modified-Since: garbage", b"If-Range: \"x\"", b"Connection: close",
    b"Connection: keep-alive, Upgrade", b"Expect: 100-continue", b"Content-Length: 5",
    b"Content-Length: -1", b"Content-Length: 99999999999", b"Transfer-Encoding: chunked",
    b" folded", b"NoColon", b"X: \x1b[31m", b"X:\r", b"\x00: \x00",
    # RFC 9112 framing: each of these is a 400 that closes, or a close after the reply.
    b"Content-Length: 6", b"Content-Length: 5, 6", b"Content-Length: \xef\xbc\x95",
    b"Content-Length: \xb2", b"Content-Length: +5", b"Content-Length: " + b"9" * 40,
    b"Host : x", b"Host\t: x", b"X: a\rb", b"X: a\x00b", b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: chunked\r\nContent-Length: 3",
    b"Range: bytes=\xb9-\xb2", b"Range: bytes=0-" + b"9" * 5000, b"Range: bytes=\xd9\xa1-",
]  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    line = b" ".join(draw(st.lists(st.sampled_from(_TOKENS), min_size=0, max_size=4)))
    if draw(st.booleans()):
        line += draw(st.binary(max_size=20))
    headers = draw(st.lists(st.sampled_from(_HEADERS), max_size=6))
    end = draw(st.sampled_from([b"\r\n", b"\n", b"\r\n\r\n", b""]))
    body = draw(st.binary(max_size=40))
    return line + b"\r\n" + b"\r\n".join(headers) + b"\r\n" + end + body


@contextlib.contextmanager
def serving_cgi(root: Path) -> Iterator[ds.ThreadingHTTPServer]:
    """`devserve cgi`'s server with the same limits: scripts, and the loop for files."""
    script = root / "cgi-bin" / "echo.sh"
    script.parent.mkdir(mode=0o755, exist_ok=True)
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nhead -c 100\n")
    script.chmod(0o755)
    config = ServeConfig(
        directory=root,
        request_timeout=0.5,
        idle_timeout=0.5,
        max_connections=8,
        quiet=True,
        cgi=CGIConfig(timeout=5, max_body=1000),
    )
    with running_devserve(config, ErrorLog()) as (srv, _, _):
        assert isinstance(srv, LoopHTTPServer)
        yield srv


@pytest.fixture(scope="module", params=[*KINDS, "cgi"])
def fuzz_target(request: pytest.FixtureRequest) -> Iterator[int]:
    import tempfile

    site = Path(tempfile.mkdtemp(dir="/tmp"))  # readable by nobody, who runs the scripts
    try:
        site.chmod(0o755)
        (site / "small.txt").write_text("small")
        (site / "big.bin").write_bytes(b"b" * 100_000)
        kind = str(request.param)
        with serving_cgi(site) if kind == "cgi" else serving_kind(kind, site) as srv:
            assert normal_request_works(port_of(srv))
            # A request only a thread answers starts the deadline reaper (part of the baseline).
            assert status_of(raw_exchange(port_of(srv), b"POST /small.txt HTTP/1.0\r\n\r\n")) == 501
            yield port_of(srv)
    finally:
        shutil.rmtree(site, ignore_errors=True)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=requests())
def test_malformed_requests_never_break_the_server(fuzz_target: int, data: bytes) -> None:
    reply = raw_exchange(fuzz_target, data, timeout=3)
    status = status_of(reply)
    assert reply == b"" or status in range(100, 600) or not reply.startswith(b"HTTP/"), reply[:200]
    assert status < 500 or status in (501, 503, 505), reply[:300]


def test_after_fuzzing_the_server_still_answers_and_logged_no_traceback(
    fuzz_target: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert normal_request_works(fuzz_target)
    assert "Traceback" not in capsys.readouterr().err


# --------------------------------------------------------------------------- smuggling and faults


def test_body_on_a_get_is_not_taken_for_the_next_request(server: ds.ThreadingHTTPServer) -> None:
    smuggled = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        b"GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
        + smuggled
        + b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = raw_exchange(port_of(server), request)
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert len(reply) < 10_000  # big.bin (32 MiB) was never served


def test_chunked_body_on_a_get_closes_the_connection(server: ds.ThreadingHTTPServer) -> None:
    request = (
        b"GET /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nGET /\r\n0\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(request)
        reply = read_to_end(sock, 5)
    assert reply.count(b"HTTP/1.1 ") == 1
    assert reply.endswith(b"small")


def test_cgi_script_that_forks_and_exits_does_not_hold_the_reply(public_tmp: Path) -> None:
    top = public_tmp  # the script runs as nobody when the tests run as root
    (top / "cgi-bin").mkdir(mode=0o755)
    script = top / "cgi-bin" / "fork.sh"
    script.write_text(
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nparent\\n'\n"
        "(sleep 30; echo late) &\nexit 0\n"
    )
    script.chmod(0o755)
    with running_server(ds.ThreadingHTTPServer, ds.CGIHTTPRequestHandler,
                        directory=str(top)) as srv:  # fmt: skip
        started = time.monotonic()
        reply = raw_exchange(port_of(srv), b"GET /cgi-bin/fork.sh HTTP/1.0\r\n\r\n", 10)
        assert time.monotonic() - started < 5
    assert reply.endswith(b"parent\n")
    assert b"late" not in reply


class FullDisk(io.StringIO):
    """A log file on a full disk: every write fails with ENOSPC."""

    writes = 0

    def write(self, text: str) -> int:
        FullDisk.writes += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_the_log_does_not_stop_the_server(tmp_path: Path) -> None:
    from devserve import serving
    from devserve.console import RequestLog, make_console

    (tmp_path / "a.txt").write_text("still serving")
    log = RequestLog(make_console(FullDisk()), "plain")
    log.start()
    config = serving.ServeConfig(directory=tmp_path, port=0)
    server, _ = serving.create_server(config, log, serving.Stats())
    try:
        with serving_in_thread(server):
            log.ready(serving.ready_info(config, server, None))
            for _ in range(3):
                reply = raw_exchange(port_of(server), b"GET /a.txt HTTP/1.0\r\n\r\n")
                assert reply.endswith(b"still serving")
    finally:
        log.close()
    assert FullDisk.writes > 0  # the log really tried, and failed, to write
