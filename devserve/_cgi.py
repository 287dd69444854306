"""CGI/1.1 (RFC 3875) rules as data: where a script is, its environment, its reply.

No process is started here; `server.CGIHTTPRequestHandler.run_cgi` does that.

Invariants:
- `cgi_environment` never takes a gateway variable from a request header: request
  headers only ever become ``HTTP_*`` names, ``Proxy`` never becomes ``HTTP_PROXY``
  (the "httpoxy" hole), and names that are not plain tokens are dropped.
- `locate_script` decodes the request path exactly once and collapses ``..``
  before looking for the CGI directory; its results go back to the filesystem
  only through `url_for_decoded`, so nothing is decoded twice and a script
  outside the CGI directory is never named.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import posixpath
import pwd
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import IO

from devserve._protocol import chunked_body


def collapse_url_path(path: str) -> str:
    """The URL path decoded once, ``.``/``..`` collapsed inside ``/``, then ``?query``.

    This is the documented handler's view used for ``cgi_info``; the query is cut
    off *before* decoding, so an encoded ``%3F`` stays part of the path.
    """
    raw_path, sep, query = path.partition("?")
    return _collapse(urllib.parse.unquote(raw_path)) + sep + query


def _collapse(decoded: str) -> str:
    """Collapse ``.`` and ``..`` in an already decoded path; ``..`` never climbs above ``/``."""
    parts: list[str] = []
    pieces = decoded.split("/")
    for piece in pieces[:-1]:
        if piece == "..":
            if parts:
                parts.pop()
        elif piece and piece != ".":
            parts.append(piece)
    tail = pieces[-1] if pieces else ""
    if tail == "..":
        if parts:
            parts.pop()
        tail = ""
    elif tail == ".":
        tail = ""
    return "/" + "/".join([*parts, tail])


def find_cgi_directory(collapsed: str, cgi_directories: list[str]) -> tuple[str, str] | None:
    """Split a collapsed path into (CGI directory, rest) when it lies in one."""
    sep = collapsed.find("/", 1)
    while sep > 0:
        if collapsed[:sep] in cgi_directories:
            return collapsed[:sep], collapsed[sep + 1 :]
        sep = collapsed.find("/", sep + 1)
    return None


@dataclass(frozen=True)
class ScriptLocation:
    """Where a request leads inside a CGI directory.

    The two paths are decoded exactly once; map them to files with
    `url_for_decoded`, never by decoding them again.
    """

    script_name: str  # URL path of the script, e.g. /cgi-bin/app.py
    path_info: str  # what follows the script name
    query: str  # as sent, still encoded (RFC 3875 4.1.7)


def locate_script(
    request_path: str, directory: str, is_dir: Callable[[str], bool]
) -> ScriptLocation | None:
    """Find the script a request names below the CGI ``directory``.

    Descends while the next component is a directory (``is_dir`` answers for a
    decoded URL path). Returns None when the collapsed path is not below
    ``directory`` (it always is for a path `find_cgi_directory` accepted).
    """
    raw_path, _, query = request_path.partition("?")
    collapsed = _collapse(urllib.parse.unquote(raw_path))
    if not collapsed.startswith(directory + "/"):
        return None
    rest = collapsed[len(directory) + 1 :]
    while True:
        head, slash, tail = rest.partition("/")
        if slash and head and is_dir(f"{directory}/{head}"):
            directory, rest = f"{directory}/{head}", tail
        else:
            break
    script, slash, after = rest.partition("/")
    return ScriptLocation(f"{directory}/{script}", slash + after, query)


def url_for_decoded(decoded_path: str) -> str:
    """Re-encode a decoded URL path so a documented ``translate_path`` decodes it back.

    Without this a literal ``%2e%2e`` (sent as ``%252e%252e``) would be decoded a
    second time into ``..``.
    """
    return urllib.parse.quote(decoded_path, safe="/")


# Request headers that are given to the script under their own meta-variable names.
_NOT_HTTP_VARS = frozenset({"content-type", "content-length", "authorization", "proxy"})
# Header names with "_" are dropped: "X_User" and "X-User" would both be HTTP_X_USER.
_TOKEN = re.compile(r"[!#$%&'*+.^`|~0-9A-Za-z-]+\Z")


@dataclass
class RequestFacts:
    """What the gateway knows about a request, as plain data."""

    method: str
    protocol: str
    script_name: str
    path_info: str
    path_translated: str
    query: str
    remote_addr: str
    server_name: str
    server_port: int
    server_software: str
    headers: Message
    https: bool = False
    content_length: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # (AUTH_TYPE, REMOTE_USER) the server stands behind; None: no user is named.
    # RFC 3875 4.1.11: REMOTE_USER is for a request the server authenticated.
    auth: tuple[str, str | None] | None = None
    # Hand the Authorization field to the script as HTTP_AUTHORIZATION (unverified).
    pass_authorization: bool = False


def cgi_environment(facts: RequestFacts, base: Mapping[str, str]) -> dict[str, str]:
    """The script's environment: ``base``, the request headers as HTTP_*, then RFC 3875."""
    # The server's own HTTP_* variables would pass for request headers; only its
    # proxy setting is configuration the script may need.
    env = {k: v for k, v in base.items() if not k.startswith("HTTP_") or k == "HTTP_PROXY"}
    joined: dict[str, list[str]] = {}
    for name, value in facts.headers.items():
        if name.lower() in _NOT_HTTP_VARS or not _TOKEN.match(name):
            continue
        joined.setdefault("HTTP_" + name.upper().replace("-", "_"), []).append(value)
    for key, values in joined.items():
        env[key] = ("; " if key == "HTTP_COOKIE" else ", ").join(values)
    # As the documented gateway has since Python 3.11.7: always set, every Accept
    # field joined by "," with no space.
    env["HTTP_ACCEPT"] = ",".join(facts.headers.get_all("accept", ()))
    env.update(
        GATEWAY_INTERFACE="CGI/1.1",
        SERVER_SOFTWARE=facts.server_software,
        SERVER_NAME=facts.server_name,
        SERVER_PORT=str(facts.server_port),
        SERVER_PROTOCOL=facts.protocol,
        REQUEST_METHOD=facts.method,
        SCRIPT_NAME=facts.script_name,
        PATH_INFO=facts.path_info,
        PATH_TRANSLATED=facts.path_translated,
        QUERY_STRING=facts.query,
        REMOTE_ADDR=facts.remote_addr,
        REMOTE_HOST="",
        CONTENT_TYPE=facts.headers.get("content-type") or "",
        CONTENT_LENGTH="" if facts.content_length is None else str(facts.content_length),
    )
    for name in ("AUTH_TYPE", "REMOTE_USER", "HTTPS", "HTTP_AUTHORIZATION"):
        env.pop(name, None)
    if facts.auth is not None:
        auth_type, user = facts.auth
        if auth_type:
            env["AUTH_TYPE"] = auth_type
        if user is not None:
            env["REMOTE_USER"] = user
    authorization = facts.headers.get("authorization")
    if facts.pass_authorization and authorization is not None:
        env["HTTP_AUTHORIZATION"] = authorization
    if facts.https:
        env["HTTPS"] = "on"
    env.update(facts.extra)
    return env


