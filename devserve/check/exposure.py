"""Exposure: served files and folders that look secret (DS1xx), and how to say why.

`secret_kind` judges a file by its name, and reads the start of the few kinds
whose name alone does not tell (keys, JSON, ``.npmrc``); `exposure` words the
finding, naming the serve flag that exposes it.

Invariants:
- Only files the walk found servable are judged; nothing here decides what the
  server serves (`server_model` does).
- At most the first 64 KiB of a file is read (1 MiB of JSON); a file that
  cannot be read is judged by its name alone.
"""

from __future__ import annotations

import re

from devserve.check.rules import CODES

_ENV_TEMPLATES = (".example", ".sample", ".template", ".dist")
# Folders reported as a whole (DS102, DS106) rather than file by file.
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
CREDENTIAL_DIRS = frozenset({".ssh", ".gnupg", ".aws", ".docker"})
_CREDENTIAL_FILES = frozenset({".netrc", "_netrc", ".git-credentials", ".pypirc"})
_KEY_NAME = re.compile(r"id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?:[._-].*)?\Z")
_KEY_SUFFIXES = (".pem", ".key", ".ppk")
_KEY_BUNDLES = (".p12", ".pfx")
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File-")
_JSON_SECRET = re.compile(
    rb'"(private_key|client_secret|aws_secret_access_key|secret_access_key|refresh_token)"'
    rb'\s*:\s*"(?:[^"\\]|\\.){8,}"'
)
_NPM_TOKEN = re.compile(rb"_auth(?:Token)?\s*=|_password\s*=")
_JSON_SCAN_LIMIT = 1 << 20  # only the start of a larger JSON file is looked at
_HEAD = 64 * 1024


def read_head(path: str, size: int = _HEAD) -> bytes:
    """The first ``size`` bytes of a file; empty when it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except OSError:
        return b""


def secret_kind(name: str, parent: str, fs_path: str) -> tuple[str, str] | None:
    """(code, what) when a served file looks secret; reads the few files that need it."""
    lower = name.lower()
    if lower == ".envrc" or (
        (lower == ".env" or lower.startswith(".env.")) and not lower.endswith(_ENV_TEMPLATES)
    ):
        return "DS101", "environment file"
    if lower.startswith(".htpasswd"):
        return "DS104", "password file"
    if lower in _CREDENTIAL_FILES or (lower == "credentials" and parent == ".aws"):
        return "DS106", "credential file"
    if lower == ".npmrc":
        return ("DS106", "npm token file") if _NPM_TOKEN.search(read_head(fs_path)) else None
    if lower.endswith(_KEY_BUNDLES):
        return "DS103", "key bundle"
    key_named = lower.endswith(_KEY_SUFFIXES) or (
        _KEY_NAME.match(lower) is not None and not lower.endswith(".pub")
    )
    if key_named and _PRIVATE_KEY.search(read_head(fs_path)):
        return "DS103", "private key"
    if lower.endswith(".json"):
        found = _JSON_SECRET.search(read_head(fs_path, _JSON_SCAN_LIMIT))
        if found:
            return "DS105", f'JSON with "{found.group(1).decode()}"'
    return None


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
