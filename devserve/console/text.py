"""Plain-text helpers the console's modules share: scrubbing, sizes, times, JSON lines.

Pure functions over strings and numbers (no rich, no printing).
"""

from __future__ import annotations

import json
import time

from devserve._protocol import scrub_unprintable


def scrub(text: str) -> str:
    """Text from the network, a file name or a script made safe for a terminal.

    Control characters, bidirectional overrides and other format characters,
    line separators and the like are escaped (see `scrub_unprintable`).
    """
    return scrub_unprintable(text)


def format_size(size: int) -> str:
    """Bytes as a short human figure: 512 B, 1.2 KiB, 3.4 MiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return f"{size} B"  # pragma: no cover - the loop always returns


def json_line(data: dict[str, object]) -> str:
    """``data`` as one line of JSON, with its newline."""
    # ensure_ascii: control characters and C1 codes are \u-escaped, never raw
    return json.dumps(data, ensure_ascii=True) + "\n"


def iso_time(when: float) -> str:
    """Local time to the millisecond, with its offset: 2023-11-14T22:13:20.250+01:00."""
    local = time.localtime(when)
    offset = time.strftime("%z", local)  # +0100
    zone = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else "Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(when % 1 * 1000):03d}{zone}"


def human_duration(seconds: float) -> str:
    """A run's length: 4.2 s, 1m15s, 2h02m."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"
