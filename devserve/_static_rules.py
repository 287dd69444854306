"""Static-file responses as pure decisions: which status, which headers, which bytes.

Every server path that answers a request for a file calls these: the documented
`SimpleHTTPRequestHandler` (through its hooks, in a thread) and devserve's event
loop (which serialises the same fields itself). Nothing here touches a socket,
a file or the terminal; each function is a decision over strings and numbers, so
each is tested with tables (`tests/test_static_rules.py`).

Invariants:
- Preconditions are evaluated in RFC 9110 13.2.2 order: If-Match, else
  If-Unmodified-Since (412); then If-None-Match, else If-Modified-Since (304);
  then Range, honoured only for GET and only while If-Range still matches.
- A 206 only names bytes inside the file (the ranges come from `parse_ranges`).
- A 304 carries the ETag and no body; a 416 says ``bytes */size``.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import NamedTuple

from devserve._protocol import (
    ByteRange,
    Unsatisfiable,
    etag_matches,
    http_date,
    make_etag,
    parse_http_date,
    parse_ranges,
)

Fields = tuple[tuple[str, str], ...]


class Conditions(NamedTuple):
    """The request headers that make a file's response conditional or partial."""

    if_match: str | None = None
    if_unmodified_since: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    range: str | None = None
    if_range: str | None = None

    @classmethod
    def from_headers(cls, get: Callable[[str], str | None]) -> Conditions:
        """Read the conditions with ``get`` (``Message.get``, or a lookup by any case)."""
        return cls(
            get("If-Match"),
            get("If-Unmodified-Since"),
            get("If-None-Match"),
            get("If-Modified-Since"),
            get("Range"),
            get("If-Range"),
        )

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Conditions | None:
        """The conditions among lower-cased fields; None when there are none at all."""
        if not any(name in fields for name in _CONDITION_FIELDS):
            return None
        return cls(*(fields.get(name) for name in _CONDITION_FIELDS))


NO_CONDITIONS = Conditions()
_CONDITION_FIELDS = (
    "if-match", "if-unmodified-since", "if-none-match", "if-modified-since", "range", "if-range"
)  # fmt: skip


class Validators(NamedTuple):
    """What identifies one version of a file to a client."""

    etag: str
    mtime: int  # whole seconds, as HTTP dates carry them
    last_modified: str  # the Last-Modified field value


def validators(
    size: int, mtime_ns: int, inode: int, date: Callable[[float], str] = http_date
) -> Validators:
    """The validators of a file version; ``date`` formats Last-Modified (a handler's hook)."""
    mtime = mtime_ns / 1e9
    return Validators(make_etag(mtime_ns, size, inode), int(mtime), date(mtime))


def precondition_status(conditions: Conditions, found: Validators) -> int | None:
    """412 or 304 when a precondition decides the response (RFC 9110 13.2.2), else None."""
    if conditions.if_match is not None:
        if not etag_matches(conditions.if_match, found.etag, weak=False):
            return HTTPStatus.PRECONDITION_FAILED.value
    elif conditions.if_unmodified_since is not None:
        limit = parse_http_date(conditions.if_unmodified_since)
        if limit is not None and found.mtime > limit:
            return HTTPStatus.PRECONDITION_FAILED.value
    if conditions.if_none_match is not None:
        if etag_matches(conditions.if_none_match, found.etag, weak=True):
            return HTTPStatus.NOT_MODIFIED.value
    elif conditions.if_modified_since is not None:
        limit = parse_http_date(conditions.if_modified_since)
        if limit is not None and found.mtime <= limit:
            return HTTPStatus.NOT_MODIFIED.value
    return None


