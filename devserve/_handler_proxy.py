"""Relaying a request to a ``--proxy`` backend and its answer back: a handler thread's work.

The event loop never forwards: `Site.answers` refuses every target a route
claims, so the loop hands such a connection to a thread, whose `DevHandler`
dispatches it here (`relay`). Headers, paths and framing are decided by the pure
rules in `devserve._proxy`; connections come from `devserve._upstream`.

Invariants:
- Framing is re-done, never copied: the request body is read by devserve's own
  rules (a length, or `_protocol.chunked_body`) and sent with the length or
  chunked again; the response body is read by `_proxy_response.response_body`'s framing
  and sent with the length, chunked (HTTP/1.1 clients) or to the close (1.0).
  A request the strict parser accepted but two parsers might read differently
  (`_proxy.refused_request`) is answered 400/501 and never forwarded.
- Nothing is buffered whole: bodies go through in pieces of at most 64 KiB
  (requests) or 256 KiB (responses), each written as soon as it was read
  (Server-Sent Events arrive as they are sent).
  The one exception is an HTML page under ``--reload``, read up to
  `MAX_INJECT_SIZE` to take the script; a larger one is passed on untouched.
- A response cut short by its backend is never completed: the client's
  connection is closed (a short body or a missing last chunk shows it).
- ``Expect: 100-continue`` is forwarded, and the backend's ``100 Continue``
  relayed; if none comes within `EXPECT_WAIT` seconds (an HTTP/1.0 backend never
  sends one), devserve sends its own and the body follows, as clients also stop
  waiting (RFC 9110 10.1.1). A backend that answers at once with a final status
  never gets the body: its answer is relayed and the client's connection closed.
"""

from __future__ import annotations

import io
import itertools
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING

from devserve._io import TLS_WOULD_BLOCK, ReplayedInput, SocketWriter, TruncatedBody, is_tls
from devserve._protocol import (
    MAX_HEADERS,
    MAX_LINE,
    BadChunk,
    ProtocolError,
    chunked_body,
    has_obs_fold,
    parse_field_lines,
)
from devserve._proxy import (
    IDEMPOTENT,
    Client,
    Fields,
    Forward,
    expects_continue,
    refused_request,
    request_fields,
    response_fields,
    wants_websocket,
)
from devserve._proxy_response import (
    BadResponse,
    ClientFraming,
    ResponseBody,
    StatusLine,
    backend_keeps_alive,
    client_framing,
    parse_status_line,
    response_body,
)
from devserve._reply import site_request
from devserve._tunnel import tunnel
from devserve._upstream import BackendConnection, BackendError, Proxy

if TYPE_CHECKING:
    from devserve._handler_dev import DevHandler

CHUNK = 64 * 1024
# A response body is read into one buffer of at most this size (see `body_pieces`).
BODY_BUFFER = 256 * 1024
# Seconds a forwarded ``Expect: 100-continue`` waits for the backend's answer.
EXPECT_WAIT = 1.0
# Interim (1xx) answers read before the final one at most (nginx relays none).
MAX_INTERIM = 16
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PHRASES = {status.value: status.phrase for status in HTTPStatus}

Response = tuple[StatusLine, Fields]
Piece = bytes | memoryview
_WOULD_BLOCK: tuple[type[BaseException], ...] = (BlockingIOError, *TLS_WOULD_BLOCK)


def relay(handler: DevHandler, proxy: Proxy, forward: Forward) -> None:
    """Answer the request ``handler`` has read by forwarding it as ``forward`` says."""
    Relay(handler, proxy, forward).run()


