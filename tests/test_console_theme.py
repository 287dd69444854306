"""The theme, the one console and the error line (console/theme.py)."""

from __future__ import annotations

import io

import pytest

from devserve.console import make_console, print_error
from tests.console_support import plain_console


def test_print_error_is_one_scrubbed_line() -> None:
    console, out = plain_console()
    print_error(console, "bad \x1b[2J [red]thing")
    assert out.getvalue() == "devserve: error: bad \\x1b[2J [red]thing\n"


def test_make_console_honours_no_color_and_force_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert make_console(io.StringIO()).color_system is not None
    monkeypatch.setenv("NO_COLOR", "1")
    console = make_console(io.StringIO())
    assert console.no_color or console.color_system is None
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.delenv("NO_COLOR")
    assert make_console(io.StringIO()).color_system is None  # not a terminal
