"""HTTP Basic authentication for ``--auth`` (RFC 7617): who may be served, from one field.

`Gate.admit` is the one rule. The event loop asks it through `Site.respond` (every
static reply, the live-reload worker included); devserve's threaded handler asks
it for every request it reads, before any ``do_*`` method runs (CGI, the
live-reload event stream, other methods), and names the user it admitted to CGI
scripts as ``REMOTE_USER``.

Invariants:
- The decision depends only on the request's method, its ``Authorization`` and
  ``Access-Control-Request-Method`` fields, and users fixed when the server
  starts: the same request head always gets the same answer. The event loop's
  remembered replies rely on this (a reply remembered for a head was admitted,
  and only that exact head recalls it).
- Every configured user is compared, name and password, through SHA-256 digests
  with `hmac.compare_digest`: no early exit on the name or on the first match,
  and no length is revealed.
- Only admitted fields are remembered (at most `MAX_KNOWN`): a wrong guess costs
  the full comparison every time and grows no table. A remembered field is found
  by the dict's hash, keyed per process, so a lookup tells a client nothing
  about fields it has not sent itself.
- A request admitted without credentials (a CORS preflight, with ``--cors``) is
  `PREFLIGHT_ONLY`: devserve answers it itself, with its own preflight reply,
  and nothing else does: it is never relayed to a ``--proxy`` backend, never run
  as a CGI script, never served a file (`devserve._handler_dev.DevHandler._dispatch`).
- No password, and nothing of a refused field, is ever in a message, a log
  note, a repr or an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from devserve._net import reaches_other_machines
from devserve.config import BadInput

# What the 401 asks for: the realm, and UTF-8 for names and passwords (RFC 7617 2.1).
CHALLENGE = 'Basic realm="devserve", charset="UTF-8"'
# The variable `devserve serve` reads ``USER:PASSWORD`` from (not seen in ps or history).
AUTH_VARIABLE = "DEVSERVE_AUTH"
# Admitted Authorization fields remembered, each to its user.
MAX_KNOWN = 64
# A longer Authorization field is refused unread (a name and password of 4 KiB fit).
MAX_FIELD = 8 * 1024

# htpasswd hash formats (bcrypt, APR1-MD5, SHA-1, crypt's SHA-2 and MD5): a line
# holding one is refused rather than taken as a password nobody would type.
_HTPASSWD_HASH = re.compile(
    r"\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}"
    r"|\$apr1\$[^$]{0,8}\$[./0-9A-Za-z]{22}"
    r"|\{SHA\}[A-Za-z0-9+/]{27}="
    r"|\$[156]\$(?:rounds=\d+\$)?[^$]{0,16}\$[./0-9A-Za-z]{22,86}",
    re.ASCII,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class User:
    """One user ``--auth`` lets in: a name and a password (never shown: not in the repr)."""

    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        problem = user_problem(self.name, self.password)
        if problem is not None:
            raise BadInput(f"--auth: {problem}")


def user_problem(name: str, password: str) -> str | None:
    """Why (``name``, ``password``) cannot be a user, in words that show neither; None if fine."""
    if not name:
        return "the user name is empty (expected USER:PASSWORD)"
    if ":" in name:
        return "a user name cannot hold a colon (RFC 7617)"
    if not password:
        return "the password is empty (expected USER:PASSWORD)"
    if _CONTROL.search(name) or _CONTROL.search(password):
        return "control characters in the user name or password"
    try:
        (name + password).encode("utf-8")
    except UnicodeEncodeError:
        return "the user name or password is not UTF-8"
    if _HTPASSWD_HASH.fullmatch(password):
        return (
            "the password is an htpasswd hash; devserve needs the password itself "
            "(keep the file private: chmod 600)"
        )
    return None


def parse_user(text: str, option: str = "--auth") -> User:
    """``USER:PASSWORD`` (split at the first colon) as a User; BadInput never shows ``text``."""
    name, colon, password = text.partition(":")
    if not colon:
        raise BadInput(f"{option}: expected USER:PASSWORD (a user name, a colon, the password)")
    problem = user_problem(name, password)
    if problem is not None:
        raise BadInput(f"{option}: {problem}")
    return User(name, password)


def read_users(path: Path) -> tuple[User, ...]:
    """The users of an ``--auth-file``: ``user:password`` lines, UTF-8.

    Blank lines and lines starting with ``#`` are skipped; a line's end (LF or
    CRLF) is not part of the password, but every other character is. BadInput
    (naming the file and line, never the line's text) for an unreadable file, a
    malformed line, a repeated user, an htpasswd hash, or no user at all.
    """
    where = f"--auth-file {path}"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(f"cannot read {where}: {error.strerror or error}") from None
    users: dict[str, User] = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip() or line.startswith(b"#"):
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{where} line {number}: not UTF-8") from None
        name, colon, password = text.partition(":")
        problem = "expected user:password" if not colon else user_problem(name, password)
        if problem is not None:
            raise BadInput(f"{where} line {number}: {problem}")
        if name in users:
            raise BadInput(f"{where} line {number}: user {name!r} is already on an earlier line")
        users[name] = User(name, password)
    if not users:
        raise BadInput(f"{where}: no user:password line")
    return tuple(users.values())


def users_from(auth: str | None, auth_file: Path | None) -> tuple[User, ...]:
    """The users ``--auth USER:PASSWORD`` (or its variable) or ``--auth-file`` names.

    BadInput if both are given, or for what `parse_user` and `read_users` refuse.
    """
    if auth is not None and auth_file is not None:
        raise BadInput(f"use either --auth (or {AUTH_VARIABLE}) or --auth-file, not both")
    if auth_file is not None:
        return read_users(auth_file)
    return (parse_user(auth),) if auth is not None else ()


# ------------------------------------------------------------------ the Authorization field


def basic_credentials(value: str) -> tuple[bytes, bytes] | None:
    """(user, password) as bytes from an ``Authorization: Basic`` value; None if malformed.

    The scheme is case-insensitive, one or more spaces follow it, and the token
    must be canonical base64 (padding included, nothing else) whose bytes hold a
    colon; the user is what precedes the first one. The bytes are compared as
    they are, so a name or password that is not UTF-8 simply matches nobody.
    """
    scheme, _, token = value.strip(" \t").partition(" ")
    if scheme.lower() != "basic":
        return None
    return _decoded(token)


def _decoded(token: str) -> tuple[bytes, bytes] | None:
    """(user, password) from a Basic token; None unless it is canonical base64 with a colon."""
    try:
        encoded = token.lstrip(" ").encode("ascii")
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if base64.b64encode(decoded) != encoded:
        return None  # not the one way to write these bytes (a stray bit, missing padding)
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


class Admission(NamedTuple):
    """What the gate decided: ``refused`` says why not (the log's note), ``user`` who, if known.

    ``preflight_only``: admitted only as a CORS preflight, without credentials;
    devserve's own preflight answer is the only one it may get.
    """

    user: str | None = None
    refused: str = ""
    preflight_only: bool = False


ADMITTED = Admission()
PREFLIGHT_ONLY = Admission(preflight_only=True)
NO_CREDENTIALS = Admission(refused="no credentials")
NOT_BASIC = Admission(refused="not Basic credentials")
MALFORMED = Admission(refused="malformed Basic credentials")
WRONG = Admission(refused="wrong user or password")


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Gate:
    """Admits a request that carries a configured user's name and password (see module doc).

    ``cors``: with ``--cors``, a CORS preflight (``OPTIONS`` with
    ``Access-Control-Request-Method``) is admitted without credentials, as browsers
    send it without them, but only to be answered by devserve itself
    (`PREFLIGHT_ONLY`).
    """

    def __init__(self, users: tuple[User, ...], cors: bool = False) -> None:
        if not users:
            raise ValueError("a gate needs at least one user")
        self._users = tuple(
            (_digest(u.name.encode()), _digest(u.password.encode()), u.name) for u in users
        )
        self.cors = cors
        self._known: dict[str, Admission] = {}

    def admit(
        self, method: str, authorization: str | None, preflight: str | None = None
    ) -> Admission:
        """Whether a request with these fields may be answered; ``preflight`` is its
        ``Access-Control-Request-Method`` field."""
        if authorization is None:
            if self.cors and method == "OPTIONS" and preflight is not None:
                return PREFLIGHT_ONLY
            return NO_CREDENTIALS
        known = self._known.get(authorization)
        if known is not None:
            return known
        if len(authorization) > MAX_FIELD:
            return MALFORMED
        scheme, _, token = authorization.strip(" \t").partition(" ")
        if scheme.lower() != "basic":
            return NOT_BASIC
        credentials = _decoded(token)
        if credentials is None:
            return MALFORMED
        user = self._match(*credentials)
        if user is None:
            return WRONG
        admission = Admission(user)
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()
        self._known[authorization] = admission
        return admission

    def _match(self, name: bytes, password: bytes) -> str | None:
        """The configured user with this name and password; every user is compared in full."""
        name_digest, password_digest = _digest(name), _digest(password)
        found = None
        for user_digest, secret_digest, user in self._users:
            same_name = hmac.compare_digest(name_digest, user_digest)
            same_password = hmac.compare_digest(password_digest, secret_digest)
            if same_name & same_password:
                found = user
        return found


def clear_text_warning(lan: bool, bind: str | None, tls: bool) -> str | None:
    """The start-up warning for ``--auth`` over plain HTTP to other machines (None: none due)."""
    if tls or not reaches_other_machines(lan, bind):
        return None
    return (
        "--auth without TLS: the password crosses the network in clear text "
        "(base64) for anyone on it to read; add --tls auto"
    )
