"""Directory listing pages, rendered from data (no filesystem access here).

The page is the documented handler's, byte for byte, so tools that scrape
`python -m http.server` listings keep working.
"""

from __future__ import annotations

import html
import urllib.parse
from typing import NamedTuple


class Entry(NamedTuple):
    """One name in a listing."""

    name: str
    is_dir: bool
    is_link: bool


def display_path(request_path: str) -> str:
    """The request path as shown in the title: no query or fragment (Python 3.15),
    percent-decoded and HTML-escaped."""
    request_path = request_path.partition("?")[0].partition("#")[0]
    try:
        shown = urllib.parse.unquote(request_path, errors="surrogatepass")
    except UnicodeDecodeError:
        shown = urllib.parse.unquote(request_path)
    return html.escape(shown, quote=False)


def render_listing(request_path: str, entries: list[Entry], encoding: str) -> bytes:
    """The listing page for ``entries`` (already filtered), sorted case-insensitively."""
    title = f"Directory listing for {display_path(request_path)}"
    items = []
    for entry in sorted(entries, key=lambda e: e.name.lower()):
        link = entry.name + "/" if entry.is_dir else entry.name
        shown = entry.name + "@" if entry.is_link else link
        href = urllib.parse.quote(link, errors="surrogatepass")
        items.append(f'<li><a href="{href}">{html.escape(shown, quote=False)}</a></li>')
    page = "\n".join(
        [
            "<!DOCTYPE HTML>",
            '<html lang="en">',
            "<head>",
            f'<meta charset="{encoding}">',
            f"<title>{title}</title>\n</head>",
            f"<body>\n<h1>{title}</h1>",
            "<hr>\n<ul>",
            *items,
            "</ul>\n<hr>\n</body>\n</html>\n",
        ]
    )
    return page.encode(encoding, "surrogateescape")
