"""The pages about a folder: the documented listing, and the ones `devserve serve` shows.

`render_listing` is the documented handler's page, byte for byte, so tools that
scrape `python -m http.server` listings keep working. `render_listing_page` and
`render_not_found` are the pages `devserve serve` shows a person: the same
names, with sizes, dates, sorting and a way up, and a 404 whose suggestion is
a link; plain HTML and one inline stylesheet, readable light or dark, on a
phone or a desktop.

Invariants:
- Every name is HTML-escaped where it is shown and percent-encoded where it is
  linked, the way `devserve._paths.url_to_fs_path` decodes it (UTF-8, and a byte
  that is not UTF-8 as its surrogate), so no name adds markup and every listed
  name is reachable, whatever bytes it is made of.
- The pages load nothing else (no font, script, image or stylesheet) and need no
  script: sorting is a link with a query string.
- `read_rows` reads only the stats of the names it is given, through the
  descriptor of a folder the caller opened under the serving policy; a link's
  size and date are shown only when the policy would serve where it leads.
- `ListingPages` is bounded in bytes, and gives a page back only for the folder
  identity and change count it was made for, and for at most `LISTING_SECONDS`:
  a file rewritten in place changes its size and date without changing its folder.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import NamedTuple, Protocol

from devserve._paths import SymlinkPolicy, may_serve


class Entry(NamedTuple):
    """One name in a listing."""

    name: str
    is_dir: bool
    is_link: bool


def display_path(request_path: str) -> str:
    """The request path as shown in the title: no query or fragment (Python 3.15),
    percent-decoded and HTML-escaped."""
    return html.escape(decoded_path(request_path), quote=False)


def decoded_path(request_path: str) -> str:
    """The path of a request target, percent-decoded as the server decodes it (not escaped)."""
    request_path = request_path.partition("?")[0].partition("#")[0]
    try:
        return urllib.parse.unquote(request_path, errors="surrogatepass")
    except UnicodeDecodeError:
        return urllib.parse.unquote(request_path)


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


# =========================================================================== devserve serve's pages


class Row(NamedTuple):
    """A listed name with what the page shows of it (None: not known, or not shown)."""

    name: str
    is_dir: bool
    is_link: bool
    size: int | None  # None for folders
    mtime: float | None


class Serving(Protocol):
    """The serving policy's parts a listing reads (`devserve._files.Policy` has them)."""

    @property
    def root(self) -> str: ...
    @property
    def follow_symlinks(self) -> SymlinkPolicy: ...
    @property
    def show_hidden(self) -> bool: ...


def read_rows(
    dir_fd: int, directory: str, entries: Sequence[Entry], policy: Serving
) -> tuple[Row, ...]:
    """The size and date of each entry of the open folder ``directory``.

    A name is looked up through ``dir_fd`` without following it; a link is
    followed only when the policy would serve where it leads (`may_serve`), else
    its size and date stay unknown: they would describe a file the server refuses.
    """
    root, symlinks, show_hidden = policy.root, policy.follow_symlinks, policy.show_hidden
    rows = []
    for entry in entries:
        name = entry.name
        st: os.stat_result | None = None
        try:
            if not entry.is_link:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            elif may_serve(os.path.join(directory, name), root, symlinks, show_hidden):
                st = os.stat(name, dir_fd=dir_fd)
        except (OSError, ValueError):
            st = None
        if st is None:
            rows.append(Row(name, entry.is_dir, entry.is_link, None, None))
        else:
            size = None if entry.is_dir else st.st_size
            rows.append(Row(name, entry.is_dir, entry.is_link, size, st.st_mtime))
    return tuple(rows)


class Order(NamedTuple):
    """How a listing is sorted: by ``name``, ``size`` or ``date``."""

    key: str = "name"
    descending: bool = False


SORT_KEYS = ("name", "size", "date")
# What a column's header link asks for first: names A to Z, the largest and newest first.
FIRST_DESCENDING = frozenset({"size", "date"})


# Query fields read for the order (a long query is cut there, not parsed whole).
_MAX_FIELDS = 16


def listing_order(target: str) -> Order:
    """The order a request asks for: ``?sort=name|size|date&order=asc|desc``.

    A parameter that is missing or has any other value has its default (``name``,
    ``asc``); where one repeats, its first value counts. Other parameters are ignored.
    """
    query = target.partition("?")[2].partition("#")[0]
    if not query:
        return Order()
    fields: dict[str, str] = {}
    for part in query.split("&", _MAX_FIELDS)[:_MAX_FIELDS]:
        name, _, value = part.partition("=")
        fields.setdefault(urllib.parse.unquote_plus(name), urllib.parse.unquote_plus(value))
    key = fields.get("sort", "name")
    return Order(key if key in SORT_KEYS else "name", fields.get("order") == "desc")


