"""What ``--reload`` changes in the site's static replies: a page on screen gets the script.

`devserve._site.Site` asks a `ReloadPages` (it has one only under --reload)
whether a reply is a page being displayed, and for the page with the script in
it; the injection itself is `devserve.reload.inject`'s, over bytes.

Invariants:
- Only a reply a browser displays (no ``Sec-Fetch-Dest``, or a document or
  frame) gets the script, and such a reply is never cached, never partial and
  never conditional: it carries the change count it was read after.
- A displayed document that cannot get the script (not HTML, too large, an
  encoding that cannot be edited safely) is named once in the log, per file.
- The live-reload worker script is the only file served below the reserved
  prefix; the event stream there is a thread's (`devserve.reload.handler`).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from devserve._reply import Reply, SiteRequest
from devserve.reload import inject
from devserve.reload.inject import (
    EVENTS_PATH,
    RESERVED_PREFIX,
    WORKER_PATH,
    WORKER_SCRIPT,
    CannotInject,
    charset_of,
    inject_html,
    reload_snippet,
    root_prefix,
)

if TYPE_CHECKING:
    from devserve._files import Found
    from devserve.reload.hub import ReloadHub

_PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})


class ReloadPages:
    """The live-reload side of a site: which replies are pages, and those pages."""

    prefix = RESERVED_PREFIX  # the URL folder reserved for live reload
    events_path = EVENTS_PATH  # the event stream, a thread's to answer

    def __init__(self, hub: ReloadHub, notice: Callable[[str, str], None] | None) -> None:
        self.hub = hub
        self.notice = notice  # (key, message): said once per key

    @staticmethod
    def shows(request: SiteRequest) -> bool:
        """Whether the request displays a page (and so should get the reload script)."""
        destination = request.fields.get("sec-fetch-dest")
        return destination is None or destination in _PAGE_DESTINATIONS

    def wants(self, request: SiteRequest, ctype: str) -> bool:
        """Whether a file of type ``ctype`` is answered as a page with the script."""
        return _is_html(ctype) and self.shows(request)

    def page_bytes(self, found: Found, target: str) -> bytes | None:
        """An HTML file's bytes for injection (None: too large to read into memory).

        Closes ``found``'s descriptor when it reads from it.
        """
        if found.data is not None:
            return found.data
        assert found.st is not None
        assert found.fd is not None
        limit = inject.MAX_INJECT_SIZE
        if found.st.st_size > limit:
            self._say_not_injected(found, target, f"larger than {limit >> 20} MiB")
            return None
        try:
            return os.pread(found.fd, found.st.st_size, 0)
        finally:
            os.close(found.fd)

    def page(
        self,
        request: SiteRequest,
        body: bytes,
        ctype: str,
        seq: int,
        found: Found,
        status: int = HTTPStatus.OK.value,
    ) -> Reply:
        """An HTML page with the reload script in it (never cached, never partial)."""
        try:
            body = inject_html(body, self.snippet(request.target, seq), charset_of(ctype))
        except CannotInject as error:
            self._say_not_injected(found, request.target, str(error))
        fields = (("Content-type", ctype), ("Content-Length", str(len(body))))
        parts = (body,) if request.method == "GET" else ()
        return Reply(status, fields, parts, None, found.kind, uncacheable=True)

    def error_page(self, body: bytes, target: str, seq: int) -> bytes:
        """An error page on screen, with the script: a page deleted while shown comes
        back when it is re-created."""
        return inject_html(body, self.snippet(target, seq))

    def snippet(self, target: str, seq: int, posted: bool = False) -> str:
        """The script tag for a page at ``target`` read after change ``seq`` (``posted``:
        the page answered a POST, and is fetched again with a GET)."""
        return reload_snippet(root_prefix(target), self.hub.server_id, seq, posted)

    # -------------------------------------------------------------- pages from a backend

    def takes_proxied(self, request: SiteRequest) -> bool:
        """Whether the page a ``--proxy`` backend answers ``request`` with gets the script:
        a page being displayed, asked for with GET or posted by a form."""
        return request.method in ("GET", "POST") and self.shows(request)

    def proxied_page(self, target: str, page: bytes, ctype: str, seq: int, posted: bool) -> bytes:
        """A backend's HTML page (of type ``ctype``, asked for as ``target``) with the
        script in it, or as it came when it cannot take one (said once per URL)."""
        try:
            return inject_html(page, self.snippet(target, seq, posted), charset_of(ctype))
        except CannotInject as error:
            self.say_not_injected(target, str(error))
            return page

    def say_not_injected(self, target: str, why: str) -> None:
        """A backend's page that will not reload by itself: said once per URL path."""
        if self.notice is not None:
            path = urllib.parse.urlsplit(target).path
            self.notice(
                f"not-injected {path}",
                f"live reload: {path} has no reload script ({why}); it will not refresh by itself",
            )

    def worker(self, request: SiteRequest) -> Reply | None:
        """The live-reload worker script (None: no such file below the reserved prefix)."""
        if request.target.partition("?")[0] != WORKER_PATH:
            return None
        fields = (
            ("Content-Type", "text/javascript; charset=utf-8"),
            ("Content-Length", str(len(WORKER_SCRIPT))),
        )
        parts = (WORKER_SCRIPT,) if request.method == "GET" else ()
        return Reply(
            HTTPStatus.OK.value,
            fields,
            parts,
            None,
            "reload",
            uncacheable=True,
            logged=False,
            deps=(),
        )

    def tell_unreloadable(self, request: SiteRequest, ctype: str, found: Found) -> None:
        """A document that will not reload by itself is worth one line in the log."""
        if request.fields.get("sec-fetch-dest") != "document" or _is_html(ctype):
            return  # not a document, or injected (or already told why not)
        self._say_not_injected(found, request.target, f"not HTML: {ctype}")

    def _say_not_injected(self, found: Found, target: str, why: str) -> None:
        """Said once per file (not per spelling of its URL)."""
        if self.notice is not None:
            path = urllib.parse.urlsplit(target).path
            self.notice(
                f"not-injected {found.path}",
                f"live reload: {path} has no reload script ({why}); it will not refresh by itself",
            )


def _is_html(ctype: str) -> bool:
    return ctype.partition(";")[0].strip().lower() == "text/html"
