"""BaseHTTPRequestHandler: request parsing, responses, logging hooks.

Part of the documented API re-exported by `devserve.server`; see there.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import io
import socket
import socketserver
import ssl
import sys
import time
from email.message import Message
from email.parser import Parser
from email.policy import compat32
from http import HTTPStatus
from typing import IO, Any, ClassVar, TypeAlias, cast

from devserve._io import CLIENT_GONE, ReplayedInput, SocketWriter, TruncatedBody, unread_input
from devserve._protocol import (
    CONTROL_CHAR_TABLE,
    MAX_HEADERS,
    MAX_LINE,
    ProtocolError,
    build_message,
    check_header_field,
    http_date,
    parse_request_line,
    split_header_lines,
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
    # An event-loop server (devserve._loop) reproduces this class's behaviour.
    _replay_base = True

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
        # Bytes an event-loop server already read from this connection come first.
        take_input = getattr(self.server, "_take_input", None)
        prefix = take_input(self.connection) if take_input is not None else b""
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
        # An event-loop server takes a kept-alive connection back between requests.
        park = getattr(self.server, "_park", None)
        try:
            if track is not None:
                track(self.connection, "first")
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.do_handshake()
                park = None
            self.close_connection = True
            self.handle_one_request()
            while not self.close_connection:
                if park is not None:
                    unread = unread_input(self.rfile, self.connection, self.timeout)
                    if unread is not None and park(self.connection, unread):
                        break
                if track is not None:
                    track(self.connection, "next")
                self.handle_one_request()
        except TruncatedBody as error:
            self.close_connection = True
            self.log_error("%s: %s", self.path, error)
        except CLIENT_GONE:
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
            if track is not None and self.raw_requestline:
                track(self.connection, "headers")
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
            if track is not None:
                track(self.connection, "busy")
            assert self.command is not None
            method = getattr(self, "do_" + self.command, None)
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
            if not line and self._reaped():
                raise TimeoutError("request headers did not arrive in time")
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

    def _reaped(self) -> bool:
        """Whether the server closed this connection for being too slow."""
        was_reaped = getattr(self.server, "_was_reaped", None)
        return bool(was_reaped is not None and was_reaped(self.connection))

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
