"""What a client chooses (targets, spellings, paths) cannot grow the server's memory.

Every table keyed by something from the request is bounded, by entries and by
bytes, and keyed by what the request means (the file it reached, the script
that ran) where there is such a thing, not by how the URL was spelled.
"""

from __future__ import annotations

import socket
from pathlib import Path

from devserve._loop import LoopHTTPServer
from devserve._loop_replies import ANSWERS_BYTES, REPEAT_TARGET_LIMIT, REPEATERS
from devserve.config import CGIConfig, ReloadConfig, ServeConfig
from devserve.console.log import TextRenderer
from devserve.events import LogEvent, RequestRecord
from tests.support import Collector, port_of, running_devserve

DOCUMENT = b"Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n"


def ask(port: int, target: bytes, extra: bytes = b"") -> bytes:
    """One request on a fresh connection; the whole reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra)
        sock.sendall(b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def warnings(log: Collector) -> list[str]:
    return [item.message for item in log.items if isinstance(item, LogEvent)]


def test_a_notice_is_said_once_per_file_however_its_url_is_spelled(public_tmp: Path) -> None:
    (public_tmp / "data.json").write_text('{"a": 1}')
    config = ServeConfig(directory=public_tmp, reload=ReloadConfig(), quiet=False)
    with running_devserve(config) as (server, log, _):
        port = port_of(server)
        spellings = [b"/data.json", b"//data.json", b"/./data.json", b"/%64ata.json"]
        spellings += [b"/data.json?v=%d" % i for i in range(50)]
        for target in spellings:
            assert ask(port, target, DOCUMENT).startswith(b"HTTP/1.1 200 ")
    told = [m for m in warnings(log) if "has no reload script" in m]
    assert len(told) == 1, told


def test_a_script_notice_is_said_once_whatever_path_info_follows(public_tmp: Path) -> None:
    script = public_tmp / "cgi-bin" / "data.sh"
    script.parent.mkdir(mode=0o755)
    script.write_text("#!/bin/sh\nprintf 'Content-Type: application/json\\r\\n\\r\\n{}'\n")
    script.chmod(0o755)
    config = ServeConfig(directory=public_tmp, cgi=CGIConfig(), reload=ReloadConfig())
    with running_devserve(config) as (server, log, _):
        port = port_of(server)
        for i in range(40):
            target = b"/cgi-bin/data.sh/%s?q=%d" % (b"x" * i, i)
            assert ask(port, target, DOCUMENT).startswith(b"HTTP/1.1 200 ")
    told = [m for m in warnings(log) if "has no reload script" in m]
    assert len(told) == 1, told


def test_long_targets_are_answered_but_not_remembered(public_tmp: Path) -> None:
    (public_tmp / "page.txt").write_text("page")
    config = ServeConfig(directory=public_tmp, quiet=False)
    with running_devserve(config) as (server, log, _):
        port = port_of(server)
        for i in range(REPEATERS + 50):  # more than the table holds, and each one long
            target = b"/page.txt?%d=" % i + b"q" * (REPEAT_TARGET_LIMIT + 10)
            assert ask(port, target).endswith(b"page")
        assert isinstance(server, LoopHTTPServer)
        assert server.reports is not None
        repeaters = server.reports._repeaters
        assert all(len(str(key[2])) <= REPEAT_TARGET_LIMIT for key in repeaters)
        assert server.replies is not None
        assert server.replies.answers_size <= ANSWERS_BYTES
    assert len(log.records()) == REPEATERS + 50  # every one of them was logged


def test_the_log_remembers_no_long_lines() -> None:
    lines = TextRenderer({})
    for i in range(3000):
        path = f"/{i}/" + "p" * (2000 if i % 2 else 10)
        record = RequestRecord(0.0, "127.0.0.1", "GET", path, 200, 1, 0.001, "file", "")
        assert path in lines.request(record)
    assert len(lines._middles) <= 1024
    assert all(len(str(key[2])) <= 1024 for key in lines._middles)
