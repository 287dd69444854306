"""Parity with the stdlib: the same requests to ``http.server`` and ``devserve.server``.

Every test starts the stdlib classes and ours side by side on 127.0.0.1 (port 0, read
back), sends byte-identical requests with real clients (``http.client``, raw sockets,
``curl``) and compares what comes back:

* the status line (protocol version, code and reason phrase) -- or its absence, for
  replies the stdlib sends HTTP/0.9-style;
* the headers: ``Date`` and ``Server`` values are ignored (their presence is not);
  every other header the stdlib sends must be sent by us with the same value(s),
  names compared case-insensitively; we may add only the headers listed in
  ``ALLOWED_EXTRA_HEADERS``, so any new, unexpected difference fails;
* the body, byte for byte (directory listings and error pages included).

The stdlib under test is whichever runs the suite. Differences between stdlib releases
that matter here (so a failure on another interpreter is not necessarily our bug):

* 3.12+ maps ``.js`` to ``text/javascript`` (3.11: ``application/javascript``, unless
  the system mime.types says otherwise);
* 3.13+ adds a ``<style>`` (``color-scheme: light dark``) element to directory
  listings; 3.11/3.12 do not;
* a malformed request line (bad version word ``HTTP/1.x``, ``HTTP/2.0``, ``FUBAR``;
  a single word; ``HEAD /`` without a version) is answered *without a status line* by
  every release so far: ``parse_request`` still has ``request_version ==
  default_request_version == "HTTP/0.9"`` when it calls ``send_error``, so only the
  HTML body (which says 400/505) is sent, and ``http.client`` raises BadStatusLine.
  devserve deliberately sends a real status line there (DELIBERATE_STATUS_LINE); for
  those cases the baseline is the stdlib handler with ``default_request_version =
  "HTTP/1.1"`` (what CPython's own tests use), which sends the same body with a head.

Where Python 3.15 changed a behaviour, devserve follows 3.15 and the case is tested
on its own instead of here: an encoded slash (``%2f``) ending a directory's path is a
trailing slash, and a listing's title leaves out the query (tests/test_static.py).
Header lines are read strictly (RFC 9112): a line without a colon is a 400 and an
obs-fold becomes one space (tests/test_protocol.py, tests/test_hardening.py).

Deliberately *not* compared here (see tests/test_traversal.py): ``%00`` in a path and
undecodable surrogates (the stdlib raises ``ValueError`` and drops the connection
without a reply -- a stdlib bug we do not copy) and symlinks leaving the root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import io
import json
import os
import shutil
import socketserver
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, cast

import pytest

from devserve import server as devserve_server
from tests.support import port_of, raw_exchange, running_server

# ---------------------------------------------------------------------------
# Comparison policy

#: Headers whose *values* are never compared (their presence is).
IGNORED_VALUE_HEADERS = frozenset({"date", "server"})

#: Headers devserve may send although the stdlib does not. Anything else extra fails.
ALLOWED_EXTRA_HEADERS = frozenset({"etag", "accept-ranges", "cache-control"})

#: Deliberate difference, documented in devserve.server.BaseHTTPRequestHandler: a
#: malformed request line that is not a genuine HTTP/0.9 request gets a status line.
DELIBERATE_STATUS_LINE = (
    "deliberate difference: devserve answers a malformed request line with a status line; "
    "compared with the stdlib handler that has default_request_version = 'HTTP/1.1'"
)

TIMEOUT = 5.0

#: Fixed mtime of every fixture file (2020-01-01T00:00:00.5Z): the half second checks
#: that If-Modified-Since compares whole seconds, as the stdlib does.
MTIME_NS = 1_577_836_800_500_000_000
LAST_MODIFIED = "Wed, 01 Jan 2020 00:00:00 GMT"

HAVE_CURL = shutil.which("curl") is not None


# ---------------------------------------------------------------------------
# Replies


@dataclasses.dataclass(frozen=True)
class Reply:
    """One HTTP reply as seen on the wire."""

    status_line: str | None  # None: an HTTP/0.9-style reply (no status line, no headers)
    headers: tuple[tuple[str, str], ...]
    body: bytes
    interim: tuple[str, ...] = ()  # status lines of 1xx replies that came first

    @property
    def status(self) -> int | None:
        if self.status_line is None:
            return None
        return int(self.status_line.split()[1])

    def header_map(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for name, value in self.headers:
            result.setdefault(name.lower(), []).append(value)
        return result

    def render(self, limit: int = 300) -> str:
        lines = [*self.interim, self.status_line or "<no status line>"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        body = self.body if len(self.body) <= limit else self.body[:limit] + b"...(truncated)"
        return "\n    ".join([*lines, f"<body {len(self.body)} bytes> {body!r}"])


def _parse_head(head: bytes) -> tuple[str, tuple[tuple[str, str], ...]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        assert sep, f"malformed header line {line!r} in {head!r}"
        headers.append((name, value.strip()))
    return lines[0], tuple(headers)


def _status_code(status_line: str) -> int:
    words = status_line.split()
    assert len(words) >= 2, f"malformed status line {status_line!r}"
    assert words[1].isdigit(), f"malformed status line {status_line!r}"
    return int(words[1])


def parse_reply(data: bytes) -> Reply:
    """Parse everything a server sent before closing: 1xx replies, then one final reply."""
    interim: list[str] = []
    while data.startswith(b"HTTP/"):
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"reply head not terminated by CRLF CRLF: {data[:300]!r}"
        status_line, headers = _parse_head(head)
        if 100 <= _status_code(status_line) < 200:
            interim.append(status_line)
            data = rest
            continue
        return Reply(status_line, headers, rest, tuple(interim))
    return Reply(None, (), data, tuple(interim))


def split_replies(data: bytes, methods: Sequence[str]) -> list[Reply]:
    """Split the replies to pipelined requests (framed by Content-Length; HEAD has no body)."""
    replies = []
    for method in methods:
        if not data:
            break
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"reply head not terminated by CRLF CRLF: {data[:300]!r}"
        status_line, headers = _parse_head(head)
        lengths = [int(v) for n, v in headers if n.lower() == "content-length"]
        length = 0 if method == "HEAD" else (lengths[0] if lengths else len(rest))
        replies.append(Reply(status_line, headers, rest[:length]))
        data = rest[length:]
    assert not data, f"bytes after the last reply: {data[:300]!r}"
    return replies


def _first_difference(a: bytes, b: bytes) -> str:
    index = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return (
        f"first difference at byte {index}: stdlib {a[max(0, index - 40) : index + 60]!r} "
        f"vs devserve {b[max(0, index - 40) : index + 60]!r}"
    )


# Python 3.10 writes its error and listing pages as HTML 4.01; 3.11 made them HTML5,
# and devserve writes the newer form. Under 3.10 the baseline is rewritten to it.
_HTML4_HEADS = (
    (
        b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN"\n        '
        b'"http://www.w3.org/TR/html4/strict.dtd">\n<html>\n    <head>\n        '
        b'<meta http-equiv="Content-Type" content="text/html;charset=utf-8">',
        b'<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <meta charset="utf-8">',
        "text/html;charset=utf-8",
    ),
    (
        b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" '
        b'"http://www.w3.org/TR/html4/strict.dtd">\n<html>\n<head>\n'
        b'<meta http-equiv="Content-Type" content="text/html; charset=utf-8">',
        b'<!DOCTYPE HTML>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
        "text/html; charset=utf-8",
    ),
)


def as_newer_pythons_write_it(reply: Reply) -> Reply:
    """A Python 3.10 reply with its page heads in the HTML5 form of 3.11 and later."""
    if sys.version_info >= (3, 11):
        return reply
    content_type = reply.header_map().get("content-type", [""])[0]
    for old, new, page_type in _HTML4_HEADS:
        if content_type != page_type and not (
            reply.status_line is None and reply.body.startswith(old)
        ):
            continue
        if reply.body.startswith(old) or (not reply.body and reply.status != 304):
            body = new + reply.body[len(old) :] if reply.body else b""
            headers = tuple(
                (name, str(int(value) - len(old) + len(new)))
                if name.lower() == "content-length"
                else (name, value)
                for name, value in reply.headers
            )
            return dataclasses.replace(reply, headers=headers, body=body)
    return reply


def differences(std: Reply, ours: Reply) -> list[str]:
    """Every way ``ours`` departs from ``std`` under the comparison policy."""
    std = as_newer_pythons_write_it(std)
    problems = []
    if std.status_line != ours.status_line:
        problems.append(f"status line: stdlib {std.status_line!r}, devserve {ours.status_line!r}")
    if std.interim != ours.interim:
        problems.append(f"1xx replies: stdlib {std.interim!r}, devserve {ours.interim!r}")
    std_headers, our_headers = std.header_map(), ours.header_map()
    for name in sorted(IGNORED_VALUE_HEADERS):
        if (name in std_headers) != (name in our_headers):
            problems.append(
                f"header {name} present: stdlib {name in std_headers}, "
                f"devserve {name in our_headers}"
            )
    for name, values in std_headers.items():
        if name not in IGNORED_VALUE_HEADERS and our_headers.get(name) != values:
            problems.append(f"header {name}: stdlib {values!r}, devserve {our_headers.get(name)!r}")
    extra = sorted(set(our_headers) - set(std_headers) - IGNORED_VALUE_HEADERS)
    unexpected = [name for name in extra if name not in ALLOWED_EXTRA_HEADERS]
    if unexpected:
        problems.append(
            "unexpected extra headers from devserve: "
            + ", ".join(f"{name}: {our_headers[name]!r}" for name in unexpected)
        )
    if std.body != ours.body:
        problems.append(
            f"body: stdlib {len(std.body)} bytes, devserve {len(ours.body)} bytes; "
            + _first_difference(std.body, ours.body)
        )
    return problems


def assert_parity(what: str, std: Reply, ours: Reply) -> None:
    problems = differences(std, ours)
    assert not problems, (
        f"devserve differs from http.server for {what}:\n  - "
        + "\n  - ".join(problems)
        + f"\n  stdlib reply:\n    {std.render()}\n  devserve reply:\n    {ours.render()}"
    )


# ---------------------------------------------------------------------------
# Requests


@dataclasses.dataclass(frozen=True)
class Req:
    """One request, sent the same way to both servers."""

    id: str
    kind: Literal["client", "raw", "curl"] = "client"
    method: str = "GET"
    target: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    raw: bytes = b""
    curl_args: tuple[str, ...] = ()
    expect: int | None = 200  # status the stdlib gives; None = no status line at all
    # Deliberate difference (see DELIBERATE_STATUS_LINE): devserve answers with a status
    # line carrying this code where the stdlib sends a bare HTML body.
    status_line: int | None = None

    def describe(self) -> str:
        if self.kind == "raw":
            shown = self.raw if len(self.raw) <= 200 else self.raw[:200] + b"...(truncated)"
            return f"raw request {shown!r} ({len(self.raw)} bytes)"
        if self.kind == "curl":
            return f"curl {' '.join(self.curl_args)} {self.target!r}"
        return f"http.client {self.method} {self.target!r} headers={dict(self.headers)!r}"


def send(req: Req, port: int) -> Reply:
    if req.kind == "raw":
        return parse_reply(raw_exchange(port, req.raw, timeout=TIMEOUT))
    if req.kind == "curl":
        return curl(port, req.target, *req.curl_args)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(req.method, req.target, body=req.body, headers=dict(req.headers))
        return client_reply(conn.getresponse())
    finally:
        conn.close()


def client_reply(resp: http.client.HTTPResponse) -> Reply:
    body = resp.read()
    version = f"HTTP/{resp.version // 10}.{resp.version % 10}"
    return Reply(f"{version} {resp.status} {resp.reason}", tuple(resp.getheaders()), body)


def curl(port: int, target: str, *args: str) -> Reply:
    command = ["curl", "-sS", "-i", "--path-as-is", "--max-time", str(TIMEOUT), *args]
    done = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{target}"],
        capture_output=True,
        timeout=TIMEOUT * 2,
        check=False,
    )
    assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr!r}"
    return parse_reply(done.stdout)


def raw(name: str, data: bytes, expect: int | None) -> Req:
    return Req(id=name, kind="raw", raw=data, expect=expect)


def malformed(name: str, data: bytes, code: int) -> Req:
    """A malformed request line: see DELIBERATE_STATUS_LINE."""
    return Req(id=name, kind="raw", raw=data, expect=None, status_line=code)


def get10(target: str) -> bytes:
    return b"GET " + target.encode("latin-1") + b" HTTP/1.0\r\n\r\n"


# ---------------------------------------------------------------------------
# The fixture tree


NON_ASCII_NAME = "with space \u00fc.txt"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\r\n\x00\r\n"

FILES: dict[str, bytes] = {
    "page.html": b"<!doctype html>\n<title>t</title>\n<p>hello</p>\n",
    "notes.txt": b"plain text\nline 2\r\nline 3\n",
    "app.js": b"console.log('hi');\n",
    "style.css": b"body { color: red; }\n",
    "data.json": b'{"a": 1, "b": [true, null]}\n',
    "image.png": PNG_BYTES,
    "empty.txt": b"",
    NON_ASCII_NAME: "non-ASCII name \u00fc\n".encode(),
    "a&b<c>.txt": b"needs escaping in listings\n",
    "shout.HTML": b"<p>upper-case extension</p>\n",
    "blob.unknownext": b"\x00\x01\x02",
    "archive.tar.gz": b"\x1f\x8b\x08\x00not really gzip",
    ".hidden": b"dot file\n",
    "big.bin": bytes(range(256)) * 800,  # 200 KiB: more than one copy chunk
    "sub_with_index/index.html": b"<p>index of sub_with_index</p>\n",
    "sub_with_index/index.htm": b"<p>must lose to index.html</p>\n",
    "sub_with_index/other.txt": b"other\n",
    "sub_htm/index.htm": b"<p>index.htm only</p>\n",
    "sub_no_index/alpha.txt": b"alpha\n",
    "sub_no_index/Zeta.txt": b"zeta\n",
    "sub_no_index/beta.TXT": b"beta\n",
    "sub_no_index/nested/deep.txt": b"deep\n",
    "dir with space/inner.txt": b"inner\n",
    "double/leading/file.txt": b"double leading\n",
}

#: Names that need quoting or escaping in listings (all in odd_names/).
ODD_NAMES = [
    "100% sure.txt",
    "q?.txt",
    "hash#.txt",
    'quote".txt',
    "apos'.txt",
    "amp&lt;.txt",
    "\u00fcn\u00efc\u00f6d\u00e9.txt",
    "\u65e5\u672c\u8a9e.txt",
    "tab\tname.txt",
]
#: Not valid UTF-8: listed through surrogateescape, reachable as %ED%B3%BF (surrogatepass).
UNDECODABLE_NAME = b"bad\xff.txt"

ODD_FILES: dict[str, bytes] = {
    f"odd_names/{name}": f"content of {name}\n".encode() for name in ODD_NAMES
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parity") / "www"
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "sub_no_index" / "empty_dir").mkdir()
    for name, content in ODD_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    with open(os.path.join(os.fsencode(root / "odd_names"), UNDECODABLE_NAME), "wb") as f:
        f.write(b"undecodable name\n")
    (root / "link_to_notes.txt").symlink_to("notes.txt")  # a link that stays inside root
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    return root


@dataclasses.dataclass(frozen=True)
class Pair:
    std: int
    ours: int
    std_status_line: int = 0  # the stdlib handler with default_request_version "HTTP/1.1"


@contextlib.contextmanager
def server_pair(
    std_handler: Any, our_handler: Any, directory: Path | None = None
) -> Iterator[Pair]:
    folder = None if directory is None else str(directory)
    with (
        running_server(http.server.ThreadingHTTPServer, std_handler, directory=folder) as std,
        running_server(devserve_server.ThreadingHTTPServer, our_handler, directory=folder) as ours,
    ):
        yield Pair(port_of(std), port_of(ours))


@pytest.fixture(scope="module")
def simple(tree: Path) -> Iterator[Pair]:
    status_line = subclass(
        http.server, "SimpleHTTPRequestHandler", default_request_version="HTTP/1.1"
    )
    with (
        server_pair(
            http.server.SimpleHTTPRequestHandler, devserve_server.SimpleHTTPRequestHandler, tree
        ) as pair,
        running_server(http.server.ThreadingHTTPServer, status_line, directory=str(tree)) as std,
    ):
        yield dataclasses.replace(pair, std_status_line=port_of(std))


def subclass(mod: ModuleType, base: str, **attributes: object) -> Any:
    """A subclass of ``mod.<base>`` with class attributes set, written once for both modules."""
    return type(f"{base}For{mod.__name__.replace('.', '_')}", (getattr(mod, base),), attributes)


# ---------------------------------------------------------------------------
# SimpleHTTPRequestHandler over the socket

IMS = "If-Modified-Since"
PAST = "Tue, 01 Jan 2019 00:00:00 GMT"
FUTURE = "Sun, 01 Jan 2040 00:00:00 GMT"
LONG_LINE = b"GET /" + b"a" * 65536 + b" HTTP/1.0\r\n\r\n"
LONG_HEADER = b"GET / HTTP/1.0\r\nX-Long: " + b"b" * 65536 + b"\r\n\r\n"


def n_headers(count: int) -> bytes:
    return (
        b"GET /notes.txt HTTP/1.0\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(count))
        + b"\r\n"
    )


SIMPLE_CASES: list[Req] = [
    # files of several types, GET and HEAD
    *[
        Req(id=f"GET {name}", target="/" + name)
        for name in (
            "page.html",
            "notes.txt",
            "app.js",
            "style.css",
            "data.json",
            "image.png",
            "empty.txt",
            "shout.HTML",
            "blob.unknownext",
            "archive.tar.gz",
            ".hidden",
            "big.bin",
            "link_to_notes.txt",
            "double/leading/file.txt",
        )
    ],
    *[
        Req(id=f"HEAD {name}", method="HEAD", target="/" + name)
        for name in (
            "page.html",
            "image.png",
            "empty.txt",
            "data.json",
        )
    ],
    raw("raw HEAD file sends no body", b"HEAD /page.html HTTP/1.0\r\n\r\n", 200),
    raw("raw HEAD listing sends no body", b"HEAD /sub_no_index/ HTTP/1.0\r\n\r\n", 200),
    raw("raw HEAD 404 sends no body", b"HEAD /missing.txt HTTP/1.0\r\n\r\n", 404),
    # percent-encoding
    Req(id="percent-encoded non-ASCII name", target="/with%20space%20%C3%BC.txt"),
    Req(id="percent-encoded ASCII", target="/%6eotes.txt"),
    Req(id="percent-encoded specials", target="/a%26b%3Cc%3E.txt"),
    Req(id="lower-case escapes", target="/with%20space%20%c3%bc.txt"),
    raw(
        "raw non-ASCII bytes in target",
        "GET /with%20space%20\u00fc.txt HTTP/1.0\r\n\r\n".encode(),
        404,
    ),
    Req(id="invalid escape %", target="/%", expect=404),
    Req(id="invalid escape %zz", target="/%zz", expect=404),
    Req(id="truncated escape %2", target="/notes.txt%2", expect=404),
    Req(id="invalid UTF-8 escape", target="/%ff%fe.txt", expect=404),
    # directories, redirects and listings
    Req(id="root listing", target="/"),
    Req(id="HEAD root listing", method="HEAD", target="/"),
    Req(id="listing with trailing slash", target="/sub_no_index/"),
    Req(id="listing of empty dir", target="/sub_no_index/empty_dir/"),
    Req(id="listing of dir with space", target="/dir%20with%20space/"),
    Req(id="dir without slash redirects", target="/sub_no_index", expect=301),
    Req(id="HEAD dir without slash", method="HEAD", target="/sub_no_index", expect=301),
    Req(id="redirect keeps query string", target="/sub_no_index?x=1&y=%20", expect=301),
    Req(id="redirect of dir with space", target="/dir%20with%20space", expect=301),
    Req(id="redirect of nested dir", target="/sub_no_index/nested", expect=301),
    raw("redirect keeps fragment", get10("/sub_no_index?x=1#frag"), 301),
    Req(id="index.html served", target="/sub_with_index/"),
    Req(id="index.html redirect", target="/sub_with_index", expect=301),
    Req(id="index.htm served", target="/sub_htm/"),
    Req(id="HEAD index.html", method="HEAD", target="/sub_with_index/"),
    # 404 and trailing slashes
    Req(id="missing file", target="/missing.html", expect=404),
    Req(id="missing dir", target="/missing/", expect=404),
    Req(id="missing nested", target="/sub_no_index/missing.txt", expect=404),
    Req(id="HEAD missing", method="HEAD", target="/missing.html", expect=404),
    Req(id="trailing slash on file", target="/notes.txt/", expect=404),
    Req(id="trailing slash on html file", target="/page.html/", expect=404),
    # query strings, fragments, odd but legal paths
    Req(id="query string on file", target="/notes.txt?x=1&y=2"),
    Req(id="traversal-looking query", target="/notes.txt?../../etc/passwd"),
    raw("fragment on file", get10("/notes.txt#frag"), 200),
    raw("dot segments", get10("/./sub_no_index/../notes.txt"), 200),
    raw("dot-dot above root clamps", get10("/../../notes.txt"), 200),
    Req(id="double leading slash dir", target="//double/leading", expect=301),
    Req(id="double leading slash file", target="//double/leading/file.txt"),
    Req(id="triple slashes everywhere", target="///double//leading///file.txt"),
    Req(id="double leading slash listing", target="//sub_no_index/"),
    Req(id="double leading slash missing", target="//missing", expect=404),
    # If-Modified-Since
    Req(id="IMS past", target="/notes.txt", headers=((IMS, PAST),)),
    Req(id="IMS future", target="/notes.txt", headers=((IMS, FUTURE),), expect=304),
    Req(
        id="IMS equal (whole seconds)",
        target="/notes.txt",
        headers=((IMS, LAST_MODIFIED),),
        expect=304,
    ),
    Req(
        id="IMS one second before",
        target="/notes.txt",
        headers=((IMS, "Tue, 31 Dec 2019 23:59:59 GMT"),),
    ),
    Req(id="IMS malformed", target="/notes.txt", headers=((IMS, "not a date"),)),
    Req(
        id="IMS malformed fields",
        target="/notes.txt",
        headers=((IMS, "Wed, 99 Foo 2020 99:99:99 GMT"),),
    ),
    Req(id="IMS empty", target="/notes.txt", headers=((IMS, ""),)),
    Req(
        id="IMS without zone",
        target="/notes.txt",
        headers=((IMS, "Sun, 01 Jan 2040 00:00:00"),),
        expect=304,
    ),
    Req(
        id="IMS non-UTC zone ignored",
        target="/notes.txt",
        headers=((IMS, "Sun, 01 Jan 2040 00:00:00 +0100"),),
    ),
    Req(
        id="IMS with If-None-Match ignored",
        target="/notes.txt",
        headers=((IMS, FUTURE), ("If-None-Match", '"no-such-etag"')),
    ),
    Req(id="IMS on listing ignored", target="/sub_no_index/", headers=((IMS, FUTURE),)),
    Req(id="IMS on index.html", target="/sub_with_index/", headers=((IMS, FUTURE),), expect=304),
    Req(id="IMS on missing", target="/missing.txt", headers=((IMS, FUTURE),), expect=404),
    Req(
        id="HEAD IMS future",
        method="HEAD",
        target="/notes.txt",
        headers=((IMS, FUTURE),),
        expect=304,
    ),
    # methods
    Req(
        id="POST is 501",
        method="POST",
        target="/notes.txt",
        body=b"a=1",
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
        expect=501,
    ),
    *[
        Req(id=f"{m} is 501", method=m, target="/notes.txt", expect=501)
        for m in ("PUT", "DELETE", "OPTIONS", "PATCH", "TRACE")
    ],
    raw("unknown method", b"FOO /notes.txt HTTP/1.0\r\n\r\n", 501),
    raw("lower-case get", b"get /notes.txt HTTP/1.0\r\n\r\n", 501),
    raw("CONNECT", b"CONNECT example.com:443 HTTP/1.0\r\n\r\n", 501),
    # request versions and request-line whitespace
    raw("HTTP/1.0", b"GET /notes.txt HTTP/1.0\r\n\r\n", 200),
    raw("HTTP/1.1 with Host", b"GET /notes.txt HTTP/1.1\r\nHost: example.test\r\n\r\n", 200),
    raw("HTTP/1.1 without Host", b"GET /notes.txt HTTP/1.1\r\n\r\n", 200),
    raw(
        "HTTP/1.1 keep-alive asked",
        b"GET /notes.txt HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        200,
    ),
    raw("leading zeros in version", b"GET /notes.txt HTTP/01.01\r\n\r\n", 200),
    raw("bare LF line ends", b"GET /notes.txt HTTP/1.0\n\n", 200),
    raw("extra spaces", b"GET   /notes.txt   HTTP/1.0   \r\n\r\n", 200),
    raw("tabs as separators", b"GET\t/notes.txt\tHTTP/1.0\r\n\r\n", 200),
    # http.client counts the terminating blank line against its 100-line limit
    raw("99 headers accepted", n_headers(99), 200),
    # malformed request lines (DELIBERATE_STATUS_LINE)
    malformed("bad version HTTP/1.x", b"GET / HTTP/1.x\r\n\r\n", 400),
    malformed("version HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n", 505),
    malformed("version HTTP/3.0", b"GET / HTTP/3.0\r\n\r\n", 505),
    malformed("version HTTP/1.1.1", b"GET / HTTP/1.1.1\r\n\r\n", 400),
    malformed("version HTTP/", b"GET / HTTP/\r\n\r\n", 400),
    malformed("lower-case version", b"GET / http/1.0\r\n\r\n", 400),
    malformed("version FUBAR", b"GET / FUBAR\r\n\r\n", 400),
    malformed("fourth word is the version", b"GET / HTTP/1.0 extra\r\n\r\n", 400),
    raw("too many words", b"GET / HTTP/1.0 HTTP/1.0\r\n\r\n", 400),
    raw("space inside target", b"GET /a b HTTP/1.0\r\n\r\n", 400),
    malformed("single word", b"GET\r\n\r\n", 400),
    raw("empty request line", b"\r\n", None),
    raw("request line > 65536 bytes", LONG_LINE, 414),
    raw("header line > 65536 bytes", LONG_HEADER, 431),
    raw("100 headers", n_headers(100), 431),
    raw("101 headers", n_headers(101), 431),
    # HTTP/0.9
    raw("HTTP/0.9 GET listing", b"GET /\r\n", None),
    raw("HTTP/0.9 GET file", b"GET /notes.txt\r\n", None),
    raw("HTTP/0.9 GET missing", b"GET /missing\r\n", None),
    malformed("HTTP/0.9 HEAD refused", b"HEAD /\r\n", 400),
    malformed("HTTP/0.9 POST refused", b"POST /notes.txt\r\n", 400),
]

SIMPLE_CASES += [
    Req(id="odd names listing", target="/odd_names/"),
    *[
        Req(id=f"GET odd name {name!r}", target="/odd_names/" + urllib.parse.quote(name))
        for name in ODD_NAMES
    ],
    Req(id="undecodable name, %FF", target="/odd_names/bad%FF.txt", expect=404),
    Req(id="undecodable name, surrogatepass", target="/odd_names/bad%ED%B3%BF.txt"),
]

CURL_CASES: list[Req] = [
    Req(id="curl GET non-ASCII", kind="curl", target="/with%20space%20%C3%BC.txt"),
    Req(id="curl HEAD", kind="curl", target="/page.html", curl_args=("-I",)),
    Req(id="curl HTTP/1.0 listing", kind="curl", target="/sub_no_index/", curl_args=("--http1.0",)),
    Req(id="curl double slash no -L", kind="curl", target="//double/leading", expect=301),
    Req(id="curl redirect with query", kind="curl", target="/sub_no_index?a=b", expect=301),
    Req(
        id="curl IMS",
        kind="curl",
        target="/notes.txt",
        curl_args=("-H", f"{IMS}: {FUTURE}"),
        expect=304,
    ),
    Req(
        id="curl POST",
        kind="curl",
        target="/notes.txt",
        curl_args=("--data-binary", "x=1"),
        expect=501,
    ),
    Req(id="curl dot segments", kind="curl", target="/sub_no_index/../image.png"),
]


def _check_case(req: Req, pair: Pair) -> None:
    std = send(req, pair.std)
    assert std.status == req.expect, (
        f"test premise: stdlib answered {req.describe()} with {std.status_line!r}, "
        f"expected status {req.expect}\n    {std.render()}"
    )
    what = req.describe()
    if req.status_line is not None:
        # DELIBERATE_STATUS_LINE: the baseline is the stdlib's own status-line variant,
        # whose body is the very body the plain stdlib sends without a head.
        assert f"Error code: {req.status_line}".encode() in std.body, std.render()
        baseline = send(req, pair.std_status_line)
        assert baseline.status == req.status_line, baseline.render()
        assert baseline.body == std.body, f"{baseline.render()}\n    {std.render()}"
        std = baseline
        what += f" [{DELIBERATE_STATUS_LINE}]"
    ours = send(req, pair.ours)
    assert_parity(what, std, ours)


@pytest.mark.parametrize("req", SIMPLE_CASES, ids=[r.id for r in SIMPLE_CASES])
def test_simple_handler_parity(req: Req, simple: Pair) -> None:
    _check_case(req, simple)


@pytest.mark.skipif(not HAVE_CURL, reason="curl is not installed")
@pytest.mark.parametrize("req", CURL_CASES, ids=[r.id for r in CURL_CASES])
def test_simple_handler_parity_curl(req: Req, simple: Pair) -> None:
    _check_case(req, simple)


def test_fixture_premises(simple: Pair) -> None:
    """The stdlib really serves the fixture the way the cases above assume."""
    listing = send(Req(id="root", target="/"), simple.std)
    assert listing.status == 200
    for name in ("a&amp;b&lt;c&gt;.txt", "link_to_notes.txt@", "sub_no_index/", ".hidden"):
        assert name.encode() in listing.body
    moved = send(Req(id="dir", target="//double/leading"), simple.std)
    assert moved.header_map()["location"] == ["/double/leading/"]
    assert send(Req(id="f", target="/notes.txt"), simple.std).header_map()["last-modified"] == [
        LAST_MODIFIED
    ]


def test_extensions_map_override_parity(tree: Path) -> None:
    """A subclass overriding the documented extensions_map (and guess_type's use of it)."""

    def handler(mod: ModuleType) -> Any:
        base = mod.SimpleHTTPRequestHandler
        overrides = {".txt": "text/x-custom", ".unknownext": "application/x-weird", "": "x/none"}
        return subclass(mod, "SimpleHTTPRequestHandler",
                        extensions_map={**base.extensions_map, **overrides})  # fmt: skip

    with server_pair(handler(http.server), handler(devserve_server), tree) as pair:
        for target in ("/notes.txt", "/blob.unknownext", "/sub_no_index/beta.TXT", "/.hidden",
                       "/archive.tar.gz", "/page.html"):  # fmt: skip
            req = Req(id=target, target=target)
            std = send(req, pair.std)
            if target == "/notes.txt":
                assert std.header_map()["content-type"] == ["text/x-custom"], std.render()
            assert_parity(f"extensions_map override, GET {target}", std, send(req, pair.ours))


def test_plain_http_server_parity(tree: Path) -> None:
    """The non-threading HTTPServer, and the server attributes it documents."""
    handlers = (http.server.SimpleHTTPRequestHandler, devserve_server.SimpleHTTPRequestHandler)
    with (
        running_server(http.server.HTTPServer, handlers[0], directory=str(tree)) as std_server,
        running_server(devserve_server.HTTPServer, handlers[1], directory=str(tree)) as server,
    ):
        std, ours = cast(http.server.HTTPServer, std_server), cast(http.server.HTTPServer, server)
        assert isinstance(ours, socketserver.TCPServer)
        assert not isinstance(ours, socketserver.ThreadingMixIn)
        assert ours.server_name == std.server_name
        assert ours.server_port == port_of(ours)
        for target in ("/notes.txt", "/sub_no_index/", "/missing"):
            req = Req(id=target, target=target)
            what = f"HTTPServer GET {target}"
            assert_parity(what, send(req, port_of(std)), send(req, port_of(ours)))


BAD_VERSION_CASES = [
    ("HTTP/1.x", 400),
    ("HTTP/2.0", 505),
    ("HTTP/3.0", 505),
    ("HTTP/1.1.1", 400),
    ("FUBAR", 400),
    ("HTTP/1.0 extra", 400),
]


@pytest.mark.parametrize(("version", "expect"), BAD_VERSION_CASES)
def test_bad_version_status_line_when_default_request_version_is_http11(
    tree: Path, version: str, expect: int
) -> None:
    """``default_request_version`` (a stdlib class attribute CPython's own tests override)."""
    attributes = {"default_request_version": "HTTP/1.1"}
    with server_pair(
        subclass(http.server, "SimpleHTTPRequestHandler", **attributes),
        subclass(devserve_server, "SimpleHTTPRequestHandler", **attributes),
        tree,
    ) as pair:
        req = raw(f"version {version}", f"GET / {version}\r\n\r\n".encode(), expect)
        _check_case(req, pair)


# ---------------------------------------------------------------------------
# HTTP/1.1 keep-alive and pipelining

KEEPALIVE_SEQUENCE: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/notes.txt", {}),
    ("HEAD", "/page.html", {}),
    ("GET", "/sub_no_index/", {}),
    ("GET", "/sub_no_index", {}),
    ("GET", "/notes.txt", {IMS: FUTURE}),
    ("GET", "/empty.txt", {}),
    ("GET", "/image.png", {}),
    ("GET", "/big.bin", {}),
    ("HEAD", "/sub_with_index/", {}),
    ("GET", "/missing.txt", {}),  # send_error says Connection: close
    ("GET", "/data.json", {}),  # so this one needs a new connection
]


