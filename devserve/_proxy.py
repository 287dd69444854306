"""Reverse-proxy rules for ``--proxy PREFIX=URL``: pure functions over strings, table-tested.

Which requests go to a backend (`Routes`), the path they are sent with, the
header fields sent each way (hop-by-hop fields removed, ``Host``,
``X-Forwarded-*``, ``Forwarded`` and ``Via`` set), and a response's ``Location``
as the client reaches it; `devserve._proxy_response` reads the backend's
response (status line, framing, reuse). Nothing here touches a socket:
`devserve._upstream` holds the connections, `devserve._handler_proxy` the
relaying.

Prefix semantics, as nginx's ``proxy_pass`` without and with a URI:

- ``/api=http://host:5000`` (the URL has no path): the request's path is sent
  as it is: ``/api/x`` → ``http://host:5000/api/x``.
- ``/api/=http://host:5000/`` or ``/api=http://host:5000/v1`` (the URL has a
  path, even ``/``): the prefix is replaced by that path: ``/api/x`` → ``/x``,
  or ``/v1/x``. Exactly one slash joins them, whatever slashes the prefix and
  the path end with (no ``//x``, no ``/v1x``).
- A prefix matches whole path segments: ``/api`` matches ``/api``, ``/api/``,
  ``/api/x`` and ``/api?q``, never ``/apix``; ``/api`` and ``/api/`` are the same
  prefix. The longest matching prefix wins; ``/`` matches every path.

Invariants:
- Only a target in origin form (``/path?query``) is ever forwarded: an
  absolute-form target (``http://evil/``), ``*`` or anything else matches no
  prefix. Where a connection goes is the route's scheme, host and port, fixed
  at start-up; nothing in a request chooses it (no open proxy).
- Matching and the path sent both use the request's path with percent-encoded
  unreserved characters decoded and dot segments removed (RFC 3986 6.2.2), so
  ``/static/../api/x`` is forwarded as ``/api/x`` and ``/api/../secret`` is not
  forwarded at all: the path sent never climbs out of the route's base path.
  A path that would climb out for a backend that reads more into it
  (``..;/``, ``..%2F``, ``..%5C``, ``..\\``) is refused (`BadTarget`, 400):
  `hides_dot_segment`.
- Hop-by-hop fields (RFC 9110 7.6.1: ``Connection`` and every field it names,
  ``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``, ``Proxy-Authorization``,
  ``Proxy-Authenticate``) never cross, and framing (``Content-Length``) is never
  copied: whoever sends a message frames it (no request smuggling).
- Values added here hold no CR, LF or NUL: they are built from the route, the
  client's address and fields already parsed by `devserve._protocol`'s strict
  rules, and quoted where RFC 7239 says so.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple


class BadRoute(ValueError):
    """A ``--proxy`` value that cannot be used; the message says why, in one line."""


class BadTarget(ValueError):
    """A request target a route claims but devserve refuses to forward (the client gets 400)."""


DEFAULT_PORTS = {"http": 80, "https": 443}

# Characters a prefix may hold besides letters and digits: RFC 3986 pchar and "/"
# (percent-escapes are written as the characters themselves or as %XX).
_PREFIX_CHARS = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*\Z")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class ProxyRoute:
    """One ``--proxy PREFIX=URL``, checked (make one with `parse_route`)."""

    prefix: str  # as given: /api or /api/
    url: str  # as given: http://127.0.0.1:5000
    scheme: Literal["http", "https"]
    host: str  # a name or an address (IPv6 without brackets)
    port: int
    # The URL's path: it replaces the prefix. None: the request's path is kept.
    base: str | None = None

    def __str__(self) -> str:
        """``PREFIX=URL``, as the option was given (--show-settings prints it so)."""
        return f"{self.prefix}={self.url}"

    @property
    def path_key(self) -> str:
        """What the prefix matches: normalized, without a trailing slash (``/`` is "")."""
        return normalize_path(self.prefix).rstrip("/")

    @property
    def origin(self) -> str:
        """``scheme://host:port``, as the log and error pages name the backend."""
        return f"{self.scheme}://{self.authority}"

    @property
    def authority(self) -> str:
        """``host`` or ``host:port`` (the port when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_route(text: str) -> ProxyRoute:
    """``PREFIX=URL`` as a route, or BadRoute saying what is wrong with it."""
    prefix, sep, url = text.partition("=")
    prefix, url = prefix.strip(), url.strip()
    if not sep or not prefix or not url:
        raise BadRoute(f"expected PREFIX=URL such as /api=http://127.0.0.1:5000, not {text!r}")
    if not prefix.startswith("/"):
        raise BadRoute(f"the prefix must start with / (not {prefix!r})")
    if not _PREFIX_CHARS.match(prefix):
        raise BadRoute(
            f"the prefix {prefix!r} holds a character a URL path cannot "
            "(?, #, a space, a lone %; write other characters percent-encoded)"
        )
    if normalize_path(prefix) != _escapes_upper(prefix):
        raise BadRoute(f"the prefix {prefix!r} has . or .. segments or encoded letters")
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise BadRoute(f"{url!r} is not a URL (spaces, control or non-ASCII characters)")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadRoute(f"only http:// and https:// backends can be proxied, not {url!r}")
    if "?" in url or "#" in url:
        raise BadRoute(f"the backend URL cannot have a query or a fragment: {url!r}")
    if "@" in parts.netloc:
        raise BadRoute(f"the backend URL cannot hold a user name or password: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise BadRoute(f"the backend URL has a bad port: {url!r}") from None
    host = parts.hostname
    if not host:
        raise BadRoute(f"the backend URL names no host: {url!r}")
    base = parts.path or None
    if base is not None and normalize_path(base) != _escapes_upper(base):
        raise BadRoute(f"the backend URL's path has . or .. segments: {url!r}")
    return ProxyRoute(
        prefix=prefix,
        url=url,
        scheme="https" if scheme == "https" else "http",
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        base=base,
    )


def duplicate_prefixes(routes: Iterable[ProxyRoute]) -> list[str]:
    """Prefixes given more than once (``/api`` and ``/api/`` are the same prefix)."""
    seen: dict[str, str] = {}
    duplicates = []
    for route in routes:
        key = route.path_key
        if key in seen:
            duplicates.append(f"{seen[key]} and {route.prefix}")
        seen[key] = route.prefix
    return duplicates


# --------------------------------------------------------------------------- paths


def normalize_path(path: str) -> str:
    """``path`` with unreserved characters' escapes decoded, the other escapes in upper
    case, and dot segments removed (RFC 3986 6.2.2: the same resource)."""
    if "%" in path:
        path = _ESCAPE.sub(_normal_escape, path)
    return remove_dot_segments(path) if "." in path else path


def _normal_escape(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else "%" + match[1].upper()


def _escapes_upper(path: str) -> str:
    return _ESCAPE.sub(lambda m: "%" + m[1].upper(), path) if "%" in path else path


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for a path starting with ``/``: ``/a/./b/../c`` is ``/a/c``."""
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
            continue
        if index == last:
            out.append("")  # "/a/." and "/a/b/.." end with a slash
    return "/" + "/".join(out)


