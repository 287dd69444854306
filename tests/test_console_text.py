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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/a\u202eb.txt", "/a\\u202eb.txt"),  # a right-to-left override
        ("/x\u2066y\u2069", "/x\\u2066y\\u2069"),  # isolates
        ("/zero\u200bwidth", "/zero\\u200bwidth"),
        ("/line\u2028para\u2029", "/line\\u2028para\\u2029"),
        ("/bom\ufeff", "/bom\\ufeff"),
        ("/tag\U000e0041", "/tag\\U000e0041"),
        ("/lone\udcff", "/lone\\udcff"),  # an undecodable byte, kept as a surrogate
        ("/\x85next-line", "/\\x85next-line"),  # C1
    ],
)
def test_scrub_escapes_unicode_a_terminal_could_act_on(text: str, shown: str) -> None:
    assert scrub(text) == shown


def test_scrub_leaves_no_format_or_separator_character_anywhere_in_unicode() -> None:
    """Every code point of the categories a terminal may act on comes out escaped."""
    import sys
    import unicodedata

    risky = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in risky:
            assert char not in scrub(char), hex(code)
