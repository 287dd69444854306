"""What `devserve serve` answers for a static request, as one function: `Site.respond`.

Both places that answer a static request call it: the event loop (which writes
the reply itself, without a thread) and devserve's threaded handler (which sends
it through the documented hooks). Neither keeps a rule of its own: what a path
reaches is `devserve._files.find`'s decision (and `fall_back`'s, for --spa),
which `_redirects` rule applies and which `_headers` a response gets is
`devserve._host_rules`'s (the files are read by `devserve._host_files`), how a
file is answered is `devserve._static_rules`'s, and the headers every response
gets (the configured ones, which replace the server's own of the same name) are
`Site.finish_head`'s.

Invariants:
- A reply's ``fields`` never hold CR, LF or NUL (configured headers were checked
  at start-up; rule fields come from numbers and the server's own strings, and
  `_headers` and `_redirects` values were checked when the files were read).
- A reply's ``deps`` name every file its answer was decided from, the rule
  files (or their absence) and the 404 page included: the event loop sends a
  remembered reply again only while all of them hold.
- A live-reload page is read after the change count it carries (see
  `devserve.reload.handler`), is never partial and never cached.
- A 404's suggestion names only a path the server would serve.
- Nothing in a ``withheld`` folder (``--tls auto``'s key folder, when it lies
  under the root) is served, listed or suggested, whatever the options: it
  answers 404 exactly as a missing path does.
- With ``--auth``, `respond` answers nothing but a 401 to a request the gate
  (`devserve._auth.Gate`) refuses, and that 401 has no ``deps``: a reply the loop
  remembers was always admitted, and only the very same head recalls it.
- A listing shows its folder as read at most `devserve._listing.LISTING_SECONDS`
  ago (sizes and dates change without the folder's identity changing): the loop
  may send one again only until then (`Reply.fresh_until`), and never with --reload.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple

from devserve import _cgi
from devserve._files import (
    FILES,
    Dependencies,
    FileTable,
    Found,
    Policy,
    clean_location,
    fall_back,
    find,
    identity,
    is_withheld,
    join_deps,
    list_entries,
    open_allowed,
    refusal,
)
from devserve._host_rules import (
    NOT_FOUND,
    REDIRECT_STATUSES,
    Match,
    applies,
    first_match,
    header_fields,
    with_headers,
)
from devserve._listing import (
    LISTING_SECONDS,
    Entry,
    ListingPages,
    Row,
    listing_order,
    read_rows,
    render_listing_page,
    render_not_found,
)
from devserve._mime import guess_type
from devserve._paths import url_to_fs_path
from devserve._protocol import ByteRange, ProtocolError, check_request_target
from devserve._reply import Reply, SiteRequest
from devserve._static_rules import (
    NO_CONDITIONS,
    Conditions,
    Fields,
    FileAnswer,
    HeadRules,
    Validators,
    answer_file,
    directory_location,
    error_page,
    validators,
)
from devserve._suggestion_table import SuggestionTable, decoded_path

if TYPE_CHECKING:
    from devserve._auth import Gate
    from devserve._host_files import HostFiles, HostState
    from devserve._proxy import Routes
    from devserve._site_routes import RoutedTargets
    from devserve.reload.hub import ReloadHub
    from devserve.reload.pages import ReloadPages

# Why a path that is there answers 404, for the log line (with what would change it).
REFUSALS = {
    "hidden": "hidden: --show-hidden serves it",
    "symlink": "a symlink leading outside the folder: --follow-symlinks serves it",
    "no-listing": "a folder without an index page, and listings are off (--no-listing)",
    "unreadable": "not readable by devserve: check its permissions",
    "not a file": "not a regular file (a FIFO or a device)",
    "not a folder": "a file, asked for as a folder (with a trailing /)",
}


class _Facts(NamedTuple):
    content_type: str
    validators: Validators
    whole: FileAnswer  # the answer to a plain GET: 200 with the whole file


# File versions whose facts are remembered (each a few hundred bytes).
MAX_FACTS = 4096


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
        host: HostFiles | None = None,
        clean_urls: bool = False,
        not_found_page: str | None = None,
        routes: Routes | None = None,
        gate: Gate | None = None,
        withheld: tuple[str, ...] = (),
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
        # --reload: what it changes in replies (imported only then)
        self.reload = _reload_pages(hub, notice)
        self.table = table
        # `_redirects` and `_headers` (None: --no-host-files); they are never served.
        self.host = host
        self._hidden = host.paths if host is not None else frozenset()
        # Folders never served, listed or suggested (from devserve._files.withheld_under).
        self.withheld = withheld
        self.clean_urls = clean_urls  # /about.html and /about/ redirect to /about
        self.not_found_page = not_found_page  # served with 404 when it exists (404.html)
        # --proxy: the targets a backend answers, and the spellings they hide (None: no routes)
        self.routed = _routed_targets(routes, self.root, self.reload)
        self.gate = gate  # --auth: who may be answered (None: everyone)
        self.suggestions = SuggestionTable(
            policy, table.max_bytes // 8, self._hidden, self.withheld
        )
        self.listings = ListingPages()
        self._memo: dict[tuple[str, int, int, int], _Facts] = {}
        self._encoding = sys.getfilesystemencoding()

    # -------------------------------------------------------------- which requests

    def answers(self, method: str, target: str) -> bool:
        """Whether a request with this method and target is the site's to answer.

        CGI paths, the live-reload event stream, targets a ``--proxy`` route
        claims and other methods are not.
        """
        if method not in ("GET", "HEAD"):
            return False
        routed = self.routed
        if routed is not None and routed.takes(target):
            return False
        if self.cgi_directories and self.is_cgi(target):
            return False
        return self.reload is None or not target.startswith(self.reload.events_path)

    def refusal(self, method: str, target: str) -> ProtocolError | None:
        """Why devserve refuses a request (400) before anything answers it, or None.

        What devserve's handler asks of every request (the event loop leaves these
        to it: `read_plain_head` and `answers` say no to them): the method and
        target (`check_request_target`), and what the ``--proxy`` routes refuse
        (`devserve._site_routes.RoutedTargets.refusal`).
        """
        try:
            check_request_target(method, target)
        except ProtocolError as error:
            return error
        routed = self.routed
        if routed is None or target == "*":
            return None
        return routed.refusal(target)

    def is_cgi(self, target: str) -> bool:
        """Whether ``target`` runs a CGI script (the gateway's own rule)."""
        collapsed = _cgi.collapse_url_path(target)
        return _cgi.find_cgi_directory(collapsed, self.cgi_directories) is not None

    def content_type(self, path: str) -> str:
        """The Content-Type of a file the site serves."""
        return guess_type(path, self.extensions_map, self.default_content_type)

    # -------------------------------------------------------------- responses

    def respond(self, request: SiteRequest) -> Reply:
        """The response to a GET or HEAD the site answers (see `answers`).

        In order: the live-reload worker; the rule files (never served); the first
        `_redirects` rule the request meets, when forced (``!``); what the path
        reaches on disk (with --clean-urls, an HTML page asked for by its
        ``.html`` name, or with a slash, is redirected to its clean URL); that
        first rule, when nothing is there but a listing; the listing; the --spa
        fallback; 404, with the 404 page when there is one. `_headers` apply to
        every answer but redirects. With ``--auth``, a request the gate refuses gets
        `unauthorized` instead of any of these.
        """
        gate = self.gate
        if gate is not None:
            asked = request.fields
            admission = gate.admit(
                request.method,
                asked.get("authorization"),
                asked.get("access-control-request-method"),
            )
            if admission.refused:
                return self.unauthorized(request, admission.refused)
        hub = self.hub
        seq = hub.seq if hub is not None else 0  # before any file is read
        reload = self.reload
        if reload is not None and request.target.startswith(reload.prefix):
            worker = reload.worker(request)
            if worker is None:
                return self.error(request, HTTPStatus.NOT_FOUND.value, "Not a live reload endpoint")
            return worker
        if self.host is None:
            return self._resolve(request, seq, None)
        rules = self.host.current()
        reply = self._resolve(request, seq, rules)
        deps = join_deps(reply.deps, rules.deps)
        if not rules.headers or reply.status in REDIRECT_STATUSES:
            return reply._replace(deps=deps)
        added, detached = header_fields(rules.headers, decoded_path(request.target))
        if reply.uncacheable:  # a live-reload page is never stored, whatever the rules say
            added = tuple(field for field in added if field[0].lower() != "cache-control")
        fields = with_headers(reply.fields, added, detached) if added or detached else reply.fields
        return reply._replace(fields=fields, deps=deps)

    def _resolve(self, request: SiteRequest, seq: int, rules: HostState | None) -> Reply:
        target = request.target
        path = url_to_fs_path(target, self.root)
        if path in self._hidden:
            return self.not_found(request, seq, ())
        if is_withheld(path, self.withheld):
            return self.not_found(request, seq, None)  # decided through links: not remembered
        match = None
        if rules is not None and rules.redirects:
            match = first_match(rules.redirects, decoded_path(target), _query(target))
            if match is not None and applies(match, has_content=True):
                return self._follow(request, match, seq, ())
        found = find(path, self.policy, self.table)
        kind = found.kind
        clean = None
        if self.clean_urls and kind in ("missing", "file", "index"):
            clean = clean_location(target, found, self.policy, self.table)
        has_content = clean is not None or kind not in ("missing", "listing")
        if match is not None and applies(match, has_content):
            _close(found)
            return self._follow(request, match, seq, found.deps)
        if clean is not None:
            _close(found)
            return _redirect(HTTPStatus.PERMANENT_REDIRECT.value, *clean)
        if kind == "missing":
            found = fall_back(found, target, request.fields.get("accept"), self.policy, self.table)
            kind = found.kind
        if kind == "missing":
            return self.not_found(request, seq, found.deps)
        if kind == "redirect":
            location = directory_location(target) or target
            return _redirect(HTTPStatus.MOVED_PERMANENTLY.value, location, found.deps)
        if kind == "listing":
            return self._listing(request, found, seq)
        return self._file(request, found, seq)

    def _follow(
        self, request: SiteRequest, match: Match, seq: int, deps: Dependencies | None
    ) -> Reply:
        """Apply a `_redirects` rule: redirect, rewrite (200) or custom 404.

        A rewrite serves what its destination reaches on disk (no rule is applied
        again), with the request's own conditions and ranges.
        """
        rule = match.rule
        note = f"_redirects line {rule.line}"
        if rule.status in REDIRECT_STATUSES:
            return _redirect(rule.status, match.location, deps)._replace(note=note)
        destination = urllib.parse.urlsplit(match.location).path
        path = url_to_fs_path(destination, self.root)
        if (
            path in self._hidden
            or is_withheld(path, self.withheld)
            or not self.answers("GET", destination)
        ):
            found = Found("missing", deps=())  # never a rule file, a CGI script or plumbing
        else:
            found = find(path, self.policy, self.table)
            if found.kind == "redirect":  # a folder: its index page, as hosts serve it
                found = find(path + "/", self.policy, self.table)
        deps = join_deps(deps, found.deps)
        if found.kind == "missing" or (rule.status == NOT_FOUND and found.kind == "listing"):
            _close(found)
            return self.not_found(request, seq, deps)
        found = found._replace(deps=deps)
        if rule.status == NOT_FOUND:
            return self._not_found_page(request, found, seq, note)
        if found.kind == "listing":
            reply = self._listing(request._replace(target=destination), found, seq)
        else:
            reply = self._file(request, found, seq)
        return reply._replace(served="rewrite", note=f"{destination} ({note})")

    def _file(self, request: SiteRequest, found: Found, seq: int) -> Reply:
        st = found.st
        assert st is not None
        facts = self._facts(found.path, st)
        ctype = facts.content_type
        reload = self.reload
        if reload is not None and reload.wants(request, ctype):
            page = reload.page_bytes(found, request.target)
            if page is not None:
                return reload.page(request, page, ctype, seq, found)
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
        if reload is not None:
            reload.tell_unreloadable(request, ctype, found)
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
            if self.withheld:
                entries = tuple(
                    entry
                    for entry in entries
                    if not is_withheld(os.path.join(found.path, entry.name), self.withheld)
                )
            remembered = self.listings.get(key, folder, seq, now)
            if remembered is not None:
                body, read_at, same = *remembered, True
            else:
                rows, same = self._rows(found, entries)
                at_root = found.path == (self.root.rstrip("/") or "/")
                body = render_listing_page(
                    request.target, rows, key[2], parent=not at_root, encoding=self._encoding
                )
                read_at = now
                if folder is not None and same:
                    self.listings.put(key, folder, seq, now, body)
        except OSError:
            return self.error(
                request, HTTPStatus.NOT_FOUND.value, "No permission to list directory", seq=seq
            )
        finally:
            _close(found)
        ctype = f"text/html; charset={self._encoding}"
        if self.reload is not None and self.reload.shows(request):
            return self.reload.page(request, body, ctype, seq, found._replace(kind="listing"))
        fields = (("Content-type", ctype), ("Content-Length", str(len(body))))
        parts = (body,) if request.method == "GET" else ()
        # The folder's identity does not cover the sizes and dates the page shows:
        # the loop may send it again only while the site would give it back itself
        # (with --reload the site drops it at the next change: the loop never has it).
        if folder is None or not same or self.hub is not None:
            return Reply(HTTPStatus.OK.value, fields, parts, None, "listing")
        fresh = read_at + LISTING_SECONDS
        listing = Reply(HTTPStatus.OK.value, fields, parts, None, "listing")
        return listing._replace(deps=folder, fresh_until=fresh)

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
        """404: the 404 page if there is one, else the error page with a suggestion.

        The closest path the site would serve is suggested beside the request in
        the log (and on the error page). ``deps``: what found the path missing;
        the suggestion's folders and the 404 page (or its absence) are added.
        """
        suggestion, read = self.suggestions.suggest_from(request.target)
        deps = join_deps(deps, read)
        # Something is there but refused: the log (never the page) says why.
        why = REFUSALS.get(refusal(url_to_fs_path(request.target, self.root), self.policy) or "")
        note = why or (f"did you mean {suggestion}" if suggestion is not None else "")
        if self.not_found_page is not None:
            page = find(self.not_found_page, self.policy, self.table)
            deps = join_deps(deps, page.deps)
            if page.kind == "file":
                return self._not_found_page(request, page._replace(deps=deps), seq, note)
            _close(page)
        from devserve.reload.inject import root_prefix

        href = ""
        if suggestion is not None:
            href = root_prefix(request.target) + suggestion[1:]  # works under a proxy's prefix
        body = render_not_found(request.target, suggestion, href)
        reply = self._error_reply(request, HTTPStatus.NOT_FOUND.value, body, note, seq)
        return reply._replace(deps=deps) if not reply.uncacheable else reply

    def _not_found_page(self, request: SiteRequest, page: Found, seq: int, note: str) -> Reply:
        """A page sent with status 404 (404.html, or a rule's): whole, never conditional.

        A 404 has no representation to validate or to cut (RFC 9110 13.2.1, 14.2):
        preconditions and ranges are ignored, and no ETag, Last-Modified or
        Accept-Ranges is sent. With --reload, a page being displayed gets the script.
        """
        st = page.st
        assert st is not None
        ctype = self.content_type(page.path)
        status = HTTPStatus.NOT_FOUND.value
        reload = self.reload
        if reload is not None and reload.wants(request, ctype):
            body = reload.page_bytes(page, request.target)
            if body is not None:
                return reload.page(request, body, ctype, seq, page, status)._replace(note=note)
        fields = (("Content-Type", ctype), ("Content-Length", str(st.st_size)))
        parts: tuple[bytes | ByteRange, ...] = ()
        if request.method == "GET" and st.st_size:
            parts = (ByteRange(0, st.st_size - 1),)
        else:
            _close(page)
        source = page if parts else None
        return Reply(status, fields, parts, source, "", note, deps=page.deps)

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
        if self.reload is not None and request.method == "GET" and self.reload.shows(request):
            body = self.reload.error_page(body, request.target, seq)
            uncacheable = True
        fields = (
            ("Content-Type", self.error_content_type),
            ("Content-Length", str(len(body))),
        )
        parts = (body,) if request.method != "HEAD" else ()
        return Reply(code, fields, parts, None, "", note, uncacheable)

    def unauthorized(self, request: SiteRequest, why: str) -> Reply:
        """401 with the Basic challenge, for a request the gate refused (``why``: the log's note).

        Never remembered (no ``deps``) and never given the reload script: the page
        behind it is not shown, so there is nothing to reload.
        """
        from devserve._auth import CHALLENGE

        body = error_page(
            self.error_template,
            HTTPStatus.UNAUTHORIZED.value,
            "Unauthorized",
            "This server needs a user name and password",
        )
        fields = (
            ("WWW-Authenticate", CHALLENGE),
            ("Content-Type", self.error_content_type),
            ("Content-Length", str(len(body))),
        )
        parts = (body,) if request.method != "HEAD" else ()
        return Reply(HTTPStatus.UNAUTHORIZED.value, fields, parts, None, "auth", why)

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
        added = self._uncacheable_lines if uncacheable else self._head_lines
        if self.host is not None:  # a default yields to the response's own (from _headers)
            own = {line.partition(b":")[0].lower() for line in lines[1:]} & self.head.defaults
            if own:
                added = tuple(line for line in added if line.partition(b":")[0].lower() not in own)
        lines.extend(added)


def _query(target: str) -> str:
    return target.partition("?")[2].partition("#")[0]


def _redirect(status: int, location: str, deps: Dependencies | None) -> Reply:
    fields = (("Location", location), ("Content-Length", "0"))
    return Reply(status, fields, served="redirect", deps=deps)


def _close(found: Found) -> None:
    if found.fd is not None:
        os.close(found.fd)


def _boundary() -> str:
    return secrets.token_hex(12)


_RESPONSES = {status.value: (status.phrase, status.description) for status in HTTPStatus}


def _reload_pages(
    hub: ReloadHub | None, notice: Callable[[str, str], None] | None
) -> ReloadPages | None:
    if hub is None:
        return None
    from devserve.reload.pages import ReloadPages

    return ReloadPages(hub, notice)


def _routed_targets(
    routes: Routes | None, root: str, reload: ReloadPages | None
) -> RoutedTargets | None:
    if routes is None:
        return None
    from devserve._site_routes import RoutedTargets

    return RoutedTargets(routes, root, reload.prefix if reload is not None else None)
