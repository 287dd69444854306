"""A backend's response, read for relaying: status line, framing, and whether its
connection may carry another request. Pure functions, table-tested with the
request rules in `devserve._proxy`.

Invariants:
- devserve never copies a backend's framing: `response_body` says how the
  body is delimited and `client_framing` how devserve delimits it again; any
  framing it could not reproduce faithfully (a transfer coding other than
  ``chunked``, differing lengths) is a `BadResponse`, answered 502.
- A backend connection is reused only when nothing the backend sends could be
  left over after the response (`backend_keeps_alive`, with `ResponseBody.last`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

from devserve._protocol import is_decimal
from devserve._proxy import connection_options


class BadResponse(ValueError):
    """A backend's response head that cannot be relayed (the client gets 502)."""


_STATUS_LINE = re.compile(r"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?\Z")


class StatusLine(NamedTuple):
    version: tuple[int, int]
    status: int
    reason: str


def parse_status_line(line: bytes) -> StatusLine:
    """A backend's status line (CRLF or LF included), or BadResponse."""
    text = line.decode("latin-1").rstrip("\r\n")
    match = _STATUS_LINE.match(text)
    if match is None or int(match[3]) < 100:
        raise BadResponse(f"malformed status line {text[:80]!r}")
    return StatusLine((int(match[1]), int(match[2])), int(match[3]), match[4] or "")


class ResponseBody(NamedTuple):
    """How a backend's response body is delimited (RFC 9112 6.3)."""

    kind: Literal["none", "length", "chunked", "close"]
    length: int | None = None
    # The connection cannot carry another request afterwards, whatever it says.
    last: bool = False


def response_body(
    status: int, method: str, version: tuple[int, int], fields: Sequence[tuple[str, str]]
) -> ResponseBody:
    """The framing of a response with these fields to a request with ``method``.

    No body for HEAD, 1xx, 204 and 304; after a HEAD, or a 204 or 304 whose
    fields announce a body, the connection is not reused (a backend that sends
    one anyway would have it read as the next response). ``Transfer-Encoding:
    chunked`` (HTTP/1.1) wins over ``Content-Length``, and then the connection is
    not reused; any other transfer coding is a BadResponse (devserve could not
    frame it again: a client would get coded bytes with nothing saying so); no
    length at all is read until the backend closes. Differing or malformed
    lengths are a BadResponse.
    """
    if status < 200:
        return ResponseBody("none")
    if method == "HEAD" or status in (204, 304):
        return ResponseBody("none", last=method == "HEAD" or _announces_body(status, fields))
    lengths: list[str] = []
    codings: list[str] = []
    for name, value in fields:
        lower = name.lower()
        if lower == "content-length":
            lengths.extend(item.strip() for item in value.split(","))
        elif lower == "transfer-encoding":
            codings.extend(item.strip().lower() for item in value.split(","))
    if codings:
        if codings == ["chunked"] and version >= (1, 1):
            return ResponseBody("chunked", last=bool(lengths))
        raise BadResponse(f"a transfer coding devserve cannot relay: {', '.join(codings)[:40]!r}")
    if lengths:
        if len(set(lengths)) != 1 or not all(is_decimal(x) for x in lengths):
            raise BadResponse(f"bad Content-Length {', '.join(lengths)[:40]!r}")
        return ResponseBody("length", int(lengths[0]))
    return ResponseBody("close", last=True)


def _announces_body(status: int, fields: Sequence[tuple[str, str]]) -> bool:
    """Whether the fields of a 204 or 304 say a body follows: a transfer coding, or a
    204's length other than 0 (a 304's length is its representation's, RFC 9110 8.6)."""
    for name, value in fields:
        lower = name.lower()
        if lower == "transfer-encoding":
            return True
        if lower == "content-length" and status == 204 and value.strip() != "0":
            return True
    return False


class ClientFraming(NamedTuple):
    """How a relayed response is framed for the client."""

    kind: Literal["none", "length", "chunked", "close"]
    length: int | None = None  # the Content-Length sent (also for HEAD and 304)


def client_framing(
    body: ResponseBody,
    status: int,
    method: str,
    fields: Sequence[tuple[str, str]],
    chunked_ok: bool,
) -> ClientFraming:
    """The framing of the response devserve sends for a backend's response.

    A length is kept; a chunked or close-delimited body goes to the client
    chunked when it reads HTTP/1.1 (``chunked_ok``), else it ends with the
    connection. A body-less answer to HEAD, or a 304, keeps the backend's
    length when it is one plain number (it describes the representation, not
    this message); no other response without a body has one.
    """
    if body.kind == "length":
        return ClientFraming("length", body.length)
    if body.kind != "none":
        return ClientFraming("chunked" if chunked_ok else "close")
    if method == "HEAD" or status == 304:
        lengths = {value.strip() for name, value in fields if name.lower() == "content-length"}
        if len(lengths) == 1:
            (length,) = lengths
            if is_decimal(length):
                return ClientFraming("none", int(length))
    return ClientFraming("none")


def backend_keeps_alive(
    version: tuple[int, int], fields: Sequence[tuple[str, str]], body: ResponseBody
) -> bool:
    """Whether the backend's connection may carry another request after this response."""
    if body.last:
        return False
    options = connection_options(fields)
    if "close" in options:
        return False
    return version >= (1, 1) or "keep-alive" in options
