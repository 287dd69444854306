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
- Every pattern is compiled once, at import. The tokens are one alternation,
  run only on files holding one of the formats' fixed strings (`_MARKERS`):
  CPython's ``re`` searches a literal at gigabytes per second, an alternation
  at tens of megabytes (bench/check_tree.py).
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
    # Fixed strings one of which every match holds: a file with none is skipped.
    markers: tuple[bytes, ...]
    pattern: bytes
    # How many leading characters of a match are the format's fixed prefix, safe
    # to show; None: the match is only an armour line, shown whole.
    shown: int | None
    # The secret is the match's last ``value`` characters (after a key name).
    value: int | None = None


_BEFORE = rb"(?<![A-Za-z0-9_])"  # not the tail of a longer word
_AFTER = rb"(?![A-Za-z0-9_])"

FORMATS: tuple[Format, ...] = (
    Format("DS107", "AWS access key id", (b"AKIA", b"ASIA"),
           rb"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Za-z0-9])", 4),
    Format("DS107", "AWS secret access key", (b"ecret", b"ECRET"),
           rb"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?[ \t]*(?:=>|=|:)"
           rb"[ \t]*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", 0, value=40),
    Format("DS107", "GitHub token", (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
           _BEFORE + rb"gh[pousr]_[A-Za-z0-9]{36}" + _AFTER, 4),
    Format("DS107", "GitHub token", (b"github_pat_",),
           _BEFORE + rb"github_pat_[A-Za-z0-9_]{82}" + _AFTER, 11),
    Format("DS107", "GitLab token", (b"glpat-",),
           rb"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}", 6),
    Format("DS107", "Slack token", (b"xox",),
           rb"(?<![A-Za-z0-9])xox[abprs]-[0-9]+-[A-Za-z0-9-]{8,}", 5),
    Format("DS107", "Stripe live secret key", (b"k_live_",),
           _BEFORE + rb"[rs]k_live_[A-Za-z0-9]{24,}" + _AFTER, 8),
    Format("DS109", "Google API key", (b"AIza",),
           rb"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])", 4),
    # The armour, then a body: base64 after optional headers (real or \n-escaped
    # line breaks, as in JSON), so prose that names the armour is not a key.
    Format("DS103", "private key", (b"PRIVATE KEY",),
           rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
           rb"(?=(?:\\[rn]|\s)+(?:[A-Za-z-]+:[^\r\n]*(?:\\[rn]|\s)+)*[A-Za-z0-9+/]{16})", None),
)  # fmt: skip
_TOKENS = re.compile(b"|".join(b"(?P<f%d>%s)" % (i, f.pattern) for i, f in enumerate(FORMATS)))
_MARKERS = tuple(dict.fromkeys(marker for f in FORMATS for marker in f.markers))

# A password (or other secret) assigned in a config file: the key name ends with
# one of these words, then = or : (or, quoted, a comma: PHP's define('DB_PASSWORD', ...)).
_PASSWORD = re.compile(
    rb"(?<![A-Za-z0-9_.-])(?P<key>(?:[A-Za-z0-9_.-]*[_.-])?"
    rb"(?i:password|passwd|pass|secret|secret[_-]?key|api[_-]?key|access[_-]?key|token))"
    rb"(?:[\"'][ \t]*(?:=>|=|:|,)|[ \t]*(?:=|:))[ \t]*"
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
    if any(marker in data for marker in _MARKERS):
        for match in _TOKENS.finditer(data):
            form = FORMATS[int((match.lastgroup or "f0")[1:])]  # the only named group
            token = match.group()
            if form.value is not None:
                token = token[-form.value :]
            if is_placeholder(token):
                continue
            text = token.decode("ascii")
            what = f"{form.label} ({text})" if form.shown is None else mask(text, form.shown)
            if form.shown is not None:
                what = f"{form.label} {what}"
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
