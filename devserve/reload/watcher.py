"""Watch folders for changes and report each burst once (the only watchfiles import).

The OS watches are in place when `ChangeWatcher.start` returns, so a change made
after the server prints its URL is always seen. Changes are gathered until no new
one has arrived for ``STEP_MS`` (at most ``MAX_WAIT_MS``): a build writing 200
files, or an editor's write-rename-delete, arrives as one batch. If the OS limit
on watches is reached, the watcher says so and polls instead. A
`threading.Event` stops it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from watchfiles import Change as _Kind
from watchfiles import watch

# Folders whose contents never trigger a reload, wherever they are.
DEFAULT_IGNORED_DIRS = frozenset(
    {
        # version control
        ".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", ".jj",
        # dependencies, caches and virtual environments
        "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
        # editors' own state
        ".idea",
    }
)  # fmt: skip
# File names editors write while saving (swap, backup, lock and probe files).
DEFAULT_IGNORED_NAMES = (
    "*.swp", "*.swo", "*.swn", "*.swx",  # vim swap files
    "*~",  # backups (vim, emacs, gedit)
    ".#*", "#*#",  # emacs lock and auto-save files
    "4913",  # vim's probe that it may write in the folder
    ".DS_Store",
    "*___jb_tmp___", "*___jb_old___",  # JetBrains safe write
)  # fmt: skip
# A folder holding this file is a virtual environment, whatever its name.
VENV_MARKER = "pyvenv.cfg"

STEP_MS = 50
MAX_WAIT_MS = 1600
POLL_MS = 300
# Batches are handed on at most this often (seconds): a file that keeps changing
# (a log written into the served folder) cannot reload pages more than twice a second.
MIN_GAP = 0.5

_KINDS: dict[int, Literal["added", "modified", "deleted"]] = {
    _Kind.added.value: "added",
    _Kind.modified.value: "modified",
    _Kind.deleted.value: "deleted",
}


class Change(NamedTuple):
    """One changed path."""

    kind: Literal["added", "modified", "deleted"]
    path: str


class WatchError(Exception):
    """The folders could not be watched at all (not even by polling)."""


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class IgnoreRules:
    """Which changed paths are ignored: the defaults, virtual environments, and user globs.

    A user glob without ``/`` is matched against every name in the path (``dist``,
    ``*.map``); one with ``/`` against the path relative to the watched folder
    and each of its parent folders (``build/tmp``, ``docs/*.draft.html``).
    """

    def __init__(self, roots: Sequence[str], patterns: Sequence[str] = ()) -> None:
        self.primary = os.path.abspath(roots[0]) if roots else ""  # the served folder
        # Longest first, so a path is taken relative to the innermost watched folder.
        self.roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
        cleaned = [p.strip().strip("/") for p in patterns if p.strip().strip("/")]
        self._names = _compile([*DEFAULT_IGNORED_NAMES, *(p for p in cleaned if "/" not in p)])
        self._paths = _compile([p.removeprefix("./") for p in cleaned if "/" in p])

    def relative(self, path: str) -> tuple[str, list[str]]:
        """(the watched folder holding ``path``, the names below it)."""
        for root in self.roots:
            if path == root:
                return root, []
            if path.startswith(root.rstrip(os.sep) + os.sep):
                return root, path[len(root.rstrip(os.sep)) + 1 :].split(os.sep)
        return os.path.dirname(path), [os.path.basename(path)]

    def ignored(self, path: str, venv_cache: dict[str, bool] | None = None) -> bool:
        """Whether a change to ``path`` is ignored (``venv_cache`` is shared within a batch)."""
        root, parts = self.relative(path)
        if not parts:
            return False
        if any(part in DEFAULT_IGNORED_DIRS for part in parts):
            return True
        names, paths = self._names, self._paths
        if names is not None and any(names.match(part) for part in parts):
            return True
        if paths is not None:
            for end in range(1, len(parts) + 1):
                if paths.match("/".join(parts[:end])):
                    return True
        cache = {} if venv_cache is None else venv_cache
        folder = root
        for part in parts:
            folder = os.path.join(folder, part)
            if folder not in cache:
                cache[folder] = os.path.isfile(os.path.join(folder, VENV_MARKER))
            if cache[folder]:
                return True
        return False


def _is_watch_limit(error: OSError) -> bool:
    """Whether watching failed because the OS ran out of watches (or inotify instances)."""
    text = str(error)
    return "watch limit" in text or "Too many open files" in text or "No space left" in text


def watch_limit_hint() -> str:
    """How to raise the limit, with the current figure where the OS tells it."""
    try:
        current = Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
    except OSError:
        return "raise the OS limit on file watches"
    return (
        f"fs.inotify.max_user_watches is {current}; raise it with "
        "'sudo sysctl fs.inotify.max_user_watches=524288'"
    )


Batch = set[tuple[_Kind, str]]
Batches = Generator[Batch, None, None]


class ChangeWatcher:
    """Watches ``paths`` in a thread and calls ``on_changes`` with each batch (sorted)."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        on_changes: Callable[[list[Change]], None],
        *,
        ignore: Sequence[str] = (),
        on_warning: Callable[[str], None] = lambda message: None,
        on_error: Callable[[str, BaseException], None] = lambda message, error: None,
        stop: threading.Event | None = None,
        force_polling: bool = False,
        step_ms: int = STEP_MS,
        max_wait_ms: int = MAX_WAIT_MS,
        poll_ms: int = POLL_MS,
        min_gap: float = MIN_GAP,
        own_files: frozenset[tuple[int, int]] = frozenset(),
    ) -> None:
        self.paths = [os.path.abspath(p) for p in paths]
        self.rules = IgnoreRules(self.paths, ignore)
        self.on_changes = on_changes
        self.on_warning = on_warning
        self.on_error = on_error
        self.stop_event = stop or threading.Event()
        self.polling = force_polling
        self._step_ms = step_ms
        self._max_wait_ms = max_wait_ms
        self._poll_ms = poll_ms
        self._min_gap = min_gap
        # (device, inode) of files this process writes itself (its own log): never a change.
        self._own_files = own_files
        self._told_undecodable = False
        self._thread: threading.Thread | None = None

    def _open(self, polling: bool, skip_unreadable: bool) -> tuple[Batches, Batch]:
        """A running watch and its first batch: once that is back, the watches are in place."""
        batches = watch(
            *self.paths,
            watch_filter=None,
            debounce=self._max_wait_ms,
            step=self._step_ms,
            stop_event=self.stop_event,
            # Return after every quiet step (the first return says the watches are set)
            # rather than wait in Rust: the stop event is checked at each step anyway.
            rust_timeout=1,
            yield_on_timeout=True,
            # None lets WATCHFILES_FORCE_POLLING (network folders, some VMs) decide.
            force_polling=True if polling else None,
            poll_delay_ms=self._poll_ms,
            ignore_permission_denied=skip_unreadable,
        )
        try:
            return batches, next(batches, set())
        except BaseException:
            batches.close()
            raise

    def _watch(self) -> tuple[Batches, Batch]:
        """Put the OS watches in place: inotify (or the platform's), else polling."""
        try:
            try:
                # Unreadable folders are an error at first: watchfiles hides the OS
                # limit along with them once told to skip them.
                return self._open(self.polling, skip_unreadable=False)
            except PermissionError:
                return self._open(self.polling, skip_unreadable=True)
        except FileNotFoundError as error:
            raise WatchError(f"cannot watch for --reload: {error}") from None
        except OSError as error:
            if self.polling or not _is_watch_limit(error):
                raise WatchError(f"cannot watch for --reload: {error}") from None
        self.polling = True
        self.on_warning(
            "live reload: too many folders to watch (the OS limit on file watches was "
            f"reached); polling for changes every {self._poll_ms} ms instead. "
            f"{watch_limit_hint()}, or watch less (--ignore, or serve a smaller folder)."
        )
        try:
            return self._open(True, skip_unreadable=True)
        except OSError as error:
            raise WatchError(f"cannot watch for --reload: {error}") from None

    def start(self) -> None:
        """Watch from now on (the watches are in place on return), in a daemon thread."""
        if self._thread is not None:
            return
        batches, first = self._watch()
        self._thread = threading.Thread(
            target=self._run, args=(batches, first), name="devserve-reload-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Set the stop event and wait for the thread to end."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ChangeWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, batches: Batches, first: Batch) -> None:
        pending: dict[str, Change] = {}
        last = 0.0
        try:
            raw = first
            while True:
                for change in self.select(raw):
                    pending[change.path] = change
                if pending and time.monotonic() - last >= self._min_gap:
                    last = time.monotonic()
                    changes = [pending[path] for path in sorted(pending)]
                    pending.clear()
                    self.on_changes(changes)
                try:
                    following = next(batches, None)  # None: the stop event was set
                except Exception as error:
                    path = _undecodable_path(error)
                    if path is None:
                        raise
                    batches.close()
                    batches, _ = self._watch()  # the failed watch is gone: start it again
                    self._tell_undecodable(path)
                    pending[path] = Change("modified", path)
                    following = set()
                if following is None:
                    return
                raw = following
        except Exception as error:
            self.on_error("live reload stopped: the watcher failed", error)
        finally:
            batches.close()

    def _tell_undecodable(self, path: str) -> None:
        if not self._told_undecodable:
            self._told_undecodable = True
            self.on_warning(
                f"live reload: a file name is not valid UTF-8 ({path}); changes to such "
                "files reload pages, but are not named"
            )

    def select(self, raw: set[tuple[_Kind, str]]) -> list[Change]:
        """The batch that is not ignored, one entry per path (its last known kind), sorted."""
        cache: dict[str, bool] = {}
        kinds: dict[str, Literal["added", "modified", "deleted"]] = {}
        for code, path in raw:
            kind = _KINDS.get(int(code))
            if kind is None or self.rules.ignored(path, cache) or self._is_own(path):
                continue
            if kinds.get(path) != kind:
                # A path both deleted and added in one burst (an editor's rename dance)
                # is what is on disk now.
                kinds[path] = kind if path not in kinds else _current_kind(path)
        return [Change(kind, path) for path, kind in sorted(kinds.items())]

    def _is_own(self, path: str) -> bool:
        """Whether ``path`` is a file this process writes itself (its log, redirected)."""
        if not self._own_files:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._own_files


def own_output_files() -> frozenset[tuple[int, int]]:
    """(device, inode) of the regular files this process's stdout and stderr write to."""
    found = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.add((st.st_dev, st.st_ino))
    return frozenset(found)


_UNDECODABLE = re.compile(r'Unable to decode path "(.*)" to string')


def _undecodable_path(error: Exception) -> str | None:
    """The path in watchfiles' error for a file name that is not valid UTF-8, if it is one."""
    found = _UNDECODABLE.search(str(error))
    return found[1] if found else None


def _current_kind(path: str) -> Literal["modified", "deleted"]:
    return "modified" if os.path.lexists(path) else "deleted"


def is_css_only(changes: Sequence[Change]) -> bool:
    """Whether a batch only touched stylesheets that still exist (they can be swapped in place)."""
    return bool(changes) and all(
        change.path.lower().endswith(".css") and os.path.exists(change.path) for change in changes
    )


def describe(changes: Sequence[Change], rules: IgnoreRules, shown: int = 3) -> str:
    """The changed files for the log, a few at most.

    Paths are relative to the served folder, or start with the name of the
    ``--watch`` folder that holds them.
    """
    names = []
    for change in changes[:shown]:
        root, parts = rules.relative(change.path)
        if root != rules.primary:
            parts = [os.path.basename(root) or root, *parts]
        name = "/".join(parts) if parts else os.path.basename(root) or root
        names.append(name + (" (deleted)" if change.kind == "deleted" else ""))
    text = ", ".join(names)
    if len(changes) > shown:
        text += f" and {len(changes) - shown} more"
    return text
