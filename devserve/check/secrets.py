"""Secrets in the text of a served file, by their well-known formats (DS103, DS107-DS109).

`find_secrets` looks at the bytes of one file for access keys and tokens whose
format says what they are (AWS, GitHub, GitLab, Slack, Stripe, Google), PEM
private keys, and, in config files and backup copies only (``config_like``),
password assignments (``db_password = ...``). `scan_text` skips binary files,
`scannable` the content types that cannot hold text; `mask` is the only way a
found secret is shown. Nothing here reads a file (`exposure` does).

Placeholders: documentation examples are not secrets. A match that holds
``EXAMPLE`` (any case; AWS's own ``AKIAIOSFODNN7EXAMPLE``) or a run of eight
identical characters (``AKIAXXXXXXXXXXXXXXXX``) is not reported; nor is a
password value that is empty, a boolean or null, all one character
(``****``), a reference (``${DB_PASSWORD}``, ``%(pw)s``, ``{{ pw }}``,
``<password>``), or that holds ``example``, ``placeholder`` or starts with
``your``.

Invariants:
- A secret is never returned in full: `Secret.what` shows the format's fixed
  prefix and the last four characters of a token, no character of a password.
- At most `SCAN_LIMIT` bytes of a file are scanned; a file with a NUL byte in
  its first 8 KiB is binary and not scanned (vim swap files excepted: their
  text is NUL-separated), nor is one whose content type is an image, audio,
  video, font or archive.
- Every pattern is compiled once, at import, and starts with a literal (the
  character before a token is checked after it): CPython's ``re`` searches a
  literal prefix at GB/s, but tries an alternation, a case-insensitive name or
  a leading look-behind at every position, at tens of MB/s. So each format is
  one pattern and one fast pass (over the stdlib's 218 MB of text: 0.08 s for
  each such pattern, 1.7 s for one alternation of them all).
"""

from __future__ import annotations

import re
from typing import NamedTuple

SCAN_LIMIT = 256 * 1024
_SNIFF = 8 * 1024  # a NUL byte in this much of a file makes it binary
_PLACEHOLDER_RUN = re.compile(rb"(.)\1{7}")  # eight identical characters in a row


class Format(NamedTuple):
    """One kind of secret: its code, what it is called, and how it is found and shown."""

    code: str
    label: str
    pattern: re.Pattern[bytes]
    # How many leading characters of a match are the format's fixed prefix, safe
    # to show; None: the match is only an armour line, shown whole.
    shown: int | None
    # The secret is the match's last ``value`` characters (after a key name).
    value: int | None = None


def _token(prefix: bytes, body: bytes, word: bytes = rb"A-Za-z0-9_") -> re.Pattern[bytes]:
    """A token: ``prefix`` (fixed width), then ``body``, not part of a longer ``word``.

    The pattern starts with the prefix and looks at the character before it
    afterwards: a pattern that starts with a literal is searched at memchr
    speed, one that starts with a look-behind is tried at every position.
    """
    return re.compile(prefix + rb"(?<![%s]%s)%s(?![%s])" % (word, prefix, body, word))


# An AWS secret access key assigned to a name that says so (JSON, ini, JS, env).
_AWS_SECRET_VALUE = rb"[\"']?[ \t]*(?:=>|=|:)[ \t]*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"

FORMATS: tuple[Format, ...] = (
    Format("DS107", "AWS access key id",
           _token(rb"A[KS]IA", rb"[A-Z2-7]{16}", rb"A-Za-z0-9"), 4),
    # aws_secret_access_key, secret_access_key, secretAccessKey, aws_secret_key ...
    Format("DS107", "AWS secret access key",
           re.compile(rb"ecret(?:(?<=[Ss]ecret)_?[Aa]ccess_?[Kk]ey|(?<=aws_secret)_key)"
                      + _AWS_SECRET_VALUE), 0, value=40),
    Format("DS107", "AWS secret access key",
           re.compile(rb"ECRET(?:_ACCESS_KEY|(?<=AWS_SECRET)_KEY)" + _AWS_SECRET_VALUE),
           0, value=40),
    Format("DS107", "GitHub token", _token(rb"gh[pousr]_", rb"[A-Za-z0-9]{36}"), 4),
    Format("DS107", "GitHub token", _token(rb"github_pat_", rb"[A-Za-z0-9_]{82}"), 11),
    Format("DS107", "GitLab token",
           _token(rb"glpat-", rb"[A-Za-z0-9_-]{20,}", rb"A-Za-z0-9_-"), 6),
    Format("DS107", "Slack token", _token(rb"xox[abprs]-", rb"[0-9]+-[A-Za-z0-9-]{8,}"), 5),
    Format("DS107", "Stripe live secret key", _token(rb"sk_live_", rb"[A-Za-z0-9]{24,}"), 8),
    Format("DS107", "Stripe live secret key", _token(rb"rk_live_", rb"[A-Za-z0-9]{24,}"), 8),
    Format("DS109", "Google API key",
           _token(rb"AIza", rb"[A-Za-z0-9_-]{35}", rb"A-Za-z0-9_-"), 4),
    # The armour, then a body: base64 after optional headers (real or \n-escaped
    # line breaks, as in JSON), so prose that names the armour is not a key.
    Format("DS103", "private key",
           re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
                      rb"(?=(?:\\[rn]|\s)+(?:[A-Za-z-]+:[^\r\n]*(?:\\[rn]|\s)+)*"
                      rb"[A-Za-z0-9+/]{16})"), None),
)  # fmt: skip

