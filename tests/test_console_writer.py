"""The log thread (console/writer.py): order, flushing on close, a bounded backlog."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from devserve.console import THEME, RequestLog, writer
from devserve.events import Summary
from tests.console_support import plain_console, record


def test_log_thread_writes_in_order_and_close_flushes() -> None:
    console, out = plain_console()
    log = RequestLog(console, "plain")
    log.start()
    threads = [threading.Thread(target=lambda i=i: log(record(path=f"/t{i}"))) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log(record(path="/last"))
    log.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 51
    assert lines[-1].split()[3] == "/last"
    assert not any(t.name == "devserve-log" for t in threading.enumerate())


def test_summary_comes_after_every_queued_line() -> None:
    console, out = plain_console()
    log = RequestLog(console, "plain")
    log.start()
    for i in range(20):
        log(record(path=f"/q{i}"))
    log.stopped(Summary(requests=20, size=0, errors=0, seconds=1))
    lines = out.getvalue().splitlines()
    assert len(lines) == 21
    assert lines[-1].startswith("stopped: 20 requests")


def test_a_log_that_falls_behind_holds_its_callers_instead_of_growing() -> None:
    gate = threading.Event()

    class SlowFile(io.StringIO):
        def write(self, text: str) -> int:
            gate.wait(10)  # a terminal that stopped reading
            return super().write(text)

    slow = SlowFile()
    log = RequestLog(Console(file=slow, color_system=None, theme=THEME), "plain")
    log.start()
    limit = writer.BACKLOG_LIMIT
    done = threading.Event()

    def flood() -> None:
        for i in range(limit + 5000):
            log(record(path=f"/{i}"))
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert not done.wait(1.0)  # held: the queue stays bounded
    assert len(log._writer.lines) <= limit + 1
    gate.set()
    assert done.wait(10)
    log.close()
    assert len(slow.getvalue().splitlines()) == limit + 5000