def connections_used(sockets: Sequence[object]) -> list[int]:
    """Number each request by the client socket object it went over (0, 0, 1, ...).

    The sockets are kept alive by the caller, so identity really means "the same
    connection" (a local port number could in principle be reused).
    """
    numbers: list[int] = []
    for index, sock in enumerate(sockets):
        same = [numbers[i] for i in range(index) if sockets[i] is sock]
        numbers.append(same[0] if same else max(numbers, default=-1) + 1)
    return numbers


def run_keepalive(port: int) -> tuple[list[tuple[Reply, bool]], list[int]]:
    """Replies with will_close, and the connection each request went over."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    results = []
    sockets: list[object] = []
    try:
        for method, target, headers in KEEPALIVE_SEQUENCE:
            conn.request(method, target, headers=headers)
            sockets.append(conn.sock)
            resp = conn.getresponse()
            results.append((client_reply(resp), bool(resp.will_close)))
    finally:
        conn.close()
    return results, connections_used(sockets)


def test_keepalive_parity(tree: Path) -> None:
    attributes = {"protocol_version": "HTTP/1.1"}
    with server_pair(
        subclass(http.server, "SimpleHTTPRequestHandler", **attributes),
        subclass(devserve_server, "SimpleHTTPRequestHandler", **attributes),
        tree,
    ) as pair:
        (std, std_conns), (ours, our_conns) = run_keepalive(pair.std), run_keepalive(pair.ours)
    # premise: the stdlib kept one connection for everything up to the 404, then closed it
    expected_conns = [0] * (len(KEEPALIVE_SEQUENCE) - 1) + [1]
    assert std_conns == expected_conns
    for (method, target, _), (s, s_close), (o, o_close) in zip(
        KEEPALIVE_SEQUENCE, std, ours, strict=True
    ):
        assert_parity(f"HTTP/1.1 keep-alive {method} {target}", s, o)
        assert o_close == s_close, f"{method} {target}: will_close {o_close}, stdlib {s_close}"
    assert our_conns == expected_conns, (
        f"connection used by each request: devserve {our_conns}, stdlib {std_conns}"
    )


def test_pipelined_requests_parity(tree: Path) -> None:
    attributes = {"protocol_version": "HTTP/1.1"}
    pipeline = (
        b"GET /notes.txt HTTP/1.1\r\nHost: example.test\r\n\r\n"
        b"HEAD /page.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
        b"GET /sub_no_index/ HTTP/1.1\r\nHost: example.test\r\n\r\n"
        b"GET /data.json HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
    )
    with server_pair(
        subclass(http.server, "SimpleHTTPRequestHandler", **attributes),
        subclass(devserve_server, "SimpleHTTPRequestHandler", **attributes),
        tree,
    ) as pair:
        std_raw = raw_exchange(pair.std, pipeline, timeout=TIMEOUT)
        our_raw = raw_exchange(pair.ours, pipeline, timeout=TIMEOUT)
    methods = ["GET", "HEAD", "GET", "GET"]
    std_replies, our_replies = split_replies(std_raw, methods), split_replies(our_raw, methods)
    assert [r.status for r in std_replies] == [200, 200, 200, 200]
    assert len(our_replies) == len(std_replies), (
        f"devserve answered {len(our_replies)} of 4 pipelined requests: {our_raw[:600]!r}"
    )
    for index, (s, o) in enumerate(zip(std_replies, our_replies, strict=True)):
        assert_parity(f"pipelined request #{index + 1} ({methods[index]})", s, o)


# ---------------------------------------------------------------------------
# BaseHTTPRequestHandler subclasses written once, run on both modules

if TYPE_CHECKING:
    _HandlerBase = http.server.BaseHTTPRequestHandler
else:
    _HandlerBase = object


class EchoBehaviour(_HandlerBase):
    """Mixed into ``mod.BaseHTTPRequestHandler`` by :func:`make_handler`."""

    def echo(self) -> dict[str, object]:
        server = cast(http.server.HTTPServer, self.server)
        return {
            "command": self.command,
            "path": self.path,
            "request_version": self.request_version,
            "requestline": self.requestline,
            "host": self.headers["Host"],
            "host_any_case": self.headers.get("hOsT"),
            "x_multi": self.headers.get_all("X-Multi"),
            "headers_is_MessageClass": type(self.headers) is self.MessageClass,
            "MessageClass": f"{self.MessageClass.__module__}.{self.MessageClass.__qualname__}",
            "client_host": self.client_address[0],
            "client_port_is_int": isinstance(self.client_address[1], int),
            "server_port": server.server_port,
            "server_name": server.server_name,
            "close_connection": self.close_connection,
            "protocol_version": self.protocol_version,
            "address_string": self.address_string(),
            "date_time_string_0": self.date_time_string(0),
            "responses_404": list(self.responses[404]),
            "rfile_is_BufferedIOBase": isinstance(self.rfile, io.BufferedIOBase),
            "wfile_is_BufferedIOBase": isinstance(self.wfile, io.BufferedIOBase),
            "error_content_type": self.error_content_type,
        }

    def do_GET(self) -> None:
        if self.path.startswith("/error404"):
            self.send_error(404, "custom", "explain")
        elif self.path == "/error204":
            self.send_error(204)
        elif self.path == "/error304":
            self.send_error(304)
        elif self.path == "/error599":
            self.send_error(599)
        elif self.path == "/error403-default":
            self.send_error(403)
        elif self.path == "/error-markup":
            self.send_error(400, "<script>alert(1)</script>", "a & b <i>x</i>")
        elif self.path == "/reason":
            self.send_response(200, "Fine And Dandy")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        elif self.path == "/response-only":
            self.send_response_only(202)
            self.send_header("X-Only", "1")
            self.end_headers()
            self.wfile.write(b"only")
        elif self.path == "/no-length":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until close")
        else:
            body = json.dumps(self.echo(), sort_keys=True).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Custom", "a")
            self.send_header("X-Custom", "b")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        data = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Received-Length", self.headers["Content-Length"])
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.send_error(404, "custom", "explain")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet; both sides do the same


def make_handler(mod: ModuleType, **attributes: object) -> Any:
    """The same handler class, built on ``mod.BaseHTTPRequestHandler``."""
    base = mod.BaseHTTPRequestHandler
    return type(f"EchoHandler_{mod.__name__.replace('.', '_')}", (EchoBehaviour, base), attributes)


@contextlib.contextmanager
def echo_pair(**attributes: object) -> Iterator[Pair]:
    with server_pair(
        make_handler(http.server, **attributes), make_handler(devserve_server, **attributes)
    ) as pair:
        yield pair


@pytest.fixture(scope="module")
def echo() -> Iterator[Pair]:
    with echo_pair() as pair:
        yield pair


def normalise_echo(reply: Reply, port: int) -> Reply:
    """Replace the port-dependent fields of an echo body (after checking them)."""
    try:
        seen = json.loads(reply.body)
    except ValueError:
        return reply
    if not isinstance(seen, dict) or "server_port" not in seen:
        return reply
    assert seen["server_port"] == port, f"server.server_port {seen['server_port']} != {port}"
    seen["server_port"] = "<port>"
    if seen["host"] == f"127.0.0.1:{port}":
        seen["host"] = seen["host_any_case"] = "127.0.0.1:<port>"
    return dataclasses.replace(reply, body=json.dumps(seen, sort_keys=True).encode())


ECHO_HEADERS = b"Host: example.test\r\nX-Multi: 1\r\nX-Multi: 2\r\n"

BASE_CASES: list[Req] = [
    raw("echo HTTP/1.0", b"GET /echo?x=1&y=2 HTTP/1.0\r\n" + ECHO_HEADERS + b"\r\n", 200),
    raw("echo HTTP/1.1", b"GET /echo HTTP/1.1\r\n" + ECHO_HEADERS + b"\r\n", 200),
    raw(
        "echo keep-alive on 1.0 server",
        b"GET /echo HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        200,
    ),
    raw("echo without Host", b"GET /echo HTTP/1.0\r\n\r\n", 200),
    raw("echo double leading slash", b"GET //echo//x HTTP/1.0\r\n\r\n", 200),
    raw("echo fragment kept", b"GET /echo?q#frag HTTP/1.0\r\n\r\n", 200),
    raw("echo absolute-form target", b"GET http://example.test/echo HTTP/1.0\r\n\r\n", 200),
    raw("echo odd whitespace", b"GET   /echo\t HTTP/1.0  \r\n\r\n", 200),
    raw("echo bare LF", b"GET /echo HTTP/1.0\nHost: lf.test\n\n", 200),
    raw("echo HTTP/0.9", b"GET /echo\r\n", None),
    Req(id="echo via http.client", target="/echo/%7Euser?a=%20"),
    Req(id="POST echo", method="POST", target="/post", body=b"hello\x00world\r\n"),
    raw("raw POST echo", b"POST /p HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", 200),
    Req(id="send_error(404, custom, explain)", target="/error404", expect=404),
    Req(id="send_error(204)", target="/error204", expect=204),
    Req(id="send_error(304)", target="/error304", expect=304),
    Req(id="send_error(599) unknown code", target="/error599", expect=599),
    Req(id="send_error(403) defaults", target="/error403-default", expect=403),
    Req(id="send_error escapes markup", target="/error-markup", expect=400),
    raw("raw send_error(204) has no body", b"GET /error204 HTTP/1.0\r\n\r\n", 204),
    raw("raw send_error(304) has no body", b"GET /error304 HTTP/1.0\r\n\r\n", 304),
    raw("HEAD send_error has no body", b"HEAD /x HTTP/1.0\r\n\r\n", 404),
    Req(id="custom reason phrase", target="/reason"),
    raw("send_response_only", b"GET /response-only HTTP/1.0\r\n\r\n", 202),
    raw("no Content-Length, close delimits", b"GET /no-length HTTP/1.0\r\n\r\n", 200),
    Req(id="unsupported method", method="PATCH", target="/x", expect=501),
    raw("HTTP/0.9 send_error", b"GET /error404\r\n", None),
]

if HAVE_CURL:
    BASE_CASES.append(
        Req(
            id="curl POST echo",
            kind="curl",
            target="/post",
            curl_args=("--data-binary", "curl-body", "-H", "Content-Type: text/plain"),
        )
    )


@pytest.mark.parametrize("req", BASE_CASES, ids=[r.id for r in BASE_CASES])
def test_base_handler_parity(req: Req, echo: Pair) -> None:
    std = normalise_echo(send(req, echo.std), echo.std)
    assert std.status == req.expect, f"test premise: stdlib gave {std.render()}"
    ours = normalise_echo(send(req, echo.ours), echo.ours)
    assert_parity(req.describe(), std, ours)


def test_base_handler_sees_documented_attributes(echo: Pair) -> None:
    """The values themselves, not only equality with the stdlib."""
    request = b"GET /echo?x=1 HTTP/1.0\r\n" + ECHO_HEADERS + b"\r\n"
    for port in (echo.std, echo.ours):
        reply = parse_reply(raw_exchange(port, request, timeout=TIMEOUT))
        assert reply.status == 200, reply.render()
        seen = json.loads(reply.body)
        expected: dict[str, object] = {
            "command": "GET",
            "path": "/echo?x=1",
            "request_version": "HTTP/1.0",
            "requestline": "GET /echo?x=1 HTTP/1.0",
            "host": "example.test",
            "host_any_case": "example.test",
            "x_multi": ["1", "2"],
            "headers_is_MessageClass": True,
            "MessageClass": "http.client.HTTPMessage",
            "client_host": "127.0.0.1",
            "client_port_is_int": True,
            "server_port": port,
            "close_connection": True,
            "protocol_version": "HTTP/1.0",
            "address_string": "127.0.0.1",
            "date_time_string_0": "Thu, 01 Jan 1970 00:00:00 GMT",
            "responses_404": ["Not Found", "Nothing matches the given URI"],
            "rfile_is_BufferedIOBase": True,
            "wfile_is_BufferedIOBase": True,
            "error_content_type": "text/html;charset=utf-8",
        }
        got = {key: seen.get(key) for key in expected}
        side = "stdlib" if port == echo.std else "devserve"
        assert got == expected, f"{side} handler saw {got}"
        assert reply.header_map()["x-custom"] == ["a", "b"]


def test_error_format_overrides_parity() -> None:
    attributes = {
        "error_message_format": "%(code)d|%(message)s|%(explain)s\n",
        "error_content_type": "text/plain; charset=utf-8",
    }
    with echo_pair(**attributes) as pair:
        for target, expect in (("/error404", 404), ("/error-markup", 400), ("/error599", 599)):
            req = Req(id=target, target=target, expect=expect)
            std = send(req, pair.std)
            assert std.body.startswith(f"{expect}|".encode()), std.render()
            assert_parity(f"custom error_message_format, GET {target}", std, send(req, pair.ours))


def test_expect_100_continue_parity() -> None:
    request = (
        b"POST /post HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\nhello"
    )
    with echo_pair(protocol_version="HTTP/1.1") as pair:
        std = parse_reply(raw_exchange(pair.std, request, timeout=TIMEOUT))
        assert std.interim == ("HTTP/1.1 100 Continue",), std.render()
        assert std.body == b"hello", std.render()
        ours = parse_reply(raw_exchange(pair.ours, request, timeout=TIMEOUT))
    assert_parity("POST with Expect: 100-continue on an HTTP/1.1 handler", std, ours)


def test_base_handler_keepalive_parity() -> None:
    sequence: Sequence[tuple[str, str, bytes | None]] = [
        ("GET", "/echo?first", None),
        ("POST", "/post", b"body one"),
        ("GET", "/reason", None),
        ("POST", "/post", b""),
        ("GET", "/echo?last", None),
    ]

    def run(port: int) -> tuple[list[Reply], list[int]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        results = []
        sockets: list[object] = []
        try:
            for method, target, body in sequence:
                conn.request(method, target, body=body)
                sockets.append(conn.sock)
                results.append(normalise_echo(client_reply(conn.getresponse()), port))
        finally:
            conn.close()
        return results, connections_used(sockets)

    with echo_pair(protocol_version="HTTP/1.1") as pair:
        (std, std_conns), (ours, our_conns) = run(pair.std), run(pair.ours)
    assert std_conns == [0] * len(sequence)
    for (method, target, _), s, o in zip(sequence, std, ours, strict=True):
        assert_parity(f"HTTP/1.1 handler, keep-alive {method} {target}", s, o)
    assert our_conns == std_conns, f"devserve did not keep the connection open: {our_conns}"