# A password (or other secret) assigned in a config file: the key name ends with
# one of these words, then = or : (or, quoted, a comma: PHP's define('DB_PASSWORD', ...)).
_PASSWORD = re.compile(
    rb"(?<![A-Za-z0-9_.-])(?P<key>(?:[A-Za-z0-9_.-]*[_.-])?"
    rb"(?i:password|passwd|pass|secret|secret[_-]?key|api[_-]?key|access[_-]?key|token))"
    rb"(?:[\"'][ \t]*(?:=>|=|:|,)|[ \t]*(?:=>|=|:))[ \t]*"
    rb"(?:\"(?P<double>[^\"\r\n\x00]*)\"|'(?P<single>[^'\r\n\x00]*)'|(?P<bare>[^\s\"'#;,\x00]+))"
)
_NOT_PASSWORDS = frozenset(
    {b"", b"true", b"false", b"yes", b"no", b"on", b"off", b"none", b"null", b"nil"}
)
_REFERENCE_STARTS = (b"$", b"%(", b"{{", b"{%", b"<", b"@", b"env(", b"env[", b"os.environ")
_PLACEHOLDER_WORDS = (b"example", b"placeholder")

_SKIPPED_TYPES = ("image/", "audio/", "video/", "font/")
_ARCHIVE_TYPES = frozenset(
    {"application/wasm", "application/pdf", "application/zip", "application/gzip",
     "application/x-gzip", "application/x-tar", "application/x-bzip2", "application/x-xz",
     "application/x-7z-compressed", "application/vnd.rar", "application/x-rar-compressed",
     "application/java-archive", "application/vnd.ms-fontobject", "application/font-woff",
     "application/x-font-ttf", "application/x-font-otf", "application/x-font-woff"}
)  # fmt: skip
SWAP_SUFFIXES = (".swp", ".swo")


class Secret(NamedTuple):
    """A secret found in a file: its code, what it is (masked), and its line (from 1)."""

    code: str
    what: str
    line: int


def mask(token: str, shown: int) -> str:
    """``token`` with only its first ``shown`` characters (a format's fixed prefix) and,
    when at least 16 others remain, its last four: ``AKIA…WXYZ``."""
    hidden = len(token) - shown
    return token[:shown] + "…" + (token[-4:] if hidden >= 16 else "")


def is_placeholder(token: bytes) -> bool:
    """Whether a token is a documentation placeholder (see the module docstring)."""
    return b"EXAMPLE" in token.upper() or _PLACEHOLDER_RUN.search(token) is not None


def _is_password_value(value: bytes) -> bool:
    lower = value.lower()
    if lower in _NOT_PASSWORDS or len(set(value)) == 1:
        return False
    if lower.startswith(_REFERENCE_STARTS) or lower.startswith(b"your"):
        return False
    return not any(word in lower for word in _PLACEHOLDER_WORDS)


def find_secrets(data: bytes, config_like: bool) -> list[Secret]:
    """Every secret in ``data``, in order; password assignments only if ``config_like``."""
    found: list[tuple[int, Secret]] = []
    spans: list[tuple[int, int]] = []  # where tokens were found
    for form in FORMATS:
        for match in form.pattern.finditer(data):
            token = match.group()
            if form.value is not None:
                token = token[-form.value :]
            if is_placeholder(token):
                continue
            text = token.decode("ascii")
            shown = f"({text})" if form.shown is None else mask(text, form.shown)
            what = f"{form.label} {shown}"
            found.append((match.start(), Secret(form.code, what, 0)))
            spans.append(match.span())
    if config_like:
        for match in _PASSWORD.finditer(data):
            value = match.group("double") or match.group("single") or match.group("bare") or b""
            # aws_secret_access_key = ... is reported once, as the token it is.
            overlaps = any(start < match.end() and match.start() < end for start, end in spans)
            if not overlaps and _is_password_value(value):
                key = match.group("key").decode("ascii")
                found.append((match.start(), Secret("DS108", f"password ({key} = …)", 0)))
    found.sort(key=lambda item: item[0])
    secrets = []
    line, counted = 1, 0
    for start, found_secret in found:
        line += data.count(b"\n", counted, start)
        counted = start
        secrets.append(found_secret._replace(line=line))
    return secrets


def scannable(content_type: str) -> bool:
    """Whether files served with ``content_type`` may hold text (images, fonts... do not)."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence == "image/svg+xml":
        return True
    return not essence.startswith(_SKIPPED_TYPES) and essence not in _ARCHIVE_TYPES


def scan_text(data: bytes, name: str, config_like: bool) -> list[Secret]:
    """The secrets in the start of a served file named ``name`` (none when it is binary)."""
    if b"\x00" in data[:_SNIFF] and not name.lower().endswith(SWAP_SUFFIXES):
        return []
    return find_secrets(data[:SCAN_LIMIT], config_like)
