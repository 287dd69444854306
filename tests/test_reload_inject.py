"""The reload script's injection: positions, encodings, streaming, the snippet (pure, tables)."""

from __future__ import annotations

import codecs
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devserve.reload.inject import (
    CLIENT_SCRIPT,
    WORKER_SCRIPT,
    CannotInject,
    StreamInjector,
    charset_of,
    inject_html,
    page_encoding,
    reload_snippet,
    root_prefix,
    should_inject,
    snippet_bytes,
)

S = "<script>S</script>"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("<html><body><p>x</p></body></html>", f"<html><body><p>x</p>{S}</body></html>"),
        ("<BODY>x</BODY >", f"<BODY>x{S}</BODY >"),
        ("<body>x</Body\n>", f"<body>x{S}</Body\n>"),
        # the last </body>: an earlier one may sit in a script's string
        (
            '<body><script>w("</body>")</script></body>',
            f'<body><script>w("</body>")</script>{S}</body>',
        ),
        # no </body>: before the first </head>
        ("<head><title>t</title></head><p>x", f"<head><title>t</title>{S}</head><p>x"),
        ("<head></head><p></head>", f"<head>{S}</head><p></head>"),
        # neither: at the very end
        ("<p>fragment", f"<p>fragment{S}"),
        ("", S),
        # tag names are matched whole
        ("<bodyguard></bodyguard>", f"<bodyguard></bodyguard>{S}"),
        ("</bodyx></body>", f"</bodyx>{S}</body>"),
        ("</headline>", f"</headline>{S}"),
        # a tag cut off at the end of the page still counts
        ("<body>x</body", f"<body>x{S}</body"),
    ],
)
def test_insertion_positions(page: str, expected: str) -> None:
    assert inject_html(page.encode(), S) == expected.encode()


@pytest.mark.parametrize(
    ("body", "charset", "codec"),
    [
        (b"\xef\xbb\xbf<p>", None, "utf-8"),
        (b"\xfe\xff\x00<", None, "utf-16-be"),
        (b"\xff\xfe<\x00", None, "utf-16-le"),
        (b"\xff\xfe<\x00", "iso-8859-1", "utf-16-le"),  # the BOM wins over the header
        (b"<p>", None, None),
        (b"<p>", "utf-16", "utf-16-le"),  # as browsers read the label
        (b"<p>", "utf-16be", "utf-16-be"),
        (b"<p>", "latin1", "iso8859-1"),
        (b"<p>", "no-such-charset", None),
    ],
)
def test_page_encoding(body: bytes, charset: str | None, codec: str | None) -> None:
    assert page_encoding(body, charset)[0] == codec


@pytest.mark.parametrize(
    ("text", "codec", "charset", "bom"),
    [
        ("<body>héllo ✓</body>", "utf-8", "utf-8", b""),
        ("<body>héllo ✓</body>", "utf-8", None, codecs.BOM_UTF8),
        ("<body>héllo</body>", "latin-1", "iso-8859-1", b""),
        ("<body>héllo</body>", "cp1252", "windows-1252", b""),
        ("<body>日本語のページ</body>", "shift_jis", "shift_jis", b""),
        ("<body>日本語のページ</body>", "euc-jp", "euc-jp", b""),
        ("<body>中文页面</body>", "gbk", "gbk", b""),
        ("<body>héllo ✓ 😀</body>", "utf-16-le", None, codecs.BOM_UTF16_LE),
        ("<body>héllo ✓ 😀</body>", "utf-16-be", None, codecs.BOM_UTF16_BE),
        ("<body>héllo ✓ 😀</body>", "utf-16-le", "utf-16", b""),
        ("<body>日本語</body>", "iso2022_jp", "iso-2022-jp", b""),
    ],
)
def test_encodings_keep_the_page_and_add_the_script(
    text: str, codec: str, charset: str | None, bom: bytes
) -> None:
    body = bom + text.encode(codec)
    result = inject_html(body, S, charset)
    assert result.startswith(bom)
    assert result[len(bom) :].decode(codec) == text.replace("</body>", S + "</body>")


def test_undecodable_utf16_cannot_be_injected() -> None:
    with pytest.raises(CannotInject, match="utf-16-le"):
        inject_html(codecs.BOM_UTF16_LE + b"<\x00\x00\xd8", S)  # a lone surrogate


def test_bytes_that_are_not_valid_in_the_charset_pass_through() -> None:
    body = b"<body>\xff\xfe\x80 broken utf-8</body>"
    assert inject_html(body, S, "utf-8") == b"<body>\xff\xfe\x80 broken utf-8" + S.encode() + (
        b"</body>"
    )


