"""The handlers `devserve serve` and `devserve cgi` run in threads.

They are the documented handlers, answering static requests through the
server's `Site` (exactly as the event loop answers them), reporting every
request to the server's `Journal`, and adding the configured headers to every
response. Their settings come from the frozen `HandlerContext` the server holds,
not from per-server subclasses.

With ``--auth``, every request a thread reads passes the site's gate
(`devserve._auth.Gate`) before anything answers it: a refused one gets the site's
401, and an admitted user is what CGI scripts are told (``REMOTE_USER``). A
request admitted only as a CORS preflight gets devserve's own preflight answer
and nothing else (`_dispatch`, the one place that picks what answers a request).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from devserve._handler_base import Body
from devserve._handler_cgi import CGIHTTPRequestHandler
from devserve._handler_static import SimpleHTTPRequestHandler
from devserve._io import OpenFile, SocketWriter, file_reader, layout_body
from devserve._overrides import reproduces
from devserve._paths import SymlinkPolicy
from devserve._reply import Reply, site_request
from devserve._scripts import ScriptGroup
from devserve._site import Site
from devserve.events import Journal, RequestRecord

if TYPE_CHECKING:
    from devserve._upstream import Proxy


@dataclass(frozen=True)
class CGIContext:
    """The gateway's settings under `devserve cgi`."""

    directories: tuple[str, ...]
    timeout: float
    max_body: int
    pass_env: tuple[str, ...]
    extra_env: Mapping[str, str]
    pass_authorization: bool = False
    # Every script this server started, so that stopping can end them all.
    scripts: ScriptGroup = field(default_factory=ScriptGroup)


@dataclass(frozen=True)
class HandlerContext:
    """What devserve's handlers read from their server, once per connection."""

    site: Site
    journal: Journal
    server_version: str
    protocol: str
    # The socket timeout: it bounds a client that stops reading or sending in the
    # middle of a request (the server enforces the idle and request deadlines).
    timeout: float
    follow_symlinks: SymlinkPolicy
    show_hidden: bool
    list_directories: bool
    spa_fallback: str | None
    cors: bool
    quiet: bool
    cgi: CGIContext | None = None
    # --proxy: routes and backend connections (None: nothing is forwarded).
    proxy: Proxy | None = None


