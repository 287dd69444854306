"""The request log: records and events as lines, one renderer per format, chosen once.

``RequestLog`` is the sink the server reports to. At construction it picks the
renderer of its format (``TextRenderer`` for pretty and plain, ``JsonRenderer``
for json), so no line asks which format it is in; it hands each rendered line to
a ``LineWriter`` (writer.py), whose one thread does the writing.

Request lines are hot (tens of thousands a second under load): each is rendered
where it is reported, as a join of cached strings, with no rich on the way. The
ANSI codes of each theme style are resolved once per log, a request's painted
fields once per distinct request, the clock once per second. Everything that
came from the network is scrubbed of control characters before it is written,
and never goes through rich markup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from devserve.console.banner import print_ready, print_stopped, ready_json, stopped_json
from devserve.console.text import format_size, iso_time, json_line, scrub
from devserve.console.theme import ansi_pairs
from devserve.console.writer import BACKLOG_LIMIT, LineWriter, write_now
from devserve.events import LogEvent, RequestRecord

if TYPE_CHECKING:
    from rich.console import Console

    from devserve.events import ReadyInfo, Summary

LogFormat = Literal["pretty", "plain", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("pretty", "plain", "json")

# Rendered request lines remembered (without time and duration), and durations;
# a line for a longer path is not remembered, so a client cannot make the table big.
_MIDDLES_MAX = 1024
_MIDDLE_PATH_LIMIT = 1024


class Renderer(Protocol):
    """How one log format reads: request and event return text; the others write it."""

    def request(self, record: RequestRecord) -> str:
        """One request as the text to write, with its newline."""
        ...

    def event(self, event: LogEvent) -> str:
        """One event as the text to write, with its newline (and its detail lines)."""
        ...

    def repeater(self, record: RequestRecord, writer: LineWriter) -> Callable[[float, float], None]:
        """A sink for requests like ``record`` but for their time and duration."""
        ...

    def ready(self, console: Console, info: ReadyInfo) -> None:
        """Write the start-up banner."""
        ...

    def stopped(self, console: Console, summary: Summary) -> None:
        """Write the summary after the server stopped."""
        ...


class RequestLog:
    """Renders request records and events on a console, off the request threads."""

    def __init__(self, console: Console, log_format: LogFormat = "pretty") -> None:
        self.console = console
        self.format = log_format
        self.renderer = _renderer(console, log_format)
        self._writer = LineWriter(console)

    # -- the sink the server calls (any thread)

    def __call__(self, item: RequestRecord | LogEvent) -> None:
        # Rendering is a cached string join (no rich on this path), cheaper than
        # handing the record over; the write, which can block, is the log thread's.
        # (Methods reached through attributes, not bound methods kept on self:
        # CPython specializes the former and this runs per request.)
        self._writer.put(
            self.renderer.request(item) if type(item) is RequestRecord else self.render(item)
        )

    def repeater(self, record: RequestRecord) -> Callable[[float, float], None]:
        """A sink for more requests exactly like ``record`` but for their time and duration.

        The event loop reports each replayed request through one of these: the
        line is mostly rendered already, so a load test's identical lines cost
        two lookups and a join each.
        """
        return self.renderer.repeater(record, self._writer)

    def start(self) -> None:
        self._writer.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting, then stop the log thread."""
        self._writer.close(timeout)

    def render(self, item: RequestRecord | LogEvent) -> str:
        """One item as the text to write, with its newline."""
        if isinstance(item, RequestRecord):
            return self.renderer.request(item)
        return self.renderer.event(item)

    # -- once-only start-up and shut-down output (not hot: full rich rendering)

    def ready(self, info: ReadyInfo) -> None:
        """The start-up banner: directory, every URL, options, a hint, a QR code.

        A log that cannot be written (a full disk, a closed pipe) must not stop
        the server, so write errors are dropped here as in the log thread.
        """
        with contextlib.suppress(OSError, ValueError):
            self.renderer.ready(self.console, info)

    def stopped(self, summary: Summary) -> None:
        """The one-line summary after Ctrl-C / SIGTERM (write errors dropped).

        Queued request lines are written first, so the summary is the last line.
        """
        self.close()
        with contextlib.suppress(OSError, ValueError):
            self.renderer.stopped(self.console, summary)


def _renderer(console: Console, log_format: LogFormat) -> Renderer:
    """The renderer of ``log_format``: pretty paints with the console's theme, plain never."""
    if log_format == "json":
        return JsonRenderer()
    if log_format == "plain":
        return TextRenderer({})
    if log_format == "pretty":
        return TextRenderer(ansi_pairs(console))
    raise ValueError(f"unknown log format {log_format!r} (expected one of {LOG_FORMATS})")


