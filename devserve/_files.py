"""What a request path reaches on disk: open with the serving policies, remember small files.

`locate` is the one place that decides what a filesystem path answers (a file, a
directory's index page, a listing, a redirect to add the slash, the single-page
app's entry point, or nothing); the documented handler and devserve's event
loop both call it. `FileTable` remembers what `locate` found, so a repeat
request costs one ``stat`` per file instead of open, fstat, a symlink check, a
read and a close.

Invariants:
- Nothing is returned for a path the hidden-file or symlink policy refuses; the
  policy is checked against where the *open descriptor* points, so a link
  swapped in after the check cannot redirect the read. Index pages are opened
  relative to the directory's descriptor, and listings read that descriptor.
- A remembered entry is used only while ``os.stat`` reports the same device,
  inode, size, mtime, ctime and mode, and only if it was read at least
  `RACY_SECONDS` after the file last changed (git's rule for its index: a file
  can change again within one timestamp tick, or through ``mmap``, without its
  stat changing). A racily read entry is read again on its next use.
- Every table is bounded in bytes.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import urllib.parse
from collections import OrderedDict
from typing import NamedTuple

from devserve._host_rules import clean_path, unslashed_path
from devserve._listing import Entry
from devserve._paths import (
    SymlinkPolicy,
    hidden_beyond,
    is_hidden,
    is_hidden_name,
    may_serve,
    url_to_fs_path,
)
from devserve._static_rules import is_app_route

# A copy read this soon (seconds) after the file last changed is not trusted later.
RACY_SECONDS = 2.0
# Files up to this size are kept in memory.
MAX_CACHED_FILE = 256 * 1024
# All the bytes a table may hold (file contents, listings and bookkeeping).
TABLE_BYTES = 8 * 1024 * 1024
# What an entry costs besides its contents (the object, its key, the stat identity).
ENTRY_OVERHEAD = 256

# O_NONBLOCK keeps a FIFO from blocking the open (it is refused right after); it has
# no effect on regular files, so the descriptor is read as usual.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

Identity = tuple[int, int, int, int, int, int]
# What an answer was computed from: a path and its identity then (None: it did not exist).
Dependency = tuple[str, "Identity | None"]
Dependencies = tuple[Dependency, ...]


def identity(st: os.stat_result) -> Identity:
    """What must stay the same for a remembered copy to describe the file."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def settled(st: os.stat_result, read_at: float) -> bool:
    """Whether a copy read at ``read_at`` can be trusted while the stat stays the same."""
    changed = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
    return read_at - changed >= RACY_SECONDS


class Policy(NamedTuple):
    """What decides whether a path below ``root`` may be served, and how it is found."""

    root: str
    follow_symlinks: SymlinkPolicy = "inside"
    show_hidden: bool = True
    index_pages: tuple[str, ...] = ("index.html", "index.htm")
    list_directories: bool = True
    spa_fallback: str | None = None
    # A path that reaches nothing but a folder, or nothing at all, is served from
    # the same path with ".html" added (/about -> about.html), as static hosts do.
    try_html: bool = False


class Found(NamedTuple):
    """What a path answers.

    ``kind`` is ``file``, ``index`` or ``spa`` (``path`` and ``st`` describe the
    file; ``data`` holds its bytes when it is small, else ``fd`` is open on it and
    the caller closes it), ``listing`` (``fd`` is open on the directory, unless
    ``entries`` already lists it), ``redirect`` (a directory asked for without its
    slash) or ``missing``.

    ``deps`` are the paths the answer was decided from, with their identities, all
    settled (see `settled`); while each still has its identity, the same request
    gets the same answer. None: no such promise (something was read racily, or
    the path exists but is refused).
    """

    kind: str
    path: str = ""
    st: os.stat_result | None = None
    data: bytes | None = None
    fd: int | None = None
    entries: tuple[Entry, ...] | None = None
    deps: Dependencies | None = None


MISSING = Found("missing")


