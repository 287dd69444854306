"""The pages `devserve serve` shows a person (devserve._listing), as pure functions.

Entries in, HTML out: escaping, sort orders, the way up, the 404's link; and the
small table that remembers pages for a moment.
"""

from __future__ import annotations

import html.parser
import os
import time
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devserve._files import Policy
from devserve._listing import (
    LISTING_SECONDS,
    Entry,
    ListingPages,
    Order,
    Row,
    human_size,
    listing_order,
    read_rows,
    render_listing_page,
    render_not_found,
    sort_rows,
)


class Parsed(html.parser.HTMLParser):
    """What a test reads of a page: its links (href, text), header cells and body rows."""

    def __init__(self, page: bytes, encoding: str = "utf-8") -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._cell: list[str] | None = None
        self._in_head = False
        self.feed(page.decode(encoding))
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []
        elif tag == "tr":
            self._in_head = not self.rows and not self.headers
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text)))
            self._href = None
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self.headers.append(text)
            else:
                self.rows[-1].append(text)
            self._cell = None
        elif tag == "tr" and self.rows and not self.rows[-1]:
            self.rows.pop()  # the header row

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def names(self) -> list[str]:
        """The first cell of every body row (a name, with its link marker)."""
        return [row[0] for row in self.rows]


def row(name: str, size: int | None = 0, mtime: float | None = 0.0, *, link: bool = False) -> Row:
    return Row(name, False, link, size, mtime)


def folder(name: str, mtime: float | None = 0.0) -> Row:
    return Row(name, True, False, None, mtime)


BY_NAME = Order()


def page(rows: list[Row], order: Order = BY_NAME, path: str = "/d/", parent: bool = True) -> bytes:
    return render_listing_page(path, rows, order, parent=parent, encoding="utf-8")


