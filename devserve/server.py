"""HTTP servers and request handlers: the documented ``http.server`` API, our own code.

Code written against ``http.server`` works after changing the import. Every class,
attribute and hook the reference documents is here with the documented name,
signature, default and behaviour; where devserve deliberately differs (safer
symlinks, no header splitting, ranges and validators, a proper status line on
malformed requests) the README's "Differences from http.server" lists it.

This module never prints anything but the documented ``log_message`` stderr line
and never exits the process.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import io
import os
import secrets
import shutil
import socket
import socketserver
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from email.message import Message
from email.parser import Parser
from email.policy import compat32
from http import HTTPStatus
from typing import IO, Any, ClassVar, TypeAlias, cast

from devserve import _cgi
from devserve._io import FileSlice, MultipartBody, OpenFile, SocketWriter
from devserve._listing import Entry, render_listing
from devserve._mime import ENCODINGS_MAP
from devserve._mime import guess_type as _guess_type
from devserve._paths import (
    SymlinkPolicy,
    is_hidden,
    is_hidden_name,
    symlink_allowed,
    url_to_fs_path,
)
from devserve._protocol import (
    CONTROL_CHAR_TABLE,
    MAX_HEADERS,
    MAX_LINE,
    ProtocolError,
    Unsatisfiable,
    build_message,
    check_header_field,
    etag_matches,
    http_date,
    make_etag,
    parse_http_date,
    parse_ranges,
    parse_request_line,
    split_header_lines,
)

__version__ = "0.6"

__all__ = [
    "BaseHTTPRequestHandler",
    "CGIHTTPRequestHandler",
    "HTTPSServer",
    "HTTPServer",
    "SimpleHTTPRequestHandler",
    "ThreadingHTTPSServer",
    "ThreadingHTTPServer",
]

DEFAULT_ERROR_MESSAGE = """\
<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: %(code)d</p>
        <p>Message: %(message)s.</p>
        <p>Error code explanation: %(code)s - %(explain)s.</p>
    </body>
</html>
"""

DEFAULT_ERROR_CONTENT_TYPE = "text/html;charset=utf-8"

# What send_head returns and copyfile reads: an open file, a range of one, a
# multipart range body or an in-memory listing.
Body: TypeAlias = "IO[bytes] | io.IOBase"

# A client that went away mid-response; its connection is closed without a word.
_CLIENT_GONE = (ConnectionError, TimeoutError, ssl.SSLError)


# =========================================================================== servers


class HTTPServer(socketserver.TCPServer):
    """A TCPServer that stores ``server_name`` and ``server_port`` (documented).

    Beyond the stdlib: an IPv6 address selects AF_INET6 by itself (``::`` also
    accepts IPv4), the listen backlog is 128 instead of 5, and a client that
    disconnects mid-response is not reported as an error.
    """

    allow_reuse_address = True
    request_queue_size = 128
    server_name: str
    server_port: int

    def __init__(
        self,
        server_address: tuple[Any, ...],
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
    ) -> None:
        host = str(server_address[0]) if server_address else ""
        if ":" in host and self.address_family == socket.AF_INET:
            self.address_family = socket.AF_INET6
        self._connections: dict[socket.socket, bool] = {}
        self._connections_lock = threading.Lock()
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def server_bind(self) -> None:
        """Bind, then record ``server_name`` and ``server_port`` (documented)."""
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(str(host))
        self.server_port = port

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report a handler failure, except a client that simply went away."""
        if isinstance(sys.exc_info()[1], _CLIENT_GONE):
            return
        super().handle_error(request, client_address)

    # -- connection bookkeeping, so a shutdown need not wait on idle keep-alives

    def _track(self, connection: socket.socket, idle: bool) -> None:
        with self._connections_lock:
            self._connections[connection] = idle

    def _untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(connection, None)

    def connection_count(self) -> int:
        """How many client connections are open (busy or idle)."""
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self, idle_only: bool = True) -> int:
        """Shut down client connections (by default only those waiting for a request).

        Their handler threads then finish on their own; returns how many.
        """
        with self._connections_lock:
            chosen = [c for c, waiting in self._connections.items() if waiting or not idle_only]
        for conn in chosen:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return len(chosen)

    def server_close(self) -> None:
        self.close_connections(idle_only=True)
        super().server_close()


class ThreadingHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    """HTTPServer handling each connection in its own thread (documented)."""

    daemon_threads = True


