"""``python -m devserve.server``: the ``python -m http.server`` command line.

Every server runs as a real ``python -m`` subprocess bound to 127.0.0.1 port 0; the
port is read back from its banner. Parity tests run the stdlib's own module the
same way with the same Python and compare banners, option sets, exit codes and
messages. Options newer than that Python are checked against the newest
stdlib's wording (Python 3.14: ``--tls-*``; 3.15: ``-H/--header``,
``--content-type``; 3.15 also drops ``--cgi``, which devserve keeps).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import re
import select
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devserve._server_cli import DualStackServer, main
from devserve.server import CGIHTTPRequestHandler, SimpleHTTPRequestHandler
from tests.support import devserve_env, self_signed_certificate

TIMEOUT = 10.0
OURS = "devserve.server"
STDLIB = "http.server"
BANNER = re.compile(
    r"Serving (?P<scheme>HTTPS?) on (?P<host>\S+) port (?P<port>\d+) "
    r"\((?P<lower>https?)://(?P<url_host>\S+):(?P=port)/\) \.\.\.\n\Z"
)
#: Options of ``python -m http.server`` by the release that added them.
ADDED_IN = {
    (3, 11): {"-p", "--protocol"},
    (3, 14): {"--tls-cert", "--tls-key", "--tls-password-file"},
    (3, 15): {"-H", "--header", "--content-type"},
}
#: Python 3.14's message for --tls-key and --tls-password-file without --tls-cert.
NEEDS_CERT = "requires --tls-cert to be set"


def _env() -> dict[str, str]:
    # The stdlib prints its banner without flushing: unbuffered, a pipe sees it.
    return devserve_env(PYTHONUNBUFFERED="1")


def run_module(
    module: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` that is expected to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@dataclass
class Served:
    process: subprocess.Popen[str]
    banner: str
    port: int

    def request(
        self, path: str, *, tls: ssl.SSLContext | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn: http.client.HTTPConnection
        if tls is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=TIMEOUT, context=tls)
        with contextlib.closing(conn):
            conn.request("GET", path)
            response = conn.getresponse()
            return response, response.read()

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C: the exit status, the rest of stdout and all of stderr."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, out, err


@contextlib.contextmanager
def serving(
    module: str, *args: str, bind: bool = True, cwd: Path | None = None
) -> Iterator[Served]:
    """``python -m MODULE 0 --bind 127.0.0.1 ARGS`` until its banner; killed on exit."""
    where = ["--bind", "127.0.0.1"] if bind else []
    process = subprocess.Popen(
        [sys.executable, "-m", module, "0", *where, *args],
        env=_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        banner = process.stdout.readline() if ready else ""
        found = BANNER.match(banner)
        if found is None:
            process.kill()
            _, err = process.communicate(timeout=TIMEOUT)
            raise AssertionError(f"no banner from {module}: {banner!r}, stderr {err!r}")
        yield Served(process, banner, int(found["port"]))
    finally:
        if process.returncode is None:  # not already interrupted and read
            process.kill()
            process.communicate(timeout=TIMEOUT)


def shape(banner: str, port: int) -> str:
    return banner.replace(str(port), "PORT")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello from devserve\n")
    (root / "blob").write_bytes(b"\x00\x01 no suffix")
    return root


# =========================================================================== parity


def test_banner_and_ctrl_c_match_the_stdlib(site: Path) -> None:
    outcomes = {}
    for module in (STDLIB, OURS):
        with serving(module, "-d", str(site)) as served:
            response, _ = served.request("/hello.txt")  # serve_forever is running
            assert response.status == 200
            code, rest, err = served.interrupt()
        outcomes[module] = (shape(served.banner, served.port), code, rest)
        assert '"GET /hello.txt HTTP/1.1" 200' in err
    assert outcomes[OURS] == outcomes[STDLIB]
    assert outcomes[OURS] == (
        "Serving HTTP on 127.0.0.1 port PORT (http://127.0.0.1:PORT/) ...\n",
        0,
        "\nKeyboard interrupt received, exiting.\n",
    )


def test_ipv6_banner_matches_the_stdlib(site: Path) -> None:
    banners = {}
    for module in (STDLIB, OURS):
        with serving(module, "--bind", "::1", "-d", str(site), bind=False) as served:
            banners[module] = shape(served.banner, served.port)
            if module == OURS:
                conn = http.client.HTTPConnection("::1", served.port, timeout=TIMEOUT)
                with contextlib.closing(conn):
                    conn.request("GET", "/hello.txt")
                    assert conn.getresponse().read() == b"hello from devserve\n"
    assert (
        banners[OURS]
        == banners[STDLIB]
        == "Serving HTTP on ::1 port PORT (http://[::1]:PORT/) ...\n"
    )


def _options(help_text: str) -> set[str]:
    """The option strings in the left column of ``--help`` output."""
    found: set[str] = set()
    for line in help_text.splitlines():
        invocation = re.match(r"  (-\S.*?)(?:\s{2,}|$)", line)
        if invocation:
            found.update(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", invocation[1]))
    return found


def test_help_has_the_stdlib_options_and_the_newer_ones() -> None:
    ours, stdlib = run_module(OURS, "--help"), run_module(STDLIB, "--help")
    assert ours.returncode == stdlib.returncode == 0
    assert ours.stderr == ""  # nothing from runpy about devserve.server either
    newer: set[str] = set()
    for since, options in ADDED_IN.items():
        if sys.version_info < since:
            newer |= options
    # 3.15 drops --cgi; devserve keeps its CGI gateway and the option.
    assert _options(ours.stdout) == _options(stdlib.stdout) | newer | {"--cgi"}
    assert "[port]" in ours.stdout
    assert "bind to this port (default: 8000)" in ours.stdout


@pytest.mark.parametrize(
    ("args", "message", "since"),
    [
        (["-p"], "argument -p/--protocol: expected one argument", (3, 11)),
        (["eighty"], "argument port: invalid int value: 'eighty'", (3, 0)),
        (["--no-such-option"], "unrecognized arguments: --no-such-option", (3, 0)),
        (["8000", "8001"], "unrecognized arguments: 8001", (3, 0)),
        (["--tls-key", "k.pem"], f"--tls-key {NEEDS_CERT}", (3, 14)),
        (["--tls-password-file", "pw"], f"--tls-password-file {NEEDS_CERT}", (3, 14)),
        (["-H", "X-One"], "argument -H/--header: expected 2 arguments", (3, 15)),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_usage_errors_match_the_stdlib(
    args: list[str], message: str, since: tuple[int, int]
) -> None:
    """Exit 2 and usage as the stdlib; its message once its release has the option."""
    ours, stdlib = run_module(OURS, *args), run_module(STDLIB, *args)
    assert ours.returncode == stdlib.returncode == 2  # older releases: an unknown option
    assert ours.stdout == stdlib.stdout == ""
    assert ours.stderr.startswith("usage: ")
    assert ours.stderr.endswith(f": error: {message}\n")
    if sys.version_info >= since:
        assert stdlib.stderr.endswith(f": error: {message}\n")


# =========================================================================== serving


def test_serves_the_directory_given_and_the_current_one(site: Path, tmp_path: Path) -> None:
    with serving(OURS, "-d", str(site), cwd=tmp_path) as served:
        response, body = served.request("/hello.txt")
        assert (response.status, body) == (200, b"hello from devserve\n")
        assert response.version == 10  # HTTP/1.0 unless -p says otherwise
        assert response.getheader("Content-Type") == "text/plain"
        response, body = served.request("/sub/")
        assert response.status == 200
        assert b"Directory listing for /sub/" in body
    with serving(OURS, cwd=site) as served:
        response, body = served.request("/hello.txt")
        assert (response.status, body) == (200, b"hello from devserve\n")


def test_protocol_option_keeps_connections_alive(site: Path) -> None:
    with serving(OURS, "-d", str(site), "-p", "HTTP/1.1") as served:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=TIMEOUT)
        with contextlib.closing(conn):
            for _ in range(2):
                conn.request("GET", "/hello.txt")
                response = conn.getresponse()
                assert response.read() == b"hello from devserve\n"
                assert response.version == 11
                assert not response.will_close
            assert conn.sock is not None  # the same connection served both


def test_plain_path_sends_no_extra_headers_and_the_usual_default_type(site: Path) -> None:
    with serving(OURS, "-d", str(site)) as served:
        response, _ = served.request("/blob")
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/octet-stream"
        assert response.getheader("X-One") is None


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["-H", "X-Bad", "a\r\nInjected: 1"], "-H/--header: invalid", id="crlf-value"),
        pytest.param(["-H", "Bad:Name", "1"], "-H/--header: invalid", id="colon-in-name"),
        pytest.param(["-H", "X-Euro", "\u20ac"], "-H/--header: 'latin-1'", id="not-latin-1"),
        pytest.param(["--content-type", "text/html\r\nX: 1"], "--content-type: invalid", id="ct"),
    ],
)
def test_headers_that_cannot_be_sent_are_usage_errors(args: list[str], fragment: str) -> None:
    result = run_module(OURS, "0", "--bind", "127.0.0.1", *args)
    assert result.returncode == 2
    assert f"error: argument {fragment}" in result.stderr


def test_header_option_adds_headers_to_successful_responses(site: Path) -> None:
    args = ["-H", "X-One", "1", "-H", "Set-Cookie", "a=1", "-H", "Set-Cookie", "b=2"]
    with serving(OURS, "-d", str(site), *args, "-H", "Content-Type", "text/evil") as served:
        response, body = served.request("/hello.txt")
        assert (response.status, body) == (200, b"hello from devserve\n")
        assert response.getheader("X-One") == "1"
        assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert (response.headers.get_all("Content-Type") or [])[:1] == ["text/plain"]
        response, _ = served.request("/sub/")  # a listing is a successful response too
        assert response.getheader("X-One") == "1"
        response, _ = served.request("/missing.txt")
        assert response.status == 404
        assert response.getheader("X-One") is None


def test_content_type_option_is_sent_when_none_can_be_guessed(site: Path) -> None:
    with serving(OURS, "-d", str(site), "--content-type", "text/plain; charset=utf-8") as served:
        response, _ = served.request("/blob")
        assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
        response, _ = served.request("/hello.txt")
        assert response.getheader("Content-Type") == "text/plain"


@pytest.fixture
def handler_seen(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Run ``main`` in this process: its server records its handler and stops at once."""
    seen: list[object] = []

    def serve_once(self: DualStackServer, poll_interval: float = 0.5) -> None:
        seen.append(self.RequestHandlerClass)
        raise KeyboardInterrupt

    monkeypatch.setattr(DualStackServer, "serve_forever", serve_once)
    return seen


