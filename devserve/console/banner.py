"""The once-only output around a run: the start-up banner and the summary when it stops.

Each comes as rich text (the pretty and plain log formats) and as one JSON line
(the json format). Not hot: full rich rendering, markup escaped. The QR code of
the first LAN URL shows only on a terminal.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich.markup import escape

from devserve.config import plural
from devserve.console.text import format_size, human_duration, iso_time, json_line

if TYPE_CHECKING:
    from rich.console import Console

    from devserve.events import ReadyInfo, Summary


def print_ready(console: Console, info: ReadyInfo) -> None:
    """The start-up banner: directory, every URL, options, a hint, a QR code."""
    print_ = console.print
    print_(f"[devserve.label]devserve {escape(info.version)}[/] serving {escape(info.directory)}")
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
    if info.certificate:
        how = "made now" if info.certificate_made else "kept from an earlier run"
        # emoji=False: hex pairs such as :CD: are emoji codes to rich
        print_(
            f"  [devserve.label]TLS:[/]     self-signed certificate ({how}): "
            f"{escape(info.certificate)}",
            emoji=False,
        )
        print_(f"  [devserve.label]SHA-256:[/] {escape(info.fingerprint)}", emoji=False)
    if info.hint:
        print_(f"  [devserve.hint]{escape(info.hint)}[/]")
    if info.lan_urls and console.is_terminal:
        _print_qr(console, info.lan_urls[0])


def _print_qr(console: Console, url: str) -> None:
    import segno  # only when there is a LAN URL to show on a terminal

    buffer = io.StringIO()
    segno.make(url, error="l").terminal(out=buffer, compact=True, border=2)
    console.print(buffer.getvalue(), markup=False, highlight=False, end="")


def print_stopped(console: Console, summary: Summary) -> None:
    """The one-line summary after Ctrl-C / SIGTERM."""
    console.print(
        f"[devserve.label]stopped[/]: {plural(summary.requests, 'request')}, "
        f"{format_size(summary.size)} sent, {plural(summary.errors, 'error')} "
        f"in {human_duration(summary.seconds)}"
    )


def ready_json(info: ReadyInfo, now: float) -> str:
    """The banner as a JSON line: the ``listening`` event."""
    event: dict[str, object] = {
        "event": "listening",
        "time": iso_time(now),
        "directory": info.directory,
        "urls": [*info.urls, *info.lan_urls],
        "options": list(info.options),
    }
    if info.certificate:
        event["certificate"] = {
            "path": info.certificate,
            "sha256": info.fingerprint,
            "made": info.certificate_made,
        }
    return json_line(event)


def stopped_json(summary: Summary, now: float) -> str:
    """The summary as a JSON line: the ``stopped`` event."""
    return json_line(
        {
            "event": "stopped",
            "time": iso_time(now),
            "requests": summary.requests,
            "bytes": summary.size,
            "errors": summary.errors,
            "seconds": round(summary.seconds, 3),
        }
    )
