"""The log thread: lines handed over from any thread, written to the console in batches.

Appending to a deque needs no lock, and the one log thread takes what is there and
writes it with one write and one flush, then pauses so that lines gather (a wake-up
and a write per request would keep the log thread on the request threads' GIL).
A log that falls far behind holds its callers instead of growing without bound,
and a log that cannot be written (a full disk, a closed pipe) never takes the
server down.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from rich.console import Console

# Seconds the log thread waits between batches (a line shows up at most this late).
BATCH_PAUSE = 0.02
# Past this many lines waiting to be written, callers wait.
BACKLOG_LIMIT = 20_000


def write_now(console: Console, text: str) -> None:
    """Write and flush ``text`` on the console's file, dropping write errors."""
    try:
        console.file.write(text)
        console.file.flush()
    except (OSError, ValueError):
        pass  # a closed or full log must never take the server down


class LineWriter:
    """Lines put from any thread, written in order by one log thread.

    ``lines`` and ``awake`` are read by fast paths that inline ``put`` (the request
    log's repeaters): while ``awake`` is true and the backlog is under
    ``BACKLOG_LIMIT``, appending to ``lines`` is all that ``put`` would do.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        # Rendered lines waiting for the log thread (None asks it to stop).
        self.lines: collections.deque[str | None] = collections.deque()
        self.awake = False  # the log thread is not waiting on _lines_ready
        self._lines_ready = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, text: str | None) -> None:
        """Hand ``text`` to the log thread (``None`` asks it to stop)."""
        lines = self.lines
        lines.append(text)
        if not self.awake:
            self._lines_ready.set()
        if len(lines) > BACKLOG_LIMIT:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Hold the caller while the log is far behind (a slow terminal or pipe).

        The backlog would otherwise grow without bound; this is the wait a server
        that writes its log synchronously would have, paid only when behind.
        """
        thread = self._thread
        while thread is not None and thread.is_alive() and len(self.lines) > BACKLOG_LIMIT // 2:
            time.sleep(0.001)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="devserve-log", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting, then stop the log thread."""
        if self._thread is not None:
            self.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        lines = self.lines
        self.awake = True
        while True:
            if not lines:
                # Say we are going to wait, then look again: a line appended in
                # between either is seen here or sets the event.
                self.awake = False
                if not lines:
                    self._lines_ready.wait()
                self._lines_ready.clear()
                self.awake = True
                continue
            take = lines.popleft
            batch = [take() for _ in range(len(lines))]
            done = None in batch
            if done:
                batch.remove(None)
            text = "".join(cast("list[str]", batch))
            if text:
                write_now(self.console, text)
            if done:
                return
            # Let lines gather: one wake-up and one write per batch instead of per
            # request keeps the log thread off the request threads' GIL.
            time.sleep(BATCH_PAUSE)
