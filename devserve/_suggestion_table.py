"""404 suggestions by URL path, remembered while the folders they were read from stay the same.

Invariants:
- A suggestion is re-used only while every directory it read has the same stat
  identity and was read settled (`devserve._files.settled`); one read racily is
  not remembered.
- It names only a path the server would serve (`suggest_path`'s invariant, with
  the site's policies and the paths it refuses besides).
- The table is bounded in bytes and keyed by the decoded path.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections import OrderedDict
from typing import NamedTuple

from devserve._files import (
    Dependencies,
    Policy,
    identity,
    is_withheld,
    listed,
    settled,
    still_true,
)
from devserve._paths import may_serve
from devserve._suggest import suggest_path


class _Suggestion(NamedTuple):
    text: str | None
    directories: Dependencies  # what was read, as it was


class SuggestionTable:
    """404 suggestions by URL path, re-used while the directories they read stay the same.

    A suggestion reads every directory on the way (`suggest_path`); it is reused
    only while each of them has the same stat identity and was read settled
    (see `devserve._files.settled`). Bounded in bytes; keyed by the decoded path.
    """

    def __init__(
        self,
        policy: Policy,
        max_bytes: int,
        refused: frozenset[str] = frozenset(),
        withheld: tuple[str, ...] = (),
    ) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.refused = refused  # paths never suggested (the host's rule files)
        self.withheld = withheld  # folders never suggested, nor anything in them (is_withheld)
        self._entries: OrderedDict[str, tuple[_Suggestion, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def suggest(self, target: str) -> str | None:
        """The suggestion for a 404 of ``target`` (see `suggest_path`)."""
        return self.suggest_from(target)[0]

    def suggest_from(self, target: str) -> tuple[str | None, Dependencies | None]:
        """The suggestion, and the directories it was read from (None: read racily)."""
        key = decoded_path(target)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and still_true(entry[0].directories):
            return entry[0].text, entry[0].directories
        read_at = time.time()
        read: list[tuple[str, os.stat_result]] = []
        text = suggest_path(target, self.policy.root, self._servable, self._listed, read.append)
        if not all(settled(st, read_at) for _, st in read):
            return text, None
        deps = tuple((path, identity(st)) for path, st in read)
        self._put(key, _Suggestion(text, deps))
        return text, deps

    def _servable(self, fs_path: str) -> bool:
        policy = self.policy
        if fs_path in self.refused or is_withheld(fs_path, self.withheld):
            return False
        return may_serve(fs_path, policy.root, policy.follow_symlinks, policy.show_hidden)

    def _listed(self, name: str) -> bool:
        return listed(name, self.policy)

    def _put(self, key: str, value: _Suggestion) -> None:
        cost = (
            256 + len(key) + len(value.text or "") + sum(len(p) + 64 for p, _ in value.directories)
        )
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._entries[key] = (value, cost)
            self._size += cost
            while self._size > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._size -= dropped


def decoded_path(target: str) -> str:
    """The path of a request target, percent-decoded (undecodable bytes kept as surrogates)."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    return urllib.parse.unquote(path, errors="surrogateescape")
