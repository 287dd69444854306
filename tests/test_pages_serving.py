"""The listing and 404 pages over real sockets, from `devserve serve`'s own server.

Every link a page shows is followed with ``http.client`` (as a browser resolves
it), the event loop and the threaded handler are compared byte for byte, and a
file rewritten in place shows its new size once the page's moment is over.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devserve._loop import LoopHTTPServer
from devserve._reply import SiteRequest
from devserve.config import ReloadConfig, ServeConfig
from tests.support import both_paths, normalized, port_of, raw_exchange, running_devserve
from tests.test_pages_render import Parsed

# name -> (bytes, mtime): sizes and dates that sort differently from the names
FILES: dict[bytes, tuple[bytes, int]] = {
    b"a&b<c> #?%.txt": (b"odd" * 10, 1_600_000_000),
    b'q"uote.txt': (b"q", 1_500_000_000),
    b"space name.txt": (b"s" * 2000, 1_700_000_000),
    "naïve ✓.txt".encode(): (b"n" * 100, 1_400_000_000),
    b"caf\xe9.txt": (b"latin-1 name", 1_650_000_000),  # not UTF-8
    b"big.bin": (b"b" * 50_000, 1_300_000_000),
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name, (data, mtime) in FILES.items():
        path = os.path.join(os.fsencode(root), name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (mtime, mtime))
    (root / "sub" / "guide.html").write_text("<p>the guide</p>")
    (tmp_path / "secret.txt").write_bytes(b"s" * 4242)
    (root / "out").symlink_to(tmp_path / "secret.txt")
    return root


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def get(port: int, target: str, method: str = "GET") -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, target)
        response = connection.getresponse()
        return Response(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def follow(port: int, page_url: str, href: str) -> Response:
    """GET what ``href`` on the page at ``page_url`` leads to, resolved as a browser does."""
    url = urllib.parse.urlsplit(urllib.parse.urljoin("http://127.0.0.1" + page_url, href))
    assert (url.netloc, url.fragment) == ("127.0.0.1", ""), href
    return get(port, url.path + ("?" + url.query if url.query else ""))


def row_links(page: Parsed) -> list[str]:
    """The links of the table's rows (after the way up and the three column headers)."""
    hrefs = [href for href, _ in page.links if not href.startswith("?") and href != "../"]
    assert len(hrefs) == len(page.rows)
    return hrefs


@pytest.fixture
def port(site: Path) -> Iterator[int]:
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        yield port_of(server)


# --------------------------------------------------------------------------- the listing


def test_every_listed_name_is_reachable_through_its_link(port: int, site: Path) -> None:
    response = get(port, "/")
    assert response.status == 200
    assert response.headers["Content-type"] == "text/html; charset=utf-8"
    page = Parsed(response.body)
    contents = {os.fsdecode(name): data for name, (data, _) in FILES.items()}
    reached = {}
    for href in row_links(page):
        answer = follow(port, "/", href)
        assert answer.status in (200, 404), href
        reached[urllib.parse.unquote(href, errors="surrogatepass")] = answer
    for name, data in contents.items():
        assert reached[name].status == 200
        assert reached[name].body == data, name
    assert reached["sub/"].status == 200
    assert b"Directory listing for /sub/" in reached["sub/"].body
    assert reached["out"].status == 404  # listed (as before), never served
    assert "caf\ufffd.txt" in page.names  # shown readably, linked exactly


