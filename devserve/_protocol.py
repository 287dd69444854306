"""Pure HTTP/1.x protocol rules: request lines, header lines, dates, ranges, validators.

Nothing here touches a socket, a file or the terminal; every function is a decision
over strings and bytes, so each is tested with tables. Errors carry the HTTP status
they imply (`ProtocolError.status`).

Invariants:
- `check_header_field` never lets CR, LF or NUL into a response header.
- `parse_ranges` only returns ranges inside ``0 .. size-1``.
- `check_request_target` passes only a token method and a target of visible ASCII
  (no ``#``) in origin form, absolute form, or ``*`` for OPTIONS.
"""

from __future__ import annotations

import datetime
import email.utils
import re
import time
from collections.abc import Callable, Iterator
from email.message import Message
from http import HTTPStatus
from typing import NamedTuple

# The largest request line and header line the server reads, as in the stdlib.
MAX_LINE = 65536
# The most header lines a request may carry, as in the stdlib (http.client).
MAX_HEADERS = 100


class ProtocolError(Exception):
    """A request the server must refuse; ``status`` is the response it implies."""

    def __init__(self, status: int, message: str, explain: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.explain = explain


class RequestLine(NamedTuple):
    """A parsed request line.

    A two-word line (HTTP/0.9) has no ``version`` (""): the handler assumes its
    ``default_request_version``; its ``version_number`` is (0, 9).
    """

    command: str
    path: str
    version: str
    version_number: tuple[int, int]


def parse_request_line(requestline: str) -> RequestLine | None:
    """Split a request line (CRLF already stripped) into its parts.

    Returns None for a blank line (the connection closes without a response).
    Raises ProtocolError(400) for bad syntax or version, (505) for HTTP/2 and above.
    The checks and their order match the documented handler, so the same bad input
    gets the same status and message.
    """
    words = requestline.split()
    if not words:
        return None
    version = ""
    number = (0, 9)
    if len(words) >= 3:
        version = words[-1]
        number = _KNOWN_VERSIONS.get(version) or _parse_version(version)
        if number >= (2, 0):
            raise ProtocolError(
                HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                f"Invalid HTTP version ({version.split('/', 1)[1]})",
            )
    if not 2 <= len(words) <= 3:
        raise ProtocolError(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
    command, path = words[0], words[1]
    if len(words) == 2 and command != "GET":
        raise ProtocolError(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
    if path.startswith("//"):
        # "//evil.example/" must never turn into a scheme-relative Location later.
        path = "/" + path.lstrip("/")
    return RequestLine(command, path, version, number)


# RFC 9110 5.6.2: a method is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 9112 3.2: origin form ("/path?query") or absolute form ("scheme://..."), of
# visible ASCII only (no NUL, control byte, DEL, blank or obs-text) and no fragment.
_TARGET = re.compile(r"(?:/|[A-Za-z][A-Za-z0-9+.-]*://)[!-\"$-~]*\Z")


def check_request_target(method: str, target: str) -> None:
    """Raise ProtocolError(400) unless ``method`` is a token and ``target`` a request
    target devserve serves or forwards (RFC 9112 3.2).

    Stricter than the documented handler (which, like http.server, takes any words):
    devserve's own handler and event loop apply it, so a target that the router and
    the file mapper would read differently ("api/x", "./x") or a byte a backend may
    cut at (NUL) never gets that far.
    """
    if _TOKEN.match(method) is None:
        raise ProtocolError(HTTPStatus.BAD_REQUEST, f"Bad request method ({method!r})")
    if _TARGET.match(target) is None and not (target == "*" and method == "OPTIONS"):
        raise ProtocolError(HTTPStatus.BAD_REQUEST, f"Bad request target ({target!r})")


# What almost every request says (the general rule below gives the same numbers).
_KNOWN_VERSIONS = {"HTTP/1.1": (1, 1), "HTTP/1.0": (1, 0)}


def _parse_version(version: str) -> tuple[int, int]:
    bad = ProtocolError(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
    if not version.startswith("HTTP/"):
        raise bad
    parts = version[5:].split(".")
    if len(parts) != 2 or not all(p.isdigit() and p.isascii() and len(p) <= 10 for p in parts):
        raise bad
    return int(parts[0]), int(parts[1])


# A field line (RFC 9112 5): a token, a colon, optional blanks, then visible
# characters, blanks and obs-text, ended by CRLF (or a bare LF, which RFC 9112 2.2
# lets a recipient accept). No whitespace before the colon, no bare CR, no NUL or
# other control character: any of those is a malformed request (400).
_FIELD = r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)\r?\n"
_FIELD_LINE = re.compile((_FIELD + r"?\Z").encode("latin-1"))
_FOLD_LINE = re.compile(rb"[ \t]+([\t\x20-\x7e\x80-\xff]*?)\r?\n?\Z")
# The same rule over a whole header section (decoded as Latin-1): one match for
# "every line is a plain field line", one pass to take the fields out.
_FIELD_SECTION = re.compile(f"(?:{_FIELD})*")
_FIELD_ITEMS = re.compile(_FIELD)


def parse_field_section(section: bytes) -> list[tuple[str, str]]:
    """`parse_field_lines` for a whole header section (every line ending in a newline).

    The same rule, in two regular-expression passes instead of one per line; a
    section with an obs-fold or a malformed line is read line by line.
    """
    text = section.decode("latin-1")
    if _FIELD_SECTION.fullmatch(text) is not None:
        return _FIELD_ITEMS.findall(text)
    return parse_field_lines(section.splitlines(keepends=True))


def parse_field_lines(lines: list[bytes]) -> list[tuple[str, str]]:
    """Names and values of a request's header lines, or ProtocolError(400) for a malformed one.

    Values keep trailing blanks, as http.client's parser keeps them; an obs-fold
    continuation line is joined to the value before it with one space (RFC 9112 5.2).
    """
    fields: list[tuple[str, str]] = []
    for raw in lines:
        match = _FIELD_LINE.match(raw)
        if match is not None:
            fields.append((match[1].decode("ascii"), match[2].decode("latin-1")))
            continue
        fold = _FOLD_LINE.match(raw) if fields else None
        if fold is None:
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST, "Bad header line", f"malformed header line {raw[:80]!r}"
            )
        name, value = fields[-1]
        fields[-1] = (name, value.rstrip(" \t") + " " + fold[1].decode("latin-1"))
    return fields


def has_obs_fold(lines: list[bytes]) -> bool:
    """Whether header lines read by `parse_field_lines` held an obs-fold continuation."""
    return any(line[:1] in (b" ", b"\t") for line in lines)


def head_end(buf: bytes | bytearray) -> int:
    """The index just past the blank line ending a request head, or -1 if it has not come.

    Lines may end in CRLF or a bare LF, as a handler's ``readline`` reads them.
    """
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf < 0:
        return lf + 2 if lf >= 0 else -1
    if 0 <= lf < crlf:
        return lf + 2
    return crlf + 3


def read_plain_head(head: bytes) -> tuple[RequestLine, dict[str, str]] | None:
    """A complete request head (up to its blank line) with no body and nothing unusual.

    Returns the request line and its fields (lower-cased names; where a name
    repeats, the first value), read by the same rules as a handler reads them.
    None when a handler must answer it instead: a malformed or HTTP/0.9 line, a
    method or target `check_request_target` refuses, a malformed or unusable
    header (its 400 or 431 is the handler's), a body, or ``Expect``.
    """
    line_end = head.index(b"\n")
    # The header section: every line after the request line, up to the blank one.
    section = head[line_end + 1 : -2 if head.endswith(b"\r\n") else -1]
    if section.count(b"\n") >= MAX_HEADERS:
        return None
    try:
        line = parse_request_line(head[:line_end].decode("latin-1").rstrip("\r"))
        if line is None or not line.version:
            return None
        check_request_target(line.command, line.path)
        fields = parse_field_section(section)
        found = {name.lower(): value for name, value in reversed(fields)}
        framed = "content-length" in found or "transfer-encoding" in found
        if (framed or "range" in found) and check_framing(fields, line.version_number).has_body:
            return None
    except ProtocolError:
        return None
    if "expect" in found or "transfer-encoding" in found:
        return None
    return line, found


# Request lines start with a method token and a space; a TLS ClientHello starts
# with the record type 0x16 (and an SSLv2-style one with a byte of 0x80 or more).
_PLAIN_REQUEST = re.compile(rb"[A-Z]{3,10} [\x21-\x7e]")


def plain_http_start(data: bytes) -> bool:
    """Whether bytes a client sent first are a plain-HTTP request, not a TLS handshake."""
    return _PLAIN_REQUEST.match(data) is not None


def field_value(head: bytes, name: bytes) -> str | None:
    """The value of the first field ``name`` (lower-case) in a raw head, if it is plain."""
    for line in head.split(b"\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            text = value.strip().decode("latin-1")
            return text if text.isprintable() and " " not in text else None
    return None


# The longest decimal number a request may carry in Content-Length or Range.
MAX_DIGITS = 18


class Framing(NamedTuple):
    """How a request's body is delimited (RFC 9112 6), decided once for every path."""

    length: int | None  # Content-Length, when that frames the body
    chunked: bool  # Transfer-Encoding ends in chunked
    close: bool  # the connection must close after the response

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


NO_BODY = Framing(None, False, False)


def check_framing(fields: list[tuple[str, str]], version: tuple[int, int]) -> Framing:
    """The body framing of a request with these fields, or ProtocolError(400).

    Refused: Content-Length values that differ or are not plain ASCII numbers (of
    at most `MAX_DIGITS` digits), a Transfer-Encoding whose final coding is not
    ``chunked``, and a Range with numbers that are not. Transfer-Encoding wins over
    Content-Length, and the connection then closes after the response (RFC 9112
    6.3), as it does for Transfer-Encoding in an HTTP/1.0 request.
    """
    lengths: list[str] = []
    codings: list[str] = []
    for name, value in fields:
        lowered = name.lower()
        if lowered == "content-length":
            lengths.extend(item.strip() for item in value.split(","))
        elif lowered == "transfer-encoding":
            codings.extend(item.strip().lower() for item in value.split(","))
        elif lowered == "range":
            _check_range_numbers(value)
    if not lengths and not codings:
        return NO_BODY
    length = None
    if lengths:
        if any(not is_decimal(item) for item in lengths) or len(set(lengths)) != 1:
            raise ProtocolError(HTTPStatus.BAD_REQUEST, "Bad Content-Length")
        length = int(lengths[0])
    if codings:
        if codings[-1] != "chunked":
            raise ProtocolError(HTTPStatus.BAD_REQUEST, "Unsupported Transfer-Encoding")
        return Framing(None, True, bool(lengths) or version < (1, 1))
    return Framing(length, False, False)


class BodyTooLarge(Exception):
    """A request body over the configured limit (413)."""


class BadChunk(ValueError):
    """Chunked framing that cannot be read: the message is cut or malformed."""


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# The most trailer fields read after a chunked body (as many as header fields).
MAX_TRAILERS = MAX_HEADERS


def chunked_body(
    readline: Callable[[int], bytes], read: Callable[[int], bytes], limit: int | None = None
) -> Iterator[bytes]:
    """The data of a chunked body (RFC 9112 7.1), piece by piece, as it arrives.

    ``readline(limit)`` and ``read(size)`` read the message (``read`` may return
    fewer bytes than asked, as ``read1`` does; empty means the end of the input).
    Pieces are at most 64 KiB. Chunk extensions and trailer fields are read and
    dropped. Raises BadChunk for framing that is malformed or cut short, and
    BodyTooLarge as soon as the sizes announced pass ``limit``.
    """
    total = 0
    while True:
        line = readline(4096)
        if not line.endswith(b"\n"):
            raise BadChunk("truncated or overlong chunk-size line")
        size_text = line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BadChunk(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if limit is not None and total > limit:
            raise BodyTooLarge(total)
        remaining = size
        while remaining:
            data = read(min(remaining, 65536))
            if not data:
                raise BadChunk("truncated chunk")
            remaining -= len(data)
            yield data
        if readline(3) not in (b"\r\n", b"\n"):
            raise BadChunk("chunk not followed by CRLF")
    for _ in range(MAX_TRAILERS):
        line = readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return
    raise BadChunk("too many trailer fields")


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a plain number of the kind framing and ranges accept: ASCII
    digits only (no sign, no space, no other script's digits), at most `MAX_DIGITS`."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


def _check_range_numbers(value: str) -> None:
    for token in _RANGE_TOKENS.split(value):
        if any(char.isdigit() for char in token) and not is_decimal(token):
            raise ProtocolError(HTTPStatus.BAD_REQUEST, "Bad Range")


# What separates the numbers of a Range: its numbers must be plain ASCII and short
# (superscript digits and such are digits to str.isdigit, and to int() they fail).
_RANGE_TOKENS = re.compile(r"[\s,=-]+")


def build_message(message_class: type[Message], fields: list[tuple[str, str]]) -> Message:
    """A MessageClass instance holding the fields, as the email parser would build it."""
    message = message_class()
    for name, value in fields:
        message.set_raw(name, value)
    message.set_payload("")
    return message


_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")


def check_header_field(keyword: str, value: str) -> None:
    """Refuse a response header that could split the response (CR, LF or NUL)."""
    if _FORBIDDEN_IN_HEADER.search(keyword) or _FORBIDDEN_IN_HEADER.search(value):
        raise ValueError(f"invalid character in response header {keyword!r}: {value!r}")
    if not keyword or ":" in keyword:
        raise ValueError(f"invalid response header name {keyword!r}")


# --------------------------------------------------------------------------- dates

_DATE_CACHE: tuple[int, str] = (0, "")


def http_date(timestamp: float | None = None) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``); the current second is cached."""
    global _DATE_CACHE
    if timestamp is not None:
        return email.utils.formatdate(timestamp, usegmt=True)
    now = int(time.time())
    cached_second, text = _DATE_CACHE
    if cached_second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _DATE_CACHE = (now, text)
    return text


def parse_http_date(value: str) -> float | None:
    """Seconds since the epoch for an HTTP date, or None when it is not one.

    A date with no zone is taken as UTC; one in another zone than GMT/UTC is not an
    HTTP date and is ignored, as the documented handler ignores it.
    """
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, IndexError, OverflowError, ValueError):
        return None
    offset = parsed.utcoffset()
    if offset is not None and offset.total_seconds() != 0:
        return None
    if offset is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- validators


def make_etag(mtime_ns: int, size: int, inode: int) -> str:
    """A strong validator that changes whenever the file is replaced or rewritten."""
    return f'"{mtime_ns:x}-{size:x}-{inode:x}"'


def etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    """Whether an If-None-Match / If-Match list names ``etag`` (``*`` matches any).

    ``weak`` selects the weak comparison (If-None-Match) over the strong one (If-Match).
    """
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        tag = candidate.strip()
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        elif tag.startswith("W/"):
            continue
        if tag == etag:
            return True
    return False


# --------------------------------------------------------------------------- ranges

# More ranges than this in one request is treated as an attack on the server's
# bookkeeping rather than a real client; the whole file is sent instead.
MAX_RANGES = 64

_RANGE_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*\Z", re.ASCII)


class ByteRange(NamedTuple):
    """An inclusive byte range, already clipped to the file."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


class Unsatisfiable(Exception):
    """A syntactically valid Range header none of whose ranges overlaps the file (416)."""


def parse_ranges(header: str, size: int) -> list[ByteRange] | None:
    """The byte ranges a Range header asks for, merged and in order.

    Returns None when the header should be ignored (not bytes, malformed, too many
    ranges): the full representation is then sent with 200, as RFC 9110 allows.
    Raises Unsatisfiable when it is valid but no range overlaps the file.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = spec.split(",")
    if len(specs) > MAX_RANGES:
        return None
    wanted: list[ByteRange] = []
    for item in specs:
        if not item.strip():
            continue
        match = _RANGE_SPEC.match(item)
        if match is None:
            return None
        first_text, last_text = match.groups()
        if len(first_text) > MAX_DIGITS or len(last_text) > MAX_DIGITS:
            return None
        if first_text:
            first = int(first_text)
            if last_text and int(last_text) < first:
                return None
            if first >= size:
                continue
            last = int(last_text) if last_text else size - 1
            wanted.append(ByteRange(first, min(last, size - 1)))
        elif last_text:
            suffix = int(last_text)
            if suffix == 0 or size == 0:
                continue
            wanted.append(ByteRange(max(0, size - suffix), size - 1))
        else:
            return None
    if not wanted:
        if any(item.strip() for item in specs):
            raise Unsatisfiable(header)
        return None
    return _merge(wanted)


def _merge(ranges: list[ByteRange]) -> list[ByteRange]:
    """Coalesce overlapping or adjacent ranges (RFC 9110 14.2 lets a server do so)."""
    ordered = sorted(ranges, key=lambda r: r.first)
    merged = [ordered[0]]
    for item in ordered[1:]:
        last = merged[-1]
        if item.first <= last.last + 1:
            merged[-1] = ByteRange(last.first, max(last.last, item.last))
        else:
            merged.append(item)
    return merged


# --------------------------------------------------------------------------- logging

# Control characters (C0, DEL, C1) shown as \xNN, and the backslash doubled, so a log
# line can never carry a terminal escape and an escape can be told from a literal.
CONTROL_CHAR_TABLE: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
CONTROL_CHAR_TABLE[ord("\\")] = "\\\\"


def scrub_control_chars(text: str) -> str:
    """``text`` with every control character escaped, as the documented log does."""
    return text.translate(CONTROL_CHAR_TABLE)


def scrub_unprintable(text: str) -> str:
    """``text`` with every character a terminal could act on escaped, and ``\\`` doubled.

    Beyond the control characters (C0, DEL, C1): format characters (Unicode Cf:
    bidirectional overrides, zero-width joiners), line and paragraph separators,
    lone surrogates, private-use and unassigned code points, and spaces other than
    the ASCII one. What Python's ``str.isprintable`` calls printable is kept.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
