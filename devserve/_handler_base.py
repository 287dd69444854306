"""BaseHTTPRequestHandler: request parsing, responses, logging hooks.

Part of the documented API re-exported by `devserve.server`; see there.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import socketserver
import sys
import time
from collections.abc import Callable
from email.message import Message
from email.parser import Parser
from email.policy import compat32
from http import HTTPStatus
from typing import IO, Any, ClassVar, TypeAlias, cast

from devserve import _ansi as ansi
from devserve._ansi import takes_colour
from devserve._io import (
    CLIENT_GONE,
    ReplayedInput,
    SocketWriter,
    TruncatedBody,
    is_tls,
    unread_input,
)
from devserve._protocol import (
    CONTROL_CHAR_TABLE,
    MAX_HEADERS,
    MAX_LINE,
    NO_BODY,
    Framing,
    ProtocolError,
    build_message,
    check_framing,
    check_header_field,
    field_value,
    http_date,
    parse_field_lines,
    parse_request_line,
    plain_http_start,
)
from devserve._servers import HTTPServer
from devserve._static_rules import (
    closing_connection_field,
    error_has_body,
    error_page,
    keeps_alive,
)

__version__ = "0.6"

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


# What ``headers`` holds while a request's own are not read yet (never written to).
_NO_HEADERS = http.client.HTTPMessage()

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
    # devserve's site answers as this class does (see devserve._loop.reproduces).
    _site_base = True

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
    # How the request's body is delimited (set by parse_request; see check_framing).
    _framing: Framing = NO_BODY
    # The request's header lines as they came (a proxy refuses some it could not pass on).
    _header_lines: list[bytes] = []  # noqa: RUF012 - replaced per request, never mutated
    # The server, when it is one of devserve's (the connection-keeping contract).
    _host: HTTPServer | None = None
    # Set by a handler whose connection should stay with its thread between requests
    # (the reverse proxy's: see devserve._handler_proxy), never parked in the event loop.
    _stays_in_thread = False

    # -------------------------------------------------------------- connection

    def setup(self) -> None:
        """Prepare ``rfile`` and ``wfile`` (the StreamRequestHandler contract)."""
        self.connection = self.request
        timeout = self._socket_timeout()
        if timeout is not None:
            self.connection.settimeout(timeout)
        if self.disable_nagle_algorithm:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        # Bytes an event-loop server already read from this connection come first.
        host = self.server if isinstance(self.server, HTTPServer) else None
        self._host = host
        prefix = host.take_input(self.connection) if host is not None else b""
        if prefix:
            replayed = ReplayedInput(prefix, self.connection)
            buffering = io.DEFAULT_BUFFER_SIZE if self.rbufsize < 0 else self.rbufsize
            self.rfile = cast(
                io.BufferedIOBase,
                io.BufferedReader(replayed, buffering) if buffering else replayed,
            )
        else:
            self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile = SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def _socket_timeout(self) -> float | None:
        """The connection's socket timeout: the documented ``timeout`` attribute."""
        return self.timeout

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
        host = self._host
        try:
            if host is not None:
                host.track(self.connection, "first")
            parking = host is not None and host.parks_connections
            if is_tls(self.connection):
                if self._refuse_plain_http():
                    return
                self.connection.do_handshake()
                parking = False
            self.close_connection = True
            self.handle_one_request()
            while not self.close_connection:
                if parking and not self._stays_in_thread:
                    assert host is not None
                    # An event-loop server takes a kept-alive connection back between requests.
                    unread = unread_input(self.rfile, self.connection, self._socket_timeout())
                    if unread is not None and host.park(self.connection, unread):
                        break
                if host is not None:
                    host.track(self.connection, "next")
                self.handle_one_request()
        except TruncatedBody as error:
            self.close_connection = True
            self.log_error("%s: %s", self.path, error)
        except CLIENT_GONE:
            self.close_connection = True
        finally:
            if host is not None:
                host.untrack(self.connection)

    def _refuse_plain_http(self) -> bool:
        """Answer a plain-HTTP request sent to a TLS port with a plain 400; True if it was one.

        A browser or curl told ``http://`` for an HTTPS port would otherwise see
        the handshake fail with nothing it can read (nginx and Caddy answer so too).
        """
        raw = socket.socket.recv(self.connection, 4096, socket.MSG_PEEK)  # beneath TLS
        if not plain_http_start(raw):
            return False
        socket.socket.recv(self.connection, len(raw))  # take what was peeked
        host = field_value(raw, b"host") or f"{self.server.server_name}:{self.server.server_port}"
        target = raw.split(b" ", 2)[1].decode("latin-1") if raw.count(b" ") >= 2 else "/"
        url = f"https://{host}{target if target.startswith('/') else '/'}"
        body = f"This port speaks HTTPS: use {url}\n".encode("latin-1", "replace")
        socket.socket.sendall(
            self.connection,
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
        )
        self.close_connection = True
        self.log_error("plain HTTP request on the HTTPS port: answered 400 (use %s)", url)
        return True

    def handle_one_request(self) -> None:
        """Read, parse and dispatch one request to its ``do_*`` method (documented)."""
        self._hold_headers = False
        self._status = None
        self._framed = False
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            host = self._host
            if host is not None and self.raw_requestline:
                host.track(self.connection, "headers")
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
            if host is not None:
                host.track(self.connection, "busy")
            assert self.command is not None
            method = self._dispatch(self.command)
            if method is None:
                self.send_error(
                    HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})"
                )
                return
            try:
                method()
            except CLIENT_GONE:
                raise
            except Exception:
                self._answer_internal_error()
                raise
            self.wfile.flush()
        except TimeoutError as error:
            self.log_error("Request timed out: %r", error)
            self.close_connection = True

    def _dispatch(self, command: str) -> Callable[[], None] | None:
        """The method that answers a parsed request: ``do_<command>`` (None: 501)."""
        method: Callable[[], None] | None = getattr(self, "do_" + command, None)
        return method

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
        real HTTP/0.9 request is answered with a status line and headers; header
        lines are read strictly (RFC 9112: a malformed line, whitespace before the
        colon, a bare CR or NUL, or an unusable Content-Length or Transfer-Encoding
        is a 400), and a request line without a version is answered at once,
        without waiting for header lines (Python 3.15).
        """
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        self._simple_request = False
        self._framing = NO_BODY
        self.headers = _NO_HEADERS  # until this request's are read
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
        if parsed.version:
            self.request_version = parsed.version
        self._simple_request = self.request_version == "HTTP/0.9"
        if not parsed.version:
            # No version: an HTTP/0.9 request, which has no header lines to wait for.
            self.headers = self.MessageClass()
            return True
        try:
            self.headers = self._read_headers(parsed.version_number)
        except ProtocolError as error:
            self.send_error(error.status, error.message, error.explain)
            return False
        self.close_connection = self._simple_request or not keeps_alive(
            parsed.version_number, self.protocol_version, self.headers.get("Connection")
        )
        if self._framing.close:
            self.close_connection = True

        expect = self.headers.get("Expect", "")
        if (
            expect.lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True

    def _read_headers(self, version: tuple[int, int]) -> Message:
        """Read the header block into a MessageClass instance, as http.client would.

        The lines are parsed strictly (`parse_field_lines`) and the body framing
        decided from them (`check_framing`, kept as ``self._framing``); the message
        is built directly, or through the email parser for a MessageClass with
        another policy, so it reads as ``http.client.parse_headers`` would.
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
            if not line and self._reaped():
                raise TimeoutError("request headers did not arrive in time")
            if line in (b"\r\n", b"\n", b""):
                break
            lines.append(line)
        fields = parse_field_lines(lines)
        self._header_lines = lines
        self._framing = check_framing(fields, version)
        message = build_message(self.MessageClass, fields)
        if message.policy is compat32:
            return message
        text = "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
        return Parser(_class=self.MessageClass).parsestr(text)

    def _reaped(self) -> bool:
        """Whether the server closed this connection for being too slow."""
        host = self._host
        return host is not None and host.was_reaped(self.connection)

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
            body = error_page(self.error_message_format, code, message, explain)
            self.send_header("Content-Type", self.error_content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and error_has_body(code, self.command):
            self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request, then buffer the status line, Server and Date (documented)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())

    def send_response_only(self, code: int, message: str | None = None) -> None:
        """Buffer the status line alone (documented)."""
        code = int(code)
        self._status = code  # what the request is answered with, even without a status line
        if self._simple_request:
            return
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
        """End the header block and send it (documented; with nothing buffered too, as 3.15)."""
        if self._simple_request:
            return
        connection = closing_connection_field(
            self.close_connection, self._framed, self._status, self.command, self.request_version
        )
        if connection is not None:
            # "close": without a length the client can only read to the end of the
            # stream; "keep-alive": an HTTP/1.0 client is told it may send more.
            self.send_header("Connection", connection)
        if not hasattr(self, "_headers_buffer"):
            self._headers_buffer = []
        self._headers_buffer.append(b"\r\n")
        self.flush_headers()

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
        self._log_style = "request"
        try:
            self.log_message('"%s" %s %s', self.requestline, str(code), str(size))
        finally:
            self._log_style = ""

    def log_error(self, format: str, *args: Any) -> None:
        """Log an error; by default the same as log_message (documented)."""
        self._log_style = "error"
        try:
            self.log_message(format, *args)
        finally:
            self._log_style = ""

    _control_char_table = CONTROL_CHAR_TABLE
    # How the log_message call under way is coloured: "request", "error" or not at all.
    _log_style = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Write ``format % args`` to stderr, control characters escaped (documented).

        On a terminal the line is coloured, as in Python 3.15 (see devserve._ansi):
        a request's path, its status by class, an error's message.
        """
        stream = sys.stderr
        table = self._control_char_table
        style = self._log_style
        if style and takes_colour(stream):
            message = self._coloured(style, format, args, table)
        else:
            message = (format % args).translate(table)
        stream.write(f"{self.address_string()} - - [{self.log_date_time_string()}] {message}\n")

    @staticmethod
    def _coloured(style: str, format: str, args: tuple[Any, ...], table: dict[int, str]) -> str:
        """A log message with colour around its scrubbed parts."""
        if style == "request" and format == '"%s" %s %s' and len(args) == 3:
            line, code, size = (str(arg).translate(table) for arg in args)
            words = line.split(" ")
            if len(words) >= 2:
                words[1] = ansi.paint(words[1], ansi.BOLD)
            colour = ansi.status_colour(code)
            return f'"{" ".join(words)}" {ansi.paint(code, colour) if colour else code} {size}'
        return ansi.paint((format % args).translate(table), ansi.RED)

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
