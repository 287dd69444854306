"""Exposure: served files and folders that look secret (DS1xx), and how to say why.

`secret_kind` judges a file by its name, and reads the start of the few kinds
whose name alone does not tell (keys, JSON, ``npmrc`` and the like); a backup
copy (``.bak``, ``.old``, ``.orig``, ``.save``, ``.swp``, ``~`` ...) is judged
by the name it copies too. `file_secrets` does that, and else looks inside the
served text file for keys and tokens by their format, and inside config files
and backup copies for passwords (`secrets`). `exposure` words the finding,
naming the serve flag that exposes it.

Invariants:
- Only files the walk found servable are judged; nothing here decides what the
  server serves (`server_model` does).
- At most the first 256 KiB of a file is read (1 MiB of JSON), once; a file
  that cannot be read is judged by its name alone.
- No finding shows a secret: tokens are masked (`secrets.mask`), passwords
  are never shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from devserve.check.rules import CODES
from devserve.check.secrets import SCAN_LIMIT, SWAP_SUFFIXES, Secret, scan_text, scannable

_ENV_TEMPLATES = (".example", ".sample", ".template", ".dist")
# "x.env.js" is a program that reads the environment, not an environment file.
_SOURCE_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx", ".map",
                    ".py", ".rb", ".html", ".htm", ".css", ".md", ".vue", ".svelte")  # fmt: skip
BACKUP_SUFFIXES = (".bak", ".backup", ".old", ".orig", ".save", "~", *SWAP_SUFFIXES)
# Config formats whose password assignments are looked for (as in backup copies).
_CONFIG_SUFFIXES = (".ini", ".cfg", ".conf", ".cnf", ".properties")
# Folders reported as a whole (DS102, DS106) rather than file by file.
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
CREDENTIAL_DIRS = frozenset({".ssh", ".gnupg", ".aws", ".docker"})
_CREDENTIAL_FILES = frozenset({".netrc", "_netrc", ".git-credentials", ".pypirc", ".pgpass"})
# Credential files known by their name without the dot (or .npmrc, which often
# holds only a registry URL): reported when they hold what the name promises.
_CREDENTIAL_CONTENTS = {
    "npmrc": ("npm token file", re.compile(rb"_auth(?:Token)?\s*=|_password\s*=")),
    "pypirc": ("PyPI credential file", re.compile(rb"(?im)^[ \t]*password[ \t]*[=:][ \t]*\S")),
    "netrc": ("credential file", re.compile(rb"(?<![A-Za-z0-9_])password[ \t\r\n]+\S")),
    "pgpass": ("PostgreSQL password file",
               re.compile(rb"(?m)^[^:#\s][^:\n]*:[^:\n]*:[^:\n]*:[^:\n]*:[^:\n]+")),
    "git-credentials": ("credential file", re.compile(rb"https?://[^:/\s@]+:[^@\s]+@")),
}  # fmt: skip
_KEY_NAME = re.compile(r"id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?:[._-].*)?\Z")
_KEY_SUFFIXES = (".pem", ".key", ".ppk")
_KEY_BUNDLES = (".p12", ".pfx")
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File-")
_JSON_SECRET = re.compile(
    rb'"(private_key|client_secret|aws_secret_access_key|secret_access_key|refresh_token)"'
    rb'\s*:\s*"(?:[^"\\]|\\.){8,}"'
)
_JSON_SCAN_LIMIT = 1 << 20  # only the start of a larger JSON file is looked at


def read_head(path: str, size: int = SCAN_LIMIT) -> bytes:
    """The first ``size`` bytes of a file; empty when it cannot be read.

    No more is asked for than the file holds: a read allocates what it asks
    for, and a 256 KiB buffer costs more than reading a small file.
    """
    try:
        with open(path, "rb") as file:
            length = os.fstat(file.fileno()).st_size
            return file.read(min(size, length) if length else size)
    except OSError:
        return b""


class FileHead:
    """The start of one file, read (at most `SCAN_LIMIT`, or as much as asked) once for
    every question asked of it: its secrets, its magic number."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = b""
        self.asked = 0

    def read(self, size: int) -> bytes:
        if size > self.asked:
            self.asked = max(size, SCAN_LIMIT)
            self.data = read_head(self.path, self.asked)
        return self.data[:size]


