"""Markup as a browser reads it: the references in pages and stylesheets, a page's
encoding, and the URL path a reference leads to.

Pure functions over text and bytes: nothing here opens a file or knows the
server. What the server answers for a path is `server_model`'s business.

Invariants:
- Every reference comes with the line it is on (1-based, counted in the decoded
  text) and a `Kind`, what the browser uses it for: that decides which content
  types it accepts and whether it is a navigation (`kind == "page"`).
- `join_url` returns a path beginning with ``/`` and without dot segments, or
  None for a URL that leaves this server (a scheme, ``//host``); it never
  decodes percent-escapes (the server does that, once).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Literal, NamedTuple

# What a reference is used for: decides the --spa fallback (navigations ask for
# HTML) and which content types a browser accepts for it.
Kind = Literal["page", "script", "module", "style", "font", "manifest", "image", "media", "other"]


class Ref(NamedTuple):
    """One reference: the line it is on, the URL as written, what it is used for."""

    line: int
    url: str
    kind: Kind


# What browsers run as a classic script (the HTML spec's JavaScript MIME type essences).
JS_TYPES = frozenset(
    {
        "text/javascript", "application/javascript", "application/ecmascript",
        "application/x-ecmascript", "application/x-javascript", "text/ecmascript",
        "text/javascript1.0", "text/javascript1.1", "text/javascript1.2", "text/javascript1.3",
        "text/javascript1.4", "text/javascript1.5", "text/jscript", "text/livescript",
        "text/x-ecmascript", "text/x-javascript",
    }
)  # fmt: skip

# Tags whose href/src a browser navigates to (with an HTML Accept header).
_NAVIGATION_TAGS = frozenset({"a", "area", "iframe", "frame"})
_MEDIA_TAGS = frozenset({"audio", "video", "track"})

_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?(?:"([^"]*)"|'([^']*)'|([^\s'"();]+))""", re.I)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^\s'"()]*))\s*\)""", re.I)
_CSS_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)
# <meta http-equiv="refresh" content="0; url=/next/">: the delay, then the URL.
_REFRESH_URL = re.compile(r"""\s*[\d.]+\s*[;,]\s*(?:url\s*=\s*)?(['"]?)(.*?)\1\s*\Z""", re.I | re.S)
# Template syntax in a URL (a source page, not a built one): not a URL to check.
TEMPLATE_MARKS = ("{{", "{%", "${", "<%")


def css_references(text: str, first_line: int = 1) -> Iterator[Ref]:
    """Every ``url(...)`` and ``@import`` in a stylesheet, with its line.

    ``url()`` inside ``@font-face`` is a font; an ``@import`` is a stylesheet;
    anything else is an image (backgrounds, cursors, masks).
    """
    lowered = text.lower()
    if "url(" not in lowered and "@import" not in lowered:
        return
    if "/*" in text:  # blank out comments, keeping newlines for line numbers
        text = _CSS_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    fonts = [m.span() for m in _CSS_FONT_FACE.finditer(text)]
    imports = []
    found: list[tuple[int, str, Kind]] = []
    for match in _CSS_IMPORT.finditer(text):
        imports.append(match.span())
        found.append((match.start(), _first_group(match), "style"))
    for match in _CSS_URL.finditer(text):
        offset = match.start()
        if any(start <= offset < end for start, end in imports):
            continue  # the url() of an @import
        in_font = any(start <= offset < end for start, end in fonts)
        found.append((offset, _first_group(match), "font" if in_font else "image"))
    found.sort()
    line, last = first_line, 0
    for offset, url, kind in found:
        line += text.count("\n", last, offset)
        last = offset
        yield Ref(line, url, kind)


