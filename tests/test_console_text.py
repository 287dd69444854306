"""Plain-text helpers shared by the console's modules (console/text.py)."""

from __future__ import annotations

import pytest

from devserve.console import format_size, scrub


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 << 30, "5.0 GiB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/plain/path", "/plain/path"),
        ("/caf\u00e9", "/caf\u00e9"),
        ("/\x1b[2J", "/\\x1b[2J"),
        ("/back\\slash", "/back\\\\slash"),
        ("/tab\there", "/tab\\x09here"),
    ],
)
def test_scrub(text: str, shown: str) -> None:
    assert scrub(text) == shown
