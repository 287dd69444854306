"""What `devserve serve` answers for a static request, as one function: `Site.respond`.

Both places that answer a static request call it: the event loop (which writes
the reply itself, without a thread) and devserve's threaded handler (which sends
it through the documented hooks). Neither keeps a rule of its own: what a path
reaches is `devserve._files.locate`'s decision, how a file is answered is
`devserve._static_rules`'s, and the headers every response gets (the configured
ones, which replace the server's own of the same name) are `Site.finish_head`'s.

Invariants:
- A reply's ``fields`` never hold CR, LF or NUL (configured headers were checked
  at start-up; rule fields come from numbers and the server's own strings).
- A live-reload page is read after the change count it carries (see
  `devserve.reload.handler`), is never partial and never cached.
- A 404's suggestion names only a path the server would serve.
- A listing shows its folder as read at most `devserve._listing.LISTING_SECONDS`
  ago (sizes and dates change without the folder's identity changing), so the
  loop is never given one to send again (no ``deps``).
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple

from devserve import _cgi
from devserve._files import (
    FILES,
    Dependencies,
    FileTable,
    Found,
    Policy,
    identity,
    list_entries,
    listed,
    locate,
    open_allowed,
    settled,
    still_true,
)
from devserve._listing import (
    Entry,
    ListingPages,
    Row,
    listing_order,
    read_rows,
    render_listing_page,
    render_not_found,
)
from devserve._mime import guess_type
from devserve._paths import may_serve, url_to_fs_path
from devserve._protocol import ByteRange
from devserve._static_rules import (
    NO_CONDITIONS,
    Conditions,
    Fields,
    FileAnswer,
    Validators,
    answer_file,
    directory_location,
    error_page,
    validators,
)
from devserve._suggest import suggest_path

if TYPE_CHECKING:
    from devserve.reload.hub import ReloadHub

_PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})


class SiteRequest(NamedTuple):
    """What the site reads of a request: method, target and its fields.

    ``fields`` maps lower-cased names to values; where a name repeats, the first
    value counts (as ``Message.get`` reads it).
    """

    method: str
    target: str
    fields: Mapping[str, str]


def site_request(method: str, target: str, items: Sequence[tuple[str, str]]) -> SiteRequest:
    """A SiteRequest from a request's (name, value) pairs, in the order they came."""
    return SiteRequest(method, target, {name.lower(): value for name, value in reversed(items)})


class Reply(NamedTuple):
    """A static response: status, the handler's own fields, and the body's layout.

    ``parts`` holds literal bytes and ranges of ``source`` (a file `locate`
    found: its bytes, or an open descriptor the sender closes). ``served`` says
    what answered (for the log); ``note`` is shown beside the request line.
    """

    status: int
    fields: Fields
    parts: tuple[bytes | ByteRange, ...] = ()
    source: Found | None = None
    served: str = ""
    note: str = ""
    uncacheable: bool = False  # Cache-Control: no-store instead of the configured one
    logged: bool = True  # plumbing (the reload worker) is logged only when it fails
    # While these paths keep their identities, the same request gets this reply
    # again (None: no such promise; see `devserve._files.Found.deps`).
    deps: Dependencies | None = None

    @property
    def length(self) -> int:
        return sum(p.length if isinstance(p, ByteRange) else len(p) for p in self.parts)

    def close_source(self) -> None:
        """Close the file descriptor the body would have been read from."""
        if self.source is not None and self.source.fd is not None:
            os.close(self.source.fd)


class _Facts(NamedTuple):
    content_type: str
    validators: Validators
    whole: FileAnswer  # the answer to a plain GET: 200 with the whole file


# File versions whose facts are remembered (each a few hundred bytes).
MAX_FACTS = 4096


class HeadRules(NamedTuple):
    """The headers every response of the site gets, and the ones they replace."""

    fields: Fields  # configured: Cache-Control, CORS, --header
    uncacheable: Fields  # the same with Cache-Control: no-store instead
    replaced: frozenset[bytes]  # lower-cased names whose server-made lines are dropped


