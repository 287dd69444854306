"""devserve.config: the value parsers every way in (options, and later files) shares."""

from __future__ import annotations

import pytest

from devserve.config import BadInput, parse_count, parse_port, parse_seconds, parse_size, size_text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("100", 100),
        ("1b", 1),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("10M", 10 * 1024**2),
        ("10 MB", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("1.5G", 3 * 1024**3 // 2),
        ("2T", 2 * 1024**4),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, "--max-body") == size


@pytest.mark.parametrize("text", ["", "x", "-1", "10Q", "1e3", "10MM", "\u0661\u0660", "M"])
def test_bad_sizes_name_the_option_and_the_value(text: str) -> None:
    with pytest.raises(BadInput, match=r"^--max-body: expected a size such as .*, not "):
        parse_size(text, "--max-body")


@pytest.mark.parametrize("size", [0, 1, 1000, 1024, 1536, 10 * 1024**2, 1024**3, 5 * 1024**4])
def test_size_text_reads_back(size: int) -> None:
    assert parse_size(size_text(size)) == size


def test_size_text_uses_the_largest_whole_unit() -> None:
    assert [size_text(n) for n in (1024**3, 10 * 1024**2, 1536)] == ["1G", "10M", "1536"]


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (
            parse_port,
            {"0": 0, "80": 80, "65535": 65535, " 8000 ": 8000},
            ["65536", "-1", "x", "\u0668\u0660", ""],
        ),
        (parse_seconds, {"0.5": 0.5, "30": 30.0, "1e1": 10.0}, ["0", "-1", "nan", "inf", "soon"]),
        (parse_count, {"1": 1, "1024": 1024}, ["0", "-3", "1.5", "many", "\u0661"]),
    ],
)
def test_numbers(parse: object, good: dict[str, object], bad: list[str]) -> None:
    assert callable(parse)
    for text, value in good.items():
        assert parse(text, "--option") == value
    for text in bad:
        with pytest.raises(BadInput, match=r"^--option: expected "):
            parse(text, "--option")