def test_sizes_and_dates_are_shown_and_a_refused_link_describes_nothing(port: int) -> None:
    page = Parsed(get(port, "/").body)
    cells = {r[0]: r[1:] for r in page.rows}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(1_300_000_000))
    assert cells["big.bin"] == ["48.8 KiB", when]
    assert cells["space name.txt"][0] == "2.0 KiB"
    assert cells['q"uote.txt'][0] == "1 B"
    assert cells["sub/"][0] == "\u2014"
    assert cells["out (link)"] == ["\u2014", "\u2014"]  # not the outside file's 4.1 KiB


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("", ["sub/", "a&b<c> #?%.txt", "big.bin", "caf\ufffd.txt", "naïve ✓.txt",
              "out (link)", "q\"uote.txt", "space name.txt"]),
        ("?sort=size&order=desc", ["sub/", "big.bin", "space name.txt", "naïve ✓.txt",
                                   "a&b<c> #?%.txt", "caf\ufffd.txt", "q\"uote.txt", "out (link)"]),
        ("?sort=date", ["sub/", "out (link)", "big.bin", "naïve ✓.txt", "q\"uote.txt",
                        "a&b<c> #?%.txt", "caf\ufffd.txt", "space name.txt"]),
        ("?sort=name&order=desc", ["sub/", "space name.txt", "q\"uote.txt", "out (link)",
                                   "naïve ✓.txt", "caf\ufffd.txt", "big.bin", "a&b<c> #?%.txt"]),
    ],
)  # fmt: skip
def test_the_query_string_sorts_the_rows(port: int, query: str, names: list[str]) -> None:
    assert Parsed(get(port, "/" + query).body).names == names


def test_following_a_column_header_sorts_by_it_and_again_reverses(port: int) -> None:
    page = Parsed(get(port, "/").body)
    size_link = next(href for href, text in page.links if text.startswith("Size"))
    by_size = follow(port, "/", size_link)
    sizes_first = Parsed(by_size.body)
    assert sizes_first.names[1] == "big.bin"  # largest first
    again = next(href for href, text in sizes_first.links if text.startswith("Size"))
    assert again == "?sort=size&order=asc"
    assert Parsed(follow(port, "/" + size_link, again).body).names[1] == "out (link)"


def test_the_way_up_is_offered_below_the_root_and_leads_there(port: int) -> None:
    assert "../" not in [href for href, _ in Parsed(get(port, "/").body).links]
    deeper = Parsed(get(port, "/sub/deeper/").body)
    assert deeper.links[0][0] == "../"
    up = follow(port, "/sub/deeper/", "../")
    assert up.status == 200 and b"Directory listing for /sub/" in up.body
    assert b"guide.html" in up.body


