"""The request log: records and events rendered as lines, written off the request threads.

Request lines are hot: each is rendered where it is reported, from fields painted
once (the ANSI codes of each theme style are resolved at start-up, and a request's
fields once per distinct request), and one log thread writes them in batches (a
``Console.print`` per line would cost the server a large share of its throughput).
Everything that came from the network is scrubbed of control characters before it
is written, and never goes through rich markup.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Literal, cast

from rich.console import Console
from rich.markup import escape

from devserve.console.text import format_size, human_duration, iso_time, json_line, scrub
from devserve.console.theme import ansi_pairs
from devserve.events import LogEvent, ReadyInfo, RequestRecord, Summary

LogFormat = Literal["pretty", "plain", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("pretty", "plain", "json")

# Seconds the log thread waits between batches (a line shows up at most this late).
_BATCH_PAUSE = 0.02
# Past this many lines waiting to be written, callers wait.
_BACKLOG_LIMIT = 20_000
# Rendered request lines remembered (without time and duration).
_MIDDLES_MAX = 1024


class RequestLog:
    """Renders request records and events on a console, off the request threads."""

    def __init__(self, console: Console, log_format: LogFormat = "pretty") -> None:
        self.console = console
        self.format = log_format
        self._ansi = ansi_pairs(console) if log_format == "pretty" else {}
        # Rendered lines waiting for the log thread (None asks it to stop). A deque:
        # appending needs no lock, and the log thread takes what is there.
        self._lines: collections.deque[str | None] = collections.deque()
        self._lines_ready = threading.Event()
        self._log_awake = False  # the log thread is not waiting on _lines_ready
        self._thread: threading.Thread | None = None
        self._middles: dict[tuple[object, ...], tuple[str, str]] = {}
        self._duration_paint = self._ansi.get("devserve.duration", ("", ""))
        self._durations: dict[int, str] = {}
        self._clocks: dict[int, str] = {}

    # -- the sink the server calls (any thread)

    def __call__(self, item: RequestRecord | LogEvent) -> None:
        # Rendering is a cached string join (no rich on this path), cheaper than
        # handing the record over; the write, which can block, is the log thread's.
        self._put(self.render_request(item) if type(item) is RequestRecord else self.render(item))

    def _put(self, text: str | None) -> None:
        lines = self._lines
        lines.append(text)
        if not self._log_awake:
            self._lines_ready.set()
        if len(lines) > _BACKLOG_LIMIT:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Hold the caller while the log is far behind (a slow terminal or pipe).

        The backlog would otherwise grow without bound; this is the wait a server
        that writes its log synchronously would have, paid only when behind.
        """
        thread = self._thread
        while thread is not None and thread.is_alive() and len(self._lines) > _BACKLOG_LIMIT // 2:
            time.sleep(0.001)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="devserve-log", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting, then stop the log thread."""
        if self._thread is not None:
            self._put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        lines = self._lines
        self._log_awake = True
        while True:
            if not lines:
                # Say we are going to wait, then look again: a line appended in
                # between either is seen here or sets the event.
                self._log_awake = False
                if not lines:
                    self._lines_ready.wait()
                self._lines_ready.clear()
                self._log_awake = True
                continue
            take = lines.popleft
            batch = [take() for _ in range(len(lines))]
            done = None in batch
            if done:
                batch.remove(None)
            text = "".join(cast("list[str]", batch))
            if text:
                self._write(text)
            if done:
                return
            # Let lines gather: one wake-up and one write per batch instead of per
            # request keeps the log thread off the request threads' GIL.
            time.sleep(_BATCH_PAUSE)

    def _write(self, text: str) -> None:
        try:
            self.console.file.write(text)
            self.console.file.flush()
        except (OSError, ValueError):
            pass  # a closed or full log must never take the server down

    # -- rendering (pure: a record in, text out)

    def render(self, item: RequestRecord | LogEvent) -> str:
        """One item as the text to write, with its newline."""
        if isinstance(item, RequestRecord):
            return self.render_request(item)
        return self.render_event(item)

    def _paint(self, style: str, text: str) -> str:
        pair = self._ansi.get(style)
        return f"{pair[0]}{text}{pair[1]}" if pair else text

    def render_request(self, record: RequestRecord) -> str:
        if self.format == "json":
            return json_line(
                {
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
        before, after = self._middle(record)
        clock, took = self._clock_text(record.when), self._duration_text(record.duration)
        return f"{clock} {before} {took}{after}\n"

    def repeater(self, record: RequestRecord) -> Callable[[float, float], None]:
        """A sink for more requests exactly like ``record`` but for their time and duration.

        The event loop reports each replayed request through one of these: the
        line is mostly rendered already, so a load test's identical lines cost
        two lookups and a join each.
        """
        if self.format == "json":
            return lambda when, duration: self(record._replace(when=when, duration=duration))
        before, after = self._middle(record)
        clock, took, lines, put = self._clock_text, self._duration_text, self._lines, self._put
        # The last line made, by (second, tenth of a millisecond): repeats within a
        # second nearly always read the same, so the same string is written again.
        last: list[tuple[int, str]] = [(-1, "")]

        def emit(when: float, duration: float) -> None:
            key = int(when) * 1_000_000 + round(duration * 10_000)
            made, line = last[0]
            if made != key:
                line = f"{clock(when)} {before} {took(duration)}{after}\n"
                last[0] = (key, line)
            if self._log_awake and len(lines) < _BACKLOG_LIMIT:
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

    def render_event(self, event: LogEvent) -> str:
        if self.format == "json":
            return json_line(
                {
                    "time": iso_time(event.when),
                    "level": event.level,
                    "message": event.message,
                    "detail": event.detail,
                }
            )
        marker = {"error": "✗ ", "warning": "! ", "info": ""}[event.level]
        when = self._paint("devserve.time", time.strftime("%H:%M:%S", time.localtime(event.when)))
        line = f"{when} {self._paint(f'devserve.{event.level}', marker + scrub(event.message))}\n"
        for detail in event.detail.splitlines():
            line += self._paint("devserve.detail", "    " + scrub(detail)) + "\n"
        return line

    # -- once-only start-up and shut-down output (not hot: full rich rendering)

    def ready(self, info: ReadyInfo) -> None:
        """The start-up banner: directory, every URL, options, a hint, a QR code.

        A log that cannot be written (a full disk, a closed pipe) must not stop
        the server, so write errors are dropped here as in the log thread.
        """
        with contextlib.suppress(OSError, ValueError):
            self._ready(info)

    def _ready(self, info: ReadyInfo) -> None:
        if self.format == "json":
            self._write(
                json_line(
                    {
                        "time": iso_time(time.time()),
                        "event": "listening",
                        "directory": info.directory,
                        "urls": [*info.urls, *info.lan_urls],
                        "options": list(info.options),
                    }
                )
            )
            return
        print_ = self.console.print
        print_(
            f"[devserve.label]devserve {escape(info.version)}[/] serving {escape(info.directory)}"
        )
        if info.moved_from is not None:
            print_(
                f"[devserve.warning]port {info.moved_from} is busy; "
                f"using {escape(info.urls[0])} instead[/]"
            )
        for url in info.urls:
            print_(f"  [devserve.label]Local:[/]   [devserve.url]{escape(url)}[/]")
        for url in info.lan_urls:
            print_(f"  [devserve.label]Network:[/] [devserve.url]{escape(url)}[/]")
        if info.options:
            print_(f"  [devserve.label]Options:[/] {escape(', '.join(info.options))}")
        if info.hint:
            print_(f"  [devserve.hint]{escape(info.hint)}[/]")
        if info.lan_urls and self.console.is_terminal:
            self._qr(info.lan_urls[0])

    def _qr(self, url: str) -> None:
        import io

        import segno

        buffer = io.StringIO()
        segno.make(url, error="l").terminal(out=buffer, compact=True, border=2)
        self.console.print(buffer.getvalue(), markup=False, highlight=False, end="")

    def stopped(self, summary: Summary) -> None:
        """The one-line summary after Ctrl-C / SIGTERM (write errors dropped).

        Queued request lines are written first, so the summary is the last line.
        """
        self.close()
        with contextlib.suppress(OSError, ValueError):
            self._stopped(summary)

    def _stopped(self, summary: Summary) -> None:
        if self.format == "json":
            self._write(
                json_line(
                    {
                        "time": iso_time(time.time()),
                        "event": "stopped",
                        "requests": summary.requests,
                        "bytes": summary.size,
                        "errors": summary.errors,
                        "seconds": round(summary.seconds, 3),
                    }
                )
            )
            return
        self.console.print(
            f"[devserve.label]stopped[/]: {summary.requests} requests, "
            f"{format_size(summary.size)} sent, {summary.errors} errors "
            f"in {human_duration(summary.seconds)}"
        )