def range_applies(if_range: str | None, found: Validators) -> bool:
    """If-Range: a range is honoured only while the validator it names still matches."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == found.etag
    date = parse_http_date(if_range)
    return date is not None and int(date) == found.mtime


class FileAnswer(NamedTuple):
    """The decision for a GET or HEAD of a regular file.

    ``fields`` are the handler's own headers in the order it sends them (the
    server adds Server, Date, configured extras and Connection around them).
    ``parts`` is the body: whole-file ``ByteRange`` slices and literal bytes.
    A 412 has no fields: it is answered as an error page.
    """

    status: int
    fields: Fields
    parts: tuple[bytes | ByteRange, ...]


def answer_file(
    method: str,
    conditions: Conditions,
    found: Validators,
    size: int,
    content_type: str,
    boundary: Callable[[], str],
) -> FileAnswer:
    """Status, headers and body layout for ``method`` on a file of ``size`` bytes.

    ``boundary`` makes a multipart boundary when several ranges are asked for.
    """
    status = precondition_status(conditions, found)
    if status == HTTPStatus.PRECONDITION_FAILED.value:
        return FileAnswer(status, (), ())
    if status == HTTPStatus.NOT_MODIFIED.value:
        return FileAnswer(status, (("ETag", found.etag),), ())
    validator_fields = (
        ("Last-Modified", found.last_modified),
        ("ETag", found.etag),
        ("Accept-Ranges", "bytes"),
    )
    if (
        conditions.range is not None
        and method == "GET"
        and range_applies(conditions.if_range, found)
    ):
        try:
            ranges = parse_ranges(conditions.range, size)
        except Unsatisfiable:
            return FileAnswer(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE.value,
                (("Content-Range", f"bytes */{size}"), ("Content-Length", "0")),
                (),
            )
        if ranges is not None:
            return _partial(ranges, size, content_type, validator_fields, boundary)
    whole = ByteRange(0, size - 1) if size else None
    return FileAnswer(
        HTTPStatus.OK.value,
        (("Content-type", content_type), ("Content-Length", str(size)), *validator_fields),
        (whole,) if whole is not None else (),
    )


def _partial(
    ranges: list[ByteRange],
    size: int,
    content_type: str,
    validator_fields: Fields,
    boundary: Callable[[], str],
) -> FileAnswer:
    if len(ranges) == 1:
        only = ranges[0]
        fields: Fields = (
            ("Content-Type", content_type),
            ("Content-Range", only.content_range(size)),
            ("Content-Length", str(only.length)),
        )
        return FileAnswer(HTTPStatus.PARTIAL_CONTENT.value, fields + validator_fields, (only,))
    separator = boundary()
    parts: list[bytes | ByteRange] = []
    for item in ranges:
        parts.append(
            f"\r\n--{separator}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: {item.content_range(size)}\r\n\r\n".encode("latin-1")
        )
        parts.append(item)
    parts.append(f"\r\n--{separator}--\r\n".encode("latin-1"))
    length = sum(p.length if isinstance(p, ByteRange) else len(p) for p in parts)
    fields = (
        ("Content-Type", f"multipart/byteranges; boundary={separator}"),
        ("Content-Length", str(length)),
    )
    return FileAnswer(HTTPStatus.PARTIAL_CONTENT.value, fields + validator_fields, tuple(parts))


def body_length(parts: tuple[bytes | ByteRange, ...]) -> int:
    """How many bytes a body layout holds."""
    return sum(p.length if isinstance(p, ByteRange) else len(p) for p in parts)


# --------------------------------------------------------------------------- site headers


class HeadRules(NamedTuple):
    """The headers every response of the site gets, and the ones they replace."""

    fields: Fields  # configured: Cache-Control, CORS, --header
    uncacheable: Fields  # the same with Cache-Control: no-store instead
    replaced: frozenset[bytes]  # lower-cased names whose server-made lines are dropped
    # Lower-cased names of the defaults (Cache-Control, --cors) a response's own line
    # of the same name (from `_headers`) replaces; --header values are never replaced.
    defaults: frozenset[bytes] = frozenset()


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
    defaults = frozenset(
        name.lower().encode("latin-1") for name, _ in fields if name.lower() not in own
    )
    return HeadRules(tuple(fields), tuple(uncacheable), replaced, defaults)


# --------------------------------------------------------------------------- targets


def directory_location(target: str) -> str | None:
    """Where a request for a directory must be redirected, or None if it already ends in ``/``.

    A percent-encoded slash at the very end (``%2f``) counts as a trailing slash.
    """
    parts = urllib.parse.urlsplit(target)
    path = parts.path
    if path.endswith("/") or path[-3:].lower() == "%2f":
        return None
    return urllib.parse.urlunsplit((parts[0], parts[1], path + "/", parts[3], parts[4]))


def is_app_route(target: str, accept: str | None) -> bool:
    """A path a single-page app's router handles: no file suffix, or a browser asking for HTML.

    A missing asset (``/app.js``) stays a 404 instead of turning into HTML.
    """
    last = urllib.parse.urlsplit(target).path.rsplit("/", 1)[-1]
    return "." not in last or "text/html" in (accept or "")


# --------------------------------------------------------------------------- errors


def error_page(template: str, code: int, message: str, explain: str) -> bytes:
    """The body of an error response: the documented ``error_message_format`` filled in."""
    content = template % {
        "code": code,
        "message": html.escape(message, quote=False),
        "explain": html.escape(explain, quote=False),
    }
    return content.encode("UTF-8", "replace")


def error_has_body(code: int, method: str | None) -> bool:
    """Whether an error response carries a page (never for 1xx, 204, 205, 304 or HEAD)."""
    return code >= 200 and code not in (204, 205, 304) and method != "HEAD"


# --------------------------------------------------------------------------- connections


def connection_tokens(value: str | None) -> frozenset[str]:
    """The tokens of a Connection field, as the handler reads them."""
    if not value:
        return frozenset()
    return frozenset(token.strip().lower() for token in value.split(","))


def keeps_alive(version: tuple[int, int], protocol_version: str, connection: str | None) -> bool:
    """Whether a request leaves the connection open for another one (RFC 9112 9.3)."""
    keep = version >= (1, 1) and protocol_version >= "HTTP/1.1"
    tokens = connection_tokens(connection)
    if "close" in tokens:
        return False
    if "keep-alive" in tokens and protocol_version >= "HTTP/1.1":
        return True
    return keep


def closing_connection_field(
    close: bool, framed: bool, status: int | None, method: str | None, request_version: str
) -> str | None:
    """The Connection value the end of a response head adds, or None.

    A response with a body and no length can only end with the connection, so it
    says ``close``; an HTTP/1.0 client that is kept alive is told ``keep-alive``.
    """
    if close:
        return None
    has_body = status is not None and status >= 200 and status not in (204, 304)
    if has_body and method != "HEAD" and not framed:
        return "close"
    if request_version == "HTTP/1.0" and status is not None and status >= 200:
        return "keep-alive"
    return None