# --------------------------------------------------------------------------- sizes and orders


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1024.0 KiB"),
        (5 * 1024 * 1024, "5.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (2 * 1024**4, "2.0 TiB"),
        (5000 * 1024**4, "5000.0 TiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(size: int, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("target", "order"),
    [
        ("/d/", Order("name", False)),
        ("/d/?", Order("name", False)),
        ("/d/?sort=name", Order("name", False)),
        ("/d/?sort=name&order=desc", Order("name", True)),
        ("/d/?sort=size", Order("size", False)),
        ("/d/?sort=size&order=desc", Order("size", True)),
        ("/d/?order=desc&sort=date", Order("date", True)),
        ("/d/?sort=date&order=asc", Order("date", False)),
        ("/d/?sort=%73ize&order=desc", Order("size", True)),  # percent-encoded, as a form sends
        ("/d/?sort=date&sort=size", Order("date", False)),  # the first value counts
        ("/d/?sort=bogus&order=desc", Order("name", True)),  # each unknown value is the default
        ("/d/?sort=size&order=DESC", Order("size", False)),
        ("/d/?sort=&order=", Order("name", False)),
        ("/d/?q=1&sort=size&x", Order("size", False)),
        ("/d/?sort=<script>", Order("name", False)),
        ("/d/?" + "x=1&" * 1000 + "sort=size", Order("name", False)),  # only the first fields
        ("/d/#sort=size", Order("name", False)),
    ],
)
def test_the_order_comes_from_the_query(target: str, order: Order) -> None:
    assert listing_order(target) == order


ROWS = [
    row("b.txt", 10, 300.0),
    row("A.txt", 10, 100.0),
    row("c.txt", 5, 200.0),
    row("big.bin", 900, 50.0),
    row("broken", None, None, link=True),
    folder("Zeta", 10.0),
    folder("alpha", 20.0),
]


@pytest.mark.parametrize(
    ("order", "names"),
    [
        (Order("name"), ["alpha", "Zeta", "A.txt", "b.txt", "big.bin", "broken", "c.txt"]),
        (Order("name", True), ["Zeta", "alpha", "c.txt", "broken", "big.bin", "b.txt", "A.txt"]),
        # folders have no size: they stay first, in name order; ties keep name order
        (Order("size"), ["alpha", "Zeta", "broken", "c.txt", "A.txt", "b.txt", "big.bin"]),
        (Order("size", True), ["alpha", "Zeta", "big.bin", "A.txt", "b.txt", "c.txt", "broken"]),
        (Order("date"), ["Zeta", "alpha", "broken", "big.bin", "A.txt", "c.txt", "b.txt"]),
        (Order("date", True), ["alpha", "Zeta", "b.txt", "c.txt", "A.txt", "big.bin", "broken"]),
    ],
    ids=["name", "name-desc", "size", "size-desc", "date", "date-desc"],
)
def test_rows_are_sorted_with_folders_first(order: Order, names: list[str]) -> None:
    assert [r.name for r in sort_rows(ROWS, order)] == names
    shown = Parsed(page(ROWS, order)).names
    assert [n.removesuffix("/").removesuffix(" (link)") for n in shown] == names


# --------------------------------------------------------------------------- escaping


@pytest.mark.parametrize(
    ("name", "href", "text"),
    [
        ("plain.txt", "plain.txt", "plain.txt"),
        ("a&b.txt", "a%26b.txt", "a&amp;b.txt"),
        ("<script>alert(1)</script>", "%3Cscript%3Ealert%281%29%3C/script%3E", None),
        ('q"uote.txt', "q%22uote.txt", 'q"uote.txt'),
        ("it's.txt", "it%27s.txt", "it's.txt"),
        ("#hash", "%23hash", "#hash"),
        ("why?.txt", "why%3F.txt", "why?.txt"),
        ("100%.txt", "100%25.txt", "100%.txt"),
        ("%41.txt", "%2541.txt", "%41.txt"),
        ("space name.txt", "space%20name.txt", "space name.txt"),
        ("naïve ✓.txt", "na%C3%AFve%20%E2%9C%93.txt", "naïve ✓.txt"),
        ("javascript:alert(1)", "javascript%3Aalert%281%29", "javascript:alert(1)"),
        ("caf\udce9.txt", "caf%ED%B3%A9.txt", "caf\ufffd.txt"),  # the byte 0xE9: not UTF-8
        ("tab\there", "tab%09here", "tab\there"),
    ],
)
def test_names_are_escaped_where_shown_and_encoded_where_linked(
    name: str, href: str, text: str | None
) -> None:
    body = page([row(name)])
    raw = body.decode("utf-8")  # valid UTF-8, even for a name that is not
    assert f'<a href="{href}">' in raw
    if text is not None:
        assert f">{text}</a>" in raw
    assert "<script" not in raw
    parsed = Parsed(body)
    link, shown = parsed.links[-1]
    assert urllib.parse.unquote(link, errors="surrogatepass") == name
    assert shown == name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def test_folders_link_with_a_slash_and_links_are_marked() -> None:
    body = page([folder("sub dir"), row("to-file", link=True)]).decode()
    assert '<a href="sub%20dir/">sub dir/</a>' in body
    assert '<a href="to-file">to-file <span class="note">(link)</span></a>' in body


# What a folder can hold: any name but "", ".", ".." and those with "/" or NUL, in
# UTF-8 or not (os.scandir gives undecodable bytes as surrogates).
names = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1),
    st.binary(min_size=1, max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")),
).filter(lambda n: n not in (".", "..") and "/" not in n and "\x00" not in n)


@settings(max_examples=300, deadline=None)
@given(name=names)
def test_every_name_links_back_to_itself(name: str) -> None:
    """Whatever a name is made of, its link decodes to it and its text shows it."""
    parsed = Parsed(page([row(name), folder(name)]))
    (file_href, file_text), (dir_href, _) = parsed.links[-2:][::-1]
    for href, expected in ((file_href, name), (dir_href, name + "/")):
        # resolved as a browser resolves it against the listing's URL: same host, no query
        # or fragment, and the path decodes (as the server decodes it) to the name
        link = urllib.parse.urlsplit(urllib.parse.urljoin("http://h/d/", href))
        assert (link.scheme, link.netloc, link.query, link.fragment) == ("http", "h", "", "")
        assert urllib.parse.unquote(link.path, errors="surrogatepass") == "/d/" + expected
    assert file_text == name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("target", "title"),
    [
        ("/d/", "Directory listing for /d/"),
        ("/some%20path/?q=<b>#frag", "Directory listing for /some path/"),
        ("/%3Cb%3E&amp;/", "Directory listing for /&lt;b&gt;&amp;amp;/"),
        ("/caf%ED%B3%A9/", "Directory listing for /caf\ufffd/"),
        ("/caf%E9/", "Directory listing for /caf\ufffd/"),
    ],
)
def test_the_title_is_the_decoded_escaped_path(target: str, title: str) -> None:
    body = page([], path=target).decode("utf-8")
    assert f"<title>{title}</title>" in body
    assert f"<h1>{title}</h1>" in body


