"""Reading the rule files (devserve._host_files): by stat identity, problems told once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devserve._files import Policy, still_true
from devserve._host_files import MAX_BYTES, HostFiles
from devserve._paths import SymlinkPolicy

FRAMING = frozenset({"content-length"})


class Told:
    """A notice sink that keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, key: str, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read counts as settled (files written by a test are a moment old)."""
    monkeypatch.setattr("devserve._host_files.settled", lambda st, read_at: True)


def host(
    root: Path, told: Told | None = None, follow_symlinks: SymlinkPolicy = "inside"
) -> HostFiles:
    return HostFiles(Policy(str(root), follow_symlinks), FRAMING, told)


def test_absent_files_give_no_rules_and_promise_their_absence(tmp_path: Path) -> None:
    state = host(tmp_path).current()
    assert (state.redirects, state.headers, state.problems) == ((), (), ())
    assert state.deps == ((str(tmp_path / "_redirects"), None), (str(tmp_path / "_headers"), None))
    (tmp_path / "_headers").write_text("/*\n  X-A: 1\n")
    assert state.deps is not None
    assert not still_true(state.deps)


def test_rules_are_read_again_when_a_file_changes(tmp_path: Path, settled: None) -> None:
    files = host(tmp_path)
    (tmp_path / "_redirects").write_text("/a /b 302\n")
    first = files.current()
    assert [rule.destination for rule in first.redirects] == ["/b"]
    assert files.current() is not first  # a new tuple, the same parsed rules
    assert files.current().redirects is first.redirects  # not parsed again
    (tmp_path / "_redirects").write_text("/a /c 302\n# grown\n")
    assert first.deps is not None
    assert not still_true(first.deps)
    assert [rule.destination for rule in files.current().redirects] == ["/c"]
    (tmp_path / "_redirects").unlink()
    assert files.current().redirects == ()


def test_a_file_read_racily_promises_nothing_and_is_read_again(tmp_path: Path) -> None:
    files = host(tmp_path)
    (tmp_path / "_redirects").write_text("/a /b 302\n")  # changed just now: racy
    first = files.current()
    assert first.deps is None  # no reply built on it may be remembered
    assert files.current().redirects is not first.redirects  # read again on the next use


def test_each_problem_is_told_once(tmp_path: Path, settled: None) -> None:
    told = Told()
    files = host(tmp_path, told)
    (tmp_path / "_redirects").write_text("/a /b 999\n/c /d\n")
    (tmp_path / "_headers").write_text("/*\n  Content-Length: 1\n")
    files.current()
    files.current()
    assert told.messages == [
        "_redirects line 1 ignored: status 999 is not one a rule can give "
        "(200, 301, 302, 303, 307, 308 or 404)",
        "_headers line 2 ignored: Content-Length is set by the server for each response",
    ]
    (tmp_path / "_redirects").write_text("# moved down\n/a /b 999\n/c /d\n")
    files.current()
    assert told.messages[-1].startswith("_redirects line 2 ignored: status 999")
    assert len(told.messages) == 3


def test_a_file_too_large_is_not_read(tmp_path: Path, settled: None) -> None:
    (tmp_path / "_redirects").write_bytes(b"/a /b\n" * (MAX_BYTES // 6 + 1))
    state = host(tmp_path).current()
    assert state.redirects == ()
    assert [problem.message for problem in state.problems] == ["the file is larger than 1 MiB"]


def test_a_link_leaving_the_folder_is_read_only_with_follow_symlinks(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "rules").write_text("/a /b 302\n")
    (site / "_redirects").symlink_to(tmp_path / "rules")
    assert host(site, follow_symlinks="inside").current().redirects == ()
    assert len(host(site, follow_symlinks="always").current().redirects) == 1


def test_a_folder_named_like_a_rule_file_is_ignored(tmp_path: Path, settled: None) -> None:
    (tmp_path / "_headers").mkdir()
    state = host(tmp_path).current()
    assert state.headers == ()
    assert state.deps is not None
    os.rmdir(tmp_path / "_headers")
    assert not still_true(state.deps)


def test_undecodable_bytes_and_a_bom_are_tolerated(tmp_path: Path, settled: None) -> None:
    (tmp_path / "_headers").write_bytes(b"\xef\xbb\xbf/*\n  X-A: caf\xe9\n")
    state = host(tmp_path).current()
    assert [rule.pattern.text for rule in state.headers] == ["/*"]
    assert [p.line for p in state.problems] == [2]  # U+FFFD is no Latin-1 header value
