"""The 404's suggestion for names that are not plain ASCII (devserve._suggest).

A suggestion is a URL path the server decodes back to the file it names,
whatever bytes the name is made of; asking near a name that is not UTF-8 used to
drop the connection (the suggestion could not be percent-encoded).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devserve._paths import url_to_fs_path
from devserve._suggest import suggest_path
from devserve.config import ServeConfig
from tests.support import port_of, raw_exchange, running_devserve, status_of

NAMES = [b"caf\xe9.txt", "naïve ✓.txt".encode(), b"a&b #?%.txt", b"space name.txt"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in NAMES:
        with open(os.path.join(os.fsencode(tmp_path), name), "wb") as f:
            f.write(name)
    return tmp_path


@pytest.mark.parametrize(
    ("asked", "suggested", "name"),
    [
        ("/caf%E9.tx", "/caf%ED%B3%A9.txt", b"caf\xe9.txt"),  # the raw byte: not UTF-8
        ("/caf%ED%B3%A9.tx", "/caf%ED%B3%A9.txt", b"caf\xe9.txt"),  # as listings link it
        ("/CAF%ED%B3%A9.TXT", "/caf%ED%B3%A9.txt", b"caf\xe9.txt"),
        ("/na%C3%AFve%20%E2%9C%93.tx", "/na%C3%AFve%20%E2%9C%93.txt", "naïve ✓.txt".encode()),
        ("/a%26b%20%23%3F%25.tx", "/a%26b%20%23%3F%25.txt", b"a&b #?%.txt"),
        ("/space%20nme.txt", "/space%20name.txt", b"space name.txt"),
    ],
)
def test_a_suggestion_decodes_to_the_file_it_names(
    root: Path, asked: str, suggested: str, name: bytes
) -> None:
    suggestion = suggest_path(asked, str(root), lambda path: True)
    assert suggestion == suggested
    assert os.fsencode(url_to_fs_path(suggestion, str(root))) == os.path.join(
        os.fsencode(root), name
    )


def test_a_404_near_a_name_that_is_not_utf8_is_answered(root: Path) -> None:
    with running_devserve(ServeConfig(directory=root)) as (server, log, _):
        port = port_of(server)
        for target in (b"/caf%E9.tx", b"/caf%ED%B3%A9.tx"):
            reply = raw_exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(reply) == 404, reply[:200]
            assert b"caf%ED%B3%A9.txt" in reply
        found = raw_exchange(port, b"GET /caf%ED%B3%A9.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(found) == 200 and found.endswith(b"caf\xe9.txt")
    # each reported once, with what was suggested (no error, no dropped request)
    assert [(r.status, r.note) for r in log.records()] == [
        (404, "did you mean /caf%ED%B3%A9.txt"),
        (404, "did you mean /caf%ED%B3%A9.txt"),
        (200, ""),
    ]
    assert not [item for item in log.items if getattr(item, "level", "") == "error"]