# --------------------------------------------------------------------------- around the rows


def test_the_way_up_is_there_below_the_root_only() -> None:
    below = Parsed(page([row("a")], parent=True))
    assert below.links[0] == ("../", "\u2191 Parent folder")
    at_root = Parsed(page([row("a")], parent=False))
    assert "../" not in [href for href, _ in at_root.links]


@pytest.mark.parametrize(
    ("order", "hrefs", "sorted_by"),
    [
        (Order(), ["?sort=name&order=desc", "?sort=size&order=desc", "?sort=date&order=desc"], 0),
        (
            Order("name", True),
            ["?sort=name&order=asc", "?sort=size&order=desc", "?sort=date&order=desc"],
            0,
        ),
        (
            Order("size", True),
            ["?sort=name&order=asc", "?sort=size&order=asc", "?sort=date&order=desc"],
            1,
        ),
        (
            Order("date", False),
            ["?sort=name&order=asc", "?sort=size&order=desc", "?sort=date&order=desc"],
            2,
        ),
    ],
)
def test_column_headers_are_sort_links(order: Order, hrefs: list[str], sorted_by: int) -> None:
    body = page(ROWS, order)
    parsed = Parsed(body)
    assert [h.split()[0] for h in parsed.headers] == ["Name", "Size", "Modified"]
    assert [href for href, _ in parsed.links[1:4]] == hrefs
    direction = "descending" if order.descending else "ascending"
    text = body.decode()
    assert text.count("aria-sort=") == 1
    sorted_link = hrefs[sorted_by].replace("&", "&amp;")
    assert f'<th scope="col" aria-sort="{direction}"><a href="{sorted_link}">' in text


