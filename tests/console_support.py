"""Shared plumbing for the console tests: the two test consoles, a record, local time in UTC."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator

from rich.console import Console

from devserve.console import THEME
from devserve.events import RequestRecord

WHEN = 1_700_000_000.25  # 2023-11-14 22:13:20.250 UTC


def plain_console() -> tuple[Console, io.StringIO]:
    """A console without colour that is not a terminal, and what it wrote (as make_console)."""
    out = io.StringIO()
    return Console(file=out, width=120, color_system=None, theme=THEME, highlight=False), out


def colour_console() -> tuple[Console, io.StringIO]:
    """A 16-colour terminal console, and what it wrote (no highlighting, as make_console)."""
    out = io.StringIO()
    console = Console(
        file=out,
        width=120,
        color_system="standard",
        force_terminal=True,
        theme=THEME,
        highlight=False,
    )
    return console, out


def record(**changes: object) -> RequestRecord:
    """A 200 for /index.html at ``WHEN``, with ``changes``."""
    base: dict[str, object] = {
        "when": WHEN,
        "client": "127.0.0.1",
        "method": "GET",
        "path": "/index.html",
        "status": 200,
        "size": 2048,
        "duration": 0.00042,
        "served": "index",
    }
    base.update(changes)
    return RequestRecord(**base)  # type: ignore[arg-type]


@contextlib.contextmanager
def local_time_in_utc() -> Iterator[None]:
    """Local time is UTC inside (the log shows local clock times), restored after."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
