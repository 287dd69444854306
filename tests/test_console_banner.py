"""The start-up banner and the stopped summary (console/banner.py), in each format."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import pytest
from rich.console import Console

from devserve.console import LogFormat, RequestLog
from devserve.events import ReadyInfo, Summary
from tests.console_support import WHEN, colour_console, local_time_in_utc, plain_console

READY = [
    ReadyInfo(
        version="9.9",
        directory="/srv/[bold]site",
        urls=("http://127.0.0.1:8000/",),
        lan_urls=("http://192.0.2.5:8000/",),
        options=("spa", "cors"),
        hint="a hint [x]",
        moved_from=8000,
    ),
    ReadyInfo("1", "/d", ("http://127.0.0.1:1/", "http://[::1]:1/")),
]
STOPPED = [
    Summary(requests=12, size=3 * 1024 * 1024, errors=1, seconds=75),
    Summary(requests=1, size=10, errors=0, seconds=0.04),
    Summary(requests=1, size=10, errors=0, seconds=7322),
]

# Captured from devserve/console.py at d1b0c8a, before it became a package (TZ=UTC).
BANNER_BEFORE: dict[str, list[str]] = {
    "pretty": [
        "devserve 9.9 serving /srv/[bold]site\n",
        "port 8000 is busy; using http://127.0.0.1:8000/ instead\n",
        "  Local:   http://127.0.0.1:8000/\n",
        "  Network: http://192.0.2.5:8000/\n",
        "  Options: spa, cors\n",
        "  a hint [x]\n",
        "devserve 1 serving /d\n",
        "  Local:   http://127.0.0.1:1/\n",
        "  Local:   http://[::1]:1/\n",
        "stopped: 12 requests, 3.0 MiB sent, 1 error in 1m15s\n",
        "stopped: 1 request, 10 B sent, 0 errors in 0.0 s\n",
        "stopped: 1 request, 10 B sent, 0 errors in 2h02m\n",
    ],
    "pretty-colour": [
        "\x1b[1mdevserve 1\x1b[0m serving /d\n",
        "  \x1b[1mLocal:\x1b[0m   \x1b[1;36mhttp://127.0.0.1:1/\x1b[0m\n",
        "  \x1b[1mLocal:\x1b[0m   \x1b[1;36mhttp://[::1]:1/\x1b[0m\n",
        "\x1b[1mstopped\x1b[0m: 12 requests, 3.0 MiB sent, 1 error in 1m15s\n",
        "\x1b[1mstopped\x1b[0m: 1 request, 10 B sent, 0 errors in 0.0 s\n",
        "\x1b[1mstopped\x1b[0m: 1 request, 10 B sent, 0 errors in 2h02m\n",
    ],
    "json": [
        (
            '{"event": "listening", "time": "2023-11-14T22:13:20.250+00:00", '
            '"directory": '
            '"/srv/[bold]site", "urls": ["http://127.0.0.1:8000/", "http://192.0.2.5:8000/"], '
            '"options": ["spa", "cors"]}\n'
        ),
        (
            '{"event": "listening", "time": "2023-11-14T22:13:20.250+00:00", '
            '"directory": "/d", '
            '"urls": ["http://127.0.0.1:1/", "http://[::1]:1/"], "options": []}\n'
        ),
        (
            '{"event": "stopped", "time": "2023-11-14T22:13:20.250+00:00", '
            '"requests": 12, "bytes": '
            '3145728, "errors": 1, "seconds": 75}\n'
        ),
        (
            '{"event": "stopped", "time": "2023-11-14T22:13:20.250+00:00", '
            '"requests": 1, "bytes": 10, '
            '"errors": 0, "seconds": 0.04}\n'
        ),
        (
            '{"event": "stopped", "time": "2023-11-14T22:13:20.250+00:00", '
            '"requests": 1, "bytes": 10, '
            '"errors": 0, "seconds": 7322}\n'
        ),
    ],
}


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
    assert out.getvalue().strip() == "stopped: 12 requests, 3.0 MiB sent, 1 error in 1m15s"


@pytest.mark.parametrize(
    ("variant", "make", "log_format", "ready"),
    [
        ("pretty", plain_console, "pretty", READY),
        ("pretty-colour", colour_console, "pretty", READY[1:]),  # no QR code to pin
        ("json", plain_console, "json", READY),
    ],
)
def test_banner_and_summary_as_before(
    variant: str,
    make: Callable[[], tuple[Console, io.StringIO]],
    log_format: LogFormat,
    ready: list[ReadyInfo],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Byte for byte what console.py wrote before it became a package."""
    console, out = make()
    log = RequestLog(console, log_format)
    monkeypatch.setattr(time, "time", lambda: WHEN)  # the JSON lines' "time"
    with local_time_in_utc():
        for info in ready:
            log.ready(info)
        for summary in STOPPED:
            log.stopped(summary)
    assert out.getvalue().splitlines(keepends=True) == BANNER_BEFORE[variant]


TLS_AUTO = ReadyInfo(
    "1",
    "/d",
    ("https://127.0.0.1:1/",),
    options=("tls auto", "auth: 1 user"),
    certificate="/home/me/.local/share/devserve/tls/cert.pem",
    fingerprint="AB:CD:EF",
    certificate_made=True,
)


def test_banner_says_where_the_certificate_is_and_its_fingerprint() -> None:
    console, out = plain_console()
    RequestLog(console).ready(TLS_AUTO)
    RequestLog(console).ready(
        ReadyInfo("1", "/d", ("https://127.0.0.1:1/",), certificate="/c.pem", fingerprint="01")
    )
    assert out.getvalue().splitlines()[2:] == [
        "  Options: tls auto, auth: 1 user",
        "  TLS:     self-signed certificate (made now): "
        "/home/me/.local/share/devserve/tls/cert.pem",
        "  SHA-256: AB:CD:EF",
        "devserve 1 serving /d",
        "  Local:   https://127.0.0.1:1/",
        "  TLS:     self-signed certificate (kept from an earlier run): /c.pem",
        "  SHA-256: 01",
    ]


def test_the_json_banner_carries_the_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    console, out = plain_console()
    monkeypatch.setattr(time, "time", lambda: WHEN)
    RequestLog(console, "json").ready(TLS_AUTO)
    assert out.getvalue() == (
        '{"event": "listening", "time": "2023-11-14T22:13:20.250+00:00", "directory": "/d", '
        '"urls": ["https://127.0.0.1:1/"], "options": ["tls auto", "auth: 1 user"], '
        '"certificate": {"path": "/home/me/.local/share/devserve/tls/cert.pem", '
        '"sha256": "AB:CD:EF", "made": true}}\n'
    )
