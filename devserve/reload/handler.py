"""Live reload in the request handler: the reserved endpoints and the injected pages.

`reloading(base, hub, notice)` returns ``base`` with live reload mixed in; the
server only uses it with ``--reload``, so without it no response changes.

Invariants:
- An injected page is never cached and never partial: it goes out as a 200
  with its own Content-Length, ``Cache-Control: no-store``, and no ETag,
  Last-Modified or Accept-Ranges; conditional and Range headers are ignored for
  it. (A cached page would carry an old change count and reload for ever.)
- The change count a page carries is read before its file is opened, so a
  change the page might miss always makes it reload.
- Only navigations get the script (``Sec-Fetch-Dest`` document, frame or absent):
  HTML fetched by a script (htmx, fetch) is served as it is.
- Requests under `RESERVED_PREFIX` never reach the filesystem.
"""

from __future__ import annotations

import io
import os
import urllib.parse
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, ClassVar, cast

from devserve._protocol import MAX_LINE
from devserve.reload import sse
from devserve.reload.hub import HubClosed, ReloadHub
from devserve.reload.inject import (
    EVENTS_PATH,
    MAX_INJECT_SIZE,
    RESERVED_PREFIX,
    WORKER_PATH,
    WORKER_SCRIPT,
    CannotInject,
    StreamInjector,
    charset_of,
    inject_html,
    reload_snippet,
    root_prefix,
    should_inject,
    snippet_bytes,
)
from devserve.server import CGIHTTPRequestHandler, SimpleHTTPRequestHandler

if TYPE_CHECKING:
    import threading

    from devserve._handler_base import Body
    from devserve._io import OpenFile

# Sec-Fetch-Dest values of a page being displayed (absent: an older or non-browser client).
_PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})
# Script headers about the body or its caching that no longer hold once it is injected.
_DROPPED_FOR_INJECTION = frozenset(
    {b"content-length", b"etag", b"last-modified", b"cache-control", b"expires"}
)


class ReloadingHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler with the live-reload endpoints and script injection."""

    reload_hub: ClassVar[ReloadHub]
    # (key, message): log ``message`` the first time ``key`` is seen.
    reload_notice: Callable[[str, str], None]
    reload_heartbeat: ClassVar[float] = sse.HEARTBEAT

    # Per request (reset in handle_one_request).
    _seq_at_start = 0
    _injected = False
    _not_injected = ""  # why a page was served without the script
    _sent_type = ""
    _uncacheable = False  # the response must not be stored: Cache-Control: no-store
    _unlogged = False  # plumbing the request log leaves out when it succeeds

    def handle_one_request(self) -> None:
        self._injected = False
        self._not_injected = ""
        self._sent_type = ""
        self._uncacheable = False
        self._unlogged = False
        super().handle_one_request()
        status = self._status
        if status is None or not 200 <= status < 300 or self._injected or not self.command:
            return
        if self.headers.get("Sec-Fetch-Dest") == "document":
            path = urllib.parse.urlsplit(self.path).path
            why = self._not_injected or f"not HTML: {self._sent_type or 'no Content-Type'}"
            self.reload_notice(
                f"not-injected {path}",
                f"live reload: {path} has no reload script ({why}); it will not refresh by itself",
            )

    def parse_request(self) -> bool:
        """Keeps the documented contract; also notes the change count as the request arrives."""
        parsed = super().parse_request()
        self._seq_at_start = self.reload_hub.seq
        return parsed

    def send_header(self, keyword: str, value: object) -> None:
        """Keeps the documented contract; remembers the Content-Type for the log."""
        if keyword.lower() == "content-type":
            self._sent_type = str(value)
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        """Keeps the documented contract; an uncacheable response says ``no-store``."""
        if self._uncacheable and self._status is not None and self._status >= 200:
            self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self) -> None:
        """Serve a GET (documented), or a live-reload endpoint under the reserved prefix."""
        if self.path.startswith(RESERVED_PREFIX):
            self._serve_reserved()
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        """Serve a HEAD (documented), or a live-reload endpoint under the reserved prefix."""
        if self.path.startswith(RESERVED_PREFIX):
            self._serve_reserved()
        else:
            super().do_HEAD()

    # -------------------------------------------------------------- endpoints

    def _serve_reserved(self) -> None:
        self.answered_by = "reload"
        self._discard_body()  # as send_head does: a body sent with GET is not the next request
        path = self.path.partition("?")[0]
        if path == EVENTS_PATH:
            self._unlogged = True
            self._serve_events()
        elif path == WORKER_PATH:
            self._unlogged = True
            self._uncacheable = True
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(WORKER_SCRIPT)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(WORKER_SCRIPT)
        else:
            self.send_error(HTTPStatus.NOT_FOUND, "Not a live reload endpoint")

    def _serve_events(self) -> None:
        """The event stream: hello, then one message per change, until either side ends."""
        hub = self.reload_hub
        try:
            subscription = hub.subscribe()
        except HubClosed:
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "The server is stopping")
            return
        with subscription:
            self._uncacheable = True
            self.send_response(HTTPStatus.OK)
            for name, value in sse.RESPONSE_HEADERS:
                self.send_header(name, value)
            self.send_header("Connection", "close")  # the stream ends when the connection does
            self.end_headers()
            if self.command == "HEAD":
                return
            try:
                self.wfile.write(sse.prelude(hub))
                sse.stream(subscription, self.connection, self.wfile.write, self.reload_heartbeat)
            except (OSError, ValueError):
                pass  # the browser went away (or stalled): its stream simply ends

    # -------------------------------------------------------------- injection

    def _wants_script(self) -> bool:
        """Whether this request displays a page (and so should get the script)."""
        headers = getattr(self, "headers", None)
        if headers is None:
            return False
        destination = headers.get("Sec-Fetch-Dest")
        return destination is None or destination in _PAGE_DESTINATIONS

    def _snippet(self) -> str:
        hub = self.reload_hub
        return reload_snippet(root_prefix(self.path), hub.server_id, self._seq_at_start)

    def _send_page(self, body: bytes, ctype: str) -> Body:
        """Send an HTML page with the script in it (never cached, never partial)."""
        try:
            body = inject_html(body, self._snippet(), charset_of(ctype))
            self._injected = True
        except CannotInject as error:
            self._not_injected = str(error)
        self._uncacheable = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._send_extra_headers()
        self.end_headers()
        return io.BytesIO(body)

    def _send_file_head(self, f: OpenFile, fs: os.stat_result, ctype: str) -> Body | None:
        if not should_inject(ctype) or not self._wants_script():
            return super()._send_file_head(f, fs, ctype)
        if fs.st_size > MAX_INJECT_SIZE:
            self._not_injected = f"larger than {MAX_INJECT_SIZE >> 20} MiB"
            return super()._send_file_head(f, fs, ctype)
        try:
            body = f.readall()
        finally:
            f.close()
        return self._send_page(body, ctype)

    def list_directory(self, path: str | os.PathLike[str]) -> Body | None:
        """Keeps the documented contract; the listing page gets the script too."""
        if not self._wants_script():
            return super().list_directory(path)
        # The documented method sends its own headers, so the page is sent here.
        listing = self._listing_page(path)
        if listing is None:
            return None
        body, encoding = listing
        return self._send_page(body, f"text/html; charset={encoding}")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Keeps the documented contract; a page-loading GET's error page gets the script.

        So a page that was deleted while on screen comes back when it is re-created.
        """
        if code < 400 or self.command != "GET" or not self._wants_script():
            super().send_error(code, message, explain)
            return
        template = type(self).error_message_format
        snippet = self._snippet().replace("%", "%%")
        self.error_message_format = inject_html(template.encode(), snippet).decode()
        self._injected = self._uncacheable = True
        try:
            super().send_error(code, message, explain)
        finally:
            del self.error_message_format

    # -------------------------------------------------------------- CGI replies

    def script_snippet(self, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The snippet to stream into a script's reply with these headers, or None."""
        fields = {name.lower(): value.decode("latin-1").strip() for name, value in headers}
        if not self._wants_script() or not should_inject(fields.get(b"content-type")):
            return None
        if not should_inject(fields[b"content-type"], fields.get(b"content-encoding")):
            self._not_injected = f"compressed ({fields[b'content-encoding']})"
            return None
        status = fields.get(b"status", "200")[:3]
        if status in ("204", "304"):
            return None
        snippet = snippet_bytes(self._snippet(), charset_of(fields[b"content-type"]))
        if snippet is None:
            self._not_injected = f"streamed in {charset_of(fields[b'content-type'])}"
            return None
        self._injected = self._uncacheable = True
        return snippet


class ScriptOutput:
    """A CGI script's stdout as the gateway reads it, with the script streamed into HTML.

    The header block is read ahead (the gateway reads it line by line, then
    stops at the blank line); when the reply is an HTML page, the headers that
    described the original body (Content-Length, validators, Cache-Control) are
    dropped, so the gateway frames the longer body itself (chunked, or to the
    close), and the body passes through a `StreamInjector`.
    """

    def __init__(
        self, stdout: IO[bytes], decide: Callable[[list[tuple[bytes, bytes]]], bytes | None]
    ) -> None:
        self._stdout = stdout
        self._decide = decide
        self._lines: deque[bytes] | None = None
        self._injector: StreamInjector | None = None

    def _read_header_block(self, limit: int) -> None:
        lines: list[bytes] = []
        size = 0
        while size <= MAX_LINE:  # the gateway's own bound; past it, it answers 502
            line = self._stdout.readline(limit)
            lines.append(line)
            if not line or line in (b"\r\n", b"\n"):
                break
            size += len(line)
        fields = []
        for line in lines:
            name, sep, value = line.partition(b":")
            if sep:
                fields.append((name.strip(), value))
        snippet = self._decide(fields) if lines[-1] in (b"\r\n", b"\n") else None
        if snippet is not None:
            self._injector = StreamInjector(snippet)
            lines = [
                line
                for line in lines
                if line.partition(b":")[0].strip().lower() not in _DROPPED_FOR_INJECTION
            ]
        self._lines = deque(lines)

    def readline(self, limit: int = -1) -> bytes:
        if self._lines is None:
            self._read_header_block(limit)
        assert self._lines is not None
        if self._lines:
            return self._lines.popleft()
        return self._stdout.readline(limit)

    def read1(self, size: int = -1) -> bytes:
        injector = self._injector
        if injector is None:
            return bytes(cast(io.BufferedReader, self._stdout).read1(size))
        while True:
            data = cast(io.BufferedReader, self._stdout).read1(size)
            if not data:
                return injector.finish()
            out = injector.feed(data)
            if out:
                return out

    read = read1

    def close(self) -> None:
        self._stdout.close()


class ReloadingCGIHandler(ReloadingHandler, CGIHTTPRequestHandler):
    """CGIHTTPRequestHandler with live reload: script replies that are HTML get the script."""

    def _relay_reply(self, stdout: IO[bytes], timed_out: threading.Event) -> str | None:
        output = ScriptOutput(stdout, self.script_snippet)
        return super()._relay_reply(cast(IO[bytes], output), timed_out)

    def _relay_raw(self, stdout: IO[bytes]) -> None:
        self._not_injected = "an nph- script writes its own response"
        super()._relay_raw(stdout)


def reloading(
    base: type[SimpleHTTPRequestHandler],
    hub: ReloadHub,
    notice: Callable[[str, str], None],
    heartbeat: float = sse.HEARTBEAT,
) -> type[SimpleHTTPRequestHandler]:
    """``base`` with live reload, telling ``hub``'s browsers; ``notice`` logs once per key."""
    mixin = ReloadingCGIHandler if issubclass(base, CGIHTTPRequestHandler) else ReloadingHandler
    attributes = {
        "reload_hub": hub,
        "reload_notice": staticmethod(notice),
        "reload_heartbeat": heartbeat,
    }
    return type(f"Reloading{base.__name__}", (mixin, base), attributes)
