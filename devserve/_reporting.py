"""What a running server reports and counts: the `Reporter` it presents itself to,
the `Journal` it reports requests to, the totals of the stop summary, and
notices said once.

Invariants:
- Every request answered is counted once in `Stats`, by the loop or a thread,
  whether or not the log is on (``--quiet`` only silences the report).
- A notice is said at most once per key, and at most `NOTICES` distinct ones:
  keys are kept as fixed-size digests, so a client cannot grow the table.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

from devserve.events import LogEvent, ReadyInfo, RequestRecord, Summary


class Reporter(Protocol):
    """Whoever presents the server to the user (the console, in the CLI)."""

    def __call__(self, item: RequestRecord | LogEvent) -> None: ...

    def repeater(self, record: RequestRecord) -> Callable[[float, float], None]:
        """A sink for more requests like ``record`` but for their time and duration."""
        ...

    def ready(self, info: ReadyInfo) -> None: ...

    def stopped(self, summary: Summary) -> None: ...


class Stats:
    """Totals for the summary line, updated from the loop and every request thread."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests = 0
        self.size = 0
        self.errors = 0
        self._lock = threading.Lock()

    def add(self, size: int, error: bool) -> None:
        with self._lock:
            self.requests += 1
            self.size += size
            self.errors += error

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def summary(self) -> Summary:
        return Summary(self.requests, self.size, self.errors, time.monotonic() - self.started)


class ServerJournal:
    """The `Journal` a devserve server reports to: the stop summary's totals and the log."""

    def __init__(self, stats: Stats, report: Reporter, quiet: bool) -> None:
        self.stats = stats
        self.report = report
        self.quiet = quiet

    def answered(self, record: RequestRecord) -> None:
        self.stats.add(record.size, record.status >= 500)
        if not self.quiet:
            self.report(record)

    def repeats(self, record: RequestRecord) -> Callable[[float, float], None]:
        add, size, failed = self.stats.add, record.size, record.status >= 500
        if self.quiet:
            return lambda when, duration: add(size, failed)
        emit = self.report.repeater(record)

        def repeat(when: float, duration: float) -> None:
            add(size, failed)
            emit(when, duration)

        return repeat

    def error(self, message: str, detail: str = "") -> None:
        self.report(LogEvent(time.time(), "error", message, detail))

    def failed(self, client: str, detail: str) -> None:
        self.stats.error()
        self.error(f"error while handling a request from {client}", detail)


# Distinct live-reload notices said at most (each is one log line).
NOTICES = 4096


class Notices:
    """Live-reload notices said once per key (a page that stays uninjected, say)."""

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self._told: set[bytes] = set()  # digests: a key a client chose cannot grow memory
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> None:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=16).digest()
        with self._lock:
            if digest in self._told or len(self._told) >= NOTICES:
                return
            self._told.add(digest)
        self.report(LogEvent(time.time(), "warning", message))