class DevHandler(SimpleHTTPRequestHandler):
    """`devserve serve`'s handler: the documented one with the server's site in front."""

    # Its overrides give the site's responses, and it reports them itself (devserve._loop).
    _site_safe = True
    context: HandlerContext
    _note = ""
    # (AUTH_TYPE, REMOTE_USER) of a request whose credentials devserve checked.
    verified_user: tuple[str, str | None] | None = None
    _uncacheable = False  # the response must not be stored: Cache-Control: no-store
    _unlogged = False  # plumbing the request log leaves out when it succeeds
    _admitted = False  # this request passed the gate (--auth) already
    _target_checked = False  # this request's method and target passed `Site.refusal`
    _preflight_only = False  # ... only as a CORS preflight, without credentials

    def __init__(self, request: Any, client_address: Any, server: Any, **kwargs: Any) -> None:
        context: HandlerContext = server.context
        self.context = context
        self.protocol_version = context.protocol
        self.server_version = context.server_version
        self.follow_symlinks = context.follow_symlinks
        self.show_hidden = context.show_hidden
        self.list_directories = context.list_directories
        self.spa_fallback = context.spa_fallback
        kwargs.setdefault("directory", context.site.root)
        super().__init__(request, client_address, server, **kwargs)

    def _socket_timeout(self) -> float | None:
        return self.context.timeout

    # -------------------------------------------------------------- one request

    def handle_one_request(self) -> None:
        """Keeps the documented contract; reports the request to the journal once answered."""
        when = time.time()
        started = time.perf_counter()
        writer = self.wfile
        before = writer.bytes_written if isinstance(writer, SocketWriter) else 0
        self._note = ""
        self._uncacheable = self._unlogged = False
        self.raw_requestline = b""
        try:
            super().handle_one_request()
        finally:
            # Reported whatever happened: an answer that ended in an exception too.
            self._report(when, started, before)

    def _report(self, when: float, started: float, before: int) -> None:
        status = self._status
        if not self.raw_requestline or status is None:
            return
        writer = self.wfile
        sent = (writer.bytes_written if isinstance(writer, SocketWriter) else 0) - before
        if self._unlogged and status < 400:
            return
        self.context.journal.answered(
            RequestRecord(
                when=when,
                client=self.address_string(),
                method=self.command or "",
                path=self.path if self.command else self.requestline,
                status=status,
                size=sent,
                duration=time.perf_counter() - started,
                served=self.answered_by,
                note=self._note,
            )
        )

    # -------------------------------------------------------------- --proxy

    def _dispatch(self, command: str) -> Callable[[], None] | None:
        """A request a ``--proxy`` route claims is forwarded, whatever its method.

        One the gate admitted only as a CORS preflight (`devserve._auth.PREFLIGHT_ONLY`)
        gets devserve's own preflight answer instead, whatever its target: never a
        backend's, a CGI script's or a subclass's ``do_OPTIONS``.
        """
        if self._preflight_only:
            return self._answer_unverified_preflight
        proxy = self.context.proxy
        if proxy is not None:
            forward = proxy.routes.forward(self.path)
            if forward is not None and self._simple_request:
                # HTTP/0.9 has no headers to forward or answer with: refused, never
                # served from the folder the route hides.
                return lambda: self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)
            if forward is not None:
                from devserve._handler_proxy import relay

                return lambda: relay(self, proxy, forward)
        return super()._dispatch(command)

    # -------------------------------------------------------------- --auth

    def parse_request(self) -> bool:
        """Keeps the documented contract; with ``--auth``, a request the gate refuses is
        answered 401 here, whatever it asks for (False: nothing more to do)."""
        self.verified_user = None
        self._admitted = self._preflight_only = False
        self._target_checked = False
        return (
            super().parse_request()
            and self._check_target()
            and (self._admitted or self._pass_gate())
        )

    def handle_expect_100(self) -> bool:
        """Keeps the documented contract; a request the gate refuses gets its 401 instead,
        and a request a ``--proxy`` route forwards waits for its backend's 100."""
        if not self._check_target() or not self._pass_gate():
            return False
        if self._preflight_only:
            return True  # answered without its body: the body is not invited (_drop_body)
        proxy = self.context.proxy
        if proxy is not None and proxy.routes.forward(self.path) is not None:
            return True  # devserve._handler_proxy relays the backend's answer
        return super().handle_expect_100()

    def _check_target(self) -> bool:
        """Answer 400 (and close) for a request the site refuses (`Site.refusal`): stricter
        than the documented handler, which serves or forwards nothing itself."""
        if self._target_checked:
            return True
        error = self.context.site.refusal(str(self.command), self.path)
        if error is not None:
            self.close_connection = True  # its body, if any, is never read
            self.send_error(error.status, error.message, error.explain)
            return False
        self._target_checked = True
        return True

    def _pass_gate(self) -> bool:
        """Ask the site's gate; answer 401 if it refuses, else note who was admitted."""
        site = self.context.site
        gate = site.gate
        if gate is None:
            self._admitted = True
            return True
        headers = self.headers
        admission = gate.admit(
            str(self.command),
            headers.get("Authorization"),
            headers.get("Access-Control-Request-Method"),
        )
        if admission.refused:
            self._drop_body()
            request = site_request(str(self.command), self.path, headers.items())
            body = self._send_reply(site.unauthorized(request, admission.refused))
            if body is not None:
                self.wfile.write(body.read())
            return False
        if admission.user is not None:
            self.verified_user = ("Basic", admission.user)
        self._preflight_only = admission.preflight_only
        self._admitted = True
        return True

    def _drop_body(self) -> None:
        """Drop the body of a request answered without inviting it (no 100 Continue sent).

        A body the client holds back for ``Expect: 100-continue`` may never come:
        the connection closes instead of waiting for it.
        """
        if self._framing.has_body and "100-continue" in self.headers.get("Expect", "").lower():
            self.close_connection = True
        else:
            self._discard_body()

    # -------------------------------------------------------------- static replies

    def send_head(self) -> Body | None:
        """Keeps the documented contract; a request the site serves gets the site's reply.

        A subclass that overrides a hook the site would bypass gets the documented
        handler's answer instead (and the event loop steps aside for it too).
        """
        site = self.context.site
        if not _site_answers_for(type(self)) or not site.answers(str(self.command), self.path):
            return super().send_head()
        self._discard_body()
        reply = site.respond(site_request(str(self.command), self.path, self.headers.items()))
        return self._send_reply(reply)

    def _send_reply(self, reply: Reply, close: bool = False) -> Body | None:
        """Send a site reply through the documented hooks; return its body for copyfile."""
        self.answered_by = reply.served
        self._note = reply.note
        self._uncacheable = reply.uncacheable
        self._unlogged = not reply.logged
        self.send_response(reply.status)
        for name, value in reply.fields:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        body = _body(reply) if self.command != "HEAD" else None
        if body is None:
            reply.close_source()
        elif isinstance(body, OpenFile) and reply.source is not None:
            self._opened = (body, reply.length)
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Keeps the documented contract; the page is the site's (with the reload script)."""
        command = self.command
        if code < 400 or command not in ("GET", "HEAD") or self._simple_request:
            self.answered_by = ""
            if message and code >= 400:
                self._note = message
            super().send_error(code, message, explain)
            return
        request = site_request(command, self.path, self.headers.items())
        reply = self.context.site.error(request, code, message, explain)
        body = self._send_reply(reply, close=True)
        if body is not None:
            self.wfile.write(body.read())

    def end_headers(self) -> None:
        """Keeps the documented contract; adds the configured headers first."""
        if self._status is not None and hasattr(self, "_headers_buffer"):
            self.context.site.finish_head(self._headers_buffer, self._status, self._uncacheable)
        super().end_headers()

    def do_OPTIONS(self) -> None:
        """A CORS preflight with ``--cors``; otherwise 501, as the documented handler says."""
        if not self.context.cors:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        self._discard_body()
        self._send_preflight()

    def _answer_unverified_preflight(self) -> None:
        """devserve's own preflight answer to a request admitted without credentials."""
        self._drop_body()
        self._send_preflight()

    def _send_preflight(self) -> None:
        """204 with the CORS preflight fields (the configured headers add the origin)."""
        self.send_response(HTTPStatus.NO_CONTENT)
        methods = "GET, HEAD, POST, OPTIONS" if hasattr(self, "do_POST") else "GET, HEAD"
        self.send_header("Access-Control-Allow-Methods", methods)
        requested = self.headers.get("Access-Control-Request-Headers")
        if requested:
            self.send_header("Access-Control-Allow-Headers", requested)
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -------------------------------------------------------------- logging

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The request is reported once its response is complete (handle_one_request)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keeps the documented contract; errors go to the journal's log, not stderr."""
        if format.startswith("code %d, message"):
            return  # the request line shows the status
        self.context.journal.error(format % args)