class Relay:
    """One proxied request: the exchange with its backend and the answer to its client."""

    def __init__(self, handler: DevHandler, proxy: Proxy, forward: Forward) -> None:
        self.h = handler
        self.proxy = proxy
        self.forward = forward
        self.upstream = proxy.upstream(forward.route)
        self.method = str(handler.command)
        self.fields: Fields = handler.headers.items()
        self.body_started = False  # a byte of the client's body was read
        self.body_unsent = False  # the backend answered before taking the body

    # ------------------------------------------------------------------ request

    def run(self) -> None:
        h = self.h
        h.answered_by = "proxy"
        h._note = f"→ {self.forward.url}"
        # API calls come in runs on one connection: parking it in the event loop after
        # each would start a thread per request (1,070 -> 1,930 req/s in bench/proxy.py).
        h._stays_in_thread = True
        refused = refused_request(self.fields, has_obs_fold(h._header_lines))
        if refused is not None:
            status, reason = refused
            h.send_error(status, reason)
            h._note = f"not forwarded: {reason}"
            return
        framing = h._framing
        site = h.context.site
        websocket = wants_websocket(self.method, h.request_version, self.fields)
        reload = site.reload
        seq = reload.hub.seq if reload is not None else 0  # before the backend makes the page
        page_reload = (
            reload is not None
            and not websocket
            and reload.takes_proxied(site_request(self.method, h.path, self.fields))
        )
        expect = (
            framing.has_body and h.request_version == "HTTP/1.1" and expects_continue(self.fields)
        )
        client = Client(
            str(h.client_address[0]),
            "https" if is_tls(h.connection) else "http",
            h.headers.get("Host"),
        )
        fields = request_fields(
            self.fields,
            self.forward.route,
            client,
            keep_host=self.proxy.keep_host,
            length=framing.length,
            chunked=framing.chunked,
            expect=expect,
            websocket=websocket,
            page_reload=page_reload,
            own_credentials=h.verified_user is not None,
        )
        lines = [f"{self.method} {self.forward.target} HTTP/1.1\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in fields]
        head = ("".join(lines) + "\r\n").encode("latin-1")
        for attempt in range(2):
            try:
                conn = self.upstream.acquire()
            except BackendError as error:
                self.fail(error)
                return
            try:
                response = self.exchange(conn, head, expect)
            except BackendError as error:
                conn.close()
                if attempt == 0 and self.may_retry(conn, error):
                    continue
                self.fail(error)
                return
            except BadChunk as error:
                conn.close()
                h.send_error(HTTPStatus.BAD_REQUEST, "Bad chunked body")
                h._note = f"not forwarded whole: {error}"
                return
            except BaseException:
                conn.close()
                raise
            break
        try:
            self.respond(conn, response, websocket, page_reload, seq)
        except BaseException:
            conn.close()
            raise

    def may_retry(self, conn: BackendConnection, error: BackendError) -> bool:
        """A kept-alive connection the backend had closed is tried again once, with a new one,
        when nothing of the client's body went out (and the method is idempotent, if it has one)."""
        if not conn.reused or not error.closed or self.body_started:
            return False
        return self.method in IDEMPOTENT or not self.h._framing.has_body

    def exchange(self, conn: BackendConnection, head: bytes, expect: bool) -> Response:
        """Send the request (head, then body) and read the response head."""
        conn.send(head)
        if expect:
            if conn.readable(EXPECT_WAIT):
                # other interim answers are not relayed
                response = self.read_final(conn, read_head(conn), stop_at_continue=True)
                if response[0].status != 100:
                    self.body_unsent = True
                    return response
            self.h.wfile.write(_CONTINUE)
        try:
            self.send_body(conn)
        except BackendError as error:
            # The backend stopped reading: it may have said why (413, say).
            try:
                response = self.read_final(conn)
            except BackendError:
                raise error from None
            self.body_unsent = True
            return response
        return self.read_final(conn)

    def send_body(self, conn: BackendConnection) -> None:
        """Stream the client's body to the backend, framed again (never whole in memory)."""
        framing = self.h._framing
        rfile = self.h.rfile
        if framing.chunked:
            for piece in chunked_body(rfile.readline, rfile.read1):
                self.body_started = True
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
            return
        remaining = framing.length or 0
        while remaining:
            data = rfile.read1(min(remaining, CHUNK))
            if not data:
                raise ConnectionAbortedError("the client's body was cut short")
            self.body_started = True
            remaining -= len(data)
            conn.send(data)

    def read_final(
        self,
        conn: BackendConnection,
        response: Response | None = None,
        stop_at_continue: bool = False,
    ) -> Response:
        """The next response head that is not an interim one (a 101 is final here, and
        with ``stop_at_continue`` a 100). At most `MAX_INTERIM` interim answers, all
        within the proxy timeout: a backend sending 1xx forever holds no thread."""
        deadline = time.monotonic() + self.upstream.timeout
        if response is None:
            response = read_head(conn)
        for _ in range(MAX_INTERIM):
            status = response[0].status
            if status >= 200 or status == 101 or (stop_at_continue and status == 100):
                return response
            if time.monotonic() >= deadline:
                raise BackendError("did not answer in time (only interim responses)", timeout=True)
            response = read_head(conn)
        raise BackendError(f"sent more than {MAX_INTERIM} interim (1xx) responses")

    def fail(self, error: BackendError) -> None:
        """502 (or 504 for a timeout) with a page naming the backend and what went wrong."""
        h = self.h
        origin = self.upstream.origin
        code = HTTPStatus.GATEWAY_TIMEOUT if error.timeout else HTTPStatus.BAD_GATEWAY
        explain = f"devserve forwarded {self.method} {h.path} to {self.forward.url}: "
        h.send_error(code, None, f"{explain}the backend {origin} {error}")
        h._note = f"backend {origin} {error}"

    # ------------------------------------------------------------------ response

    def respond(
        self,
        conn: BackendConnection,
        response: Response,
        websocket: bool,
        page_reload: bool,
        seq: int,
    ) -> None:
        h = self.h
        status_line, fields = response
        status = status_line.status
        if status == 101:
            if not websocket:
                conn.close()
                self.fail(BackendError("switched protocols when not asked to"))
                return
            self.tunnel(conn, response)
            return
        try:
            body = response_body(status, self.method, status_line.version, fields)
        except BadResponse as error:
            conn.close()
            self.fail(BackendError(f"sent a bad response: {error}"))
            return
        chunked_ok = h.request_version == "HTTP/1.1" and h.protocol_version >= "HTTP/1.1"
        framing = client_framing(body, status, self.method, fields, chunked_ok)
        out = response_fields(fields, self.forward)
        if self.body_unsent or framing.kind == "close":
            h.close_connection = True
        pieces = self.body_pieces(conn, body)
        writer = h.wfile
        try:
            if page_reload and framing.kind != "none" and self._takes_script(fields, framing):
                self.send_page(status_line, out, framing, pieces, seq)
            else:
                head = self.head(status_line, out, framing)
                if framing.kind == "length" and isinstance(writer, SocketWriter):
                    writer.hold(head)  # leaves with the first piece of the body
                else:
                    writer.write(head)
                if _is_event_stream(fields):
                    with self.proxy.endless(conn.sock):
                        self.send_pieces(pieces, framing)
                else:
                    self.send_pieces(pieces, framing)
        except BackendError as error:
            conn.close()
            h.close_connection = True
            if self.proxy.ending:  # cut by end_streams: the client reconnects, nothing failed
                raise ConnectionAbortedError("the server is stopping") from None
            raise TruncatedBody(
                f"backend {self.upstream.origin} {error}: the response to "
                f"{self.method} {h.path} was cut short (the client's connection is closed)"
            ) from None
        if not self.body_unsent and backend_keeps_alive(status_line.version, fields, body):
            self.upstream.release(conn)
        else:
            conn.close()

    def head(self, status_line: StatusLine, fields: Fields, framing: ClientFraming) -> bytes:
        """The response head sent to the client (the status is noted for the log)."""
        h = self.h
        status = status_line.status
        h._status = status
        reason = status_line.reason or _PHRASES.get(status, "")
        lines = [f"{h.protocol_version} {status} {reason}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in fields]
        if framing.length is not None:
            lines.append(f"Content-Length: {framing.length}\r\n")
        elif framing.kind == "chunked":
            lines.append("Transfer-Encoding: chunked\r\n")
        if h.close_connection:
            lines.append("Connection: close\r\n")
        elif h.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def body_pieces(self, conn: BackendConnection, body: ResponseBody) -> Iterator[Piece]:
        """The backend's body, decoded from its framing, a piece per read; BackendError
        if it ends before its framing says it does.

        A piece may be a view of a buffer the next read reuses: it must be sent (or
        copied) before the next one is asked for. Reading into one buffer instead of a
        new bytes object per read costs a quarter less CPU on a large body.
        """
        reader = conn.reader
        try:
            if body.kind == "chunked":
                yield from chunked_body(reader.readline, reader.read1)
                return
            remaining = body.length if body.kind == "length" else None
            if remaining == 0 or body.kind == "none":
                return
            view = memoryview(bytearray(min(remaining or BODY_BUFFER, BODY_BUFFER)))
            while True:
                count = reader.readinto1(view if remaining is None else view[:remaining])
                if not count:
                    if remaining is not None:
                        raise BackendError(f"closed the connection {remaining} bytes early")
                    return
                yield view[:count]
                if remaining is not None:
                    remaining -= count
                    if not remaining:
                        return
        except BadChunk as error:
            raise BackendError(f"sent a broken chunked body ({error})") from None
        except OSError as error:
            timeout = isinstance(error, TimeoutError)
            raise BackendError(_read_failure(error), timeout=timeout) from None

    def send_pieces(self, pieces: Iterator[Piece], framing: ClientFraming) -> None:
        write = self.h.wfile.write
        if framing.kind == "chunked":
            for piece in pieces:
                write(b"%x\r\n%s\r\n" % (len(piece), piece))
            write(b"0\r\n\r\n")
        elif framing.kind != "none":
            for piece in pieces:
                write(piece)
        else:
            self.h.wfile.flush()

    # ------------------------------------------------------------------ live reload

    def _takes_script(self, fields: Fields, framing: ClientFraming) -> bool:
        # Under --reload a page is asked for uncompressed (`request_fields`); a backend
        # that compresses anyway has its page passed on untouched, never decoded here.
        from devserve.reload.inject import MAX_INJECT_SIZE, should_inject

        found = {name.lower(): value for name, value in reversed(fields)}
        if not should_inject(found.get("content-type"), found.get("content-encoding")):
            return False
        if framing.length is not None and framing.length > MAX_INJECT_SIZE:
            self._say_not_injected(f"larger than {MAX_INJECT_SIZE >> 20} MiB")
            return False
        return True

    def send_page(
        self,
        status_line: StatusLine,
        fields: Fields,
        framing: ClientFraming,
        pieces: Iterator[Piece],
        seq: int,
    ) -> None:
        """An HTML page with the reload script, sent with its new length and never cached;
        one that proves larger than `MAX_INJECT_SIZE` goes on as it came."""
        from devserve.reload.inject import MAX_INJECT_SIZE, STALE_AFTER_INJECTION

        h = self.h
        page = bytearray()
        for piece in pieces:
            page += piece
            if len(page) > MAX_INJECT_SIZE:
                self._say_not_injected(f"larger than {MAX_INJECT_SIZE >> 20} MiB")
                h.wfile.write(self.head(status_line, fields, framing))
                self.send_pieces(itertools.chain((bytes(page),), pieces), framing)
                return
        ctype = next((v for n, v in fields if n.lower() == "content-type"), "text/html")
        reload = h.context.site.reload
        assert reload is not None  # page_reload is only ever set under --reload
        body = reload.proxied_page(h.path, bytes(page), ctype, seq, self.method != "GET")
        kept = [(n, v) for n, v in fields if n.lower() not in STALE_AFTER_INJECTION]
        kept.append(("Cache-Control", "no-store"))
        head = self.head(status_line, kept, ClientFraming("length", len(body)))
        h.wfile.write(head + body)

    def _say_not_injected(self, why: str) -> None:
        reload = self.h.context.site.reload
        if reload is not None:
            reload.say_not_injected(self.h.path, why)

    # ------------------------------------------------------------------ websocket

    def tunnel(self, conn: BackendConnection, response: Response) -> None:
        """Relay the backend's 101, then copy bytes both ways until either side closes."""
        h = self.h
        status_line, fields = response
        out = [*response_fields(fields, self.forward), ("Connection", "Upgrade")]
        out.append(("Upgrade", "websocket"))
        h.close_connection = True  # the connection is the tunnel's from now on
        head = self.head(status_line, out, ClientFraming("none"))
        h.wfile.write(head)
        client_early = pending_input(h.rfile, h.connection)
        backend_early = pending_input(conn.reader, conn.sock)
        try:
            with self.proxy.endless(h.connection, conn.sock):
                tunnel(h.connection, conn.sock, self.proxy.timeout, client_early, backend_early)
        finally:
            conn.close()


def _is_event_stream(fields: Fields) -> bool:
    """Whether a response is Server-Sent Events: a stream with no end of its own."""
    return any(
        name.lower() == "content-type"
        and value.partition(";")[0].strip().lower() == "text/event-stream"
        for name, value in fields
    )


def read_head(conn: BackendConnection) -> Response:
    """A response head from the backend (status line and fields), or BackendError."""
    reader = conn.reader
    line = _read_line(reader, first=True)
    try:
        status_line = parse_status_line(line)
    except BadResponse as error:
        raise BackendError(f"sent a malformed response ({error})") from None
    lines: list[bytes] = []
    while True:
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            break
        if len(lines) >= MAX_HEADERS:
            raise BackendError(f"sent more than {MAX_HEADERS} header lines")
        lines.append(line)
    try:
        return status_line, parse_field_lines(lines)
    except ProtocolError as error:
        raise BackendError(f"sent a malformed header line ({error.explain})") from None


def _read_line(reader: io.BufferedReader, first: bool = False) -> bytes:
    try:
        line = reader.readline(MAX_LINE + 1)
    except OSError as error:
        closed = first and isinstance(error, ConnectionResetError)
        raise BackendError(
            _read_failure(error), timeout=isinstance(error, TimeoutError), closed=closed
        ) from None
    if not line:
        if first:
            raise BackendError("closed the connection without answering", closed=True)
        raise BackendError("closed the connection in the middle of a response head")
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise BackendError("sent a response head line that is too long")
    return line


def _read_failure(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return "did not answer in time"
    if isinstance(error, ConnectionResetError):
        return "reset the connection"
    return f"failed: {error.strerror or error}"


def pending_input(reader: object, sock: socket.socket) -> bytes:
    """What a reader over ``sock`` already holds unread, never waiting for more."""
    data = b""
    if isinstance(reader, io.BufferedReader):
        timeout = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            data = reader.peek(1)
        except _WOULD_BLOCK:
            data = b""
        finally:
            sock.settimeout(timeout)
        raw = reader.raw
    else:
        raw = reader
    if isinstance(raw, ReplayedInput):
        data += raw.unread()
    return bytes(data)