def _first_group(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None)


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` (the HTML spec's candidate parsing, descriptors dropped)."""
    urls: list[str] = []
    pos, end = 0, len(value)
    spaces = " \t\n\r\f"
    while True:
        while pos < end and (value[pos] in spaces or value[pos] == ","):
            pos += 1
        if pos >= end:
            return urls
        start = pos
        while pos < end and value[pos] not in spaces:
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            depth = 0
            while pos < end:
                char = value[pos]
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth = max(0, depth - 1)
                elif char == "," and depth == 0:
                    pos += 1
                    break
                pos += 1
        if url:
            urls.append(url)


class PageParser(HTMLParser):
    """Collects a page's references (with their kind and line) and its ``<base href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[Ref] = []
        self.base: str | None = None
        self._in_style = False

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        line = self.getpos()[0]
        add = self.refs.append
        if tag == "style":
            self._in_style = True
        if tag == "base":
            if self.base is None and "href" in values:
                self.base = values["href"]
            return
        if "style" in values:
            self.refs.extend(css_references(values["style"], line))
        if tag == "link":
            href = values.get("href")
            link_kind = _link_kind(values)
            if href is not None and link_kind is not None:
                add(Ref(line, href, link_kind))
            return
        if tag == "meta":
            if values.get("http-equiv", "").lower() == "refresh":
                found = _REFRESH_URL.match(values.get("content", ""))
                if found and found.group(2):
                    add(Ref(line, found.group(2), "page"))
            return
        kind = _tag_kind(tag, values)
        for name in ("href", "src", "poster", "data", "xlink:href"):
            value = values.get(name)
            if value is None or (name == "data" and tag != "object"):
                continue
            add(Ref(line, value, "image" if name == "poster" else kind))
        srcset = values.get("srcset")
        if srcset is not None:
            for url in srcset_urls(srcset):
                add(Ref(line, url, "image"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.refs.extend(css_references(data, self.getpos()[0]))


def _tag_kind(tag: str, values: dict[str, str]) -> Kind:
    if tag in _NAVIGATION_TAGS:
        return "other" if "download" in values else "page"  # a download may be any type
    if tag == "script":
        kind = values.get("type", "").strip().lower()
        if kind == "module":
            return "module"
        if not kind or kind in JS_TYPES:
            return "script"
        return "other"  # a data block (importmap, JSON, templates): not run as script
    if tag in ("img", "picture", "input", "use", "image"):
        return "image"
    if tag in _MEDIA_TAGS or tag == "source":
        return "media"
    return "other"


_PRELOAD_KINDS: dict[str, Kind] = {
    "script": "script",
    "style": "style",
    "font": "font",
    "image": "image",
    "document": "page",
}
# <link rel> values that name another page (the --spa fallback answers those).
_PAGE_RELS = frozenset(
    {"canonical", "alternate", "next", "prev", "author", "help", "license", "bookmark", "search"}
)


def _link_kind(values: dict[str, str]) -> Kind | None:
    """What a ``<link>`` fetches; None for hints that name an origin, not a file."""
    rels = values.get("rel", "").lower().split()
    if "stylesheet" in rels:
        return "style"
    if "modulepreload" in rels:
        return "module"
    if "manifest" in rels:
        return "manifest"
    if "preload" in rels or "prefetch" in rels:
        return _PRELOAD_KINDS.get(values.get("as", "").lower(), "other")
    if any("icon" in rel for rel in rels):
        return "image"
    if "preconnect" in rels or "dns-prefetch" in rels:
        return None
    if _PAGE_RELS.intersection(rels):
        return "page"
    return "other"


# ===================================================================== page encodings

_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)""", re.I)


class Decoded(NamedTuple):
    """A page's text as a browser decodes it, and how it came to that encoding."""

    text: str
    codec: str  # Python's name for the encoding the browser uses
    wide: bool  # UTF-16 or UTF-32: ASCII markup is not ASCII bytes in it
    guessed: bool  # not UTF-8 and no charset declared: the browser guesses (windows-1252)


def decode_page(data: bytes) -> Decoded:
    """A page's text as a browser would decode it: a byte-order mark, UTF-16 without
    one (every other byte zero), UTF-8, a ``<meta charset>``, else a guess.

    Whether the reload script can go into it is `server_model`'s question.
    """
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return Decoded(data.decode("utf-32", "replace"), "utf-32", True, False)
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return Decoded(data[len(bom) :].decode(codec, "replace"), codec, True, False)
    if data.startswith(codecs.BOM_UTF8):
        return Decoded(data[3:].decode("utf-8", "replace"), "utf-8", False, False)
    if len(data) > 1 and (data[0] == 0) != (data[1] == 0):
        codec = "utf-16-be" if data[0] == 0 else "utf-16-le"
        return Decoded(data.decode(codec, "replace"), codec, True, False)
    try:
        return Decoded(data.decode("utf-8"), "utf-8", False, False)
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:1024])
    if declared is not None:
        try:
            codec = codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            pass
        else:
            if codec != "utf-8":
                return Decoded(data.decode(codec, "replace"), codec, False, False)
    return Decoded(data.decode("windows-1252", "replace"), "cp1252", False, True)


# ========================================================================= URLs

# A URL that starts with a scheme ("https:", "mailto:", "data:"): never this server.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_DOUBLE_DOTS = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})
_SINGLE_DOTS = frozenset({".", "%2e"})


def join_url(base: str | None, url: str, keep_query: bool = False) -> str | None:
    """The path a browser asks this server for when ``url`` appears on a page whose
    base URL has the path ``base`` (RFC 3986 reference resolution, WHATWG dot rules).

    None when it leads to another origin: a scheme, ``//host``, or an external
    base (None). The fragment is dropped, and the query too unless ``keep_query``.
    """
    if base is None or url.startswith("//") or _SCHEME.match(url):
        return None
    path = url.partition("#")[0]
    path, question_mark, query = path.partition("?")
    if not path:
        path = base.partition("?")[0]
    elif not path.startswith("/"):
        path = base[: base.rfind("/") + 1] + path
    path = remove_dot_segments(path)
    return path + question_mark + query if keep_query else path


def remove_dot_segments(path: str) -> str:
    """``/a/./b/../c`` → ``/a/c``: a ``..`` never climbs above ``/`` (as in browsers)."""
    if "/." not in path and "%2" not in path:
        return path
    segments = path.split("/")[1:]
    kept: list[str] = []
    for segment in segments:
        lowered = segment.lower()
        if lowered in _DOUBLE_DOTS:
            if kept:
                kept.pop()
        elif lowered not in _SINGLE_DOTS:
            kept.append(segment)
    result = "/" + "/".join(kept)
    if segments and segments[-1].lower() in _DOUBLE_DOTS | _SINGLE_DOTS and kept:
        result += "/"
    return result


def clean_url(url: str) -> str:
    """A URL attribute as a browser reads it: outer spaces gone, tabs and newlines
    removed, backslashes taken for slashes (the WHATWG URL rules for http)."""
    url = url.strip(" \t\n\r\f")
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    if "\\" in url:
        head, sep, tail = url.partition("?")
        url = head.replace("\\", "/") + sep + tail
    return url
