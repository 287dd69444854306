"""The documented handler's log colours: a small ANSI palette of the core's own.

Python 3.15 colours `BaseHTTPRequestHandler`'s log lines when they go to a
terminal; so does `devserve.server`, on every Python, without importing rich
(only `devserve.console` does). Whether a stream gets colour follows the rules
CPython's own colouring follows, in this order: ``PYTHON_COLORS=0`` or ``=1``
decides; else ``NO_COLOR`` (set at all) turns it off; else ``FORCE_COLOR`` (set
at all) turns it on; else ``TERM=dumb`` turns it off; else the stream must be
a terminal. The environment is ignored under ``python -E``.

Invariant: colour codes are only ever added around text that was already
scrubbed of control characters, so they are the only escapes in a line.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
RED = "\x1b[31m"
BOLD_RED = "\x1b[1;31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
BLUE = "\x1b[34m"
CYAN = "\x1b[36m"

# The status of a response by its class: informational, success, redirect,
# client error, server error.
STATUS_COLOURS = {1: BLUE, 2: GREEN, 3: CYAN, 4: YELLOW, 5: BOLD_RED}


def takes_colour(stream: TextIO) -> bool:
    """Whether text written to ``stream`` should be coloured (see the module doc)."""
    if not sys.flags.ignore_environment:
        setting = os.environ.get("PYTHON_COLORS")
        if setting == "0":
            return False
        if setting == "1":
            return True
        if "NO_COLOR" in os.environ:
            return False
        if "FORCE_COLOR" in os.environ:
            return True
        if os.environ.get("TERM") == "dumb":
            return False
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        isatty = getattr(stream, "isatty", None)
        return bool(isatty()) if callable(isatty) else False


def paint(text: str, colour: str) -> str:
    """``text`` in ``colour``, then back to the terminal's default."""
    return f"{colour}{text}{RESET}"


def status_colour(status: str) -> str:
    """The colour of a status code given as text ("404"); none for anything else ("-")."""
    if len(status) == 3 and status.isdigit():
        return STATUS_COLOURS.get(int(status[0]), "")
    return ""