# What some backend may take as a path separator: "/", "\\" and their escapes.
_SEPARATOR = re.compile(r"/|\\|%2[Ff]|%5[Cc]")


def hides_dot_segment(path: str) -> bool:
    """Whether ``path`` holds a ``.`` or ``..`` segment for a backend that takes
    ``%2F``, ``%5C`` or ``\\`` as a separator, or drops ``;`` parameters (Tomcat,
    Spring, IIS, some Node servers): ``/a/..;/b``, ``/a/..%2Fb``, ``/a/.%2e\\b``.

    Each segment is decoded once: ``%252F`` is a ``%2F`` in a name, not a separator.
    """
    if "." not in path and "%" not in path:
        return False
    for segment in _SEPARATOR.split(path):
        name = segment.partition(";")[0]
        if "%" in name:
            name = urllib.parse.unquote(name)
        if name in (".", ".."):
            return True
    return False


class Forward(NamedTuple):
    """Where one request goes: its route and the target sent to the backend."""

    route: ProxyRoute
    target: str  # origin form: /path?query

    @property
    def url(self) -> str:
        """The backend URL without the query (for the log)."""
        return self.route.origin + self.target.partition("?")[0]


class Routes:
    """The configured routes; `forward` says where a request target goes."""

    def __init__(self, routes: Sequence[ProxyRoute], reserved: str | None = None) -> None:
        # Longest prefix first: the most specific route wins.
        self.routes = tuple(sorted(routes, key=lambda r: len(r.path_key), reverse=True))
        self._keys = tuple((route.path_key, route) for route in self.routes)
        # What a matching target starts with (before normalization): a quick test.
        self._starts = tuple(key or "/" for key, _ in self._keys)
        self._reserved = reserved  # live reload's own folder, which no route takes

    def claims(self, target: str) -> bool:
        """Whether ``target`` is forwarded (asked for every request the site may answer).

        A target that starts with no prefix is settled by one prefix test unless
        normalizing could change it (an escape, or a dot segment).
        """
        if target.startswith(self._starts) or "%" in target or "/." in target:
            try:
                return self.forward(target) is not None
            except BadTarget:
                return True  # the route's to refuse, never the folder's to serve
        return False

    def forward(self, target: str) -> Forward | None:
        """Where a request for ``target`` goes, or None if no route takes it.

        Raises BadTarget for a target a route takes whose path `hides_dot_segment`.
        """
        if not target.startswith("/"):
            return None  # absolute form, "*", HTTP/0.9 oddities: never forwarded
        raw_path, sep, query = target.partition("?")
        path = normalize_path(raw_path)
        reserved = self._reserved
        if reserved is not None and (path + "/").startswith(reserved):
            return None
        for key, route in self._keys:
            if path.startswith(key) and (len(path) == len(key) or path[len(key)] == "/"):
                if hides_dot_segment(path):
                    raise BadTarget(f"dot segment in a forwarded path ({raw_path!r})")
                return Forward(route, upstream_path(route, path[len(key) :], path) + sep + query)
        return None