def _missing(path: str) -> Found:
    """Missing: with a dependency when nothing at all is there, so that stays checkable."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return Found("missing", deps=((path, None),))
    except (OSError, ValueError):
        pass
    return MISSING


def still_true(deps: Dependencies, verified: set[Dependency] | None = None) -> bool:
    """Whether every path of ``deps`` still has the identity it had (or is still absent).

    ``verified``: dependencies the caller found true since a moment of its
    choosing (the event loop: since it last woke up); they are not checked
    again, and each one found true now is added.
    """
    for dep in deps:
        if verified is not None and dep in verified:
            continue
        path, known = dep
        if known is None:
            # Still absent: access() answers without raising (cheaper than a failed stat).
            if os.access(path, os.F_OK, follow_symlinks=True):
                return False
        else:
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                return False
            if identity(st) != known:
                return False
        if verified is not None:
            verified.add(dep)
    return True


def open_allowed(
    path: str, policy: Policy, dir_fd: int | None = None, name: str | None = None
) -> tuple[int, os.stat_result] | None:
    """Open ``path`` if it exists and the policies allow it; None otherwise.

    With ``dir_fd``, ``name`` is opened relative to that directory (``path`` is
    then its lexical full path, which the hidden-file rule reads).
    """
    if "\x00" in path:
        return None
    try:
        fd = os.open(name, OPEN_FLAGS, dir_fd=dir_fd) if name else os.open(path, OPEN_FLAGS)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if may_serve(path, policy.root, policy.follow_symlinks, policy.show_hidden, fd):
            return fd, st
    except (OSError, ValueError):
        pass
    os.close(fd)
    return None


class _File(NamedTuple):
    identity: Identity
    data: bytes | None  # None: too large to keep
    trusted: bool
    st: os.stat_result


class _Directory(NamedTuple):
    identity: Identity
    index_page: str | None  # the index page's path, or None: the directory is listed
    trusted: bool
    entries: tuple[Entry, ...] | None  # the listing, once read


class FileTable:
    """What `locate` found, by filesystem path and policy; bounded in bytes (thread-safe)."""

    def __init__(self, max_bytes: int = TABLE_BYTES, max_file: int = MAX_CACHED_FILE) -> None:
        self.max_bytes = max_bytes
        self.max_file = max_file
        self._entries: OrderedDict[tuple[str, Policy], tuple[_File | _Directory, int]] = (
            OrderedDict()
        )
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, Policy]) -> _File | _Directory | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[str, Policy], value: _File | _Directory) -> None:
        cost = ENTRY_OVERHEAD + len(key[0])
        if isinstance(value, _File):
            cost += len(value.data) if value.data is not None else 0
        elif value.entries is not None:
            cost += sum(ENTRY_OVERHEAD // 4 + len(e.name) for e in value.entries)
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (value, cost)
            self._size += cost
            while self._size > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def forget(self, key: tuple[str, Policy]) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: tuple[str, Policy]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= entry[1]

    @property
    def size(self) -> int:
        """The bytes the table accounts for now."""
        return self._size

    # -- files

    def file(self, path: str, policy: Policy) -> Found | None:
        """A remembered small file still exactly as it was read, with one stat; else None."""
        entry = self.get((path, policy))
        if type(entry) is not _File or entry.data is None or not entry.trusted:
            return None
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        if identity(st) != entry.identity:
            return None
        return Found("file", path, st, entry.data, deps=((path, entry.identity),))

    def read_file(self, path: str, fd: int, st: os.stat_result, policy: Policy) -> bytes | None:
        """The contents of an allowed, open regular file if it is small (remembered); else None.

        A table whose ``max_file`` is negative never reads (`devserve check`'s).
        """
        if st.st_size > self.max_file or self.max_file < 0:
            return None
        read_at = time.time()
        data = os.pread(fd, st.st_size, 0)
        if len(data) != st.st_size:
            return None  # it changed while being read: serve it from the descriptor
        self.put((path, policy), _File(identity(st), data, settled(st, read_at), st))
        return data

    # -- directories

    def directory(self, path: str, policy: Policy) -> _Directory | None:
        """A remembered directory still as it was (one stat), else None."""
        entry = self.get((path, policy))
        if type(entry) is not _Directory or not entry.trusted:
            return None
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        return entry if identity(st) == entry.identity else None


FILES = FileTable()


def locate(
    path: str, target: str, accept: str | None, policy: Policy, table: FileTable = FILES
) -> Found:
    """What the filesystem ``path`` (mapped from the request ``target``) answers.

    `find`, then, for a path that reaches nothing, the single-page app's
    entry point when the app takes the route (`fall_back`).
    """
    return fall_back(find(path, policy, table), target, accept, policy, table)


def find(path: str, policy: Policy, table: FileTable = FILES) -> Found:
    """What the filesystem ``path`` reaches on disk, before any fallback.

    The order is the documented handler's: a directory asked for without its
    trailing slash is redirected; a directory's first index page is served, else
    it is listed (or missing, when listings are off); a regular file is served;
    anything else (a FIFO, a device, a refused or absent path, a trailing slash
    after a file name) is missing. With ``policy.try_html``, a path without a
    trailing slash that reaches a folder or nothing is served from ``path.html``
    when that is a file (a file wins over a folder of the same name).
    """
    remembered = table.file(path, policy)
    if remembered is not None:
        return remembered
    if path.endswith("/"):
        return _directory(path, policy, table)
    opened = open_allowed(path, policy)
    if opened is None:
        found = _missing(path)
    else:
        fd, st = opened
        if not stat.S_ISDIR(st.st_mode):
            return _opened_file(path, fd, st, policy, table)
        os.close(fd)
        found = Found("redirect", path, st, deps=_settled_deps(path, st))
    return _with_html(path, found, policy, table) if policy.try_html else found


def fall_back(
    found: Found, target: str, accept: str | None, policy: Policy, table: FileTable = FILES
) -> Found:
    """``found``, or the single-page app's entry point for a missing app route."""
    if found.kind != "missing" or policy.spa_fallback is None or not is_app_route(target, accept):
        return found
    app = _file(os.path.join(policy.root, policy.spa_fallback), policy, table)
    if app is None:
        return found
    return app._replace(kind="spa", deps=join_deps(found.deps, app.deps))


def join_deps(*parts: Dependencies | None) -> Dependencies | None:
    """Everything several answers were decided from (None if any of them promises nothing)."""
    joined: Dependencies = ()
    for part in parts:
        if part is None:
            return None
        joined += part
    return joined


def _with_html(path: str, found: Found, policy: Policy, table: FileTable) -> Found:
    """``path.html`` when it is a file, else ``found`` (which then depends on its absence)."""
    if path.endswith(".html") or path == policy.root:
        return found
    page_path = path + ".html"
    page = _file(page_path, policy, table)
    if page is None:
        return found._replace(deps=join_deps(found.deps, _missing(page_path).deps))
    return page._replace(deps=join_deps(found.deps, page.deps))


def clean_location(
    target: str, found: Found, policy: Policy, table: FileTable = FILES
) -> tuple[str, Dependencies | None] | None:
    """Where --clean-urls redirects a request (``found`` is what it reached), and on what.

    An HTML file asked for by its ``.html`` name goes to its clean URL when that
    serves the same file (``/about.html`` → ``/about``, ``/docs/index.html`` →
    ``/docs/``); a missing ``/about/`` goes to ``/about`` when that serves
    about.html. The query is kept. None: no redirect.
    """
    url = urllib.parse.urlsplit(target)
    if found.kind == "missing":
        clean = unslashed_path(url.path)
        wanted = None if clean is None else url_to_fs_path(clean, policy.root) + ".html"
    else:
        clean = clean_path(url.path)
        wanted = found.path
    if clean is None:
        return None
    probe = find(url_to_fs_path(clean, policy.root), policy, table)
    if probe.fd is not None:
        os.close(probe.fd)
    if probe.kind not in ("file", "index") or probe.path != wanted:
        return None
    location = clean + (f"?{url.query}" if url.query else "")
    return location, join_deps(found.deps, probe.deps)


def _settled_deps(path: str, st: os.stat_result) -> Dependencies | None:
    return ((path, identity(st)),) if settled(st, time.time()) else None


def _file(path: str, policy: Policy, table: FileTable) -> Found | None:
    remembered = table.file(path, policy)
    if remembered is not None:
        return remembered
    opened = open_allowed(path, policy)
    if opened is None:
        return None
    found = _opened_file(path, *opened, policy, table)
    return found if found.kind == "file" else None


def _opened_file(path: str, fd: int, st: os.stat_result, policy: Policy, table: FileTable) -> Found:
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)  # FIFOs and devices are never read
        return MISSING
    data = table.read_file(path, fd, st, policy)
    deps = _settled_deps(path, st)
    if data is not None:
        os.close(fd)
        return Found("file", path, st, data, deps=deps)
    return Found("file", path, st, None, fd, deps=deps)