class DevCGIHandler(DevHandler, CGIHTTPRequestHandler):
    """`devserve cgi`'s handler: `DevHandler` with the CGI gateway behind the site."""

    _site_safe = True

    def __init__(self, request: Any, client_address: Any, server: Any, **kwargs: Any) -> None:
        cgi = server.context.cgi
        assert cgi is not None
        self.cgi_directories = list(cgi.directories)
        self.cgi_timeout = cgi.timeout
        self.cgi_max_body = cgi.max_body
        self.cgi_pass_env = cgi.pass_env
        self.cgi_extra_env = cgi.extra_env
        self.cgi_pass_authorization = cgi.pass_authorization
        self.cgi_scripts = cgi.scripts
        super().__init__(request, client_address, server, **kwargs)

    def _script_auth(self) -> tuple[str, str | None] | None:
        """Only a user devserve verified itself is named (RFC 3875 4.1.11).

        A script that trusts REMOTE_USER (git-http-backend allows a push when it
        is set) must never see one made up by whoever sent the request.
        """
        return self.verified_user


def _site_answers_for(handler_class: type[DevHandler]) -> bool:
    """Whether the site may answer for ``handler_class`` (asked once per class)."""
    answers = _SITE_ANSWERS.get(handler_class)
    if answers is None:
        answers = _SITE_ANSWERS[handler_class] = reproduces(handler_class)
    return answers


_SITE_ANSWERS: dict[type, bool] = {}


def _body(reply: Reply) -> Body | None:
    """The body ``copyfile`` sends for a site reply (None: no body)."""
    parts = reply.parts
    if not parts:
        return None
    source = reply.source
    if source is None:
        return io.BytesIO(b"".join(p for p in parts if isinstance(p, bytes)))
    f = file_reader(source.fd, source.data, source.path)
    return layout_body(f, parts, source.st.st_size if source.st is not None else 0)