def sort_rows(rows: Sequence[Row], order: Order) -> list[Row]:
    """``rows`` in ``order``, folders first.

    Ties, and folders when sorting by size (they have none), stay in name order,
    A to Z, whichever way the column is sorted. Names compare case-insensitively.
    """
    by_name = sorted(rows, key=_name_key)
    folders = [row for row in by_name if row.is_dir]
    files = [row for row in by_name if not row.is_dir]
    reverse = order.descending
    if order.key == "name":
        if reverse:
            folders.reverse()
            files.reverse()
    elif order.key == "size":
        files.sort(key=_size_key, reverse=reverse)  # stable: ties keep name order
    else:
        folders.sort(key=_date_key, reverse=reverse)
        files.sort(key=_date_key, reverse=reverse)
    return folders + files


def _name_key(row: Row) -> tuple[str, str]:
    return (row.name.lower(), row.name)


def _size_key(row: Row) -> int:
    return -1 if row.size is None else row.size


def _date_key(row: Row) -> float:
    return -1.0 if row.mtime is None else row.mtime


def human_size(size: int) -> str:
    """Bytes as a short figure, as the request log writes them: 512 B, 1.2 KiB, 3.4 MiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


# Names that are their own link: nothing to quote (and no ":", so never a scheme).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~-]+/?\Z").match
_UNKNOWN = "\u2014"  # an em dash: no size (a folder) or nothing known


def _href(name: str) -> str:
    """A name as a relative link, percent-encoded as the server decodes it."""
    if _PLAIN_NAME(name):
        return name
    return html.escape(urllib.parse.quote(name, errors="surrogatepass"))


def _text(text: str, encoding: str) -> str:
    """A name (or path) as a person reads it: escaped, bytes that do not decode as U+FFFD."""
    if not text.isascii():
        text = text.encode(encoding, "surrogateescape").decode(encoding, "replace")
    return html.escape(text, quote=False)


_STYLE = """\
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#57606a;--line:#d0d7de;\
--link:#0550ae;--head:#f6f8fa;--hover:#eaf1fb}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9da7b3;\
--line:#30363d;--link:#79c0ff;--head:#161b22;--hover:#1b2636}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0 auto;max-width:64rem;padding:1rem;background:var(--bg);color:var(--fg);\
font:1rem/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:1.3rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
a{color:var(--link)}
a:focus-visible{outline:2px solid var(--link);outline-offset:1px}
.up{display:inline-block;padding:.7rem 1rem .7rem 0;min-height:2.75rem}
table{width:100%;border-collapse:collapse}
th,td{padding:0;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
th a,td a{display:block;padding:.7rem .5rem;min-height:2.75rem;text-decoration:none}
td a{overflow-wrap:anywhere}
td+td{padding:.7rem .5rem;color:var(--muted);white-space:nowrap;font-variant-numeric:tabular-nums}
th:nth-child(2),td:nth-child(2){text-align:right}
tbody tr:hover{background:var(--hover)}
p{overflow-wrap:anywhere}
.note{color:var(--muted);font-size:.875rem}
@media (max-width:34rem){body{padding:.5rem}td+td{font-size:.875rem}td+td+td{white-space:normal}\
th a,td a,td+td{padding-left:.25rem;padding-right:.25rem}}
"""


def _head(title: str, encoding: str) -> str:
    return (
        "<!DOCTYPE HTML>\n"
        '<html lang="en">\n'
        "<head>\n"
        f'<meta charset="{encoding}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n"
        f"<style>\n{_STYLE}</style>\n"
        "</head>\n"
    )


_COLUMNS = (("name", "Name"), ("size", "Size"), ("date", "Modified"))


def _header(order: Order) -> str:
    cells = []
    for key, label in _COLUMNS:
        if key == order.key:
            descending = not order.descending
            arrow = "\u25bc" if order.descending else "\u25b2"
            sort = f' aria-sort="{"descending" if order.descending else "ascending"}"'
            label += f' <span aria-hidden="true">{arrow}</span>'
        else:
            descending = key in FIRST_DESCENDING
            sort = ""
        href = f"?sort={key}&amp;order={'desc' if descending else 'asc'}"
        cells.append(f'<th scope="col"{sort}><a href="{href}">{label}</a></th>')
    return "<thead><tr>" + "".join(cells) + "</tr></thead>\n"


def render_listing_page(
    request_path: str, rows: Sequence[Row], order: Order, *, parent: bool, encoding: str
) -> bytes:
    """`devserve serve`'s listing of ``rows`` (already filtered) in ``order``.

    ``parent``: whether to link to the folder above (not at the served root).
    The title is the documented one ("Directory listing for /path/").
    """
    title = f"Directory listing for {_text(decoded_path(request_path), encoding)}"
    dates: dict[int, str] = {}
    lines = [_head(title, encoding), f"<body>\n<main>\n<h1>{title}</h1>\n"]
    if parent:
        lines.append('<p><a class="up" href="../"><span aria-hidden="true">\u2191 </span>')
        lines.append("Parent folder</a></p>\n")
    lines.append("<table>\n" + _header(order) + "<tbody>\n")
    folders = 0
    for row in sort_rows(rows, order):
        name = row.name
        if row.is_dir:
            folders += 1
            name += "/"
        shown = _text(name, encoding)
        if row.is_link:
            shown += ' <span class="note">(link)</span>'
        size = _UNKNOWN if row.size is None else human_size(row.size)
        lines.append(
            f'<tr><td><a href="{_href(name)}">{shown}</a></td>'
            f"<td>{size}</td><td>{_date(row.mtime, dates)}</td></tr>\n"
        )
    lines.append("</tbody>\n</table>\n")
    files = len(rows) - folders
    count = "This folder is empty." if not rows else f"{_count(folders, 'folder')}, "
    if rows:
        count += f"{_count(files, 'file')}."
    zone = time.strftime("%z")
    lines.append(
        f'<p class="note">{count} Dates are the server\'s local time '
        f"(UTC{zone[:3]}:{zone[3:]}).</p>\n</main>\n</body>\n</html>\n"
    )
    return "".join(lines).encode(encoding, "replace")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _date(mtime: float | None, dates: dict[int, str]) -> str:
    """A modification time as local ``YYYY-MM-DD HH:MM`` (made once a minute per page)."""
    if mtime is None:
        return _UNKNOWN
    minute = int(mtime // 60)
    shown = dates.get(minute)
    if shown is None:
        try:
            shown = time.strftime("%Y-%m-%d %H:%M", time.localtime(minute * 60))
        except (OverflowError, OSError, ValueError):
            shown = _UNKNOWN  # a date the C library cannot represent
        dates[minute] = shown
    return shown


def render_not_found(request_path: str, suggestion: str | None, suggestion_href: str) -> bytes:
    """`devserve serve`'s 404 page (UTF-8): what was asked for, and the suggestion as a link.

    ``suggestion`` is a URL path (percent-encoded, as `devserve._suggest` makes
    it); ``suggestion_href`` is the link to it (relative, so it works under a
    proxy's path prefix).
    """
    title = "404 Not Found"
    asked = _text(decoded_path(request_path), "utf-8")
    lines = [
        _head(title, "utf-8"),
        "<body>\n<main>\n<h1>File not found</h1>\n",
        f"<p>Nothing matches <code>{asked}</code>.</p>\n",
    ]
    if suggestion is not None:
        shown = _text(decoded_path(suggestion), "utf-8")
        href = html.escape(suggestion_href)
        lines.append(f'<p>Did you mean <a href="{href}">{shown}</a>?</p>\n')
    lines.append('<p class="note">Error code: 404 (Not Found).</p>\n</main>\n</body>\n</html>\n')
    return "".join(lines).encode("utf-8", "replace")


# =========================================================================== pages remembered

# How long a listing's sizes and dates are shown without reading them again (seconds).
LISTING_SECONDS = 1.0
# All the bytes remembered pages may hold; one page may take a quarter.
LISTING_BYTES = 8 * 1024 * 1024


class _Page(NamedTuple):
    folder: Hashable  # the folder's identity when it was read
    seq: int  # the live-reload change count then (0 without --reload)
    read_at: float
    body: bytes


class ListingPages:
    """Listing pages by folder, request path and order, given back briefly (thread-safe).

    A page is given back only while its folder has the identity it was read
    with, the live-reload change count is the one it was read at, and for
    `LISTING_SECONDS` after its stats were read.
    """

    def __init__(self, max_bytes: int = LISTING_BYTES) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[tuple[str, str, Order], _Page] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(
        self, key: tuple[str, str, Order], folder: Hashable, seq: int, now: float
    ) -> tuple[bytes, float] | None:
        """The page remembered for ``key`` if it still holds at ``now`` (its bytes, and
        when its stats were read), else None."""
        with self._lock:
            page = self._pages.get(key)
        if page is None or page.folder != folder or page.seq != seq:
            return None
        if not 0 <= now - page.read_at < LISTING_SECONDS:
            return None
        return page.body, page.read_at

    def put(
        self, key: tuple[str, str, Order], folder: Hashable, seq: int, read_at: float, body: bytes
    ) -> None:
        """Remember ``body`` for ``key``: read at ``read_at`` from ``folder`` at change ``seq``."""
        page = _Page(folder, seq, read_at, body)
        cost = _cost(key, page)
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._size -= _cost(key, old)
            self._pages[key] = page
            self._size += cost
            while self._size > self.max_bytes:
                dropped_key, dropped = self._pages.popitem(last=False)
                self._size -= _cost(dropped_key, dropped)

    @property
    def size(self) -> int:
        """The bytes the table accounts for now."""
        return self._size


def _cost(key: tuple[str, str, Order], page: _Page) -> int:
    return len(page.body) + len(key[0]) + len(key[1]) + 256