def original_name(lower: str) -> str:
    """The name a backup copy copies (``settings.ini.bak`` -> ``settings.ini``), else ``lower``."""
    while lower.endswith(BACKUP_SUFFIXES) and lower not in BACKUP_SUFFIXES:
        for suffix in BACKUP_SUFFIXES:
            if lower.endswith(suffix):
                lower = lower[: -len(suffix)]
                break
    return lower


def is_env_file(lower: str) -> bool:
    """``.env``, ``.env.*``, ``.envrc``, ``*.env`` and ``*.env.*`` (templates and programs not)."""
    if lower == ".envrc":
        return True
    if not (lower.endswith(".env") or ".env." in lower) or lower.endswith(_ENV_TEMPLATES):
        return False
    return lower.startswith(".env") or not lower.endswith(_SOURCE_SUFFIXES)


def secret_kind(name: str, parent: str, fs_path: str) -> tuple[str, str] | None:
    """(code, what) when a served file looks secret by its name, or the name it is a backup of.

    Reads the few files whose name alone does not tell.
    """
    return _by_name(name, parent, FileHead(fs_path))


def _by_name(name: str, parent: str, head: FileHead) -> tuple[str, str] | None:
    lower = name.lower()
    found = _kind_by_name(lower, parent, head)
    original = original_name(lower)
    if found is None and original != lower:
        found = _kind_by_name(original, parent, head)
        if found is not None:
            return found[0], f"backup copy of a {found[1]}"
    return found


def _kind_by_name(lower: str, parent: str, head: FileHead) -> tuple[str, str] | None:
    if is_env_file(lower):
        return "DS101", "environment file"
    if lower.startswith(".htpasswd"):
        return "DS104", "password file"
    if lower in _CREDENTIAL_FILES or (lower == "credentials" and parent == ".aws"):
        return "DS106", "credential file"
    named = _CREDENTIAL_CONTENTS.get(lower.removeprefix("."))
    if named is not None:
        what, holds = named
        return ("DS106", what) if holds.search(head.read(SCAN_LIMIT)) else None
    if lower.endswith(_KEY_BUNDLES):
        return "DS103", "key bundle"
    key_named = lower.endswith(_KEY_SUFFIXES) or (
        _KEY_NAME.match(lower) is not None and not lower.endswith(".pub")
    )
    if key_named and _PRIVATE_KEY.search(head.read(SCAN_LIMIT)):
        return "DS103", "private key"
    if lower.endswith(".json"):
        found = _JSON_SECRET.search(head.read(_JSON_SCAN_LIMIT))
        if found:
            return "DS105", f'JSON with "{found.group(1).decode()}"'
    return None


def file_secrets(
    head: FileHead, content_type: str, names: Sequence[tuple[str, str]]
) -> list[tuple[str, str, int | None]]:
    """(code, what, line) for a served file that looks secret; the file's start is read once.

    ``names``: (name, parent folder's name) of the file, then of its target when
    it is a link. A file secret by its name is one finding; else its text gives
    the first secret of each code (passwords only in config files and backup
    copies), with a count of the others.
    """
    for name, parent in names:
        named = _by_name(name, parent, head)
        if named is not None:
            return [(*named, None)]
    if not scannable(content_type):
        return []
    config_like = False
    for name, _ in names:
        lower = name.lower()
        original = original_name(lower)
        config_like = config_like or original != lower or original.endswith(_CONFIG_SUFFIXES)
    first: dict[str, tuple[Secret, int]] = {}
    for secret in scan_text(head.read(SCAN_LIMIT), names[-1][0], config_like):
        seen, more = first.get(secret.code, (secret, -1))
        first[secret.code] = (seen, more + 1)
    found: list[tuple[str, str, int | None]] = []
    for secret, more in first.values():
        what = secret.what + (f" (and {more} more)" if more else "")
        found.append((secret.code, what, secret.line))
    return found


def exposure(code: str, what: str, hidden: bool, outside: bool) -> tuple[str, str]:
    """(message, fix) for a served secret; ``hidden`` and ``outside`` say which flags serve it.

    ``hidden``: a hidden name in its path (--show-hidden serves it); ``outside``:
    it is reached through a link that leaves the folder (--follow-symlinks).
    """
    flags = []
    if hidden:
        flags.append("--show-hidden")
    if outside:
        flags.append("--follow-symlinks")
    if not flags:
        return f"{what} served with the default options", CODES[code].fix
    joined = " and ".join(flags)
    return f"{what} served because of {joined}", f"{CODES[code].fix}, or serve without {joined}"