def head_rules(cache_control: str, cors: bool, headers: Sequence[tuple[str, str]]) -> HeadRules:
    """What `Site.finish_head` adds: ``--header`` values win over the defaults and the server's."""
    own = {name.lower() for name, _ in headers}
    fields = [
        (name, value)
        for name, value in (
            ("Cache-Control", cache_control),
            ("Access-Control-Allow-Origin", "*" if cors else ""),
        )
        if value and name.lower() not in own
    ]
    fields.extend(headers)
    uncacheable = [(n, v) for n, v in fields if n.lower() != "cache-control"]
    if "cache-control" not in own:
        uncacheable.append(("Cache-Control", "no-store"))
    replaced = frozenset(name.lower().encode("latin-1") for name, _ in headers)
    return HeadRules(tuple(fields), tuple(uncacheable), replaced)


def _encode(fields: Fields) -> tuple[bytes, ...]:
    return tuple(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields)


class Site:
    """A served folder with devserve's options: `respond` answers a static request."""

    def __init__(
        self,
        policy: Policy,
        *,
        head: HeadRules,
        extensions_map: dict[str, str],
        default_content_type: str,
        error_template: str,
        error_content_type: str,
        cgi_directories: Sequence[str] = (),
        hub: ReloadHub | None = None,
        notice: Callable[[str, str], None] | None = None,
        table: FileTable = FILES,
    ) -> None:
        self.policy = policy
        self.root = policy.root
        self.head = head
        self._head_lines = _encode(head.fields)
        self._uncacheable_lines = _encode(head.uncacheable)
        self.extensions_map = extensions_map
        self.default_content_type = default_content_type
        self.error_template = error_template
        self.error_content_type = error_content_type
        self.cgi_directories = list(cgi_directories)
        self.hub = hub
        self.notice = notice
        self.table = table
        self.suggestions = SuggestionTable(policy, table.max_bytes // 8)
        self.listings = ListingPages()
        self._memo: dict[tuple[str, int, int, int], _Facts] = {}
        self._encoding = sys.getfilesystemencoding()

    # -------------------------------------------------------------- which requests

    def answers(self, method: str, target: str) -> bool:
        """Whether a request with this method and target is the site's to answer.

        CGI paths, the live-reload event stream and other methods are not.
        """
        if method not in ("GET", "HEAD"):
            return False
        if self.cgi_directories and self.is_cgi(target):
            return False
        return self.hub is None or not target.startswith(_reserved_events())

    def is_cgi(self, target: str) -> bool:
        """Whether ``target`` runs a CGI script (the gateway's own rule)."""
        collapsed = _cgi.collapse_url_path(target)
        return _cgi.find_cgi_directory(collapsed, self.cgi_directories) is not None

    def content_type(self, path: str) -> str:
        """The Content-Type of a file the site serves."""
        return guess_type(path, self.extensions_map, self.default_content_type)

    # -------------------------------------------------------------- responses

    def respond(self, request: SiteRequest) -> Reply:
        """The response to a GET or HEAD the site answers (see `answers`)."""
        hub = self.hub
        seq = hub.seq if hub is not None else 0  # before any file is read
        target = request.target
        if hub is not None and target.startswith(_reserved_prefix()):
            return self._reserved(request)
        path = url_to_fs_path(target, self.root)
        found = locate(path, target, request.fields.get("accept"), self.policy, self.table)
        kind = found.kind
        if kind == "redirect":
            location = directory_location(target) or target
            return Reply(
                HTTPStatus.MOVED_PERMANENTLY.value,
                (("Location", location), ("Content-Length", "0")),
                served=kind,
                deps=found.deps,
            )
        if kind == "missing":
            return self.not_found(request, seq, found.deps)
        if kind == "listing":
            return self._listing(request, found, seq)
        return self._file(request, found, seq)

    def _file(self, request: SiteRequest, found: Found, seq: int) -> Reply:
        st = found.st
        assert st is not None
        facts = self._facts(found.path, st)
        ctype = facts.content_type
        if self.hub is not None and _is_html(ctype) and _navigation(request):
            page = self._page_bytes(found, _url_path(request.target))
            if page is not None:
                return self._page(request, page, ctype, seq, found)
        conditions = Conditions.from_fields(request.fields)
        if conditions is None:
            answer = facts.whole  # no precondition or range: the file's plain 200
        else:
            answer = answer_file(
                request.method, conditions, facts.validators, st.st_size, ctype, _boundary
            )
        deps = found.deps
        if answer.status == HTTPStatus.PRECONDITION_FAILED.value:
            _close(found)
            return self.error(request, HTTPStatus.PRECONDITION_FAILED.value, seq=seq)._replace(
                deps=deps
            )
        parts = answer.parts if request.method == "GET" else ()
        if not parts:
            _close(found)
        if len(parts) > 1:
            deps = None  # a multipart body has a boundary of its own each time
        self._tell_unreloadable(request, ctype, found)
        source = found if parts else None
        return Reply(answer.status, answer.fields, parts, source, found.kind, deps=deps)

    def _facts(self, path: str, st: os.stat_result) -> _Facts:
        """What one version of a file answers with when nothing is conditional (memoized)."""
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        facts = self._memo.get(key)
        if facts is None:
            ctype = self.content_type(path)
            found = validators(st.st_size, st.st_mtime_ns, st.st_ino)
            whole = answer_file("GET", NO_CONDITIONS, found, st.st_size, ctype, _boundary)
            facts = _Facts(ctype, found, whole)
            if len(self._memo) >= MAX_FACTS:
                self._memo.clear()
            self._memo[key] = facts
        return facts

    def _page_bytes(self, found: Found, url_path: str) -> bytes | None:
        """An HTML file's bytes for injection (None: too large to read into memory)."""
        from devserve.reload.inject import MAX_INJECT_SIZE

        if found.data is not None:
            return found.data
        assert found.st is not None
        assert found.fd is not None
        if found.st.st_size > MAX_INJECT_SIZE:
            self._say_not_injected(found, url_path, f"larger than {MAX_INJECT_SIZE >> 20} MiB")
            return None
        try:
            return os.pread(found.fd, found.st.st_size, 0)
        finally:
            os.close(found.fd)

    def _page(self, request: SiteRequest, body: bytes, ctype: str, seq: int, found: Found) -> Reply:
        """An HTML page with the reload script in it (never cached, never partial)."""
        from devserve.reload.inject import CannotInject, charset_of, inject_html

        try:
            body = inject_html(body, self._snippet(request.target, seq), charset_of(ctype))
        except CannotInject as error:
            self._say_not_injected(found, _url_path(request.target), str(error))
        fields = (("Content-type", ctype), ("Content-Length", str(len(body))))
        parts = (body,) if request.method == "GET" else ()
        return Reply(HTTPStatus.OK.value, fields, parts, None, found.kind, uncacheable=True)

    def _snippet(self, target: str, seq: int) -> str:
        from devserve.reload.inject import reload_snippet, root_prefix

        assert self.hub is not None
        return reload_snippet(root_prefix(target), self.hub.server_id, seq)

    def _listing(self, request: SiteRequest, found: Found, seq: int) -> Reply:
        """The listing page: remembered briefly, as sizes and dates change inside the folder."""
        # locate's promise about the folder (None: read racily, so never remembered)
        folder = found.deps
        key = (found.path, request.target.partition("?")[0], listing_order(request.target))
        now = time.time()
        try:
            entries = found.entries
            if entries is None:
                assert found.fd is not None
                assert found.st is not None
                entries = list_entries(found.path, found.fd, found.st, self.policy, self.table)
            body = self.listings.get(key, folder, seq, now)
            if body is None:
                rows, same = self._rows(found, entries)
                at_root = found.path == (self.root.rstrip("/") or "/")
                body = render_listing_page(
                    request.target, rows, key[2], parent=not at_root, encoding=self._encoding
                )
                if folder is not None and same:
                    self.listings.put(key, folder, seq, now, body)
        except OSError:
            return self.error(
                request, HTTPStatus.NOT_FOUND.value, "No permission to list directory", seq=seq
            )
        finally:
            _close(found)
        ctype = f"text/html; charset={self._encoding}"
        if self.hub is not None and _navigation(request):
            return self._page(request, body, ctype, seq, found._replace(kind="listing"))
        fields = (("Content-type", ctype), ("Content-Length", str(len(body))))
        parts = (body,) if request.method == "GET" else ()
        # No deps: the page shows sizes and dates its folder's identity does not cover.
        return Reply(HTTPStatus.OK.value, fields, parts, None, "listing")

    def _rows(self, found: Found, entries: Sequence[Entry]) -> tuple[tuple[Row, ...], bool]:
        """The sizes and dates of a folder's entries, read through a checked descriptor,
        and whether that was still the folder `locate` found."""
        policy = self.policy
        if found.fd is not None:
            return read_rows(found.fd, found.path, entries, policy), True
        opened = open_allowed(found.path, self.policy)
        if opened is None:
            raise FileNotFoundError(found.path)
        fd, st = opened
        try:
            same = found.deps == ((found.path, identity(st)),)
            return read_rows(fd, found.path, entries, policy), same
        finally:
            os.close(fd)

    def not_found(
        self, request: SiteRequest, seq: int = 0, deps: Dependencies | None = None
    ) -> Reply:
        """404, with the closest path the site would serve as a suggestion.

        ``deps``: what found the path missing; the suggestion's folders are added.
        """
        suggestion, read = self.suggestions.suggest_from(request.target)
        if deps is not None and read is not None:
            deps += read
        else:
            deps = None
        from devserve.reload.inject import root_prefix

        note = href = ""
        if suggestion is not None:
            note = f"did you mean {suggestion}"
            href = root_prefix(request.target) + suggestion[1:]  # works under a proxy's prefix
        body = render_not_found(request.target, suggestion, href)
        reply = self._error_reply(request, HTTPStatus.NOT_FOUND.value, body, note, seq)
        return reply._replace(deps=deps) if not reply.uncacheable else reply

    def error(
        self,
        request: SiteRequest,
        code: int,
        message: str | None = None,
        explain: str | None = None,
        *,
        note: str = "",
        seq: int = 0,
    ) -> Reply:
        """An error page, as the documented ``send_error`` builds it (kept alive)."""
        code = int(code)  # an HTTPStatus prints as its name on Python 3.10
        short, long = _RESPONSES.get(code, ("???", "???"))
        message = short if message is None else message
        explain = long if explain is None else explain
        body = error_page(self.error_template, code, message, explain)
        if not note and code != HTTPStatus.NOT_FOUND.value:
            note = message  # a 404's note is its suggestion, if any
        return self._error_reply(request, code, body, note, seq)

    def _error_reply(
        self, request: SiteRequest, code: int, body: bytes, note: str, seq: int
    ) -> Reply:
        """An error response with the page ``body``; one on screen gets the reload script."""
        uncacheable = False
        if self.hub is not None and request.method == "GET" and _navigation(request):
            # A page deleted while on screen comes back when it is re-created.
            from devserve.reload.inject import inject_html

            body = inject_html(body, self._snippet(request.target, seq))
            uncacheable = True
        fields = (
            ("Content-Type", self.error_content_type),
            ("Content-Length", str(len(body))),
        )
        parts = (body,) if request.method != "HEAD" else ()
        return Reply(code, fields, parts, None, "", note, uncacheable)

    def _reserved(self, request: SiteRequest) -> Reply:
        """The live-reload worker script (the event stream is a thread's; see `answers`)."""
        from devserve.reload.inject import WORKER_PATH, WORKER_SCRIPT

        if request.target.partition("?")[0] != WORKER_PATH:
            return self.error(request, HTTPStatus.NOT_FOUND.value, "Not a live reload endpoint")
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

    # -------------------------------------------------------------- live-reload notices

    def _tell_unreloadable(self, request: SiteRequest, ctype: str, found: Found) -> None:
        """A document that will not reload by itself is worth one line in the log."""
        if self.hub is None or request.fields.get("sec-fetch-dest") != "document":
            return
        if _is_html(ctype):
            return  # injected, or already told why not
        self._say_not_injected(found, _url_path(request.target), f"not HTML: {ctype}")

    def _say_not_injected(self, found: Found, path: str, why: str) -> None:
        """Said once per file (not per spelling of its URL): ``path`` is how it was asked for."""
        if self.notice is not None:
            self.notice(
                f"not-injected {found.path}",
                f"live reload: {path} has no reload script ({why}); it will not refresh by itself",
            )

    # -------------------------------------------------------------- the head

    def finish_head(self, lines: list[bytes], status: int, uncacheable: bool) -> None:
        """Add the configured headers to a response head (status line first, no blank line).

        A configured header replaces any the server made of the same name.
        """
        if status < 200:
            return
        replaced = self.head.replaced
        if replaced:
            lines[1:] = [
                line for line in lines[1:] if line.partition(b":")[0].lower() not in replaced
            ]
        lines.extend(self._uncacheable_lines if uncacheable else self._head_lines)


def _reserved_prefix() -> str:
    from devserve.reload.inject import RESERVED_PREFIX

    return RESERVED_PREFIX


def _reserved_events() -> str:
    from devserve.reload.inject import EVENTS_PATH

    return EVENTS_PATH


def _is_html(ctype: str) -> bool:
    return ctype.partition(";")[0].strip().lower() == "text/html"


def _navigation(request: SiteRequest) -> bool:
    """Whether the request displays a page (and so should get the reload script)."""
    destination = request.fields.get("sec-fetch-dest")
    return destination is None or destination in _PAGE_DESTINATIONS


def _url_path(target: str) -> str:
    return urllib.parse.urlsplit(target).path


def _close(found: Found) -> None:
    if found.fd is not None:
        os.close(found.fd)


def _boundary() -> str:
    return secrets.token_hex(12)


_RESPONSES = {status.value: (status.phrase, status.description) for status in HTTPStatus}


# =========================================================================== suggestions


class _Suggestion(NamedTuple):
    text: str | None
    directories: Dependencies  # what was read, as it was


class SuggestionTable:
    """404 suggestions by URL path, re-used while the directories they read stay the same.

    A suggestion reads every directory on the way (`suggest_path`); it is reused
    only while each of them has the same stat identity and was read settled
    (see `devserve._files.settled`). Bounded in bytes; keyed by the decoded path.
    """

    def __init__(self, policy: Policy, max_bytes: int) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[_Suggestion, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def suggest(self, target: str) -> str | None:
        """The suggestion for a 404 of ``target`` (see `suggest_path`)."""
        return self.suggest_from(target)[0]

    def suggest_from(self, target: str) -> tuple[str | None, Dependencies | None]:
        """The suggestion, and the directories it was read from (None: read racily)."""
        key = _decoded_path(target)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and still_true(entry[0].directories):
            return entry[0].text, entry[0].directories
        read_at = time.time()
        read: list[tuple[str, os.stat_result]] = []
        text = suggest_path(target, self.policy.root, self._servable, self._listed, read.append)
        if not all(settled(st, read_at) for _, st in read):
            return text, None
        deps = tuple((path, identity(st)) for path, st in read)
        self._put(key, _Suggestion(text, deps))
        return text, deps

    def _servable(self, fs_path: str) -> bool:
        policy = self.policy
        return may_serve(fs_path, policy.root, policy.follow_symlinks, policy.show_hidden)

    def _listed(self, name: str) -> bool:
        return listed(name, self.policy)

    def _put(self, key: str, value: _Suggestion) -> None:
        cost = (
            256 + len(key) + len(value.text or "") + sum(len(p) + 64 for p, _ in value.directories)
        )
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._entries[key] = (value, cost)
            self._size += cost
            while self._size > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._size -= dropped


def _decoded_path(target: str) -> str:
    path = target.split("?", 1)[0].split("#", 1)[0]
    return urllib.parse.unquote(path, errors="surrogateescape")
