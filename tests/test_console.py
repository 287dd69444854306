"""Rendering of the banner, request lines and events (console.py), without a server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from devserve.console import THEME, RequestLog, format_size, make_console, print_error
from devserve.events import LogEvent, ReadyInfo, RequestRecord, Summary

ROOT = Path(__file__).resolve().parent.parent
WHEN = 1_700_000_000.25


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, color_system=None, theme=THEME), out


def colour_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(
        file=out, width=120, color_system="standard", force_terminal=True, theme=THEME
    )
    return console, out


def record(**changes: object) -> RequestRecord:
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


def test_plain_request_line() -> None:
    console, _ = plain_console()
    line = RequestLog(console, "pretty").render(record())
    assert line.endswith(" 127.0.0.1 GET /index.html 200 2.0 KiB 0.4 ms index\n")
    assert "\x1b" not in line


@pytest.mark.parametrize(
    ("status", "code"), [(200, "32"), (301, "36"), (404, "33"), (503, "1;31"), (101, "34")]
)
def test_status_colour_by_class(status: int, code: str) -> None:
    console, _ = colour_console()
    line = RequestLog(console, "pretty").render(record(status=status))
    assert f"\x1b[{code}m{status}\x1b[0m" in line


def test_theme_override_changes_the_colour() -> None:
    console, _ = colour_console()
    console.push_theme(THEME.__class__({"devserve.status.2xx": "magenta"}))
    line = RequestLog(console, "pretty").render(record())
    assert "\x1b[35m200\x1b[0m" in line


def test_plain_format_never_colours() -> None:
    console, _ = colour_console()
    line = RequestLog(console, "plain").render(record())
    assert "\x1b" not in line


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/\x1b[31mred", "/\\x1b[31mred"),
        ("/[red]x[/red]", "/[red]x[/red]"),
        ("/bell\x07", "/bell\\x07"),
        ("/csi\x9b2J", "/csi\\x9b2J"),
        ("/del\x7f", "/del\\x7f"),
        ("/new\nline", "/new\\x0aline"),
    ],
)
def test_network_text_is_scrubbed(path: str, shown: str) -> None:
    for console, _ in (plain_console(), colour_console()):
        line = RequestLog(console, "pretty").render(record(path=path, note=path))
        assert line.count(shown) == 2
        assert line.count("\n") == 1
        assert "\x07" not in line
        assert "\x9b" not in line


def test_json_line() -> None:
    console, _ = plain_console()
    line = RequestLog(console, "json").render(record(path="/\x1b\u00e9", note="n"))
    data = json.loads(line)
    assert data["path"] == "/\x1b\u00e9"
    assert data["status"] == 200
    assert data["bytes"] == 2048
    assert data["duration_ms"] == 0.42
    assert data["served"] == "index"
    assert data["time"].startswith("2023-11-1")
    assert line.isascii()  # control and non-ASCII characters are \u-escaped


def test_error_event_stands_out_with_detail() -> None:
    console, _ = colour_console()
    event = LogEvent(WHEN, "error", "script failed", "Traceback (most recent call last):\n  x")
    text = RequestLog(console, "pretty").render(event)
    first, *rest = text.splitlines()
    assert "\x1b[1;31m✗ script failed\x1b[0m" in first
    assert len(rest) == 2
    assert rest[0] == "\x1b[2m    Traceback (most recent call last):\x1b[0m"


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


def test_banner_lists_urls_options_and_hint() -> None:
    console, out = plain_console()
    RequestLog(console).ready(
        ReadyInfo(
            version="9.9",
            directory="/srv/[bold]site",
            urls=("http://127.0.0.1:8000/",),
            lan_urls=("http://192.0.2.5:8000/",),
            options=("spa", "cors"),
            hint="a hint",
            moved_from=8000,
        )
    )
    text = out.getvalue()
    assert "devserve 9.9 serving /srv/[bold]site" in text
    assert "port 8000 is busy" in text
    assert "Local:   http://127.0.0.1:8000/" in text
    assert "Network: http://192.0.2.5:8000/" in text
    assert "Options: spa, cors" in text
    assert "a hint" in text


def test_qr_code_only_on_a_terminal() -> None:
    info = ReadyInfo("1", "/d", ("http://127.0.0.1:1/",), ("http://192.0.2.5:1/",))
    console, out = plain_console()
    RequestLog(console).ready(info)
    assert "█" not in out.getvalue() and "▀" not in out.getvalue()
    console, out = colour_console()
    RequestLog(console).ready(info)
    assert "▀" in out.getvalue() or "█" in out.getvalue()


def test_summary_line() -> None:
    console, out = plain_console()
    RequestLog(console).stopped(Summary(requests=12, size=3 * 1024 * 1024, errors=1, seconds=75))
    assert out.getvalue().strip() == "stopped: 12 requests, 3.0 MiB sent, 1 errors in 1m15s"


def test_print_error_is_one_scrubbed_line() -> None:
    console, out = plain_console()
    print_error(console, "bad \x1b[2J [red]thing")
    assert out.getvalue() == "devserve: error: bad \\x1b[2J [red]thing\n"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 << 30, "5.0 GiB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


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


def test_help_and_completion_do_not_import_the_server() -> None:
    """`devserve --help` and completion requests stay light: no server, no watchfiles."""
    code = (
        "import sys\n"
        "from devserve.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='devserve')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('devserve.server', 'devserve.serving', 'watchfiles', 'segno',\n"
        "         'devserve.console', 'socketserver', 'ssl') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    for args in (["--help"], ["serve", "--help"], ["--version"]):
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert "HEAVY []" in result.stderr, (args, result.stderr)


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


@pytest.mark.parametrize("log_format", ["pretty", "plain", "json"])
@pytest.mark.parametrize("make", [plain_console, colour_console])
def test_a_repeated_request_logs_exactly_as_a_rendered_one(log_format: str, make: object) -> None:
    """The event loop's prepared lines (repeater) match render() for each time and duration."""
    console, out = make()  # type: ignore[operator]
    log = RequestLog(console, log_format)  # type: ignore[arg-type]
    first = record(path="/\x1b[31mx", duration=0.00004)
    emit = log.repeater(first)
    expected = []
    for when, duration in [(WHEN, 0.00004), (WHEN + 1.5, 0.0123), (WHEN + 2, 1.25)]:
        emit(when, duration)
        expected.append(log.render(first._replace(when=when, duration=duration)))
    log.start()
    log.close()
    assert out.getvalue() == "".join(expected)
    assert "\x1b[31m" not in out.getvalue()  # still scrubbed


def test_a_log_that_falls_behind_holds_its_callers_instead_of_growing() -> None:
    from devserve import console as console_module

    gate = threading.Event()

    class SlowFile(io.StringIO):
        def write(self, text: str) -> int:
            gate.wait(10)  # a terminal that stopped reading
            return super().write(text)

    slow = SlowFile()
    log = RequestLog(Console(file=slow, color_system=None, theme=THEME), "plain")
    log.start()
    limit = console_module._BACKLOG_LIMIT
    done = threading.Event()

    def flood() -> None:
        for i in range(limit + 5000):
            log(record(path=f"/{i}"))
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert not done.wait(1.0)  # held: the queue stays bounded
    assert len(log._lines) <= limit + 1
    gate.set()
    assert done.wait(10)
    log.close()
    assert len(slow.getvalue().splitlines()) == limit + 5000