@pytest.mark.parametrize(
    ("content_type", "encoding", "expected"),
    [
        ("text/html", None, True),
        ("text/html; charset=utf-8", None, True),
        ("TEXT/HTML;charset=UTF-8", None, True),
        (" text/html ", "identity", True),
        ("text/html", "gzip", False),  # compressed bodies are left alone
        ("text/html", "br", False),
        ("application/xhtml+xml", None, False),  # the script is not well-formed XML
        ("text/plain", None, False),
        ("text/htmlx", None, False),
        ("", None, False),
        (None, None, False),
    ],
)
def test_should_inject(content_type: str | None, encoding: str | None, expected: bool) -> None:
    assert should_inject(content_type, encoding) is expected


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        ("text/html; charset=UTF-8", "utf-8"),
        ('text/html;charset="Shift_JIS"', "shift_jis"),
        ("text/html; q=1; CHARSET=latin1", "latin1"),
        ("text/html", None),
        ("text/html; charset=", None),
        (None, None),
    ],
)
def test_charset_of(content_type: str | None, charset: str | None) -> None:
    assert charset_of(content_type) == charset


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/", "./"),
        ("/index.html", "./"),
        ("/?q=/a/b", "./"),
        ("/docs/", "../"),
        ("/docs/guide.html", "../"),
        ("/a/b/c", "../../"),
        ("/a//b.html", "../../"),
        ("/a/b.html#x/y", "../"),
        ("http://example.test/a/b.html", "../"),
        ("http://example.test", "./"),
    ],
)
def test_root_prefix(path: str, prefix: str) -> None:
    assert root_prefix(path) == prefix


def test_snippet_calls_the_client_with_the_page_facts() -> None:
    snippet = reload_snippet("../", "abc123", 7)
    assert snippet.startswith("<script data-devserve-reload>")
    assert snippet.endswith("</script>")
    call = re.search(r"\)\((\{.*\})\);\n</script>$", snippet)
    assert call is not None
    assert json.loads(call[1]) == {"root": "../", "server": "abc123", "seq": 7}
    assert snippet.count("</") == 1  # nothing in the script can close the element early
    assert snippet.isascii()


def test_shipped_scripts_are_compact_and_have_no_comments() -> None:
    for script in (CLIENT_SCRIPT, WORKER_SCRIPT.decode()):
        assert not any(line.startswith("//") or line != line.strip() for line in script.split("\n"))
    assert len(CLIENT_SCRIPT) < 4000


@pytest.mark.parametrize(
    ("charset", "expected"),
    [(None, S.encode()), ("utf-8", S.encode()), ("shift_jis", S.encode()), ("utf-16", None)],
)
def test_snippet_bytes_for_streams(charset: str | None, expected: bytes | None) -> None:
    assert snippet_bytes(S, charset) == expected


def _stream(pieces: list[bytes], hold: int = 64 * 1024) -> bytes:
    injector = StreamInjector(S.encode(), hold)
    return b"".join(injector.feed(piece) for piece in pieces) + injector.finish()


SB = S.encode()


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (b"<body>x</body></html>", b"<body>x" + SB + b"</body></html>"),
        (b"<p>fragment", b"<p>fragment" + SB),
        (
            b'<body><script>"</body>"</script></body>',
            b'<body><script>"</body>"</script>' + SB + b"</body>",
        ),
        (b"</bodyguard>", b"</bodyguard>" + SB),
        (b"<BODY>x</BODY>", b"<BODY>x" + SB + b"</BODY>"),
        (b"", SB),
    ],
)
def test_stream_injection_at_every_split(page: bytes, expected: bytes) -> None:
    for cut in range(len(page) + 1):
        assert _stream([page[:cut], page[cut:]]) == expected, cut
    assert _stream([bytes([b]) for b in page]) == expected


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_stream_keeps_every_byte_in_order(page: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(page)) for c in cuts})
    pieces = [page[a:b] for a, b in zip([0, *points], [*points, len(page)], strict=True)]
    out = _stream(pieces, hold=64)
    assert out.replace(S.encode(), b"", 1) == page
    assert out.count(S.encode()) == page.count(S.encode()) + 1


def test_stream_gives_up_a_far_closing_tag() -> None:
    page = b"<body></body>" + b"x" * 200
    assert _stream([page], hold=100) == page + S.encode()
    assert _stream([page[:20], page[20:]], hold=100) == page + S.encode()


def test_stream_passes_bytes_on_without_waiting_for_the_end() -> None:
    injector = StreamInjector(S.encode())
    # all but the last five bytes, which might start a "</body"
    assert injector.feed(b"<body><p>first paragraph") == b"<body><p>first para"
    assert injector.feed(b"</p>") == b"grap"
    assert injector.feed(b"</body>") == b"h</p>"
    assert injector.finish() == SB + b"</body>"
    assert injector.feed(b"after") == b"after"