class TextRenderer:
    """The pretty and plain formats: one line of fields, painted with ``ansi`` if any.

    ``ansi`` maps theme style names to the codes that open and close them (empty:
    no colour, the plain format or a console without colour).
    """

    def __init__(self, ansi: dict[str, tuple[str, str]]) -> None:
        self.ansi = ansi
        self._middles: dict[tuple[object, ...], tuple[str, str]] = {}
        self._duration_paint = ansi.get("devserve.duration", ("", ""))
        self._durations: dict[int, str] = {}
        self._clocks: dict[int, str] = {}

    def _paint(self, style: str, text: str) -> str:
        pair = self.ansi.get(style)
        return f"{pair[0]}{text}{pair[1]}" if pair else text

    def request(self, record: RequestRecord) -> str:
        before, after = self._middle(record)
        clock, took = self._clock_text(record.when), self._duration_text(record.duration)
        return f"{clock} {before} {took}{after}\n"

    def repeater(self, record: RequestRecord, writer: LineWriter) -> Callable[[float, float], None]:
        before, after = self._middle(record)
        clock, took, lines, put = self._clock_text, self._duration_text, writer.lines, writer.put
        # The last line made, by (second, tenth of a millisecond): repeats within a
        # second nearly always read the same, so the same string is written again.
        last: list[tuple[int, str]] = [(-1, "")]

        def emit(when: float, duration: float) -> None:
            key = int(when) * 1_000_000 + round(duration * 10_000)
            made, line = last[0]
            if made != key:
                line = f"{clock(when)} {before} {took(duration)}{after}\n"
                last[0] = (key, line)
            if writer.awake and len(lines) < BACKLOG_LIMIT:
                lines.append(line)  # the common case, inlined: this runs per request
            else:
                put(line)

        return emit

    def _middle(self, record: RequestRecord) -> tuple[str, str]:
        """The painted fields around the duration: the same for every repeat of a request."""
        key = record[1:6] + record[7:]  # all but the time and the duration
        middle = self._middles.get(key)
        if middle is None:
            paint = self._paint
            status_style = f"devserve.status.{record.status // 100}xx"
            parts = [
                paint("devserve.client", scrub(record.client)),
                paint("devserve.method", scrub(record.method)),
                paint("devserve.path", scrub(record.path)),
                paint(status_style, str(record.status)),
                paint("devserve.size", format_size(record.size)),
            ]
            tail = []
            if record.served:
                tail.append(paint("devserve.served", record.served))
            if record.note:
                tail.append(paint("devserve.note", scrub(record.note)))
            middle = (" ".join(parts), "".join(" " + part for part in tail))
            if len(record.path) <= _MIDDLE_PATH_LIMIT:
                if len(self._middles) >= _MIDDLES_MAX:
                    self._middles.clear()
                self._middles[key] = middle
        return middle

    def _clock_text(self, when: float) -> str:
        """HH:MM:SS of ``when``, painted; formatted once per second."""
        second = int(when)
        clock = self._clocks.get(second)
        if clock is None:
            clock = self._paint("devserve.time", time.strftime("%H:%M:%S", time.localtime(second)))
            self._clocks = {second: clock}
        return clock

    def _duration_text(self, duration: float) -> str:
        tenths = round(duration * 10_000)  # the shown precision: 0.1 ms
        text = self._durations.get(tenths)
        if text is None:
            before, after = self._duration_paint
            text = f"{before}{tenths / 10:.1f} ms{after}"
            if len(self._durations) < _MIDDLES_MAX:
                self._durations[tenths] = text
        return text

    def event(self, event: LogEvent) -> str:
        marker = {"error": "✗ ", "warning": "! ", "info": ""}[event.level]
        when = self._paint("devserve.time", time.strftime("%H:%M:%S", time.localtime(event.when)))
        line = f"{when} {self._paint(f'devserve.{event.level}', marker + scrub(event.message))}\n"
        for detail in event.detail.splitlines():
            line += self._paint("devserve.detail", "    " + scrub(detail)) + "\n"
        return line

    def ready(self, console: Console, info: ReadyInfo) -> None:
        print_ready(console, info)

    def stopped(self, console: Console, summary: Summary) -> None:
        print_stopped(console, summary)


class JsonRenderer:
    """The json format: one JSON object per line, unscrubbed but \\u-escaped (ASCII only)."""

    def request(self, record: RequestRecord) -> str:
        return json_line(
            {
                "event": "request",
                "time": iso_time(record.when),
                "client": record.client,
                "method": record.method,
                "path": record.path,
                "status": record.status,
                "bytes": record.size,
                "duration_ms": round(record.duration * 1000, 3),
                "served": record.served,
                "note": record.note,
            }
        )

    def repeater(self, record: RequestRecord, writer: LineWriter) -> Callable[[float, float], None]:
        request, put = self.request, writer.put
        return lambda when, duration: put(request(record._replace(when=when, duration=duration)))

    def event(self, event: LogEvent) -> str:
        return json_line(
            {
                "event": "log",
                "time": iso_time(event.when),
                "level": event.level,
                "message": event.message,
                "detail": event.detail,
            }
        )

    def ready(self, console: Console, info: ReadyInfo) -> None:
        write_now(console, ready_json(info, time.time()))

    def stopped(self, console: Console, summary: Summary) -> None:
        write_now(console, stopped_json(summary, time.time()))