def upstream_path(route: ProxyRoute, rest: str, path: str) -> str:
    """The path sent to the backend for a request ``path`` that matched ``route``.

    ``rest`` is what follows the prefix ("" or starting with ``/``).
    """
    base = route.base
    if base is None:
        return path
    if not rest:
        return base
    return base.rstrip("/") + rest


# --------------------------------------------------------------------------- fields

# RFC 9110 7.6.1: meant for one connection, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)
_DROPPED_END_TO_END = HOP_BY_HOP | {"content-length"}
# Request fields devserve sets itself (the client's are replaced or extended).
_SET_BY_PROXY = frozenset(
    {"host", "content-length", "expect", "x-forwarded-host", "x-forwarded-proto"}
)
_EXTENDED_BY_PROXY = frozenset({"x-forwarded-for", "forwarded", "via"})
# Dropped from a page request under --reload, so the page comes whole and
# uncompressed and can take the script (README: "Live reload").
_VALIDATORS_AND_RANGES = frozenset(
    {"if-none-match", "if-modified-since", "if-range", "range", "accept-encoding"}
)
# Methods a request may be sent again for (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
VIA = "1.1 devserve"

Fields = list[tuple[str, str]]


def connection_options(fields: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The lower-cased names listed in the ``Connection`` fields."""
    return frozenset(
        token.strip().lower()
        for name, value in fields
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def end_to_end(fields: Iterable[tuple[str, str]]) -> Fields:
    """``fields`` without hop-by-hop ones (RFC 9110 7.6.1) and without Content-Length."""
    # One pass for the names (this runs twice per proxied request, on every field).
    named = [(name.lower(), name, value) for name, value in fields]
    dropped = _DROPPED_END_TO_END
    options = [value for lower, _, value in named if lower == "connection"]
    if options:
        dropped = dropped | connection_options(("connection", value) for value in options)
    return [(name, value) for lower, name, value in named if lower not in dropped]


def wants_websocket(method: str, version: str, fields: Iterable[tuple[str, str]]) -> bool:
    """Whether a request asks to become a WebSocket (the only upgrade tunnelled)."""
    if method != "GET" or version != "HTTP/1.1":
        return False
    fields = list(fields)
    if "upgrade" not in connection_options(fields):
        return False
    return any(
        name.lower() == "upgrade" and value.strip().lower() == "websocket" for name, value in fields
    )


class Client(NamedTuple):
    """What devserve knows about the client a request came from."""

    address: str  # its IP address
    scheme: str  # how it reached devserve: http or https
    host: str | None  # its Host field, if any


def request_fields(
    fields: Sequence[tuple[str, str]],
    route: ProxyRoute,
    client: Client,
    *,
    keep_host: bool = False,
    length: int | None = None,
    chunked: bool = False,
    expect: bool = False,
    websocket: bool = False,
    page_reload: bool = False,
    own_credentials: bool = False,
) -> Fields:
    """The header fields sent to the backend for a request with ``fields``.

    ``length``/``chunked``: how devserve frames the body it sends. ``expect``:
    ask the backend for ``100 Continue``. ``websocket``: ask it to upgrade.
    ``page_reload``: a page request under --reload (sent without validators or
    ranges, asking for an uncompressed body). ``own_credentials``: the request's
    ``Authorization`` holds devserve's own password (--auth), which no backend gets.
    """
    host = client.host if keep_host and client.host else route.authority
    out: Fields = [("Host", host)]
    dropped = _SET_BY_PROXY | _VALIDATORS_AND_RANGES if page_reload else _SET_BY_PROXY
    if own_credentials:
        dropped = dropped | {"authorization"}
    # The client's X-Forwarded-For, Forwarded and Via values, extended below.
    extended: dict[str, list[str]] = {name: [] for name in _EXTENDED_BY_PROXY}
    for name, value in end_to_end(fields):
        lower = name.lower()
        if lower in extended:
            if value.strip():
                extended[lower].append(value.strip())
        elif lower not in dropped:
            out.append((name, value))
    if websocket:
        out += [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    if length is not None:
        out.append(("Content-Length", str(length)))
    elif chunked:
        out.append(("Transfer-Encoding", "chunked"))
    if expect:
        out.append(("Expect", "100-continue"))
    if page_reload:
        out.append(("Accept-Encoding", "identity"))
    address = client_address(client.address)
    out.append(("X-Forwarded-For", ", ".join([*extended["x-forwarded-for"], address])))
    out.append(("X-Forwarded-Proto", client.scheme))
    if client.host:
        out.append(("X-Forwarded-Host", client.host))
    element = forwarded_element(address, client.host, client.scheme)
    out.append(("Forwarded", ", ".join([*extended["forwarded"], element])))
    out.append(("Via", ", ".join([*extended["via"], VIA])))
    return out


def _joined(fields: Fields, name: str, last: str) -> str:
    """The values of the fields ``name``, with ``last`` added at the end of the list."""
    values = [value.strip() for field, value in fields if field.lower() == name and value.strip()]
    return ", ".join([*values, last])


def client_address(address: str) -> str:
    """The client's address as the backend is told it (IPv4-mapped IPv6 as IPv4)."""
    if ":" not in address:
        return address  # IPv4, as the socket gives it: already canonical
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def forwarded_element(address: str, host: str | None, proto: str) -> str:
    """One RFC 7239 ``Forwarded`` element: ``for=192.0.2.1;host=...;proto=http``.

    An IPv6 address is bracketed and quoted (``for="[2001:db8::1]"``); other
    values are quoted when they are not tokens (``host="localhost:8000"``).
    """
    node = f"[{address}]" if ":" in address else address
    pairs = [f"for={_forwarded_value(node)}"]
    if host:
        pairs.append(f"host={_forwarded_value(host)}")
    pairs.append(f"proto={_forwarded_value(proto)}")
    return ";".join(pairs)


def _forwarded_value(value: str) -> str:
    if _TOKEN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def response_fields(fields: Iterable[tuple[str, str]], forward: Forward) -> Fields:
    """The backend's header fields as relayed to the client: end-to-end ones only,
    with a ``Location`` pointing at the backend rewritten to the path that reaches it."""
    out = end_to_end(fields)
    for index, (name, value) in enumerate(out):
        if name.lower() == "location":
            out[index] = (name, public_location(value, forward.route))
    via = [(name, value) for name, value in out if name.lower() == "via"]
    if via:
        out = [(name, value) for name, value in out if name.lower() != "via"]
    out.append(("Via", _joined(via, "via", VIA)))
    return out


def public_location(location: str, route: ProxyRoute) -> str:
    """A ``Location`` as the client should follow it.

    An absolute URL to the route's backend whose path the route forwards to
    becomes the path under the prefix that reaches it
    (``http://127.0.0.1:5000/v1/login`` → ``/api/login`` for
    ``/api=http://127.0.0.1:5000/v1``); anything else is left as it is.
    """
    try:
        parts = urllib.parse.urlsplit(location.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return location
    same_backend = (
        parts.scheme.lower() == route.scheme and parts.hostname == route.host and port == route.port
    )
    if not same_backend or "@" in parts.netloc:
        return location
    path = parts.path or "/"
    if route.base is None:
        key = route.path_key
        public = path if _below(path, key) else None
    else:
        base = route.base.rstrip("/")
        public = (route.path_key + path[len(base) :] or "/") if _below(path, base) else None
    if public is None:
        return location
    return urllib.parse.urlunsplit(("", "", public, parts.query, parts.fragment))


def _below(path: str, key: str) -> bool:
    return path.startswith(key) and (len(path) == len(key) or path[len(key)] == "/")


def refused_request(fields: Sequence[tuple[str, str]], folded: bool) -> tuple[int, str] | None:
    """Why a request that `devserve._protocol` accepted is still not forwarded, or None.

    A proxy passes a message on to a parser it does not know, so anything two
    parsers could read differently is refused (status, reason): a header line
    folded onto the one before (RFC 9112 5.2), ``Content-Length`` together with
    ``Transfer-Encoding`` (RFC 9112 6.1: a smuggling attempt), and a transfer
    coding other than ``chunked`` alone (devserve could not re-frame it).
    """
    if folded:
        return 400, "Folded header line (obs-fold)"
    names = {name.lower() for name, _ in fields}
    if "transfer-encoding" not in names:
        return None
    if "content-length" in names:
        return 400, "Content-Length with Transfer-Encoding"
    codings = [
        item.strip().lower()
        for name, value in fields
        if name.lower() == "transfer-encoding"
        for item in value.split(",")
    ]
    if codings != ["chunked"]:
        return 501, "Transfer-Encoding other than chunked"
    return None


def expects_continue(fields: Iterable[tuple[str, str]]) -> bool:
    """Whether the client waits for ``100 Continue`` before sending its body."""
    return any(
        name.lower() == "expect" and value.strip().lower() == "100-continue"
        for name, value in fields
    )
