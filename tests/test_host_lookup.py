"""Clean URLs on disk (devserve._files): /about reaches about.html; where --clean-urls sends.

Tables over a real tree: what `find` reaches with ``try_html``, what each answer
depends on (so a file created later changes it), and `clean_location`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devserve._files import (
    Dependency,
    FileTable,
    Found,
    Policy,
    clean_location,
    find,
    identity,
    still_true,
)
from devserve._paths import url_to_fs_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "index.html").write_text("home")
    (site / "about.html").write_text("about")
    (site / "docs.html").write_text("docs page")  # a file and a folder of the same name
    (site / "docs" / "index.html").write_text("docs index")
    (site / "plain").mkdir()  # a folder without an index page
    (site / "notes").write_text("no suffix")
    (site / "notes.html").write_text("shadowed by notes")
    (site / ".secret.html").write_text("hidden")
    (site / "big.html").write_bytes(b"x" * (300 * 1024))
    return site


def lookup(root: Path, url: str, *, try_html: bool = True) -> Found:
    policy = Policy(str(root), show_hidden=False, try_html=try_html)
    found = find(url_to_fs_path(url, str(root)), policy, FileTable())
    if found.fd is not None:
        os.close(found.fd)
    return found


@pytest.mark.parametrize(
    ("url", "kind", "file"),
    [
        ("/about", "file", "about.html"),
        ("/about.html", "file", "about.html"),
        ("/about/", "missing", None),  # a slash after a file name reaches nothing
        ("/docs", "file", "docs.html"),  # the file wins over the folder
        ("/docs/", "index", "docs/index.html"),
        ("/plain", "redirect", "plain"),  # a folder without a page of that name: add the /
        ("/notes", "file", "notes"),  # a file as named wins over name.html
        ("/big", "file", "big.html"),
        ("/.secret", "missing", None),  # the hidden-file policy holds for the .html too
        ("/missing", "missing", None),
        ("/", "index", "index.html"),
        ("/about.html.html", "missing", None),
    ],
)
def test_a_path_without_html_reaches_the_html_file(
    root: Path, url: str, kind: str, file: str | None
) -> None:
    found = lookup(root, url)
    assert found.kind == kind
    if file is not None:
        assert found.path == str(root / file).rstrip("/")


def test_without_try_html_nothing_is_added(root: Path) -> None:
    assert lookup(root, "/about", try_html=False).kind == "missing"
    assert lookup(root, "/docs", try_html=False).kind == "redirect"


@pytest.mark.parametrize(
    ("url", "create"),
    [
        ("/contact", "contact.html"),  # missing, then the page appears
        ("/contact", "contact"),  # missing, then a file of that very name
        ("/plain", "plain.html"),  # a folder redirect, then a page of the same name
        ("/about", "about"),  # about.html, then a file named as asked for
    ],
)
def test_an_answer_depends_on_what_would_change_it(
    root: Path, url: str, create: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)  # every read counts as settled
    before = lookup(root, url)
    assert before.deps is not None
    assert still_true(before.deps)
    (root / create).write_text("new")
    assert not still_true(before.deps)


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/about.html", "/about"),
        ("/about.html?x=1&y=2", "/about?x=1&y=2"),  # the query is kept
        ("/about/", "/about"),
        ("/about/?x=1", "/about?x=1"),
        ("/docs.html", "/docs"),  # /docs serves docs.html: no loop
        ("/docs/index.html", "/docs/"),
        ("/index.html", "/"),
        ("/notes.html", None),  # /notes serves another file: stay
        ("/about", None),
        ("/docs/", None),
        ("/missing.html", None),
        ("/missing/", None),
        ("/notes/", None),  # only an HTML page loses its slash
    ],
)
def test_where_clean_urls_redirect(root: Path, target: str, location: str | None) -> None:
    policy = Policy(str(root), show_hidden=False, try_html=True)
    table = FileTable()
    found = find(url_to_fs_path(target, str(root)), policy, table)
    if found.fd is not None:
        os.close(found.fd)
    clean = clean_location(target, found, policy, table) if found.kind != "redirect" else None
    assert (clean[0] if clean else None) == location
    if location is not None:
        follow = lookup(root, location)
        assert follow.kind in ("file", "index")  # where it sends serves a page, no redirect


def test_inputs_found_unchanged_in_a_turn_are_checked_once(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("v1")
    deps = ((str(page), identity(os.stat(page))), (str(tmp_path / "_headers"), None))
    turn: set[Dependency] = set()
    assert still_true(deps, turn)
    assert turn == set(deps)
    (tmp_path / "_headers").write_text("/*\n  X-A: 1\n")
    assert still_true(deps, turn)  # the same turn of the loop: not asked again
    assert not still_true(deps, set())  # the next turn sees the rule file
    assert not still_true(deps)