class HTTPSServer(HTTPServer):
    """HTTPServer over TLS (documented since Python 3.14).

    The TLS handshake runs in the handler (its thread, for the threading
    variant), so a slow or silent client cannot stall ``accept``.
    """

    def __init__(
        self,
        server_address: tuple[Any, ...],
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
        *,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        password: Any = None,
        alpn_protocols: Iterable[str] | None = None,
    ) -> None:
        self.ssl = ssl
        self.certfile = certfile
        self.keyfile = keyfile
        self.password = password
        self.alpn_protocols = ["http/1.1"] if alpn_protocols is None else list(alpn_protocols)
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def server_activate(self) -> None:
        """Listen, then wrap the listening socket for TLS."""
        super().server_activate()
        context = self._create_context()
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def _create_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile, self.password)
        context.set_alpn_protocols(self.alpn_protocols)
        return context


class ThreadingHTTPSServer(socketserver.ThreadingMixIn, HTTPSServer):
    """HTTPSServer handling each connection in its own thread (documented)."""

    daemon_threads = True


# =========================================================================== base handler


class BaseHTTPRequestHandler(socketserver.StreamRequestHandler):
    """Parses requests and dispatches them to ``do_<METHOD>`` (the documented contract).

    Differences from the stdlib: ``send_header`` refuses CR/LF/NUL; a malformed
    request line gets a real status line; an HTTP/1.1 response with no length is
    marked ``Connection: close`` instead of hanging the client; a handler that
    raises before sending anything answers 500; TCP_NODELAY is on.
    """

    sys_version = "Python/" + sys.version.split()[0]
    server_version = "BaseHTTP/" + __version__
    error_message_format = DEFAULT_ERROR_MESSAGE
    error_content_type = DEFAULT_ERROR_CONTENT_TYPE
    default_request_version = "HTTP/0.9"
    protocol_version = "HTTP/1.0"
    MessageClass: type[Message] = http.client.HTTPMessage
    responses: ClassVar[dict[int, tuple[str, str]]] = {
        status.value: (status.phrase, status.description) for status in HTTPStatus
    }
    weekdayname: ClassVar[list[str]] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    monthname: ClassVar[list[str | None]] = [None, "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]  # fmt: skip
    disable_nagle_algorithm = True

    # Set per request by handle_one_request / parse_request.
    close_connection: bool
    raw_requestline: bytes
    requestline: str
    command: str | None
    path: str
    request_version: str
    headers: Message
    server: Any
    _headers_buffer: list[bytes]
    _simple_request = False  # a true HTTP/0.9 request: no status line, no headers
    _hold_headers = False  # coalesce the header block with the first body write
    _status: int | None = None
    _framed = False  # Content-Length or Transfer-Encoding was sent

    # -------------------------------------------------------------- connection

    def setup(self) -> None:
        """Prepare ``rfile`` and ``wfile`` (the StreamRequestHandler contract)."""
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile = SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if not self.wfile.closed:
                self.wfile.flush()
        with contextlib.suppress(OSError, ValueError):
            self.wfile.close()
        with contextlib.suppress(OSError, ValueError):
            self.rfile.close()

    def handle(self) -> None:
        """Handle requests until the connection should close (documented)."""
        track = getattr(self.server, "_track", None)
        try:
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.do_handshake()
            self.close_connection = True
            if track is not None:
                track(self.connection, True)
            self.handle_one_request()
            while not self.close_connection:
                if track is not None:
                    track(self.connection, True)
                self.handle_one_request()
        except _CLIENT_GONE:
            self.close_connection = True
        finally:
            if track is not None:
                self.server._untrack(self.connection)

    def handle_one_request(self) -> None:
        """Read, parse and dispatch one request to its ``do_*`` method (documented)."""
        self._hold_headers = False
        self._status = None
        self._framed = False
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            track = getattr(self.server, "_track", None)
            if track is not None:
                track(self.connection, False)
            if len(self.raw_requestline) > MAX_LINE:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            assert self.command is not None
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(
                    HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})"
                )
                return
            try:
                method()
            except _CLIENT_GONE:
                raise
            except Exception:
                self._answer_internal_error()
                raise
            self.wfile.flush()
        except TimeoutError as error:
            self.log_error("Request timed out: %r", error)
            self.close_connection = True

    def _answer_internal_error(self) -> None:
        """Send 500 for a handler that failed before sending anything, then close."""
        self.close_connection = True
        writer = self.wfile
        if isinstance(writer, SocketWriter) and writer.bytes_written == 0:
            self._headers_buffer = []
            writer._held.clear()
            with contextlib.suppress(Exception):
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
                writer.flush()

    def parse_request(self) -> bool:
        """Parse the request line and headers; on error answer and return False.

        Keeps the documented contract. Differences: a malformed line that is not a
        real HTTP/0.9 request is answered with a status line and headers.
        """
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        self._simple_request = False
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        try:
            parsed = parse_request_line(requestline)
        except ProtocolError as error:
            self.request_version = "HTTP/1.0"
            self.send_error(error.status, error.message)
            return False
        if parsed is None:
            return False
        self.command, self.path = parsed.command, parsed.path
        self.request_version = parsed.version
        self._simple_request = parsed.version_number == (0, 9)
        if parsed.version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        if self._simple_request:
            self.close_connection = True

        try:
            self.headers = self._read_headers()
        except ProtocolError as error:
            self.send_error(error.status, error.message, error.explain)
            return False

        tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        if "close" in tokens:
            self.close_connection = True
        elif "keep-alive" in tokens and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False

        expect = self.headers.get("Expect", "")
        if (
            expect.lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def _read_headers(self) -> Message:
        """Read the header block into a MessageClass instance, as http.client would.

        Plain lines are stored directly (the email parser is slow); anything
        unusual goes through the email parser so it is read exactly as the
        documented ``http.client.parse_headers`` reads it.
        """
        lines: list[bytes] = []
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise ProtocolError(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Line too long",
                    f"got more than {MAX_LINE} bytes when reading header line",
                )
            # The terminating line counts towards the limit, as in http.client.
            if len(lines) + 1 > MAX_HEADERS:
                raise ProtocolError(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Too many headers",
                    f"got more than {MAX_HEADERS} headers",
                )
            if line in (b"\r\n", b"\n", b""):
                break
            lines.append(line)
        fields = split_header_lines(lines)
        if fields is not None:
            message = build_message(self.MessageClass, fields)
            if message.policy is compat32:
                return message
        text = b"".join([*lines, b"\r\n"]).decode("iso-8859-1")
        return Parser(_class=self.MessageClass).parsestr(text)

    def handle_expect_100(self) -> bool:
        """Answer ``100 Continue`` and go on (documented; override to refuse)."""
        self.send_response_only(HTTPStatus.CONTINUE)
        self.end_headers()
        return True

    # -------------------------------------------------------------- responses

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Send and log a complete error reply (documented).

        No body for HEAD, 1xx, 204, 205 and 304; the connection closes afterwards.
        """
        try:
            short, long = self.responses[code]
        except KeyError:
            short, long = "???", "???"
        if message is None:
            message = short
        if explain is None:
            explain = long
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        body = None
        if code >= 200 and code not in (
            HTTPStatus.NO_CONTENT,
            HTTPStatus.RESET_CONTENT,
            HTTPStatus.NOT_MODIFIED,
        ):
            content = self.error_message_format % {
                "code": code,
                "message": html.escape(message, quote=False),
                "explain": html.escape(explain, quote=False),
            }
            body = content.encode("UTF-8", "replace")
            self.send_header("Content-Type", self.error_content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request, then buffer the status line, Server and Date (documented)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())

    def send_response_only(self, code: int, message: str | None = None) -> None:
        """Buffer the status line alone (documented)."""
        if self._simple_request:
            return
        code = int(code)
        if message is None:
            message = self.responses[code][0] if code in self.responses else ""
        if "\r" in message or "\n" in message or "\x00" in message:
            raise ValueError(f"invalid character in reason phrase: {message!r}")
        if not hasattr(self, "_headers_buffer"):
            self._headers_buffer = []
        self._status = code
        self._framed = False
        self._headers_buffer.append(
            f"{self.protocol_version} {code} {message}\r\n".encode("latin-1", "strict")
        )

    def send_header(self, keyword: str, value: Any) -> None:
        """Buffer one header line (documented).

        Raises ValueError for a name or value holding CR, LF or NUL, so a response
        can never be split.
        """
        text = str(value)
        if self._simple_request:
            return
        check_header_field(keyword, text)
        if not hasattr(self, "_headers_buffer"):
            self._headers_buffer = []
        self._headers_buffer.append(f"{keyword}: {text}\r\n".encode("latin-1", "strict"))
        lower = keyword.lower()
        if lower == "connection":
            if text.lower() == "close":
                self.close_connection = True
            elif text.lower() == "keep-alive":
                self.close_connection = False
        elif lower in ("content-length", "transfer-encoding"):
            self._framed = True

    def end_headers(self) -> None:
        """End the header block and send it (documented)."""
        if self._simple_request:
            return
        if not self.close_connection and not self._framed and self._may_have_body():
            # Without a length the client can only read to the end of the stream:
            # say so instead of leaving it waiting on a kept-alive connection.
            self.send_header("Connection", "close")
        elif (
            not self.close_connection
            and self.request_version == "HTTP/1.0"
            and self._status is not None
            and self._status >= 200
        ):
            self.send_header("Connection", "keep-alive")
        self._headers_buffer.append(b"\r\n")
        self.flush_headers()

    def _may_have_body(self) -> bool:
        status = self._status
        if status is None or status < 200 or status in (204, 304):
            return False
        return self.command != "HEAD"

    def flush_headers(self) -> None:
        """Send the buffered headers and clear the buffer (documented)."""
        if hasattr(self, "_headers_buffer"):
            data = b"".join(self._headers_buffer)
            self._headers_buffer = []
            if self._hold_headers and isinstance(self.wfile, SocketWriter):
                self.wfile.hold(data)
            else:
                self.wfile.write(data)

    # -------------------------------------------------------------- logging

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log an accepted request (documented)."""
        if isinstance(code, HTTPStatus):
            code = code.value
        self.log_message('"%s" %s %s', self.requestline, str(code), str(size))

    def log_error(self, format: str, *args: Any) -> None:
        """Log an error; by default the same as log_message (documented)."""
        self.log_message(format, *args)

    _control_char_table = CONTROL_CHAR_TABLE

    def log_message(self, format: str, *args: Any) -> None:
        """Write ``format % args`` to stderr, control characters escaped (documented)."""
        message = format % args
        sys.stderr.write(
            f"{self.address_string()} - - [{self.log_date_time_string()}] "
            f"{message.translate(self._control_char_table)}\n"
        )

    # -------------------------------------------------------------- small helpers

    def version_string(self) -> str:
        """``server_version`` and ``sys_version`` (documented)."""
        return self.server_version + " " + self.sys_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """An HTTP date for ``timestamp``, or now (documented)."""
        return http_date(timestamp)

    def log_date_time_string(self) -> str:
        """The current local time, formatted for the log (documented)."""
        year, month, day, hh, mm, ss, *_ = time.localtime(time.time())
        return f"{day:02d}/{self.monthname[month]:>3s}/{year:04d} {hh:02d}:{mm:02d}:{ss:02d}"

    def address_string(self) -> str:
        """The client's IP address, no name lookup (documented)."""
        return str(self.client_address[0])


# =========================================================================== static files


class SimpleHTTPRequestHandler(BaseHTTPRequestHandler):
    """Serve files from ``directory`` (documented).

    Beyond the stdlib: ETag/If-None-Match, If-Match/If-Unmodified-Since, byte
    ranges (single and multipart) with If-Range, zero-copy bodies, web-correct
    MIME types, and the ``follow_symlinks`` policy (links must stay inside the
    root by default, where the stdlib follows every link).
    """

    server_version = "SimpleHTTP/" + __version__
    index_pages: ClassVar[tuple[str, ...]] = ("index.html", "index.htm")
    extensions_map: ClassVar[dict[str, str]] = dict(ENCODINGS_MAP)
    # "inside" (default): follow a link only when its target stays inside the
    # served directory; "always": the stdlib's behaviour; "never": no links.
    follow_symlinks: ClassVar[SymlinkPolicy] = "inside"
    # devserve's options; the defaults keep the documented behaviour.
    show_hidden: ClassVar[bool] = True  # False: dotfiles are neither listed nor served
    list_directories: ClassVar[bool] = True  # False: a directory without index is 404
    spa_fallback: ClassVar[str | None] = None  # e.g. "index.html" for single-page apps
    # What answered the last request: file, index, listing, spa, redirect, cgi.
    answered_by = ""
    _opened: tuple[OpenFile, os.stat_result] | None = None

    def __init__(
        self,
        *args: Any,
        directory: str | os.PathLike[str] | None = None,
        response_headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if directory is None:
            directory = os.getcwd()
        self.directory = os.fspath(directory)
        self.response_headers = response_headers
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        """Serve a GET: headers from send_head, then the body via copyfile (documented)."""
        self._hold_headers = True
        self._opened = None
        f = self.send_head()
        if f:
            try:
                self.copyfile(f, self.wfile)
            finally:
                f.close()
                self._opened = None

    def do_HEAD(self) -> None:
        """Serve a HEAD: the headers a GET would get (documented)."""
        self._hold_headers = True
        f = self.send_head()
        if f:
            f.close()

    def send_head(self) -> Body | None:
        """Send the status and headers for the request; return the body to copy, or None.

        Keeps the documented contract (redirect for a directory without a slash,
        index pages, listing, 404, If-Modified-Since → 304).
        """
        self.answered_by = ""
        path = self.translate_path(self.path)
        # Open first, then look: one open and one fstat answer "exists? directory?
        # regular file?" and the symlink check reads where the open descriptor
        # really points. Every syscall here lets the GIL go, so fewer is faster.
        opened = self._open_servable(path)
        if opened is None:
            return self._not_found()
        fd, st = opened
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            parts = urllib.parse.urlsplit(self.path)
            if not parts.path.endswith("/"):
                self.answered_by = "redirect"
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                new_url = urllib.parse.urlunsplit(
                    (parts[0], parts[1], parts[2] + "/", parts[3], parts[4])
                )
                self.send_header("Location", new_url)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            for name in self.index_pages:
                index = os.path.join(path, name)
                opened = self._open_servable(index)
                if opened is not None and stat.S_ISREG(opened[1].st_mode):
                    path, (fd, st) = index, opened
                    self.answered_by = "index"
                    break
                if opened is not None:
                    os.close(opened[0])
            else:
                if not self.list_directories:
                    return self._not_found()
                self.answered_by = "listing"
                return self.list_directory(path)
        if not stat.S_ISREG(st.st_mode) or path.endswith("/"):
            os.close(fd)  # FIFOs and devices are never opened for reading
            return self._not_found()
        return self._serve_opened(path, fd, st, self.answered_by or "file")

    def _open_servable(self, path: str) -> tuple[int, os.stat_result] | None:
        """Open ``path`` if it exists and the policies allow it; None otherwise."""
        if "\x00" in path:
            return None
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (OSError, ValueError):
            return None
        try:
            st = os.fstat(fd)
            if self._may_serve(path, fd):
                return fd, st
        except OSError:
            pass
        os.close(fd)
        return None

    def _serve_opened(self, path: str, fd: int, st: os.stat_result, kind: str) -> Body | None:
        f = OpenFile(fd, path)
        self.answered_by = kind
        self._opened = (f, st)
        try:
            return self._send_file_head(f, st, self.guess_type(path))
        except BaseException:
            f.close()
            raise

    def _not_found(self) -> Body | None:
        """404, or the single-page-app entry point for a route the app handles itself."""
        fallback = self.spa_fallback
        if fallback is not None and self._is_app_route():
            path = os.path.join(self.directory, fallback)
            opened = self._open_servable(path)
            if opened is not None and stat.S_ISREG(opened[1].st_mode):
                return self._serve_opened(path, opened[0], opened[1], "spa")
            if opened is not None:
                os.close(opened[0])
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def _is_app_route(self) -> bool:
        """A path the page's router handles: no file suffix, or a browser asking for HTML.

        A missing asset (``/app.js``) stays a 404 instead of turning into HTML.
        """
        last = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
        return "." not in last or "text/html" in self.headers.get("Accept", "")

    def _may_serve(self, path: str, fd: int | None = None) -> bool:
        """Whether the hidden-file and symlink policies let ``path`` be served.

        ``fd``, an open descriptor of ``path``, makes the symlink check one syscall.
        """
        if not self.show_hidden and is_hidden(path, self.directory):
            return False
        try:
            return symlink_allowed(path, self.directory, self.follow_symlinks, fd)
        except (OSError, ValueError):
            return False

    def _send_file_head(self, f: OpenFile, fs: os.stat_result, ctype: str) -> Body | None:
        size = fs.st_size
        etag = make_etag(fs.st_mtime_ns, size, fs.st_ino)
        mtime = int(fs.st_mtime)
        headers = self.headers

        failed = self._precondition_failed(etag, mtime)
        if failed:
            f.close()
            self.send_error(HTTPStatus.PRECONDITION_FAILED)
            return None
        if self._not_modified(etag, mtime):
            f.close()
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self._send_extra_headers()
            self.end_headers()
            return None

        range_header = headers.get("Range") if self.command == "GET" else None
        if range_header is not None and self._range_applies(etag, mtime):
            try:
                ranges = parse_ranges(range_header, size)
            except Unsatisfiable:
                f.close()
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if ranges is not None:
                self.send_response(HTTPStatus.PARTIAL_CONTENT)
                body: Body
                if len(ranges) == 1:
                    body = FileSlice(f, ranges[0].first, ranges[0].length)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Range", ranges[0].content_range(size))
                    self.send_header("Content-Length", str(ranges[0].length))
                else:
                    boundary = secrets.token_hex(12)
                    parts: list[bytes | FileSlice] = []
                    for item in ranges:
                        parts.append(
                            f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\n"
                            f"Content-Range: {item.content_range(size)}\r\n\r\n".encode("latin-1")
                        )
                        parts.append(FileSlice(f, item.first, item.length))
                    parts.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
                    multipart = MultipartBody(parts, f)
                    body = multipart
                    self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
                    self.send_header("Content-Length", str(multipart.length))
                self._send_validators(etag, fs.st_mtime)
                self.end_headers()
                return body

        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", ctype)
        self.send_header("Content-Length", str(size))
        self._send_validators(etag, fs.st_mtime)
        self.end_headers()
        return f

    def _send_validators(self, etag: str, mtime: float) -> None:
        self.send_header("Last-Modified", self.date_time_string(mtime))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self._send_extra_headers()

    def _send_extra_headers(self) -> None:
        """The ``response_headers`` given to the handler (Python 3.15's --header)."""
        if self.response_headers:
            for name, value in self.response_headers.items():
                self.send_header(name, value)

    def _precondition_failed(self, etag: str, mtime: int) -> bool:
        """RFC 9110 13.2.2 steps 1-2: If-Match, else If-Unmodified-Since."""
        if_match = self.headers.get("If-Match")
        if if_match is not None:
            return not etag_matches(if_match, etag, weak=False)
        since = self.headers.get("If-Unmodified-Since")
        if since is not None:
            limit = parse_http_date(since)
            return limit is not None and mtime > limit
        return False

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """RFC 9110 13.2.2 steps 3-4: If-None-Match, else If-Modified-Since (documented)."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return etag_matches(if_none_match, etag, weak=True)
        since = self.headers.get("If-Modified-Since")
        if since is not None:
            limit = parse_http_date(since)
            return limit is not None and mtime <= limit
        return False

    def _range_applies(self, etag: str, mtime: int) -> bool:
        """If-Range: the range is honoured only if the validator still matches."""
        if_range = self.headers.get("If-Range")
        if if_range is None:
            return True
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            return if_range == etag
        date = parse_http_date(if_range)
        return date is not None and int(date) == mtime

    def list_directory(self, path: str | os.PathLike[str]) -> Body | None:
        """Send the headers of a listing of ``path``; return its body (documented)."""
        try:
            with os.scandir(path) as it:
                entries = [_entry(item) for item in it if self._listed(item.name)]
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "No permission to list directory")
            return None
        encoding = sys.getfilesystemencoding()
        body = render_listing(self.path, entries, encoding)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", f"text/html; charset={encoding}")
        self.send_header("Content-Length", str(len(body)))
        self._send_extra_headers()
        self.end_headers()
        return io.BytesIO(body)

    def _listed(self, name: str) -> bool:
        """Whether a directory entry appears in listings (hook for subclasses)."""
        return self.show_hidden or not is_hidden_name(name)

    def translate_path(self, path: str) -> str:
        """Map a URL path to a filesystem path below ``directory`` (documented)."""
        return url_to_fs_path(path, self.directory)

    def copyfile(self, source: Body, outputfile: Body) -> None:
        """Copy ``source`` to ``outputfile`` (documented); zero-copy to the socket."""
        if isinstance(outputfile, SocketWriter):
            opened = self._opened
            size = opened[1].st_size if opened is not None and opened[0] is source else None
            outputfile.send_body(source, size)
        else:
            shutil.copyfileobj(cast(IO[bytes], source), cast(IO[bytes], outputfile))

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        """The content type of ``path``: ``extensions_map`` first, then web defaults."""
        return _guess_type(os.fspath(path), self.extensions_map)


def _entry(item: os.DirEntry[str]) -> Entry:
    try:
        is_dir = item.is_dir()
    except OSError:
        is_dir = False
    return Entry(item.name, is_dir, item.is_symlink())


# O_NONBLOCK keeps a FIFO from blocking the open (it is refused right after); it has
# no effect on regular files, so the descriptor is read as usual.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


# =========================================================================== CGI


def nobody_uid() -> int:
    """The uid scripts run as when the server runs as root."""
    return _cgi.nobody_uid()


def executable(path: str) -> bool:
    """Whether ``path`` is executable (any execute bit)."""
    return _cgi.is_executable(path)


class CGIHTTPRequestHandler(SimpleHTTPRequestHandler):
    """Serve files, or the output of CGI scripts below ``cgi_directories`` (documented).

    Unlike the stdlib's, the script's own header block is parsed: ``Status:`` and
    ``Location:`` work, a script with broken headers gets 502, and the body is
    framed so HTTP/1.1 keep-alive survives.
    """

    cgi_directories: ClassVar[list[str]] = ["/cgi-bin", "/htbin"]
    have_fork = hasattr(os, "fork")
    rbufsize = 0
    # Seconds a script may run; None waits for ever (the stdlib's behaviour).
    cgi_timeout: ClassVar[float | None] = None
    cgi_info: tuple[str, str]

    def do_POST(self) -> None:
        """Run a CGI script, or refuse with 501 outside CGI directories (documented)."""
        if self.is_cgi():
            self.answered_by = "cgi"
            self.run_cgi()
        else:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, "Can only POST to CGI scripts")

    def send_head(self) -> Body | None:
        """Run the script for CGI paths, else serve the file (documented)."""
        if self.is_cgi():
            self.answered_by = "cgi"
            self.run_cgi()
            return None
        return super().send_head()

    def is_cgi(self) -> bool:
        """Whether the path is in a CGI directory; sets ``cgi_info`` (documented)."""
        found = _cgi.find_cgi_directory(_cgi.collapse_url_path(self.path), self.cgi_directories)
        if found is None:
            return False
        self.cgi_info = found
        return True

    def is_executable(self, path: str) -> bool:
        """Whether ``path`` is executable (documented)."""
        return executable(path)

    def is_python(self, path: str) -> bool:
        """Whether ``path`` is a Python script, by suffix (documented)."""
        return _cgi.is_python_script(path)

    def run_cgi(self) -> None:
        """Run the CGI script and relay its reply (documented)."""
        directory, _ = self.cgi_info

        def fs_path(decoded_url: str) -> str:
            return self.translate_path(_cgi.url_for_decoded(decoded_url))

        where = _cgi.locate_script(self.path, directory, lambda url: os.path.isdir(fs_path(url)))
        if where is None:
            self.send_error(HTTPStatus.NOT_FOUND, "No such CGI script")
            return
        scriptfile = fs_path(where.script_name)
        if not self._may_serve(scriptfile) or not os.path.exists(scriptfile):
            self.send_error(HTTPStatus.NOT_FOUND, f"No such CGI script ({where.script_name!r})")
            return
        if not os.path.isfile(scriptfile):
            self.send_error(
                HTTPStatus.FORBIDDEN, f"CGI script is not a plain file ({where.script_name!r})"
            )
            return
        ispy = self.is_python(where.script_name)
        # The documented rule: where fork exists every script must be executable;
        # elsewhere Python scripts run through the interpreter.
        if (self.have_fork or not ispy) and not self.is_executable(scriptfile):
            self.send_error(
                HTTPStatus.FORBIDDEN, f"CGI script is not executable ({where.script_name!r})"
            )
            return

        length = self._request_body_length()
        if length is None:
            return
        facts = _cgi.RequestFacts(
            method=str(self.command),
            protocol=self.protocol_version,
            script_name=where.script_name,
            path_info=where.path_info,
            path_translated=fs_path(where.path_info),
            query=where.query,
            remote_addr=str(self.client_address[0]),
            server_name=str(getattr(self.server, "server_name", "")),
            server_port=int(getattr(self.server, "server_port", 0)),
            server_software=self.version_string(),
            headers=self.headers,
            https=isinstance(self.connection, ssl.SSLSocket),
            content_length=length if length or self.headers.get("content-length") else None,
        )
        env = _cgi.cgi_environment(facts, os.environ)
        args = [scriptfile]
        if not self.have_fork and ispy:
            args = [sys.executable, "-u", scriptfile]
        decoded_query = where.query.replace("+", " ")
        if "=" not in decoded_query and decoded_query:
            args.append(decoded_query)
        self._run_script(args, env, length, os.path.dirname(scriptfile))

    def _request_body_length(self) -> int | None:
        """The request body's length (0 when none); answers 400/411 and returns None if bad."""
        if self.headers.get("Transfer-Encoding"):
            self.send_error(HTTPStatus.LENGTH_REQUIRED, "Chunked request bodies need a length")
            return None
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        value = value.strip()
        if not value.isdigit():
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
            return None
        return int(value)

    def _run_script(self, args: list[str], env: dict[str, str], length: int, cwd: str) -> None:
        user: int | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            user = nobody_uid()
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,
            )
        except OSError as error:
            self.send_error(HTTPStatus.FORBIDDEN, f"CGI script could not be run ({error.strerror})")
            return
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        body = _BodyFeeder(cast(IO[bytes], self.rfile), process.stdin, length)
        feeder = threading.Thread(target=body.run, daemon=True)
        feeder.start()
        errors: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
        reader.start()
        try:
            self._relay_reply(process.stdout)
        finally:
            process.stdout.close()
            try:
                status = process.wait(self.cgi_timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                status = process.wait()
                self.log_error("CGI script timed out and was killed")
            reader.join(5)
            feeder.join(_BODY_GRACE)
            if feeder.is_alive() or not body.complete:
                # Unread body bytes would be taken for the next request (smuggling):
                # this connection cannot be reused.
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RD)
                feeder.join(5)
            for line in b"".join(errors).decode("utf-8", "replace").splitlines():
                self.log_error("CGI script: %s", line)
            if status:
                self.log_error("CGI script exit code %d", status)

    def _relay_reply(self, stdout: IO[bytes]) -> None:
        block = bytearray()
        while True:
            line = stdout.readline(MAX_LINE + 1)
            if not line or line in (b"\r\n", b"\n"):
                break
            block += line
            if len(block) > MAX_LINE:
                break
        if not line:
            self.send_error(HTTPStatus.BAD_GATEWAY, "CGI script did not send a header block")
            return
        try:
            reply = _cgi.parse_script_headers(bytes(block))
        except _cgi.ScriptReplyError as error:
            self.log_error("%s", str(error))
            self.send_error(HTTPStatus.BAD_GATEWAY, "CGI script sent malformed headers")
            return
        self.send_response(reply.status, reply.reason)
        length = reply.header("content-length")
        chunked = (
            length is None
            and self.request_version >= "HTTP/1.1"
            and self.protocol_version >= "HTTP/1.1"
            and self.command != "HEAD"
            and reply.status not in (204, 304)
        )
        for name, value in reply.headers:
            if name.lower() not in ("connection", "transfer-encoding"):
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        while True:
            data = stdout.read1(65536) if hasattr(stdout, "read1") else stdout.read(65536)
            if not data:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


# Seconds to wait, once the script is done, for the rest of a request body it
# did not read; after that the connection is closed instead of reused.
_BODY_GRACE = 2.0


class _BodyFeeder:
    """Streams the request body to the script, then discards what it did not read.

    Reading the whole body keeps the connection reusable even when the script
    ignores its input; ``complete`` says whether every promised byte was read.
    """

    def __init__(self, source: IO[bytes], sink: IO[bytes], length: int) -> None:
        self.source = source
        self.sink: IO[bytes] | None = sink
        self.remaining = length
        self.complete = length == 0

    def run(self) -> None:
        try:
            while self.remaining > 0:
                data = self.source.read(min(self.remaining, 65536))
                if not data:
                    break
                self.remaining -= len(data)
                if self.sink is not None:
                    try:
                        self.sink.write(data)
                    except OSError:  # the script closed its stdin: keep draining
                        self._close_sink()
            self.complete = self.remaining == 0
        except (OSError, ValueError):
            pass
        finally:
            self._close_sink()

    def _close_sink(self) -> None:
        if self.sink is not None:
            with contextlib.suppress(OSError):
                self.sink.close()
            self.sink = None


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    """Collect a script's stderr (bounded), so a chatty script cannot block on it."""
    kept = 0
    for chunk in iter(lambda: stream.read(4096), b""):
        if kept < 64 * 1024:
            into.append(chunk)
            kept += len(chunk)
    stream.close()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, 9)