def test_head_of_a_listing_has_the_length_of_its_page(port: int) -> None:
    whole = get(port, "/sub/?sort=date")
    head = get(port, "/sub/?sort=date", "HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(len(whole.body))


def test_a_file_rewritten_in_place_shows_its_new_size_once_the_moment_is_over(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devserve._listing.LISTING_SECONDS", 0.3)
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)  # the folder counts as settled
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        port = port_of(server)
        assert Parsed(get(port, "/").body).rows[2][1] == "48.8 KiB"
        assert server.context.site.listings.size > 0  # remembered, for its moment
        folder = os.stat(site)
        with open(site / "big.bin", "r+b") as f:  # same inode, same folder
            f.write(b"x" * 100_000)
        assert os.stat(site).st_mtime_ns == folder.st_mtime_ns
        deadline = time.monotonic() + 5
        while (size := Parsed(get(port, "/").body).rows[2][1]) != "97.7 KiB":
            assert time.monotonic() < deadline, size
            time.sleep(0.05)


def test_with_live_reload_a_change_shows_at_once(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devserve._listing.LISTING_SECONDS", 3600.0)
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)  # the folder counts as settled
    config = ServeConfig(directory=site, quiet=True, reload=ReloadConfig())
    with running_devserve(config) as (server, _, _):
        port = port_of(server)
        hub = server.context.site.hub
        assert hub is not None
        assert Parsed(get(port, "/").body).rows[2][1] == "48.8 KiB"
        (site / "big.bin").write_bytes(b"x" * 100_000)
        assert Parsed(get(port, "/").body).rows[2][1] == "48.8 KiB"  # remembered, for now
        hub.publish(css_only=False)  # what the watcher does when it sees the write
        assert Parsed(get(port, "/").body).rows[2][1] == "97.7 KiB"


# --------------------------------------------------------------------------- the 404 page


@pytest.mark.parametrize(
    ("target", "where", "content"),
    [
        ("/sub/gude.html", "../sub/guide.html", b"<p>the guide</p>"),
        ("/Sub/guide.html", "../sub/guide.html", b"<p>the guide</p>"),
        ("/big.bim", "./big.bin", b"b" * 50_000),
        ("/sub/deepr/", "../../sub/deeper/", b"Directory listing for /sub/deeper/"),
        # a near miss of a name that is not UTF-8, asked for either way (this was a
        # dropped connection: the suggestion could not be encoded)
        ("/caf%ED%B3%A9.tx", "./caf%ED%B3%A9.txt", b"latin-1 name"),
        ("/caf%E9.tx", "./caf%ED%B3%A9.txt", b"latin-1 name"),
        ("/space%20nme.txt", "./space%20name.txt", b"s" * 2000),
    ],
)
def test_the_404_suggestion_is_a_link_that_works(
    port: int, target: str, where: str, content: bytes
) -> None:
    response = get(port, target)
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/html;charset=utf-8"
    links = Parsed(response.body).links
    assert [href for href, _ in links] == [where]
    answer = follow(port, target, where)
    assert answer.status == 200
    assert content in answer.body
    # relative, so it also works under a proxy's path prefix
    behind = urllib.parse.urljoin("http://proxy/app" + target, where)
    assert urllib.parse.urlsplit(behind).path.startswith("/app/")


def test_a_404_without_a_suggestion_says_so_without_a_link(port: int) -> None:
    response = get(port, "/nothing-like-it-anywhere.xyz")
    assert response.status == 404
    assert b"Did you mean" not in response.body
    assert Parsed(response.body).links == []
    assert b"<code>/nothing-like-it-anywhere.xyz</code>" in response.body


def test_the_log_still_names_the_suggestion(site: Path) -> None:
    with running_devserve(ServeConfig(directory=site)) as (server, log, _):
        assert get(port_of(server), "/sub/gude.html").status == 404
        deadline = time.monotonic() + 5
        while not log.records() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [r.note for r in log.records()] == ["did you mean /sub/guide.html"]


# --------------------------------------------------------------------------- loop and threads

TARGETS = [
    "/", "/?sort=size&order=desc", "/?sort=date", "/sub/", "/sub/deeper/?sort=name&order=desc",
    "/sub/gude.html", "/caf%E9.tx", "/big.bim", "/missing", "/sub/?sort=%3Cx%3E",
]  # fmt: skip


@pytest.mark.parametrize(
    "config",
    [ServeConfig(), ServeConfig(reload=ReloadConfig()), ServeConfig(protocol="HTTP/1.0")],
    ids=["default", "reload", "http10"],
)
def test_the_loop_and_the_threads_show_the_same_pages(site: Path, config: ServeConfig) -> None:
    with both_paths(replace(config, directory=site, quiet=True)) as (loop, threads, _):
        for target in TARGETS:
            for method in ("GET", "HEAD"):
                request = f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                answers = [normalized(raw_exchange(p, request.encode())) for p in (loop, threads)]
                assert answers[0] == answers[1], target
                assert re.match(rb"HTTP/1\.[01] (200|404) ", answers[0]), answers[0][:80]


def test_a_page_is_rendered_once_for_its_moment(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site remembers pages (the loop and the threads share it), not each path apart."""
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)  # the folder counts as settled
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        site_ = server.context.site
        first = site_.respond(SiteRequest("GET", "/sub/", {}))
        again = site_.respond(SiteRequest("GET", "/sub/", {}))
        other = site_.respond(SiteRequest("GET", "/sub/?sort=size", {}))
    assert first.parts[0] is again.parts[0]  # the same bytes, not rendered twice
    assert other.parts[0] is not first.parts[0]
    assert first.deps is not None and first.fresh_until is not None  # the loop's only briefly
    assert site_.listings.size > 0


def test_the_loop_sends_a_listing_again_only_for_its_moment(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeat listing is the loop's to send (fast) until its sizes may have changed."""
    monkeypatch.setattr("devserve._files.RACY_SECONDS", 0.0)  # the folder counts as settled
    with running_devserve(ServeConfig(directory=site, quiet=True)) as (server, _, _):
        port = port_of(server)
        request = b"GET /sub/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert raw_exchange(port, request).startswith(b"HTTP/1.1 200 ")
        assert isinstance(server, LoopHTTPServer)
        replies = server.replies
        assert replies is not None
        assert replies.recall(request) is not None  # remembered, for now
        monkeypatch.setattr("time.time", lambda: 4_000_000_000.0)  # far later
        assert replies.recall(request) is None  # its moment is over: read the folder again