def _directory(path: str, policy: Policy, table: FileTable) -> Found:
    """A path ending in ``/``: a directory's index page or listing; anything else is missing."""
    directory = path.rstrip("/") or "/"
    remembered = table.directory(directory, policy)
    if remembered is not None:
        own: Dependencies = ((directory, remembered.identity),)
        if remembered.index_page is not None:
            page = _file(remembered.index_page, policy, table)
            if page is not None:
                deps = None if page.deps is None else own + page.deps
                return page._replace(kind="index", deps=deps)
        elif remembered.entries is not None:
            return Found("listing", directory, entries=remembered.entries, deps=own)
    opened = open_allowed(directory, policy)
    if opened is None:
        return _missing(directory)
    dir_fd, st = opened
    if not stat.S_ISDIR(st.st_mode):
        os.close(dir_fd)
        return MISSING
    read_at = time.time()
    for name in policy.index_pages:
        index = os.path.join(directory, name)
        page_opened = open_allowed(index, policy, dir_fd, name)
        if page_opened is None:
            continue
        page_fd, page_st = page_opened
        if not stat.S_ISREG(page_st.st_mode):
            os.close(page_fd)
            continue
        os.close(dir_fd)
        stable = settled(st, read_at)
        table.put((directory, policy), _Directory(identity(st), index, stable, None))
        page = _opened_file(index, page_fd, page_st, policy, table)
        own = ((directory, identity(st)),)
        deps = own + page.deps if stable and page.deps is not None else None
        return page._replace(kind="index", deps=deps)
    if not policy.list_directories:
        os.close(dir_fd)
        return MISSING
    return Found("listing", directory, st, fd=dir_fd, deps=_settled_deps(directory, st))


