"""devserve.check.markup: references in HTML and CSS, page encodings, URL resolution (tables)."""

from __future__ import annotations

import pytest

from devserve.check import css_references, decode_page, srcset_urls


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


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"<p>plain</p>", None),
        ("<p>café</p>".encode(), None),
        (b"\xef\xbb\xbf<p>bom</p>", None),
        ("<p>x</p>".encode("utf-16"), None),
        ("<p>x</p>".encode("utf-16-le"), "wide"),
        ("<p>x</p>".encode("utf-16-be"), "wide"),
        ("<p>x</p>".encode("utf-32"), "wide"),
        (b"<p>caf\xe9</p>", "undeclared"),
        (b'<meta charset="windows-1252"><p>caf\xe9</p>', None),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=latin1">\xe9', None),
        (b'<meta charset="utf-8"><p>caf\xe9</p>', "undeclared"),
        (b'<meta charset="x-no-such-codec">\xe9', "undeclared"),
    ],
)
def test_decode_page(data: bytes, problem: str | None) -> None:
    assert decode_page(data).problem == problem
