"""A 404 for something that is there says why in the log (never on the page), with the flag."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devserve.config import ServeConfig
from tests.support import port_of, raw_exchange, running_devserve, status_of


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / ".secret").write_text("s")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("o")
    os.symlink(outside, tmp_path / "out")
    (tmp_path / "page.txt").write_text("p")
    return tmp_path


@pytest.mark.parametrize(
    ("target", "note"),
    [
        ("/.secret", "hidden: --show-hidden serves it"),
        ("/out", "a symlink leading outside the folder: --follow-symlinks serves it"),
        ("/sub/", "a folder without an index page, and listings are off (--no-listing)"),
        ("/page.txt/", "a file, asked for as a folder (with a trailing /)"),
        ("/pag.txt", "did you mean /page.txt"),
        ("/nothing-like-it", ""),
    ],
)
def test_the_log_says_why(site: Path, target: str, note: str) -> None:
    config = ServeConfig(directory=site, listing=False)
    with running_devserve(config) as (server, log, _):
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        for _ in range(2):  # the loop's remembered reply says the same
            reply = raw_exchange(port_of(server), request)
            assert status_of(reply) == 404
            assert b"show-hidden" not in reply and b"follow-symlinks" not in reply
    assert [(r.path, r.note) for r in log.records()] == [(target, note)] * 2