def list_entries(
    directory: str, dir_fd: int, st: os.stat_result, policy: Policy, table: FileTable = FILES
) -> tuple[Entry, ...]:
    """The names a listing of the open directory shows (remembered with the directory)."""
    read_at = time.time()
    with os.scandir(dir_fd) as it:
        entries = tuple(_entry(item, dir_fd) for item in it if listed(item.name, policy))
    table.put((directory, policy), _Directory(identity(st), None, settled(st, read_at), entries))
    return entries


def refusal(path: str, policy: Policy) -> str | None:
    """Why a path `locate` answered as missing is not served, when something is there.

    ``hidden`` or ``symlink`` (a policy refused it), ``no-listing`` (a folder
    without an index page, listings off), ``unreadable``, ``not a file`` (a
    FIFO, a device), ``not a folder`` (a file asked for with a trailing slash);
    None when nothing is there at all.
    """
    target = path.rstrip("/") or "/"
    try:
        st = os.stat(target)
    except (OSError, ValueError):
        return None
    root = policy.root
    if not may_serve(target, root, policy.follow_symlinks, policy.show_hidden):
        if policy.show_hidden:
            return "symlink"
        real, real_root = os.path.realpath(target), os.path.realpath(root)
        if is_hidden(target, root) or hidden_beyond(real, real_root):
            return "hidden"
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return None if policy.list_directories else "no-listing"
    if not os.access(target, os.R_OK):
        return "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return "not a file"
    return "not a folder" if path.endswith("/") else None


def withheld_under(root: str, folders: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``folders`` lie under ``root`` (or are it): the ones `is_withheld` needs.

    Each is returned as its real path, case-folded for `is_withheld`. A folder
    that does not exist yet is taken as written (it may be made while serving).
    """
    real_root = os.path.realpath(root).casefold()
    found = []
    for folder in folders:
        real = os.path.realpath(folder).casefold()
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            found.append(real)
    return tuple(found)


def is_withheld(fs_path: str, withheld: tuple[str, ...]) -> bool:
    """Whether ``fs_path``, followed to where it leads, is or lies in a withheld folder.

    ``withheld`` comes from `withheld_under`. Compared case-folded, as macOS's and
    Windows' file systems compare names (on a case-sensitive one this can only
    hide more). Costs a ``realpath``, and only when something is withheld.
    """
    if not withheld:
        return False
    real = os.path.realpath(fs_path).casefold()
    return any(real == folder or real.startswith(folder + os.sep) for folder in withheld)


def listed(name: str, policy: Policy) -> bool:
    """Whether a directory entry appears in listings."""
    return policy.show_hidden or not is_hidden_name(name)


def _entry(item: os.DirEntry[str], dir_fd: int) -> Entry:
    try:
        is_dir = item.is_dir()
    except OSError:
        is_dir = False
    return Entry(item.name, is_dir, item.is_symlink())
