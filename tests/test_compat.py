"""What Python 3.14 and 3.15 add to the documented `http.server` API, on every supported Python.

Where the Python running the tests already behaves this way, the stdlib is the
baseline (parity); otherwise the spec (`../shared/spec/README.md`) is.
"""

from __future__ import annotations

import functools
import http.server
import io
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from devserve import server as ds
from tests.support import (
    devserve_env,
    port_of,
    raw_exchange,
    read_to_end,
    running_server,
    status_of,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "page.txt").write_text("page")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    return tmp_path


class Quiet(ds.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# --------------------------------------------------------------------------- HTTP/0.9


def test_an_http09_request_is_answered_without_waiting_for_header_lines(root: Path) -> None:
    """3.15: ``GET /path`` and nothing more is answered at once (it has no header lines)."""
    with (
        running_server(ds.HTTPServer, Quiet, directory=str(root)) as server,
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=3) as sock,
    ):
        sock.sendall(b"GET /page.txt\r\n")  # no blank line follows, and the socket stays open
        data = read_to_end(sock, 3)
    assert data == b"page"  # the body alone: HTTP/0.9 has no status line and no headers


@pytest.mark.parametrize("module", [http.server, ds], ids=["stdlib", "devserve"])
def test_default_request_version_is_the_version_of_a_line_without_one(module: Any) -> None:
    """A subclass that assumes HTTP/1.1 answers ``GET /`` with a status line (a 501 here)."""

    class Eleven(module.BaseHTTPRequestHandler):  # type: ignore[misc]
        default_request_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with running_server(module.HTTPServer, Eleven) as server:
        reply = raw_exchange(port_of(server), b"GET /\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 501 ")


# --------------------------------------------------------------------------- end_headers


def test_end_headers_with_nothing_buffered_ends_an_empty_head() -> None:
    """3.15 allows ``end_headers()`` before anything was buffered."""

    class Bare(ds.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.end_headers()
            self.wfile.write(b"after the blank line")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with running_server(ds.HTTPServer, Bare) as server:
        reply = raw_exchange(port_of(server), b"GET / HTTP/1.0\r\n\r\n")
    assert reply == b"\r\nafter the blank line"


# --------------------------------------------------------------------------- listings


def test_a_listing_title_leaves_out_the_query_and_an_encoded_slash_ends_a_folder(
    root: Path,
) -> None:
    with running_server(ds.HTTPServer, Quiet, directory=str(root)) as server:
        port = port_of(server)
        listing = raw_exchange(port, b"GET /sub/?q=%3Cx%3E HTTP/1.0\r\n\r\n")
        encoded = raw_exchange(port, b"GET /sub%2F HTTP/1.0\r\n\r\n")
        file_slash = raw_exchange(port, b"GET /page.txt%2f HTTP/1.0\r\n\r\n")
    assert b"<title>Directory listing for /sub/</title>" in listing
    assert status_of(encoded) == 200 and b"a.txt" in encoded  # a listing, not a redirect
    assert status_of(file_slash) == 404  # a file asked for as a folder


# --------------------------------------------------------------------------- HTTPS without ssl


def test_the_module_imports_without_ssl_and_https_servers_say_why_they_cannot_start() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["ssl"] = None  # as on a Python built without it
        import devserve.server as server
        try:
            server.HTTPSServer(("127.0.0.1", 0), server.SimpleHTTPRequestHandler, certfile="x")
        except RuntimeError as error:
            print("RuntimeError:", error)
        plain = server.HTTPServer(("127.0.0.1", 0), server.SimpleHTTPRequestHandler)
        plain.server_close()
        print("plain ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=devserve_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "RuntimeError: SSL module is missing; HTTPS support is unavailable",
        "plain ok",
    ]


# --------------------------------------------------------------------------- coloured log lines


class Recorded(ds.SimpleHTTPRequestHandler):
    pass


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("PYTHON_COLORS", "NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _log_lines(root: Path, monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    with running_server(ds.HTTPServer, functools.partial(Recorded, directory=str(root))) as server:
        raw_exchange(port_of(server), b"GET /page.txt HTTP/1.0\r\n\r\n")
        raw_exchange(port_of(server), b"GET /missing HTTP/1.0\r\n\r\n")
    return stream.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("environment", "terminal", "coloured"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, False),  # set at all
        ({"FORCE_COLOR": "1"}, False, True),
        ({"TERM": "dumb"}, True, False),
        ({"PYTHON_COLORS": "0", "FORCE_COLOR": "1"}, True, False),
        ({"PYTHON_COLORS": "1", "NO_COLOR": "1"}, False, True),
    ],
)
def test_log_lines_are_coloured_on_a_terminal_as_python_decides(
    root: Path,
    clean_environment: pytest.MonkeyPatch,
    environment: dict[str, str],
    terminal: bool,
    coloured: bool,
) -> None:
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    text = _log_lines(root, clean_environment, Terminal() if terminal else io.StringIO())
    assert ("\x1b[" in text) is coloured
    if coloured:
        assert '"GET \x1b[1m/page.txt\x1b[0m HTTP/1.0" \x1b[32m200\x1b[0m -' in text
        assert "\x1b[33m404\x1b[0m" in text  # the status by class
        assert "\x1b[31mcode 404, message File not found\x1b[0m" in text  # the error line
    else:
        assert '"GET /page.txt HTTP/1.0" 200 -' in text


def test_colour_never_lets_a_request_drive_the_terminal(
    root: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv("FORCE_COLOR", "1")
    stream = io.StringIO()
    clean_environment.setattr(sys, "stderr", stream)
    with running_server(ds.HTTPServer, functools.partial(Recorded, directory=str(root))) as server:
        raw_exchange(port_of(server), b"GET /\x1b[2J\x1b]0;owned\x07 HTTP/1.0\r\n\r\n")
    text = stream.getvalue()
    assert "\\x1b[2J" in text and "\\x07" in text  # the request's escapes, escaped
    assert all(code.startswith(("[0m", "[1m", "[3", "[1;3")) for code in text.split("\x1b")[1:])


# --------------------------------------------------------------------------- the module


def test_version_still_answers_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="__version__"):
        version = ds.__version__
    assert version == "0.6"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds.SimpleHTTPRequestHandler.server_version == "SimpleHTTP/0.6"


# --------------------------------------------------------------------------- CGI


@pytest.mark.parametrize(
    ("accepts", "expected"),
    [((), ""), (("text/html",), "text/html"), (("text/html", "*/*;q=0.8"), "text/html,*/*;q=0.8")],
)
def test_cgi_scripts_get_every_accept_field_joined_as_311_does(
    public_tmp: Path, accepts: tuple[str, ...], expected: str
) -> None:
    root = public_tmp
    script = root / "cgi-bin" / "accept.sh"
    script.parent.mkdir(mode=0o755)
    script.write_text(
        '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n[%s]" "$HTTP_ACCEPT"\n'
    )
    script.chmod(0o755)
    fields = b"".join(b"Accept: " + value.encode() + b"\r\n" for value in accepts)
    with running_server(
        ds.HTTPServer, functools.partial(ds.CGIHTTPRequestHandler, directory=str(root))
    ) as server:
        reply = raw_exchange(
            port_of(server), b"GET /cgi-bin/accept.sh HTTP/1.0\r\n" + fields + b"\r\n"
        )
    assert reply.endswith(b"[" + expected.encode() + b"]"), reply
