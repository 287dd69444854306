"""Suggest the existing path a 404 probably meant (no sockets, no printing).

Tried in order, each only among names the server would serve:
1. the same path with different letter case (works on macOS/Windows, 404 on Linux);
2. the path with ``.html`` (or ``/index.html``) added;
3. a near-miss spelling of the last component (difflib, same directory).

Invariant: a suggestion is only ever a path ``servable`` accepts (the server's
own hidden-file and symlink policy), and every directory on the way to it too;
a directory is read through the descriptor that was checked.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import stat
import urllib.parse
from collections.abc import Callable

# Directories with more entries than this are not scanned for a near miss: a
# suggestion is a convenience and must stay cheap.
MAX_SCAN = 2000


def suggest_path(
    url_path: str,
    root: str,
    servable: Callable[[str], bool],
    listed: Callable[[str], bool] = lambda name: True,
    seen: Callable[[tuple[str, os.stat_result]], None] | None = None,
) -> str | None:
    """An existing URL path close to ``url_path`` below ``root``, or None.

    ``servable(fs_path)`` says whether the server would serve a path and
    ``listed(name)`` whether a name shows in listings; nothing either refuses is
    suggested. ``seen`` is told each directory read, with its stat, so a caller
    can tell when the suggestion may have changed.
    """
    path = url_path.split("?", 1)[0].split("#", 1)[0]
    try:  # decoded as the server decodes it (devserve._paths.url_to_fs_path)
        path = urllib.parse.unquote(path, errors="surrogatepass")
    except UnicodeDecodeError:
        path = urllib.parse.unquote(path)
    parts = [p for p in posixpath.normpath(path).split("/") if p and p not in (".", "..")]
    if not parts:
        return None
    directory = root
    resolved: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        names = _names(directory, seen)
        if names is None:
            return None
        names = [n for n in names if listed(n)]
        chosen = part if part in names else _closest(part, names, last)
        if chosen is None:
            return None
        candidate = os.path.join(directory, chosen)
        if not servable(candidate):
            return None
        if chosen != part and not last and not os.path.isdir(candidate):
            return None
        resolved.append(chosen)
        directory = candidate
    if resolved == parts:
        return None
    # Encoded as listings link names, so a name that is not UTF-8 stays reachable.
    suggestion = "/" + "/".join(urllib.parse.quote(p, errors="surrogatepass") for p in resolved)
    if os.path.isdir(directory):
        suggestion += "/"
    return suggestion


def _names(
    directory: str, seen: Callable[[tuple[str, os.stat_result]], None] | None
) -> list[str] | None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            return None
        if seen is not None:
            seen((directory, st))
        with os.scandir(fd) as entries:
            names = []
            for entry in entries:
                names.append(entry.name)
                if len(names) > MAX_SCAN:
                    return None
            return names
    except OSError:
        return None
    finally:
        os.close(fd)


def _closest(part: str, names: list[str], last: bool) -> str | None:
    lowered = part.lower()
    same_case = [n for n in names if n.lower() == lowered]
    if same_case:
        return same_case[0]
    if last:
        for extra in (".html", ".htm"):
            for name in names:
                if name.lower() == lowered + extra:
                    return name
    close = difflib.get_close_matches(part, names, n=1, cutoff=0.75)
    if close:
        return close[0]
    lowered_names = {n.lower(): n for n in names}
    close = difflib.get_close_matches(lowered, list(lowered_names), n=1, cutoff=0.75)
    return lowered_names[close[0]] if close else None
