"""Every piece of terminal presentation (the only package that imports rich).

- ``theme``: the theme, the one console (``make_console``), ANSI codes per style,
  ``print_error``
- ``text``: plain-text helpers the others share (scrubbing, sizes, times, JSON)
- ``log``: ``RequestLog``, the request log, with one renderer per log format
  (pretty and plain: ``TextRenderer``; json: ``JsonRenderer``) chosen once
- ``writer``: ``LineWriter``, the log thread that writes the lines in batches
- ``banner``: the start-up banner and the summary when the server stops
- ``check_report``: the report of `devserve check` and its progress bar

Everything that came from the network (or from a checked tree) is scrubbed of
control characters before it is written, and never goes through rich markup.
"""

from devserve.console.check_report import (
    CHECK_FORMATS,
    CheckFormat,
    CheckProgress,
    check_summary,
    github_annotation,
    print_check_report,
)
from devserve.console.log import LOG_FORMATS, LogFormat, RequestLog
from devserve.console.text import format_size, scrub
from devserve.console.theme import THEME, make_console, print_error

__all__ = [
    "CHECK_FORMATS",
    "LOG_FORMATS",
    "THEME",
    "CheckFormat",
    "CheckProgress",
    "LogFormat",
    "RequestLog",
    "check_summary",
    "format_size",
    "github_annotation",
    "make_console",
    "print_check_report",
    "print_error",
    "scrub",
]