def basic_auth_user(authorization: str | None) -> tuple[str, str | None]:
    """(AUTH_TYPE, REMOTE_USER) from an Authorization header; the user only for Basic."""
    if not authorization:
        return "", None
    words = authorization.split()
    if len(words) != 2:
        return "", None
    scheme, credentials = words
    if scheme.lower() != "basic":
        return scheme, None
    try:
        decoded = base64.b64decode(credentials.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return scheme, None
    user, sep, _ = decoded.partition(":")
    return scheme, user if sep else None


class ScriptReplyError(Exception):
    """A script's reply the gateway cannot turn into a response (502)."""


@dataclass
class ScriptReply:
    """The parsed header block of a script's output (RFC 3875 section 6)."""

    status: int
    reason: str | None
    headers: list[tuple[str, str]]
    location: str | None = None
    explicit_status: bool = False

    @property
    def is_local_redirect(self) -> bool:
        """A ``Location: /path`` alone: the server serves that path itself (6.2.2)."""
        location = self.location
        return (
            location is not None
            and location.startswith("/")
            and not location.startswith("//")
            and not self.explicit_status
            and len(self.headers) == 1
        )

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def parse_script_headers(block: bytes) -> ScriptReply:
    """Parse a script's header block (without the blank line) into a reply.

    ``Status:`` sets the status; ``Location:`` alone means a redirect (302 unless
    Status says otherwise); otherwise ``Content-Type`` is required.
    Raises ScriptReplyError for anything else.
    """
    headers: list[tuple[str, str]] = []
    status: int | None = None
    reason: str | None = None
    location: str | None = None
    text = block.decode("iso-8859-1")
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _HEADER_NAME.match(name) or "\r" in value or "\x00" in value:
            raise ScriptReplyError(f"malformed header line from script: {line[:200]!r}")
        value = value.strip(" \t")
        lower = name.lower()
        if lower == "status":
            code, _, phrase = value.partition(" ")
            if not (code.isdigit() and len(code) == 3 and 100 <= int(code) <= 599):
                raise ScriptReplyError(f"bad Status from script: {value[:200]!r}")
            status, reason = int(code), phrase.strip() or None
        elif lower == "location":
            location = value
            headers.append((name, value))
        else:
            headers.append((name, value))
    explicit = status is not None
    has_type = any(k.lower() == "content-type" for k, _ in headers)
    if location is not None and status is None:
        status = HTTPStatus.FOUND
    if status is None:
        if not has_type:
            raise ScriptReplyError("script output has no Content-Type, Location or Status")
        status = HTTPStatus.OK
    return ScriptReply(status, reason, headers, location, explicit)


def is_python_script(path: str) -> bool:
    """Whether a script is Python by its suffix (the documented ``is_python`` rule)."""
    return posixpath.splitext(path)[1].lower() in (".py", ".pyw")


def is_executable(path: str) -> bool:
    """Whether ``path`` has any execute bit set (the documented ``is_executable`` rule)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & 0o111)


@functools.cache
def nobody_uid() -> int:
    """The uid of the user ``nobody``, or 1 + the largest uid when there is none."""
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 1 + max(entry.pw_uid for entry in pwd.getpwall())


@functools.cache
def nobody_gid() -> int:
    """The primary group of ``nobody`` (nogroup on Debian), never root's."""
    try:
        gid = pwd.getpwnam("nobody").pw_gid
    except KeyError:
        gid = 65534
    return gid if gid != 0 else 65534


def shebang(path: str) -> str | None:
    """The interpreter line of a script (``#!`` stripped), for error messages."""
    try:
        with open(path, "rb") as script:
            first = script.readline(1024)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    return first[2:].strip().decode("utf-8", "replace")


def dechunk(source: IO[bytes], sink: IO[bytes], limit: int | None) -> int:
    """Copy a chunked request body (RFC 9112 7.1) from ``source`` to ``sink``.

    Returns the de-chunked length. Raises ValueError for malformed framing and
    BodyTooLarge past ``limit``; trailers are read and dropped (the rule is
    `devserve._protocol.chunked_body`'s).
    """
    total = 0
    for piece in chunked_body(source.readline, source.read, limit):
        sink.write(piece)
        total += len(piece)
    return total
