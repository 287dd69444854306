"""devserve.check.markup: references in HTML and CSS, page encodings, URL resolution (tables)."""

from __future__ import annotations

import codecs

import pytest

from devserve.check import css_references, decode_page, join_url, srcset_urls
from devserve.check.markup import clean_url


@pytest.mark.parametrize(
    ("srcset", "urls"),
    [
        ("a.png", ["a.png"]),
        ("a.png 1x, b.png 2x", ["a.png", "b.png"]),
        ("a.png 480w,b.png 800w", ["a.png", "b.png"]),
        ("  a.png  ,  b.png 2x  ", ["a.png", "b.png"]),
        ("a,b.png 1x, c.png 2x", ["a,b.png", "c.png"]),
        ("a.png, b.png", ["a.png", "b.png"]),
        ("data:image/png;base64,iVBO 1x, b.png 2x", ["data:image/png;base64,iVBO", "b.png"]),
        ("a.png (weird, descriptor) 1x, b.png", ["a.png", "b.png"]),
        ("", []),
        (" , , ", []),
    ],
)
def test_srcset_urls(srcset: str, urls: list[str]) -> None:
    assert srcset_urls(srcset) == urls


@pytest.mark.parametrize(
    ("css", "refs"),
    [
        ("a { background: url(x.png) }", [(1, "x.png", "image")]),
        ("a { background: url( 'x y.png' ) }", [(1, "x y.png", "image")]),
        ('@import "a.css";\n@import url(b.css) screen;',
         [(1, "a.css", "style"), (2, "b.css", "style")]),
        ("@import url('c.css');", [(1, "c.css", "style")]),
        ("@font-face {\n src: url(f.woff2) format('woff2'),\n url(f.woff) }",
         [(2, "f.woff2", "font"), (3, "f.woff", "font")]),
        ("/* url(gone.png)\n */ b { background: URL(\"y.png\") }", [(2, "y.png", "image")]),
        ("a { color: red }", []),
    ],
)  # fmt: skip
def test_css_references(css: str, refs: list[tuple[int, str, str]]) -> None:
    assert [(r.line, r.url, r.kind) for r in css_references(css)] == refs


P = "<p>x</p>"
UTF16_LE_BOM = codecs.BOM_UTF16_LE + P.encode("utf-16-le")
UTF16_BE_BOM = codecs.BOM_UTF16_BE + P.encode("utf-16-be")
UTF32_LE_BOM = codecs.BOM_UTF32_LE + P.encode("utf-32-le")
UTF32_BE_BOM = codecs.BOM_UTF32_BE + P.encode("utf-32-be")


# The browser's side only: whether the reload script survives is server_model's
# question (tests/test_check_server_model.py, on the same pages).
@pytest.mark.parametrize(
    ("data", "text", "codec", "wide", "guessed"),
    [
        (b"<p>plain</p>", "<p>plain</p>", "utf-8", False, False),
        ("<p>café</p>".encode(), "<p>café</p>", "utf-8", False, False),
        (b"\xef\xbb\xbf<p>bom</p>", "<p>bom</p>", "utf-8", False, False),
        (UTF16_LE_BOM, P, "utf-16-le", True, False),
        (UTF16_BE_BOM, P, "utf-16-be", True, False),
        (P.encode("utf-16-le"), P, "utf-16-le", True, False),
        (P.encode("utf-16-be"), P, "utf-16-be", True, False),
        (UTF32_LE_BOM, P, "utf-32", True, False),
        (UTF32_BE_BOM, P, "utf-32", True, False),
        (b"<p>caf\xe9</p>", "<p>café</p>", "cp1252", False, True),
        (b'<meta charset="windows-1252"><p>caf\xe9</p>', '<meta charset="windows-1252"><p>café</p>',
         "cp1252", False, False),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=latin1">\xe9',
         '<meta http-equiv="Content-Type" content="text/html; charset=latin1">é',
         "iso8859-1", False, False),
        (b'<meta charset="utf-8"><p>caf\xe9</p>', '<meta charset="utf-8"><p>café</p>', "cp1252",
         False, True),
        (b'<meta charset="x-no-such-codec">\xe9', '<meta charset="x-no-such-codec">é', "cp1252",
         False, True),
    ],
)  # fmt: skip
def test_decode_page(data: bytes, text: str, codec: str, wide: bool, guessed: bool) -> None:
    assert decode_page(data) == (text, codec, wide, guessed)


@pytest.mark.parametrize(
    ("base", "url", "keep_query", "path"),
    [
        ("/docs/", "a.html", False, "/docs/a.html"),
        ("/docs/page.html", "../img/a.png", False, "/img/a.png"),
        ("/a/b/c.html", "../../../../x", False, "/x"),  # never above the root
        ("/docs/", "/abs", False, "/abs"),
        ("/docs/", "a.html?x=1#top", False, "/docs/a.html"),
        ("/docs/", "a.html?x=1#top", True, "/docs/a.html?x=1"),
        ("/docs/page.html", "?x", True, "/docs/page.html?x"),
        ("/docs/page.html", "#top", False, "/docs/page.html"),
        ("/a/", "%2e%2e/b", False, "/b"),  # encoded dots are dots (WHATWG)
        ("/a/b/", "%2E%2E/c", False, "/a/c"),
        ("/a/b/", "./", False, "/a/b/"),
        ("/a/b/", "..", False, "/a/"),
        ("/docs/", "https://example.com/y", False, None),
        ("/docs/", "//cdn.example.com/x", False, None),
        ("/docs/", "mailto:a@b.c", False, None),
        (None, "a.html", False, None),  # the page's <base href> is another site
    ],
)
def test_join_url(base: str | None, url: str, keep_query: bool, path: str | None) -> None:
    assert join_url(base, url, keep_query) == path


@pytest.mark.parametrize(
    ("url", "cleaned"),
    [(" a.html\n", "a.html"), ("a\tb\n.html", "ab.html"), ("a\\b.html?x=\\y", "a/b.html?x=\\y")],
)
def test_clean_url(url: str, cleaned: str) -> None:
    assert clean_url(url) == cleaned
