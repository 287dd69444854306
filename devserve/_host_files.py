"""The ``_redirects`` and ``_headers`` files at a site's root, read again when they change.

`HostFiles.current` gives the rules in force now (parsed by `devserve._host_rules`)
and what they were read from, so a reply the event loop remembers is sent again
only while both files are still as they were (or still absent). Each problem in
a newly read version is handed once to ``notice`` (the core never prints).

Invariants:
- A version is re-read whenever its stat identity changes, and on every use
  while it was read too soon after it last changed (`devserve._files.settled`):
  then no dependency is promised, so no reply built on it is remembered.
- The files are opened with the site's policy (a link leaving the folder is
  read only with ``--follow-symlinks``) and read up to `MAX_BYTES`.
- The state is replaced as a whole: a thread sees either the old or the new.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from devserve._files import Dependencies, Identity, Policy, identity, open_allowed, settled
from devserve._host_rules import (
    HEADERS_FILE,
    REDIRECTS_FILE,
    HeaderRule,
    Problem,
    Redirect,
    parse_headers,
    parse_redirects,
)

Rule = TypeVar("Rule", Redirect, HeaderRule)

# A larger rule file is not read (Netlify and Cloudflare cap rules in the thousands).
MAX_BYTES = 1 << 20


class HostState(NamedTuple):
    """The rules in force, what they were read from, and the problems of their files."""

    redirects: tuple[Redirect, ...]
    headers: tuple[HeaderRule, ...]
    deps: Dependencies | None  # the two files' identities (None: read racily)
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class _Version(Generic[Rule]):
    """One version of one file: its rules, problems, and what promises it still holds."""

    rules: tuple[Rule, ...] = ()
    problems: tuple[Problem, ...] = ()
    identity: Identity | None = None  # None: absent, or not a file devserve reads
    trusted: bool = False  # read settled: re-used while the identity holds
    dep: Dependencies | None = None  # None: nothing promised


class _RuleFile(Generic[Rule]):
    """One rule file, re-read when its stat identity changes."""

    def __init__(
        self,
        path: str,
        parse: Callable[[str], tuple[tuple[Rule, ...], tuple[Problem, ...]]],
        policy: Policy,
        notice: Callable[[str, str], None] | None,
    ) -> None:
        self.path = path
        self.parse: Callable[[str], tuple[tuple[Rule, ...], tuple[Problem, ...]]] = parse
        self.policy = policy
        self.notice = notice
        self._absent: _Version[Rule] = _Version(trusted=True, dep=((path, None),))
        self.version: _Version[Rule] = self._absent

    def current(self) -> _Version[Rule]:
        known = self.version
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            version = self._absent
        except (OSError, ValueError):
            version = _Version()
        else:
            if known.trusted and known.identity == identity(st):
                return known
            version = self._read()
            if self.notice is not None:
                for problem in version.problems:
                    if problem not in known.problems:
                        self.notice(f"host-file {problem}", str(problem))
        self.version = version
        return version

    def _read(self) -> _Version[Rule]:
        read_at = time.time()
        opened = open_allowed(self.path, self.policy)
        if opened is None:
            return _Version()  # refused by the policies: nothing is promised
        fd, st = opened
        try:
            if not stat.S_ISREG(st.st_mode):
                known = identity(st)  # a folder, say: ignored while it stays one
                return _Version(identity=known, trusted=True, dep=((self.path, known),))
            data = os.pread(fd, MAX_BYTES + 1, 0)
        finally:
            os.close(fd)
        trusted = settled(st, read_at)
        dep: Dependencies | None = ((self.path, identity(st)),) if trusted else None
        if len(data) > MAX_BYTES:
            name = os.path.basename(self.path)
            problem = Problem(name, 1, f"the file is larger than {MAX_BYTES >> 20} MiB")
            return _Version((), (problem,), identity(st), trusted, dep)
        rules, problems = self.parse(data.decode("utf-8", "replace").removeprefix("\ufeff"))
        return _Version(rules, problems, identity(st), trusted, dep)


class HostFiles:
    """A site's host files: ``paths`` are never served; `current` gives their rules."""

    def __init__(
        self,
        policy: Policy,
        refused: frozenset[str],
        notice: Callable[[str, str], None] | None = None,
    ) -> None:
        root = policy.root
        self._redirects = _RuleFile(
            os.path.join(root, REDIRECTS_FILE), parse_redirects, policy, notice
        )
        self._headers = _RuleFile(
            os.path.join(root, HEADERS_FILE),
            lambda text: parse_headers(text, refused),
            policy,
            notice,
        )
        self.paths = frozenset({self._redirects.path, self._headers.path})

    def current(self) -> HostState:
        """The rules as the files are now (one stat each while they stay the same)."""
        redirects = self._redirects.current()
        headers = self._headers.current()
        deps = None if redirects.dep is None or headers.dep is None else redirects.dep + headers.dep
        return HostState(
            redirects.rules, headers.rules, deps, redirects.problems + headers.problems
        )
