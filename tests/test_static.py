"""SimpleHTTPRequestHandler over real sockets: files, validators, ranges, hooks, TLS."""

from __future__ import annotations

import email.utils
import http.client
import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devserve import server as ds
from devserve._io import SocketWriter
from tests.support import (
    port_of,
    raw_exchange,
    running_server,
    self_signed_certificate,
    status_of,
)

# An HTTP date far enough ahead that every file is older.
FUTURE = email.utils.formatdate(2_000_000_000, usegmt=True)


class Quiet(ds.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Quiet11(Quiet):
    protocol_version = "HTTP/1.1"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_bytes(b"0123456789")
    (site / "page.html").write_text("<p>hi</p>")
    (site / "app.mjs").write_text("export {}")
    (site / "sub").mkdir()
    (site / "sub" / "index.html").write_text("sub index")
    (site / "empty").mkdir()
    (site / "big.bin").write_bytes(os.urandom(300_000))
    return site


@pytest.fixture
def port(root: Path) -> Iterator[int]:
    with running_server(ds.ThreadingHTTPServer, Quiet11, directory=str(root)) as srv:
        yield port_of(srv)


def request(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_file_headers(port: int, root: Path) -> None:
    response, body = request(port, "/hello.txt")
    assert response.status == 200 and body == b"0123456789"
    assert response.getheader("Content-Type") == "text/plain"
    assert response.getheader("Content-Length") == "10"
    mtime = (root / "hello.txt").stat().st_mtime
    assert response.getheader("Last-Modified") == email.utils.formatdate(mtime, usegmt=True)
    assert re.fullmatch(r'"[0-9a-f]+-a-[0-9a-f]+"', response.getheader("ETag") or "")
    assert response.getheader("Accept-Ranges") == "bytes"


def test_head_matches_get_without_body(port: int) -> None:
    get, _ = request(port, "/big.bin")
    head, body = request(port, "/big.bin", "HEAD")
    assert body == b""
    strip = {"date"}
    assert [(k, v) for k, v in head.getheaders() if k.lower() not in strip] == [
        (k, v) for k, v in get.getheaders() if k.lower() not in strip
    ]


def test_module_scripts_get_javascript_type(port: int) -> None:
    response, _ = request(port, "/app.mjs")
    assert response.getheader("Content-Type") == "text/javascript"


def test_directory_redirect_keeps_query(port: int) -> None:
    response, _ = request(port, "/sub?x=1&y=2")
    assert response.status == 301
    assert response.getheader("Location") == "/sub/?x=1&y=2"
    assert response.getheader("Content-Length") == "0"


def test_index_page_and_listing(port: int) -> None:
    _, body = request(port, "/sub/")
    assert body == b"sub index"
    response, listing = request(port, "/")
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b'<a href="hello.txt">hello.txt</a>' in listing
    assert b'<a href="sub/">sub/</a>' in listing


def test_missing_and_trailing_slash_404(port: int) -> None:
    assert request(port, "/nope.txt")[0].status == 404
    assert request(port, "/hello.txt/")[0].status == 404


def test_if_none_match_gives_304_with_etag(port: int) -> None:
    first, _ = request(port, "/hello.txt")
    etag = first.getheader("ETag") or ""
    response, body = request(port, "/hello.txt", headers={"If-None-Match": etag})
    assert response.status == 304 and body == b""
    assert response.getheader("ETag") == etag
    assert request(port, "/hello.txt", headers={"If-None-Match": '"other"'})[0].status == 200
    assert request(port, "/hello.txt", headers={"If-None-Match": "*"})[0].status == 304


def test_if_none_match_takes_precedence_over_if_modified_since(port: int) -> None:
    future = email.utils.formatdate(4_000_000_000, usegmt=True)
    response, _ = request(
        port, "/hello.txt", headers={"If-None-Match": '"other"', "If-Modified-Since": future}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    ("since", "status"),
    [
        (email.utils.formatdate(4_000_000_000, usegmt=True), 304),
        (email.utils.formatdate(1_000_000, usegmt=True), 200),
        ("not a date", 200),
        ("Sun, 06 Nov 2094 08:49:37 +0100", 200),  # not GMT: ignored
    ],
)
def test_if_modified_since(port: int, since: str, status: int) -> None:
    assert request(port, "/hello.txt", headers={"If-Modified-Since": since})[0].status == status


def test_if_match_and_if_unmodified_since(port: int) -> None:
    etag = request(port, "/hello.txt")[0].getheader("ETag") or ""
    assert request(port, "/hello.txt", headers={"If-Match": etag})[0].status == 200
    assert request(port, "/hello.txt", headers={"If-Match": '"nope"'})[0].status == 412
    past = email.utils.formatdate(1_000_000, usegmt=True)
    assert request(port, "/hello.txt", headers={"If-Unmodified-Since": past})[0].status == 412


def test_single_range(port: int) -> None:
    response, body = request(port, "/hello.txt", headers={"Range": "bytes=2-5"})
    assert response.status == 206 and body == b"2345"
    assert response.getheader("Content-Range") == "bytes 2-5/10"
    assert response.getheader("Content-Length") == "4"
    response, body = request(port, "/hello.txt", headers={"Range": "bytes=-3"})
    assert body == b"789"


def test_large_range_uses_the_file(port: int, root: Path) -> None:
    data = (root / "big.bin").read_bytes()
    response, body = request(port, "/big.bin", headers={"Range": "bytes=1000-250999"})
    assert response.status == 206 and body == data[1000:251000]


def test_multiple_ranges(port: int) -> None:
    response, body = request(port, "/hello.txt", headers={"Range": "bytes=0-1,5-6"})
    assert response.status == 206
    ctype = response.getheader("Content-Type") or ""
    match = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", ctype)
    assert match
    assert response.getheader("Content-Length") == str(len(body))
    parts = body.split(b"--" + match[1].encode())
    assert parts[-1] == b"--\r\n"
    assert b"Content-Range: bytes 0-1/10\r\n\r\n01\r\n" in parts[1]
    assert b"Content-Range: bytes 5-6/10\r\n\r\n56\r\n" in parts[2]
    assert b"Content-Type: text/plain" in parts[1]


def test_unsatisfiable_range(port: int) -> None:
    response, body = request(port, "/hello.txt", headers={"Range": "bytes=50-60"})
    assert response.status == 416
    assert response.getheader("Content-Range") == "bytes */10"
    assert body == b""


def test_malformed_range_is_ignored(port: int) -> None:
    response, body = request(port, "/hello.txt", headers={"Range": "bytes=zz"})
    assert response.status == 200 and body == b"0123456789"


def test_if_range(port: int) -> None:
    first, _ = request(port, "/hello.txt")
    etag = first.getheader("ETag") or ""
    modified = first.getheader("Last-Modified") or ""
    ranged = {"Range": "bytes=0-0"}
    assert request(port, "/hello.txt", headers={**ranged, "If-Range": etag})[0].status == 206
    assert request(port, "/hello.txt", headers={**ranged, "If-Range": modified})[0].status == 206
    stale = {**ranged, "If-Range": '"stale"'}
    response, body = request(port, "/hello.txt", headers=stale)
    assert response.status == 200 and body == b"0123456789"


def test_head_ignores_range(port: int) -> None:
    response, _ = request(port, "/hello.txt", "HEAD", headers={"Range": "bytes=0-1"})
    assert response.status == 200


def test_keep_alive_mixed_responses(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen = []
    for path, headers in [
        ("/hello.txt", {}),
        ("/big.bin", {}),
        ("/sub", {}),
        ("/hello.txt", {"Range": "bytes=1-2"}),
        ("/hello.txt", {"If-None-Match": "*"}),
        ("/", {}),
    ]:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        seen.append(response.status)
        assert response.getheader("Connection") != "close"
    assert seen == [200, 200, 301, 206, 304, 200]
    conn.close()


@pytest.mark.parametrize(
    ("header", "status"),
    [("If-None-Match: *", 304), ('If-Match: "other"', 412), ("If-Modified-Since: " + FUTURE, 304)],
)
def test_a_cached_file_answers_a_conditional_request_once(
    port: int, header: str, status: int
) -> None:
    """A conditional answer from the small-file cache is the only answer (it once came twice)."""
    warm = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    conditional = f"GET /hello.txt HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode()
    last = b"GET /sub/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw_exchange(port, warm + warm + conditional + b"\r\n" + last)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)
    if status == 412:  # an error closes the connection
        assert statuses == [b"200", b"200", b"412"]
    else:
        assert statuses == [b"200", b"200", str(status).encode(), b"200"]
        assert reply.endswith(b"sub index")


def test_headers_and_small_body_leave_in_one_write(root: Path) -> None:
    """Headers are held until the body so both leave together (no Nagle stall)."""
    writes: list[int] = []

    class Counting(Quiet11):
        def setup(self) -> None:
            super().setup()
            inner = self.wfile
            assert isinstance(inner, SocketWriter)
            original = inner._send

            def counted(data: Any) -> None:
                writes.append(memoryview(data).nbytes)
                original(data)

            inner._send = counted  # type: ignore[method-assign]

    with running_server(ds.ThreadingHTTPServer, Counting, directory=str(root)) as srv:
        _, body = request(port_of(srv), "/hello.txt")
    assert body == b"0123456789"
    assert len(writes) == 1 and writes[0] > 10


def test_fifo_and_devices_are_not_opened(root: Path, port: int) -> None:
    os.mkfifo(root / "pipe")
    response, _ = request(port, "/pipe")
    assert response.status == 404


def _with_extra_headers(root: Path, extra: list[tuple[str, str]]) -> type[Quiet11]:
    class WithHeaders(Quiet11):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), extra_response_headers=extra, **kwargs)

    return WithHeaders


def test_extra_response_headers_go_on_200_file_and_listing_responses(root: Path) -> None:
    """Python 3.15: (name, value) pairs, names may repeat, 200 responses only."""
    extra = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Test", "1")]
    with running_server(ds.ThreadingHTTPServer, _with_extra_headers(root, extra)) as srv:
        port = port_of(srv)
        file, _ = request(port, "/hello.txt")
        listing, _ = request(port, "/")
        etag = file.getheader("ETag") or ""
        not_modified, _ = request(port, "/hello.txt", headers={"If-None-Match": etag})
        partial, _ = request(port, "/hello.txt", headers={"Range": "bytes=0-1"})
        missing, _ = request(port, "/nope.txt")
        redirect, _ = request(port, "/sub")
    for response in (file, listing):
        assert response.status == 200
        assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert response.getheader("X-Test") == "1"
    for response in (not_modified, partial, missing, redirect):
        assert response.status in (304, 206, 404, 301)
        assert response.getheader("X-Test") is None
        assert response.getheader("Set-Cookie") is None


def test_extra_response_headers_never_replace_the_handlers_own(root: Path) -> None:
    extra = [("Content-Type", "text/x-extra"), ("Server", "extra")]
    with running_server(ds.ThreadingHTTPServer, _with_extra_headers(root, extra)) as srv:
        response, body = request(port_of(srv), "/hello.txt")
    assert body == b"0123456789"
    assert response.headers.get_all("Content-Type") == ["text/plain", "text/x-extra"]
    server = response.headers.get_all("Server") or []
    assert len(server) == 2
    assert server[0].startswith("SimpleHTTP/")
    assert server[1] == "extra"


def test_the_draft_response_headers_name_still_works_with_a_warning(root: Path) -> None:
    class Inert(ds.SimpleHTTPRequestHandler):
        def setup(self) -> None:
            pass

        def handle(self) -> None:
            pass

        def finish(self) -> None:
            pass

    left, right = socket.socketpair()
    with left, right, pytest.warns(DeprecationWarning, match="extra_response_headers"):
        handler = Inert(left, ("127.0.0.1", 0), None, response_headers={"X-Old": "1"})
    assert handler.extra_response_headers == (("X-Old", "1"),)


def test_default_content_type_is_sent_when_nothing_is_guessed(root: Path) -> None:
    (root / "blob.unknownsuffix").write_bytes(b"?")

    class Typed(Quiet11):
        default_content_type = "text/x-unknown"

    assert ds.SimpleHTTPRequestHandler.default_content_type == "application/octet-stream"
    with running_server(ds.ThreadingHTTPServer, Typed, directory=str(root)) as srv:
        response, _ = request(port_of(srv), "/blob.unknownsuffix")
        known, _ = request(port_of(srv), "/hello.txt")
    assert response.getheader("Content-Type") == "text/x-unknown"
    assert known.getheader("Content-Type") == "text/plain"


def test_extensions_map_override(root: Path) -> None:
    class Custom(Quiet11):
        extensions_map: ClassVar[dict[str, str]] = {".txt": "text/x-custom"}

    with running_server(ds.ThreadingHTTPServer, Custom, directory=str(root)) as srv:
        assert request(port_of(srv), "/hello.txt")[0].getheader("Content-Type") == "text/x-custom"


def test_directory_defaults_to_cwd(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    with running_server(ds.ThreadingHTTPServer, Quiet11) as srv:
        assert request(port_of(srv), "/hello.txt")[1] == b"0123456789"


def test_directory_accepts_path_like(root: Path) -> None:
    with running_server(ds.ThreadingHTTPServer, Quiet11, directory=root) as srv:  # type: ignore[arg-type]
        assert request(port_of(srv), "/hello.txt")[1] == b"0123456789"


def test_overridden_copyfile_sees_range_and_whole_bodies(root: Path) -> None:
    class Upper(Quiet11):
        def copyfile(self, source: Any, outputfile: Any) -> None:
            outputfile.write(source.read().upper())

    (root / "letters.txt").write_text("abcdef")
    with running_server(ds.ThreadingHTTPServer, Upper, directory=str(root)) as srv:
        assert request(port_of(srv), "/letters.txt")[1] == b"ABCDEF"
        response, body = request(port_of(srv), "/letters.txt", headers={"Range": "bytes=1-2"})
        assert response.status == 206 and body == b"BC"
        response, body = request(port_of(srv), "/letters.txt", headers={"Range": "bytes=0-0,4-4"})
        assert b"\r\n\r\nA\r\n" in body and b"\r\n\r\nE\r\n" in body


def test_overridden_send_head_and_translate_path(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("from other tree")

    class Mapped(Quiet11):
        def translate_path(self, path: str) -> str:
            if path.startswith("/other/"):
                return str(other / path.removeprefix("/other/"))
            return super().translate_path(path)

        def send_head(self) -> Any:
            if self.path == "/generated":
                body = b"generated"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return io.BytesIO(body)
            return super().send_head()

    with running_server(ds.ThreadingHTTPServer, Mapped, directory=str(root)) as srv:
        assert request(port_of(srv), "/other/x.txt")[1] == b"from other tree"
        assert request(port_of(srv), "/generated")[1] == b"generated"
        assert request(port_of(srv), "/hello.txt")[1] == b"0123456789"


def test_overridden_do_get_still_dispatches(root: Path) -> None:
    class Hook(Quiet11):
        calls: ClassVar[list[str]] = []

        def do_GET(self) -> None:
            self.calls.append(self.path)
            super().do_GET()

    with running_server(ds.ThreadingHTTPServer, Hook, directory=str(root)) as srv:
        assert request(port_of(srv), "/hello.txt")[1] == b"0123456789"
    assert Hook.calls == ["/hello.txt"]


def test_symlinks_follow_policy(root: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("SECRET-OUTSIDE")
    (root / "out").symlink_to(tmp_path / "outside.txt")
    (root / "in").symlink_to(root / "hello.txt")

    with running_server(ds.ThreadingHTTPServer, Quiet11, directory=str(root)) as srv:
        response, body = request(port_of(srv), "/out")
        assert response.status == 404 and b"SECRET" not in body
        assert request(port_of(srv), "/in")[1] == b"0123456789"

    class Always(Quiet11):
        follow_symlinks = "always"

    with running_server(ds.ThreadingHTTPServer, Always, directory=str(root)) as srv:
        assert request(port_of(srv), "/out")[1] == b"SECRET-OUTSIDE"

    class Never(Quiet11):
        follow_symlinks = "never"

    with running_server(ds.ThreadingHTTPServer, Never, directory=str(root)) as srv:
        assert request(port_of(srv), "/in")[0].status == 404


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_large_file_memory_stays_flat(tmp_path: Path) -> None:
    """Serving a 1 GiB file in a child server process keeps its peak RSS small."""
    big = tmp_path / "huge.bin"
    with big.open("wb") as f:
        f.truncate(1024**3)
    code = (
        "import functools,sys\n"
        "from devserve.server import ThreadingHTTPServer, SimpleHTTPRequestHandler as H\n"
        "s=ThreadingHTTPServer(('127.0.0.1',0),functools.partial(H,directory=sys.argv[1]))\n"
        "print(s.server_address[1],flush=True)\n"
        "s.serve_forever()\n"
    )
    child = subprocess.Popen(
        [os.environ.get("PYTHON", shutil.which("python") or "python3"), "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert child.stdout is not None
        child_port = int(child.stdout.readline())
        total = 0
        with socket.create_connection(("127.0.0.1", child_port), timeout=30) as sock:
            sock.sendall(b"GET /huge.bin HTTP/1.0\r\n\r\n")
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
        assert total > 1024**3
        assert _rss_kib(child.pid) < 60 * 1024
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


def test_https_server(root: Path, certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with running_server(
        ds.ThreadingHTTPSServer, Quiet11, directory=str(root), certfile=cert, keyfile=key
    ) as srv:
        assert isinstance(srv, ds.HTTPSServer)
        assert srv.alpn_protocols == ["http/1.1"]
        context = ssl.create_default_context(cafile=cert)
        context.set_alpn_protocols(["http/1.1"])
        conn = http.client.HTTPSConnection("127.0.0.1", port_of(srv), context=context, timeout=10)
        for path in ("/hello.txt", "/big.bin"):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
            assert len(body) == int(response.getheader("Content-Length") or -1)
        assert conn.sock is not None
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
        conn.close()
        # a plain-HTTP client on the TLS port gets no crash and the server keeps going
        raw_exchange(port_of(srv), b"GET / HTTP/1.0\r\n\r\n")
        conn = http.client.HTTPSConnection("127.0.0.1", port_of(srv), context=context, timeout=10)
        conn.request("GET", "/hello.txt")
        assert conn.getresponse().read() == b"0123456789"
        conn.close()


def test_https_handshake_does_not_block_accept(root: Path, certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with running_server(
        ds.ThreadingHTTPSServer, Quiet11, directory=str(root), certfile=cert, keyfile=key
    ) as srv:
        silent = socket.create_connection(("127.0.0.1", port_of(srv)), timeout=5)
        try:
            context = ssl.create_default_context(cafile=cert)
            conn = http.client.HTTPSConnection(
                "127.0.0.1", port_of(srv), context=context, timeout=5
            )
            conn.request("GET", "/hello.txt")
            assert conn.getresponse().read() == b"0123456789"
            conn.close()
        finally:
            silent.close()


def test_wrong_password_for_key(root: Path, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path, password="right")
    with pytest.raises(ssl.SSLError):
        ds.HTTPSServer(
            ("127.0.0.1", 0), Quiet, certfile=str(cert), keyfile=str(key), password="wrong"
        )
    srv = ds.HTTPSServer(
        ("127.0.0.1", 0), Quiet, certfile=str(cert), keyfile=str(key), password="right"
    )
    srv.server_close()


def test_concurrent_clients(port: int) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def fetch() -> None:
        for _ in range(10):
            response, body = request(port, "/big.bin")
            with lock:
                results.append(len(body) if response.status == 200 else -1)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [300_000] * 80


def test_raw_bad_percent_escapes_are_404_not_500(port: int) -> None:
    for path in ("/%", "/%zz", "/%ff%fe", "/%00", "/a%00b.txt", "/%ed%a0%80"):
        raw = raw_exchange(port, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        assert status_of(raw) == 404, path


# --------------------------------------------------------------------------- small-file cache


def test_cached_file_is_never_stale(port: int, root: Path) -> None:
    target = root / "hello.txt"
    assert request(port, "/hello.txt")[1] == b"0123456789"  # fills the cache
    assert request(port, "/hello.txt")[1] == b"0123456789"  # served from it
    stat_before = target.stat()
    target.write_bytes(b"abcdefghij")  # same size, rewritten in place
    os.utime(target, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))  # same mtime
    response, body = request(port, "/hello.txt")
    assert body == b"abcdefghij"  # the ctime changed: a miss
    assert response.getheader("ETag") is not None
    target.unlink()
    assert request(port, "/hello.txt")[0].status == 404


def test_cached_file_swapped_for_an_outside_link_is_refused(
    port: int, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("SECRET-OUTSIDE")
    assert request(port, "/page.html")[0].status == 200  # cached
    (root / "page.html").unlink()
    (root / "page.html").symlink_to(tmp_path / "outside.txt")
    response, body = request(port, "/page.html")
    assert response.status == 404
    assert b"SECRET" not in body


def test_cache_respects_ranges_and_conditionals(port: int) -> None:
    request(port, "/hello.txt")
    etag = request(port, "/hello.txt")[0].getheader("ETag") or ""
    assert request(port, "/hello.txt", headers={"If-None-Match": etag})[0].status == 304
    response, body = request(port, "/hello.txt", headers={"Range": "bytes=1-2"})
    assert (response.status, body) == (206, b"12")
    response, body = request(port, "/hello.txt", "HEAD")
    assert (response.status, body) == (200, b"")
