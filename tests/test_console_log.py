"""The request log's lines in each format (console/log.py), rendered without a server."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from devserve.console import THEME, LogFormat, RequestLog
from devserve.console.log import JsonRenderer, TextRenderer
from devserve.events import LogEvent, RequestRecord
from tests.console_support import WHEN, colour_console, local_time_in_utc, plain_console, record

RECORDS = [
    record(),
    record(path="/missing", status=404, size=0, served="", note="did you mean /index.html?"),
    record(
        method="POST",
        path="/cgi-bin/x\x1b[31m",
        status=500,
        size=3 * 1024 * 1024,
        duration=1.23456,
        served="cgi",
        note="exit 1\x07",
    ),
    record(client="::1", status=301, size=150, duration=0.0, served="redirect", when=WHEN + 61.9),
]
EVENTS = [
    LogEvent(WHEN, "info", "watching /srv"),
    LogEvent(WHEN + 1, "warning", "slow client [red]x\x1b"),
    LogEvent(
        WHEN + 2, "error", "script failed", "Traceback (most recent call last):\n  x\x1b[2J\n"
    ),
]

ITEMS: list[RequestRecord | LogEvent] = [*RECORDS, *EVENTS]

# Captured from devserve/console.py at d1b0c8a, before it became a package (TZ=UTC).
LOG_BEFORE: dict[str, list[str]] = {
    "pretty": [
        "22:13:20 127.0.0.1 GET /index.html 200 2.0 KiB 0.4 ms index\n",
        "22:13:20 127.0.0.1 GET /missing 404 0 B 0.4 ms did you mean /index.html?\n",
        "22:13:20 127.0.0.1 POST /cgi-bin/x\\x1b[31m 500 3.0 MiB 1234.6 ms cgi exit 1\\x07\n",
        "22:14:22 ::1 GET /index.html 301 150 B 0.0 ms redirect\n",
        "22:13:20 watching /srv\n",
        "22:13:21 ! slow client [red]x\\x1b\n",
        "22:13:22 ✗ script failed\n    Traceback (most recent call last):\n      x\\x1b[2J\n",
    ],
    "pretty-colour": [
        (
            "\x1b[2m22:13:20\x1b[0m \x1b[2m127.0.0.1\x1b[0m \x1b[1mGET\x1b[0m "
            "\x1b[39m/index.html\x1b[0m \x1b[32m200\x1b[0m \x1b[2m2.0 KiB\x1b[0m \x1b[2m0.4 "
            "ms\x1b[0m \x1b[35mindex\x1b[0m\n"
        ),
        (
            "\x1b[2m22:13:20\x1b[0m \x1b[2m127.0.0.1\x1b[0m \x1b[1mGET\x1b[0m "
            "\x1b[39m/missing\x1b[0m \x1b[33m404\x1b[0m \x1b[2m0 B\x1b[0m \x1b[2m0.4 ms\x1b[0m "
            "\x1b[3mdid you mean /index.html?\x1b[0m\n"
        ),
        (
            "\x1b[2m22:13:20\x1b[0m \x1b[2m127.0.0.1\x1b[0m \x1b[1mPOST\x1b[0m "
            "\x1b[39m/cgi-bin/x\\x1b[31m\x1b[0m \x1b[1;31m500\x1b[0m \x1b[2m3.0 MiB\x1b[0m "
            "\x1b[2m1234.6 ms\x1b[0m \x1b[35mcgi\x1b[0m \x1b[3mexit 1\\x07\x1b[0m\n"
        ),
        (
            "\x1b[2m22:14:22\x1b[0m \x1b[2m::1\x1b[0m \x1b[1mGET\x1b[0m "
            "\x1b[39m/index.html\x1b[0m \x1b[36m301\x1b[0m \x1b[2m150 B\x1b[0m \x1b[2m0.0 "
            "ms\x1b[0m \x1b[35mredirect\x1b[0m\n"
        ),
        "\x1b[2m22:13:20\x1b[0m \x1b[39mwatching /srv\x1b[0m\n",
        "\x1b[2m22:13:21\x1b[0m \x1b[33m! slow client [red]x\\x1b\x1b[0m\n",
        (
            "\x1b[2m22:13:22\x1b[0m \x1b[1;31m✗ script failed\x1b[0m\n\x1b[2m    Traceback (most "
            "recent call last):\x1b[0m\n\x1b[2m      x\\x1b[2J\x1b[0m\n"
        ),
    ],
    "plain-colour": [
        "22:13:20 127.0.0.1 GET /index.html 200 2.0 KiB 0.4 ms index\n",
        "22:13:20 127.0.0.1 GET /missing 404 0 B 0.4 ms did you mean /index.html?\n",
        "22:13:20 127.0.0.1 POST /cgi-bin/x\\x1b[31m 500 3.0 MiB 1234.6 ms cgi exit 1\\x07\n",
        "22:14:22 ::1 GET /index.html 301 150 B 0.0 ms redirect\n",
        "22:13:20 watching /srv\n",
        "22:13:21 ! slow client [red]x\\x1b\n",
        "22:13:22 ✗ script failed\n    Traceback (most recent call last):\n      x\\x1b[2J\n",
    ],
    "json": [
        (
            '{"event": "request", "time": "2023-11-14T22:13:20.250+00:00", '
            '"client": "127.0.0.1", "method": "GET", "path": '
            '"/index.html", "status": 200, "bytes": 2048, "duration_ms": 0.42, "served": '
            '"index", "note": ""}\n'
        ),
        (
            '{"event": "request", "time": "2023-11-14T22:13:20.250+00:00", '
            '"client": "127.0.0.1", "method": "GET", "path": '
            '"/missing", "status": 404, "bytes": 0, "duration_ms": 0.42, "served": "", "note": '
            '"did you mean /index.html?"}\n'
        ),
        (
            '{"event": "request", "time": "2023-11-14T22:13:20.250+00:00", '
            '"client": "127.0.0.1", "method": "POST", '
            '"path": "/cgi-bin/x\\u001b[31m", "status": 500, "bytes": 3145728, "duration_ms": '
            '1234.56, "served": "cgi", "note": "exit 1\\u0007"}\n'
        ),
        (
            '{"event": "request", "time": "2023-11-14T22:14:22.150+00:00", '
            '"client": "::1", "method": "GET", "path": '
            '"/index.html", "status": 301, "bytes": 150, "duration_ms": 0.0, "served": '
            '"redirect", "note": ""}\n'
        ),
        (
            '{"event": "log", "time": "2023-11-14T22:13:20.250+00:00", '
            '"level": "info", "message": "watching /srv", '
            '"detail": ""}\n'
        ),
        (
            '{"event": "log", "time": "2023-11-14T22:13:21.250+00:00", '
            '"level": "warning", "message": "slow client '
            '[red]x\\u001b", "detail": ""}\n'
        ),
        (
            '{"event": "log", "time": "2023-11-14T22:13:22.250+00:00", '
            '"level": "error", "message": "script failed", '
            '"detail": "Traceback (most recent call last):\\n  x\\u001b[2J\\n"}\n'
        ),
    ],
}


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


@pytest.mark.parametrize(
    ("variant", "make", "log_format"),
    [
        ("pretty", plain_console, "pretty"),
        ("pretty-colour", colour_console, "pretty"),
        ("plain-colour", colour_console, "plain"),
        ("json", plain_console, "json"),
    ],
)
def test_each_format_renders_records_and_events_as_before(
    variant: str, make: Callable[[], tuple[Console, io.StringIO]], log_format: LogFormat
) -> None:
    """Byte for byte what console.py rendered before it became a package."""
    console, _ = make()
    log = RequestLog(console, log_format)
    with local_time_in_utc():
        rendered = [log.render(item) for item in ITEMS]
    assert rendered == LOG_BEFORE[variant]


@pytest.mark.parametrize(
    ("log_format", "renderer", "painted", "variant"),
    [
        ("pretty", TextRenderer, True, "pretty-colour"),
        ("plain", TextRenderer, False, "plain-colour"),
        ("json", JsonRenderer, False, "json"),
    ],
)
def test_each_format_chooses_its_renderer_once(
    log_format: LogFormat, renderer: type, painted: bool, variant: str
) -> None:
    """The renderer is picked at construction; lines never ask for the format again."""
    console, _ = colour_console()
    log = RequestLog(console, log_format)
    assert type(log.renderer) is renderer
    assert bool(getattr(log.renderer, "ansi", {})) is painted
    log.format = "plain" if log_format == "json" else "json"  # not read again
    with local_time_in_utc():
        assert [log.render(item) for item in ITEMS] == LOG_BEFORE[variant]


def test_pretty_on_a_console_without_colour_is_unpainted() -> None:
    console, _ = plain_console()
    renderer = RequestLog(console, "pretty").renderer
    assert isinstance(renderer, TextRenderer)
    assert renderer.ansi == {}


def test_an_unknown_format_is_refused_at_construction() -> None:
    console, _ = plain_console()
    unknown: Any = "xml"
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        RequestLog(console, unknown)


@pytest.mark.parametrize("log_format", ["pretty", "plain", "json"])
@pytest.mark.parametrize("make", [plain_console, colour_console])
def test_a_repeated_request_logs_exactly_as_a_rendered_one(
    log_format: LogFormat, make: Callable[[], tuple[Console, io.StringIO]]
) -> None:
    """The event loop's prepared lines (repeater) match render() for each time and duration."""
    console, out = make()
    log = RequestLog(console, log_format)
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