def test_a_page_is_self_contained_accessible_and_responsive() -> None:
    body = page(ROWS).decode()
    parsed = Parsed(body.encode())
    assert body.startswith('<!DOCTYPE HTML>\n<html lang="en">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body
    assert '<meta name="color-scheme" content="light dark">' in body
    assert "@media (prefers-color-scheme:dark)" in body
    for tag in ("script", "link", "img", "iframe", "object", "embed", "form"):
        assert tag not in parsed.tags
    assert "url(" not in body and "@import" not in body and "//" not in body.replace("://", "")
    assert {"table", "thead", "tbody", "th", "main", "h1", "title"} <= set(parsed.tags)
    assert body.count('scope="col"') == 3


def test_cells_show_sizes_dates_and_what_is_unknown() -> None:
    when = time.mktime((2024, 2, 29, 13, 45, 59, 0, 0, -1))
    parsed = Parsed(page([row("a.bin", 2048, when), folder("d", when), row("x", None, None)]))
    assert parsed.rows == [
        ["d/", "\u2014", "2024-02-29 13:45"],
        ["a.bin", "2.0 KiB", "2024-02-29 13:45"],
        ["x", "\u2014", "\u2014"],
    ]
    assert "1 folder, 2 files." in page([row("a"), row("b"), folder("c")]).decode()
    assert "This folder is empty." in page([]).decode()


def test_a_date_the_c_library_cannot_show_is_unknown() -> None:
    parsed = Parsed(page([row("far", 1, 1e20), row("before", 1, -86400.0 * 180)]))
    assert parsed.rows[1][2] == "\u2014"
    assert parsed.rows[0][2].startswith("1969-")


def test_the_page_uses_the_encoding_it_declares() -> None:
    body = render_listing_page("/d/", [row("é")], Order(), parent=False, encoding="latin-1")
    assert b'<meta charset="latin-1">' in body
    assert b">\xe9</a>" in body


# --------------------------------------------------------------------------- the 404 page


def test_the_404_suggestion_is_a_link() -> None:
    body = render_not_found("/docs/gude.html?x=1", "/docs/guide.html", "../docs/guide.html")
    parsed = Parsed(body)
    assert ("../docs/guide.html", "/docs/guide.html") in parsed.links
    text = body.decode()
    assert "<code>/docs/gude.html</code>" in text
    assert "Did you mean" in text and "Error code: 404" in text
    assert "<title>404 Not Found</title>" in text


def test_a_404_without_a_suggestion_has_no_link_to_one() -> None:
    body = render_not_found("/nothing", None, "").decode()
    assert "Did you mean" not in body
    assert "<a " not in body


@pytest.mark.parametrize(
    ("target", "suggestion", "href", "asked", "shown"),
    [
        ("/%3Cscript%3E", "/%3Cscript%3E.html", "./%3Cscript%3E.html", "&lt;script&gt;",
         "/&lt;script&gt;.html"),
        ("/a&b", "/a%26b.txt", "./a%26b.txt", "/a&amp;b", "/a&amp;b.txt"),
        ('/q"x', "/q%22x.txt", "./q%22x.txt", '/q"x', '/q"x.txt'),
        ("/caf%E9.tx", "/caf%ED%B3%A9.txt", "./caf%ED%B3%A9.txt", "/caf\ufffd.tx",
         "/caf\ufffd.txt"),
    ],
)  # fmt: skip
def test_the_404_page_escapes_what_it_shows(
    target: str, suggestion: str, href: str, asked: str, shown: str
) -> None:
    text = render_not_found(target, suggestion, href).decode("utf-8")
    assert f'<a href="{href}">{shown}</a>' in text
    assert asked in text
    assert "<script" not in text


# --------------------------------------------------------------------------- stats read


def test_rows_read_sizes_and_dates_through_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "file.txt").write_bytes(b"12345")
    os.utime(root / "file.txt", (1_000_000_000, 1_000_000_000))
    (root / "inside").symlink_to("file.txt")
    (tmp_path / "secret.txt").write_bytes(b"x" * 999)
    (root / "outside").symlink_to(tmp_path / "secret.txt")
    (root / "dangling").symlink_to("nowhere")
    entries = [
        Entry("file.txt", False, False),
        Entry("sub", True, False),
        Entry("inside", False, True),
        Entry("outside", False, True),
        Entry("dangling", False, True),
        Entry("gone", False, False),  # removed since it was listed
    ]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rows = {r.name: r for r in read_rows(fd, str(root), entries, Policy(str(root)))}
    finally:
        os.close(fd)
    assert (rows["file.txt"].size, rows["file.txt"].mtime) == (5, 1_000_000_000)
    assert rows["sub"].size is None and rows["sub"].mtime is not None
    assert (rows["inside"].size, rows["inside"].is_link) == (5, True)
    # what a refused link leads to is not described
    assert (rows["outside"].size, rows["outside"].mtime) == (None, None)
    assert (rows["dangling"].size, rows["gone"].size) == (None, None)


# --------------------------------------------------------------------------- pages remembered


KEY = ("/srv/d", "/d/", Order())


def test_a_page_is_given_back_for_a_moment_while_its_folder_holds() -> None:
    pages = ListingPages()
    pages.put(KEY, "folder-v1", 0, 100.0, b"page")
    assert pages.get(KEY, "folder-v1", 0, 100.0) == (b"page", 100.0)
    assert pages.get(KEY, "folder-v1", 0, 100.0 + LISTING_SECONDS * 0.9) == (b"page", 100.0)
    assert pages.get(KEY, "folder-v1", 0, 100.0 + LISTING_SECONDS) is None  # sizes may differ
    assert pages.get(KEY, "folder-v1", 0, 99.0) is None  # the clock went back
    assert pages.get(KEY, "folder-v2", 0, 100.0) is None  # a name added or removed
    assert pages.get(KEY, "folder-v1", 1, 100.0) is None  # live reload saw a change
    assert pages.get(("/srv/d", "/d/", Order("size")), "folder-v1", 0, 100.0) is None


def test_remembered_pages_are_bounded_in_bytes() -> None:
    pages = ListingPages(max_bytes=64 * 1024)
    for i in range(100):
        pages.put(("/srv", f"/d{i}/", Order()), "f", 0, 0.0, b"x" * 4000)
        assert pages.size <= 64 * 1024
    assert pages.get(("/srv", "/d99/", Order()), "f", 0, 0.0) is not None
    assert pages.get(("/srv", "/d0/", Order()), "f", 0, 0.0) is None  # the oldest went first
    pages.put(("/srv", "/huge/", Order()), "f", 0, 0.0, b"x" * 17 * 1024)  # over a quarter
    assert pages.get(("/srv", "/huge/", Order()), "f", 0, 0.0) is None
