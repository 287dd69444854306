"""The theme, the one console the CLI creates, and what a console's styles look like in ANSI.

Styles are looked up by theme name (``devserve.status.4xx``), never hard-coded, so
a user's theme can change every colour; ``ansi_pairs`` resolves them once per
console for the request log, which writes ANSI codes itself instead of asking rich.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.markup import escape
from rich.theme import Theme

from devserve.console.text import scrub

if TYPE_CHECKING:
    from rich.style import Style

THEME = Theme(
    {
        "devserve.time": "dim",
        "devserve.client": "dim",
        "devserve.method": "bold",
        "devserve.path": "default",
        "devserve.status.1xx": "blue",
        "devserve.status.2xx": "green",
        "devserve.status.3xx": "cyan",
        "devserve.status.4xx": "yellow",
        "devserve.status.5xx": "bold red",
        "devserve.size": "dim",
        "devserve.duration": "dim",
        "devserve.served": "magenta",
        "devserve.note": "italic",
        "devserve.error": "bold red",
        "devserve.warning": "yellow",
        "devserve.info": "default",
        "devserve.detail": "dim",
        "devserve.url": "bold cyan",
        "devserve.label": "bold",
        "devserve.hint": "dim",
    }
)

_STYLE_NAMES = tuple(str(name) for name in THEME.styles)


def make_console(file: TextIO | None = None) -> Console:
    """The one console the CLI creates and passes down (honours NO_COLOR and FORCE_COLOR).

    FORCE_COLOR wins even where rich would see no colour (TERM=dumb, a pipe),
    and NO_COLOR wins over FORCE_COLOR.
    """
    stream = file or sys.stderr
    console = Console(file=stream, theme=THEME, highlight=False, soft_wrap=True)
    forced = os.environ.get("FORCE_COLOR", "") != "" and os.environ.get("NO_COLOR", "") == ""
    if forced and console.color_system is None:
        console = Console(
            file=stream,
            theme=THEME,
            highlight=False,
            soft_wrap=True,
            force_terminal=True,
            color_system="standard",
        )
    return console


def _uses_colour(console: Console) -> bool:
    return console.color_system is not None and not console.no_color


def ansi_pairs(console: Console) -> dict[str, tuple[str, str]]:
    """For each theme style, the ANSI codes that open and close it on this console."""
    if not _uses_colour(console):
        return {}
    assert console._color_system is not None
    pairs = {}
    for name in _STYLE_NAMES:
        style: Style = console.get_style(name)
        rendered = style.render("\0", color_system=console._color_system)
        start, _, end = rendered.partition("\0")
        pairs[name] = (start, end)
    return pairs


def print_error(console: Console, message: str) -> None:
    """A one-line error for the user (bad flags, missing directory, busy port)."""
    console.print(f"[devserve.error]devserve: error:[/] {escape(scrub(message))}")
