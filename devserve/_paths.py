"""URL path → filesystem path, and the symlink policy.

Invariants:
- `url_to_fs_path` returns ``root`` joined with plain names only: no component is
  empty, ``.``, ``..`` or contains a separator, so the lexical result is inside root.
- `symlink_allowed` is what keeps a link from leading out of the root: with the
  default policy, a path whose resolution goes through a link is served only when
  the resolved target is inside the resolved root.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import urllib.parse
from typing import Literal

SymlinkPolicy = Literal["inside", "always", "never"]
SYMLINK_POLICIES: tuple[SymlinkPolicy, ...] = ("inside", "always", "never")


def url_to_fs_path(url_path: str, root: str) -> str:
    """The filesystem path a request path names below ``root`` (the documented mapping).

    The query and fragment are dropped, percent-escapes decoded, ``.``/``..``
    resolved lexically, and any component that is not a plain name skipped.
    A trailing slash is kept, so ``/file.txt/`` can be told from ``/file.txt``;
    an encoded one (``%2f``) counts too (Python 3.15).
    """
    path = url_path.split("?", 1)[0].split("#", 1)[0]
    if _PLAIN_PATH(path) and path[:1] == "/" and not root.endswith("/"):
        # Nothing to decode or resolve: every component is already a plain name
        # (what the loop below would build, without its cost on every request).
        return root + path
    trailing_slash = path.rstrip().endswith("/")
    try:
        path = urllib.parse.unquote(path, errors="surrogatepass")
    except UnicodeDecodeError:
        path = urllib.parse.unquote(path)
    trailing_slash = trailing_slash or path.endswith("/")
    result = root
    for word in posixpath.normpath(path).split("/"):
        if not word or os.path.dirname(word) or word in (os.curdir, os.pardir):
            continue
        result = os.path.join(result, word)
    if trailing_slash:
        result += "/"
    return result


# A path with no escape, no empty, "." or ".." component and no blank at its end.
_PLAIN_PATH = re.compile(r"(?:/[^/%.\s][^/%\s]*)*/?\Z").match


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both already absolute and normalised)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def symlink_allowed(fs_path: str, root: str, policy: SymlinkPolicy, fd: int | None = None) -> bool:
    """Whether serving ``fs_path`` respects the symlink policy for ``root``.

    - ``"always"``: every link is followed (the stdlib's behaviour).
    - ``"inside"``: a link is followed only if where it leads stays inside root.
    - ``"never"``: no path that goes through a link below root is served.
    A path with no link in it is always allowed, wherever it is: a subclass whose
    ``translate_path`` maps to another tree keeps working. ``fd``, an open
    descriptor of the path, lets the kernel say where it really is in one call.
    """
    if policy == "always":
        return True
    lexical = os.path.abspath(fs_path)
    return _link_allowed(lexical, _resolved(lexical, fd), root, policy)


def may_serve(
    fs_path: str, root: str, policy: SymlinkPolicy, show_hidden: bool, fd: int | None = None
) -> bool:
    """Whether the symlink policy and the hidden-file rule let ``fs_path`` be served.

    The hidden-file rule applies to the path as asked for and to where it leads:
    a link ``pub -> .git`` does not publish ``.git``, nor a link to ``~/.ssh``.
    """
    if not show_hidden and is_hidden(fs_path, root):
        return False
    if policy == "always" and show_hidden:
        return True
    lexical = os.path.abspath(fs_path)
    resolved = _resolved(lexical, fd)
    if resolved == lexical:
        return True
    if not _link_allowed(lexical, resolved, root, policy):
        return False
    return show_hidden or not hidden_beyond(resolved, real_path_of_root(os.path.abspath(root)))


def _link_allowed(lexical: str, resolved: str, root: str, policy: SymlinkPolicy) -> bool:
    if policy == "always" or resolved == lexical:
        return True
    real_root = real_path_of_root(os.path.abspath(root))
    if policy == "never":
        # The root itself may sit behind a link (say /tmp -> /private/tmp); only
        # links below it count.
        return os.path.join(real_root, os.path.relpath(lexical, os.path.abspath(root))) == resolved
    return is_within(resolved, real_root)


def hidden_beyond(resolved: str, real_root: str) -> bool:
    """Whether a component of ``resolved`` past what it shares with the root is hidden."""
    shared = os.path.commonpath([resolved, real_root])
    relative = os.path.relpath(resolved, shared)
    return any(is_hidden_name(part) for part in relative.split(os.sep))


_PROC_FD = os.path.isdir("/proc/self/fd")


def _resolved(lexical: str, fd: int | None) -> str:
    """Where ``lexical`` really is: from the open descriptor when there is one."""
    if fd is not None and _PROC_FD:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
        else:
            if target.startswith("/"):
                return target
    return os.path.realpath(lexical)


@functools.lru_cache(maxsize=64)
def real_path_of_root(root: str) -> str:
    """The resolved served directory, cached: a root moved later fails closed."""
    return os.path.realpath(root)


# Served even when hidden files are not: RFC 8615 well-known URIs (ACME, security.txt).
ALWAYS_VISIBLE = frozenset({".well-known"})


def is_hidden_name(name: str) -> bool:
    """Whether one directory entry is a dotfile that hidden-file rules apply to."""
    return name.startswith(".") and name not in (".", "..") and name not in ALWAYS_VISIBLE


def is_hidden(fs_path: str, root: str) -> bool:
    """Whether any component of ``fs_path`` below ``root`` is a hidden name."""
    relative = os.path.relpath(fs_path, root)
    return any(is_hidden_name(part) for part in relative.split(os.sep))