def test_handler_options_are_passed_the_3_15_way(
    site: Path, handler_seen: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["0", "--bind", "127.0.0.1", "-d", str(site)]
    assert main([*common, "-p", "HTTP/1.1"]) == 0
    assert capsys.readouterr().out.endswith("\nKeyboard interrupt received, exiting.\n")
    plain = handler_seen.pop()
    assert isinstance(plain, type)
    assert issubclass(plain, SimpleHTTPRequestHandler)
    assert plain is not SimpleHTTPRequestHandler  # a subclass for this run ...
    assert plain.protocol_version == "HTTP/1.1"
    assert SimpleHTTPRequestHandler.protocol_version == "HTTP/1.0"  # ... the facade unchanged
    assert "default_content_type" not in vars(plain)  # set only when asked for

    assert main([*common, "--cgi", "--content-type", "text/plain"]) == 0
    cgi = handler_seen.pop()
    assert isinstance(cgi, type)
    assert issubclass(cgi, CGIHTTPRequestHandler)
    assert vars(cgi)["default_content_type"] == "text/plain"

    assert main([*common, "-H", "X-One", "1", "-H", "X-One", "2"]) == 0
    with_headers = handler_seen.pop()
    assert isinstance(with_headers, functools.partial)
    assert with_headers.keywords == {
        "directory": str(site),
        "extra_response_headers": [("X-One", "1"), ("X-One", "2")],
    }
    assert isinstance(with_headers.func, type)
    assert issubclass(with_headers.func, SimpleHTTPRequestHandler)


def test_dual_stack_server_turns_ipv6_only_off(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checked just before the bind: Linux makes a socket bound to one IPv6
    # address (here ::1; tests bind nothing wider) IPv6-only whatever was asked.
    monkeypatch.setattr(socketserver.TCPServer, "server_bind", lambda self: None)
    server = DualStackServer(
        ("::1", 0),
        SimpleHTTPRequestHandler,
        bind_and_activate=False,
        address_family=socket.AF_INET6,
        directory=str(site),
    )
    with server:
        server.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        server.server_bind()
        assert server.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        assert server.directory == str(site)


# =========================================================================== CGI and TLS


@pytest.fixture
def cgi_site(public_tmp: Path) -> Path:
    """A tree ``nobody`` can enter: CGI scripts run as nobody when tests run as root."""
    root = public_tmp
    (root / "cgi-bin").mkdir()
    script = root / "cgi-bin" / "hello.sh"
    script.write_text(
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
        'printf "hello from cgi, %s\\n" "$QUERY_STRING"\n'
    )
    (root / "page.txt").write_text("static\n")
    for path in (root / "cgi-bin", script):
        path.chmod(0o755)
    return root


def test_cgi_option_runs_scripts_from_cgi_bin(cgi_site: Path) -> None:
    with serving(OURS, "--cgi", "-d", str(cgi_site)) as served:
        response, body = served.request("/cgi-bin/hello.sh?who=me")
        assert (response.status, body) == (200, b"hello from cgi, who=me\n")
        response, body = served.request("/page.txt")
        assert (response.status, body) == (200, b"static\n")
    with serving(OURS, "-d", str(cgi_site)) as served:  # without --cgi: a plain file
        response, body = served.request("/cgi-bin/hello.sh")
        assert body.startswith(b"#!/bin/sh")


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key, encrypted with the password file."""
    password = tmp_path / "password"
    password.write_text("s3cret\n")  # the newline is stripped, as Python 3.14 does
    cert, key = self_signed_certificate(tmp_path, password="s3cret")
    return cert, key, password


def test_tls_serves_https_with_the_https_banner(
    site: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    cert, key, password = tls_files
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--tls-password-file", str(password)]
    with serving(OURS, "-d", str(site), *tls) as served:
        context = ssl.create_default_context(cafile=str(cert))
        response, body = served.request("/hello.txt", tls=context)
        assert (response.status, body) == (200, b"hello from devserve\n")
        code, rest, _ = served.interrupt()
    banner = shape(served.banner, served.port)
    assert banner == "Serving HTTPS on 127.0.0.1 port PORT (https://127.0.0.1:PORT/) ...\n"
    assert (code, rest) == (0, "\nKeyboard interrupt received, exiting.\n")
    if sys.version_info >= (3, 14):  # a stdlib with TLS: the same banner
        with serving(STDLIB, "-d", str(site), *tls) as stdlib:
            assert shape(stdlib.banner, stdlib.port) == banner


def test_tls_start_up_failures(tls_files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cert, key, _ = tls_files
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    base = ["0", "--bind", "127.0.0.1", "--tls-cert", str(cert), "--tls-key", str(key)]
    result = run_module(OURS, *base, "--tls-password-file", str(wrong))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "-m devserve.server: cannot serve: " in result.stderr
    result = run_module(OURS, *base, "--tls-password-file", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "error: Failed to read TLS password file: [Errno 2]" in result.stderr


def test_address_in_use_is_one_line_and_exit_1(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_module(OURS, port, "--bind", "127.0.0.1", "-d", str(site))
    assert result.returncode == 1
    assert result.stderr.endswith("cannot serve: [Errno 98] Address already in use\n")
