"""Live reload in devserve's threaded handler: the event stream and CGI pages.

Pages served from files (and listings and error pages) get the script from the
site (`devserve._site`), wherever they are answered. What needs a thread is
here: the event stream each page listens on, and HTML a CGI script writes,
which gets the script streamed into it.

Invariants:
- An injected page is never cached and never partial: it goes out with
  ``Cache-Control: no-store`` and no ETag or Last-Modified of the script's.
- The change count a page carries is read when its request arrives, before the
  script runs, so a change the page might miss always makes it reload.
- Only navigations get the script (``Sec-Fetch-Dest`` document, frame or absent):
  HTML fetched by a script (htmx, fetch) is served as it is.
- Requests under `RESERVED_PREFIX` never reach the filesystem or a script.
"""

from __future__ import annotations

import urllib.parse
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from devserve._handler_dev import DevCGIHandler, DevHandler
from devserve._protocol import MAX_LINE
from devserve.reload import sse
from devserve.reload.hub import HubClosed, ReloadHub
from devserve.reload.inject import (
    EVENTS_PATH,
    STALE_AFTER_INJECTION,
    StreamInjector,
    charset_of,
    reload_snippet,
    root_prefix,
    should_inject,
    snippet_bytes,
)

if TYPE_CHECKING:
    import threading

    from devserve._scripts import ScriptOutput

# Sec-Fetch-Dest values of a page being displayed (absent: an older or non-browser client).
_PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})


class ReloadingHandler(DevHandler):
    """`DevHandler` with the live-reload event stream."""

    _site_safe = True
    # Seconds between heartbeats on an idle event stream.
    reload_heartbeat = sse.HEARTBEAT

    @property
    def reload_hub(self) -> ReloadHub:
        hub = self.context.site.hub
        assert hub is not None
        return hub

    def do_GET(self) -> None:
        """Serve a GET (documented), or the live-reload event stream."""
        if self.path.partition("?")[0] == EVENTS_PATH:
            self._serve_events()
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        """Serve a HEAD (documented), or the live-reload event stream's head."""
        if self.path.partition("?")[0] == EVENTS_PATH:
            self._serve_events()
        else:
            super().do_HEAD()

    def _serve_events(self) -> None:
        """The event stream: hello, then one message per change, until either side ends."""
        self.answered_by = "reload"
        self._unlogged = True
        self._discard_body()  # a body sent with GET is not the next request
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


class InjectingOutput:
    """A CGI script's stdout as the gateway reads it, with the script streamed into HTML.

    The header block is read ahead (the gateway reads it line by line, then
    stops at the blank line); when the reply is an HTML page, the headers that
    described the original body (Content-Length, validators, Cache-Control) are
    dropped, so the gateway frames the longer body itself (chunked, or to the
    close), and the body passes through a `StreamInjector`.
    """

    def __init__(
        self, stdout: ScriptOutput, decide: Callable[[list[tuple[bytes, bytes]]], bytes | None]
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
                if line.partition(b":")[0].strip().lower().decode("latin-1")
                not in STALE_AFTER_INJECTION
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
            return self._stdout.read1(size)
        while True:
            data = self._stdout.read1(size)
            if not data:
                return injector.finish()
            out = injector.feed(data)
            if out:
                return out

    read = read1

    def close(self) -> None:
        self._stdout.close()


class ReloadingCGIHandler(ReloadingHandler, DevCGIHandler):
    """`DevCGIHandler` with live reload: HTML a script writes gets the script streamed in."""

    _site_safe = True
    # Per request (reset in handle_one_request).
    _seq_at_start = 0
    _injected = False
    _not_injected = ""  # why a page was served without the script
    _sent_type = ""

    def handle_one_request(self) -> None:
        self._injected = False
        self._not_injected = ""
        self._sent_type = ""
        super().handle_one_request()
        status = self._status
        if status is None or not 200 <= status < 300 or self._injected:
            return
        if self.answered_by == "cgi" and self.headers.get("Sec-Fetch-Dest") == "document":
            path = urllib.parse.urlsplit(self.path).path
            why = self._not_injected or f"not HTML: {self._sent_type or 'no Content-Type'}"
            site = self.context.site
            if site.notice is not None:
                site.notice(
                    f"not-injected {self._script_named()}",
                    f"live reload: {path} has no reload script ({why}); "
                    "it will not refresh by itself",
                )

    def _script_named(self) -> str:
        """The script that answered, whatever PATH_INFO or query followed it (a notice's key)."""
        directory, rest = self.cgi_info
        return f"{directory}/{rest.partition('?')[0].partition('/')[0]}"

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

    def _wants_script(self) -> bool:
        destination = self.headers.get("Sec-Fetch-Dest")
        return destination is None or destination in _PAGE_DESTINATIONS

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
        hub = self.reload_hub
        posted = self.command not in ("GET", "HEAD")
        snippet_text = reload_snippet(
            root_prefix(self.path), hub.server_id, self._seq_at_start, posted
        )
        snippet = snippet_bytes(snippet_text, charset_of(fields[b"content-type"]))
        if snippet is None:
            self._not_injected = f"streamed in {charset_of(fields[b'content-type'])}"
            return None
        self._injected = self._uncacheable = True
        return snippet

    def _relay_reply(self, stdout: ScriptOutput, timed_out: threading.Event) -> str | None:
        return super()._relay_reply(InjectingOutput(stdout, self.script_snippet), timed_out)

    def _relay_raw(self, stdout: ScriptOutput) -> None:
        self._not_injected = "an nph- script writes its own response"
        super()._relay_raw(stdout)
