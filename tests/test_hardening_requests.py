"""Hostile request heads on every path: the event loop, a handler thread, the CGI gateway.

RFC 9112 framing is decided once (`devserve._protocol`) and applied the same way
everywhere: a head it refuses is a 400 that closes the connection, never a
silently dropped header, a 500 or no answer at all, and a body the server does
not read is never read as the next request.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from devserve import server as ds
from devserve.config import CGIConfig, ServeConfig
from devserve.events import LogEvent
from tests.support import (
    port_of,
    raw_exchange,
    running_devserve,
    running_server,
    self_signed_certificate,
    status_of,
)


class Quiet(ds.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(public_tmp: Path) -> Path:
    (public_tmp / "small.txt").write_text("small")
    (public_tmp / "big.bin").write_bytes(b"B" * 100_000)
    script = public_tmp / "cgi-bin" / "echo.sh"
    script.parent.mkdir(mode=0o755)
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nscript ran'\n")
    script.chmod(0o755)
    return public_tmp


@contextmanager
def documented(site: Path) -> Iterator[int]:
    with running_server(ds.ThreadingHTTPServer, functools.partial(Quiet, directory=str(site))) as s:
        yield port_of(s)


@contextmanager
def devserve_cgi(site: Path) -> Iterator[int]:
    config = ServeConfig(directory=site, cgi=CGIConfig(timeout=10), quiet=True)
    with running_devserve(config) as (s, _, _):
        yield port_of(s)


# (name, the server, the request line a head starts with)
PATHS: list[tuple[str, Callable[[Path], AbstractContextManager[int]], bytes]] = [
    ("loop", devserve_cgi, b"GET /small.txt HTTP/1.1"),  # static: the event loop's
    ("thread", documented, b"GET /small.txt HTTP/1.1"),  # the documented handler
    ("cgi", devserve_cgi, b"POST /cgi-bin/echo.sh HTTP/1.1"),  # a thread and a script
]

BAD_HEADS = [
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", "differing lengths"),
    (b"Content-Length: 5, 6\r\n", "a list of differing lengths"),
    (b"Content-Length: \xef\xbc\x95\r\n", "a fullwidth digit (UTF-8 bytes)"),
    (b"Content-Length: \xd9\xa5\r\n", "an Arabic-Indic digit"),
    (b"Content-Length: " + b"9" * 30 + b"\r\n", "an absurdly long number"),
    (b"Content-Length: +5\r\n", "a sign"),
    (b"Host : x\r\n", "whitespace before the colon"),
    (b"Host\t: x\r\n", "a tab before the colon"),
    (b"no colon at all\r\n", "a malformed field line"),
    (b"X: a\rb\r\n", "a bare CR"),
    (b"X: a\x00b\r\n", "a NUL"),
    (b"X: a\x1bb\r\n", "an escape"),
    (b"Transfer-Encoding: gzip\r\n", "a final coding other than chunked"),
    (b"Transfer-Encoding: chunked, identity\r\n", "chunked not last"),
    (b"Content-Length: \xb2\r\n", "a superscript digit (Latin-1)"),
    (b"Range: bytes=\xb9-\xb2\r\n", "superscript digits in a range"),
    (b"Range: bytes=0-" + b"9" * 400 + b"\r\n", "a 400-digit range"),
]


@pytest.mark.parametrize(("name", "serve", "line"), PATHS, ids=[p[0] for p in PATHS])
@pytest.mark.parametrize(("field", "what"), BAD_HEADS, ids=[b[1] for b in BAD_HEADS])
def test_a_head_the_rules_refuse_is_a_400_that_closes(
    site: Path,
    name: str,
    serve: Callable[[Path], AbstractContextManager[int]],
    line: bytes,
    field: bytes,
    what: str,
) -> None:
    smuggled = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    with serve(site) as port:
        reply = raw_exchange(port, line + b"\r\nHost: x\r\n" + field + b"\r\n" + smuggled)
    assert status_of(reply) == 400, (what, reply[:200])
    head = reply.partition(b"\r\n\r\n")[0]
    assert b"Connection: close" in head, what
    assert reply.count(b"HTTP/1.1 ") == 1, what  # nothing after it was read as a request
    assert b"Traceback" not in reply and b"script ran" not in reply


@pytest.mark.parametrize(("name", "serve", "line"), PATHS, ids=[p[0] for p in PATHS])
def test_transfer_encoding_with_content_length_closes_after_the_response(
    site: Path, name: str, serve: Callable[[Path], AbstractContextManager[int]], line: bytes
) -> None:
    smuggled = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    head = line + b"\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    with serve(site) as port:
        reply = raw_exchange(port, head + b"0\r\n\r\n" + smuggled)
    assert reply.count(b"HTTP/1.1 ") == 1, reply[:300]  # answered, then closed
    assert b"B" * 1000 not in reply


def test_a_cors_preflight_never_reads_its_body_as_a_request(site: Path) -> None:
    smuggled = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    config = ServeConfig(directory=site, cors=True, quiet=True)
    with running_devserve(config) as (s, _, _):
        reply = raw_exchange(
            port_of(s),
            b"OPTIONS /small.txt HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\n"
            b"Access-Control-Request-Method: GET\r\nContent-Length: %d\r\n\r\n"
            % len(smuggled)
            + smuggled
            + b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert status_of(reply) == 204
    assert reply.count(b"HTTP/1.1 ") == 2  # the preflight and the last GET
    assert b"B" * 1000 not in reply  # the body was read and dropped, not answered


def test_every_method_the_site_does_not_answer_drops_or_closes_on_its_body(site: Path) -> None:
    smuggled = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (s, _, _):
        for method in (b"POST", b"PUT", b"DELETE", b"PATCH", b"BREW"):
            reply = raw_exchange(
                port_of(s),
                method
                + b" /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
                + smuggled,
            )
            assert status_of(reply) == 501, method
            assert reply.count(b"HTTP/1.1 ") == 1, method


# --------------------------------------------------------------------------- configured headers


def _head(port: int, target: bytes = b"/small.txt") -> dict[str, list[str]]:
    reply = raw_exchange(port, b"GET " + target + b" HTTP/1.0\r\n\r\n")
    fields: dict[str, list[str]] = {}
    for line in reply.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(": ")
        fields.setdefault(name.lower(), []).append(value)
    return fields


def test_a_configured_header_replaces_the_one_devserve_would_send(site: Path) -> None:
    headers = (
        ("Cache-Control", "max-age=60"),
        ("Content-Type", "text/x-mine"),
        ("Server", "mine"),
        ("X-Extra", "1"),
    )
    config = ServeConfig(directory=site, headers=headers, quiet=True)
    with running_devserve(config) as (s, _, _):
        port = port_of(s)
        loop = _head(port)
        missing = _head(port, b"/nope")
    for fields in (loop, missing):
        assert fields["cache-control"] == ["max-age=60"]
        assert fields["content-type"] == ["text/x-mine"]
        assert fields["server"] == ["mine"]
        assert fields["x-extra"] == ["1"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("X-Check: \u2713", "Latin-1"),
        ("X-Bell: a\x07b", "control characters"),
        ("X-Del: a\x7fb", "control characters"),
        ("Content-Length: 5", "not allowed"),
        ("Bad Name: x", "not a header name"),
    ],
)
def test_a_header_that_cannot_be_sent_is_refused_at_start_up(value: str, message: str) -> None:
    from typer.testing import CliRunner

    from devserve.cli import app

    result = CliRunner().invoke(app, ["serve", ".", "--header", value])
    assert result.exit_code == 2  # bad usage
    assert message in result.output


# --------------------------------------------------------------------------- side doors


def test_a_404_never_suggests_what_the_server_would_not_serve(site: Path, tmp_path: Path) -> None:
    (site / ".env").write_text("SECRET=1")
    (site / "etc").symlink_to("/etc")
    (site / "pub").symlink_to(".env")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("s")
    (site / "out").symlink_to(tmp_path / "outside")
    with running_devserve(ServeConfig(directory=site)) as (s, log, _):
        port = port_of(s)
        for target in (
            b"/etc/passwdx",
            b"/etc/passwd",
            b"/env",
            b"/.enw",
            b"/pubb",
            b"/out/secret.tx",
        ):
            reply = raw_exchange(port, b"GET " + target + b" HTTP/1.0\r\n\r\n")
            assert status_of(reply) == 404, target
            assert b"Did you mean" not in reply, (target, reply)
        assert status_of(raw_exchange(port, b"GET /pub HTTP/1.0\r\n\r\n")) == 404
    notes = " ".join(record.note for record in log.records())
    assert "passwd" not in notes and ".env" not in notes and "secret" not in notes


def test_plain_http_is_still_answered_after_hostile_heads(site: Path) -> None:
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (s, _, _):
        port = port_of(s)
        for field, _ in BAD_HEADS:
            raw_exchange(port, b"GET / HTTP/1.1\r\n" + field + b"\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /small.txt HTTP/1.0\r\n\r\n")
            assert sock.recv(65536).endswith(b"small")


# --------------------------------------------------------------------------- TLS ports


def test_plain_http_to_a_tls_port_gets_a_400_that_says_use_https(
    site: Path, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    config = ServeConfig(directory=site, tls_cert=cert, tls_key=key)
    with running_devserve(config) as (s, log, _):
        port = port_of(s)
        reply = raw_exchange(port, b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        still = raw_exchange(port, b"GET /small.txt HTTP/1.0\r\n\r\n")  # plain again: same
    assert status_of(reply) == 400
    assert f"use https://127.0.0.1:{port}/small.txt".encode() in reply
    assert status_of(still) == 400
    errors = [item.message for item in log.items if isinstance(item, LogEvent)]
    assert any("plain HTTP request on the HTTPS port" in message for message in errors)
