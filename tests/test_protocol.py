"""Table-driven tests of the pure protocol, path, MIME and listing helpers."""

from __future__ import annotations

import email.parser
import http.client
import os
import posixpath
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devserve._cgi import collapse_url_path, locate_script, url_for_decoded
from devserve._listing import Entry, render_listing
from devserve._mime import guess_type
from devserve._paths import symlink_allowed, url_to_fs_path
from devserve._protocol import (
    ByteRange,
    Framing,
    ProtocolError,
    Unsatisfiable,
    build_message,
    check_framing,
    check_header_field,
    check_request_target,
    etag_matches,
    has_obs_fold,
    http_date,
    parse_field_lines,
    parse_field_section,
    parse_http_date,
    parse_ranges,
    parse_request_line,
    scrub_control_chars,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET / HTTP/1.1", ("GET", "/", "HTTP/1.1", (1, 1))),
        ("GET /a?b=c HTTP/1.0", ("GET", "/a?b=c", "HTTP/1.0", (1, 0))),
        ("GET /", ("GET", "/", "", (0, 9))),
        ("PUT  /x   HTTP/1.1", ("PUT", "/x", "HTTP/1.1", (1, 1))),
        ("GET //evil.example/x HTTP/1.1", ("GET", "/evil.example/x", "HTTP/1.1", (1, 1))),
        ("SPAM /x HTTP/1.1", ("SPAM", "/x", "HTTP/1.1", (1, 1))),
    ],
)
def test_request_line_parses(line: str, expected: tuple[str, str, str, tuple[int, int]]) -> None:
    assert tuple(parse_request_line(line) or ()) == expected


@pytest.mark.parametrize(
    ("line", "status", "message"),
    [
        ("GET / HTTP/1.x", 400, "Bad request version ('HTTP/1.x')"),
        ("GET / HTTP/1", 400, "Bad request version ('HTTP/1')"),
        ("GET / HTTP/1.1.1", 400, "Bad request version ('HTTP/1.1.1')"),
        ("GET / FTP/1.1", 400, "Bad request version ('FTP/1.1')"),
        ("GET / HTTP/01234567890.1", 400, "Bad request version ('HTTP/01234567890.1')"),
        ("GET / HTTP/\u00b2.1", 400, "Bad request version ('HTTP/\u00b2.1')"),
        ("GET / HTTP/2.0", 505, "Invalid HTTP version (2.0)"),
        ("GET / HTTP/3.1", 505, "Invalid HTTP version (3.1)"),
        ("GET / x HTTP/1.1", 400, "Bad request syntax ('GET / x HTTP/1.1')"),
        ("GET", 400, "Bad request syntax ('GET')"),
        ("POST /", 400, "Bad HTTP/0.9 request type ('POST')"),
    ],
)
def test_request_line_errors(line: str, status: int, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request_line(line)
    assert caught.value.status == status
    assert caught.value.message == message


def test_blank_request_line_means_no_request() -> None:
    assert parse_request_line("") is None
    assert parse_request_line("   ") is None


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/"),
        ("GET", "/a/b?c=d&e=%20"),
        ("GET", "/api%2Fx"),  # origin form: which folder it reaches is the site's rule
        ("GET", "/!$&'()*+,;=:@-._~%7e"),
        ("GET", "http://example/x"),
        ("GET", "HTTPS://example"),
        ("OPTIONS", "*"),
        ("OPTIONS", "/x"),
        ("M-SEARCH", "/"),
        ("X!#$%&'*+.^_`|~1", "/"),
    ],
)
def test_request_targets_devserve_serves_or_forwards(method: str, target: str) -> None:
    check_request_target(method, target)


@pytest.mark.parametrize(
    ("method", "target", "message"),
    [
        # RFC 9112 3.2: neither origin, absolute nor asterisk form
        ("GET", "api/secret.json", "Bad request target ('api/secret.json')"),
        ("GET", "./x", "Bad request target ('./x')"),
        ("GET", "../x", "Bad request target ('../x')"),
        ("GET", "%2Fx", "Bad request target ('%2Fx')"),
        ("GET", "\\x", "Bad request target ('\\\\x')"),
        ("GET", "*", "Bad request target ('*')"),
        ("GET", "", "Bad request target ('')"),
        ("GET", "example:80", "Bad request target ('example:80')"),
        ("GET", "1http://x/", "Bad request target ('1http://x/')"),
        # visible ASCII only, and no fragment
        ("GET", "/a\x00b", "Bad request target ('/a\\x00b')"),
        ("GET", "/a\x01", "Bad request target ('/a\\x01')"),
        ("GET", "/x\x7f\x1b[2J", "Bad request target ('/x\\x7f\\x1b[2J')"),
        ("GET", "/caf\xe9", "Bad request target ('/caf\xe9')"),
        ("GET", "/x#frag", "Bad request target ('/x#frag')"),
        ("GET", "/a\tb", "Bad request target ('/a\\tb')"),
        # a method is a token
        ("G\x01ET", "/", "Bad request method ('G\\x01ET')"),
        ("GET/", "/", "Bad request method ('GET/')"),
        ("G(E)T", "/", "Bad request method ('G(E)T')"),
        ("G\xc9T", "/", "Bad request method ('G\xc9T')"),
        ("", "/", "Bad request method ('')"),
    ],
)
def test_other_request_targets_and_methods_are_a_bad_request(
    method: str, target: str, message: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_request_target(method, target)
    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize(
    "lines",
    [
        [b"Host: example\r\n", b"Accept: */*\r\n"],
        [b"X-Trailing:  value with spaces  \r\n"],
        [b"Empty:\r\n", b"Lf-Only: yes\n"],
        [b"Dup: 1\r\n", b"dup: 2\r\n"],
        [b"Latin: caf\xe9\r\n", b"Tab:\tx\ty\r\n"],
    ],
)
def test_field_lines_read_as_http_client_reads_them(lines: list[bytes]) -> None:
    """Well-formed lines build the same message the documented parser builds."""
    fast = build_message(http.client.HTTPMessage, parse_field_lines(lines))
    text = b"".join([*lines, b"\r\n"]).decode("iso-8859-1")
    slow = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
    assert fast.items() == slow.items()
    assert fast.get_payload() == slow.get_payload()
    assert isinstance(fast, http.client.HTTPMessage)


def test_an_obs_fold_joins_its_line_with_one_space() -> None:
    fields = parse_field_lines([b"X-Long: first  \r\n", b" \t second\r\n", b"Host: h\r\n"])
    assert fields == [("X-Long", "first second"), ("Host", "h")]


@pytest.mark.parametrize(
    "line",
    [
        b" folded continuation with nothing before it\r\n",
        b"No colon here\r\n",
        b"Bad Name: x\r\n",
        b"Space-Before-Colon : x\r\n",
        b"Tab-Before-Colon\t: x\r\n",
        b"X: a\rb\r\n",
        b"X: a\x00b\r\n",
        b"X: bell\x07\r\n",
        b"X: del\x7f\r\n",
        b"From someone\r\n",
        b"N\xe4me: x\r\n",
        b": no name\r\n",
    ],
)
def test_malformed_field_lines_are_a_bad_request(line: bytes) -> None:
    lines = [line] if line.startswith(b" ") else [b"Host: x\r\n", line]
    with pytest.raises(ProtocolError) as caught:
        parse_field_lines(lines)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("fields", "version", "expected"),
    [
        ([("Host", "x")], (1, 1), Framing(None, False, False)),
        ([("Content-Length", "0")], (1, 1), Framing(0, False, False)),
        ([("Content-Length", " 42 ")], (1, 1), Framing(42, False, False)),
        ([("Content-Length", "5"), ("content-length", "5")], (1, 1), Framing(5, False, False)),
        ([("Content-Length", "5, 5")], (1, 1), Framing(5, False, False)),
        ([("Transfer-Encoding", "chunked")], (1, 1), Framing(None, True, False)),
        ([("Transfer-Encoding", "gzip, Chunked")], (1, 1), Framing(None, True, False)),
        # Transfer-Encoding wins over Content-Length, and the connection closes after.
        (
            [("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
            (1, 1),
            Framing(None, True, True),
        ),
        # Chunked in HTTP/1.0 cannot be trusted by a 1.0 recipient: close after.
        ([("Transfer-Encoding", "chunked")], (1, 0), Framing(None, True, True)),
        ([("Range", "bytes=0-99")], (1, 1), Framing(None, False, False)),
    ],
)
def test_framing_is_decided_from_the_fields(
    fields: list[tuple[str, str]], version: tuple[int, int], expected: Framing
) -> None:
    assert check_framing(fields, version) == expected


@pytest.mark.parametrize(
    "fields",
    [
        [("Content-Length", "5"), ("Content-Length", "6")],
        [("Content-Length", "5, 6")],
        [("Content-Length", "-1")],
        [("Content-Length", "+5")],
        [("Content-Length", "0x10")],
        [("Content-Length", "")],
        [("Content-Length", "\uff15")],  # a fullwidth digit 5
        [("Content-Length", "\u0665")],  # an Arabic-Indic digit 5
        [("Content-Length", "9" * 19)],
        [("Content-Length", "1" * 5000)],
        [("Transfer-Encoding", "gzip")],
        [("Transfer-Encoding", "chunked, gzip")],
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "identity")],
        [("Range", "bytes=\uff10-\uff19")],
        [("Range", "bytes=\u00b9-\u00b2")],
        [("Content-Length", "\u00b2")],
        [("Range", "bytes=0-" + "9" * 19)],
        [("Range", "bytes=" + "1" * 5000 + "-")],
    ],
)
def test_unusable_framing_is_a_bad_request(fields: list[tuple[str, str]]) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_framing(fields, (1, 1))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Evil", "a\r\nSet-Cookie: x=1"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\rb"),
        ("X-Evil", "a\x00b"),
        ("X-Evil\r\nA", "b"),
        ("", "b"),
        ("A:B", "c"),
    ],
)
def test_header_fields_that_could_split_a_response_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="header"):
        check_header_field(name, value)


def test_ordinary_header_field_is_accepted() -> None:
    check_header_field("Content-Type", "text/html; charset=utf-8")


def test_http_date_format_and_round_trip() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 -0000") == 784111777
    assert parse_http_date("Sun, 06 Nov 1994 09:49:37 +0100") is None  # not GMT: ignored
    assert parse_http_date("yesterday") is None
    assert parse_http_date("") is None
    now = http_date()
    assert now.endswith(" GMT") and len(now) == 29


@pytest.mark.parametrize(
    ("header", "weak", "expected"),
    [
        ('"abc"', True, True),
        ('"abc"', False, True),
        ('W/"abc"', True, True),
        ('W/"abc"', False, False),
        ('"x", "abc"', True, True),
        ('"x"', True, False),
        ("*", False, True),
        ("", True, False),
    ],
)
def test_etag_comparison(header: str, weak: bool, expected: bool) -> None:
    assert etag_matches(header, '"abc"', weak=weak) is expected


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, [ByteRange(0, 0)]),
        ("bytes=2-5", 10, [ByteRange(2, 5)]),
        ("bytes=5-", 10, [ByteRange(5, 9)]),
        ("bytes=-3", 10, [ByteRange(7, 9)]),
        ("bytes=-30", 10, [ByteRange(0, 9)]),
        ("bytes=8-100", 10, [ByteRange(8, 9)]),
        ("bytes=0-1,4-5", 10, [ByteRange(0, 1), ByteRange(4, 5)]),
        ("bytes=4-5,0-1", 10, [ByteRange(0, 1), ByteRange(4, 5)]),
        ("bytes=0-3,2-6", 10, [ByteRange(0, 6)]),
        ("bytes=0-1,2-3", 10, [ByteRange(0, 3)]),
        ("bytes=0-1, 20-30", 10, [ByteRange(0, 1)]),
        ("BYTES = 1-2", 10, [ByteRange(1, 2)]),
        ("items=0-1", 10, None),
        ("bytes=5-2", 10, None),
        ("bytes=abc", 10, None),
        ("bytes=-", 10, None),
        ("bytes=", 10, None),
        ("bytes 1-2", 10, None),
        ("bytes=" + ",".join(f"{i}-{i}" for i in range(0, 200, 2)), 1000, None),
    ],
)
def test_parse_ranges(header: str, size: int, expected: list[ByteRange] | None) -> None:
    assert parse_ranges(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_ranges(header, size)


def test_content_range_text() -> None:
    assert ByteRange(2, 5).content_range(10) == "bytes 2-5/10"
    assert ByteRange(2, 5).length == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\x09here"),
        ("del\x7f", "del\\x7f"),
        ("c1\x9b", "c1\\x9b"),
        ("back\\slash", "back\\\\slash"),
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
    ],
)
def test_scrub_control_chars(text: str, expected: str) -> None:
    assert scrub_control_chars(text) == expected


# --------------------------------------------------------------------------- paths

ROOT = "/srv/root"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/", "/srv/root/"),
        ("/a/b.txt", "/srv/root/a/b.txt"),
        ("/a/b.txt?x=1#frag", "/srv/root/a/b.txt"),
        ("/dir/", "/srv/root/dir/"),
        ("/../../etc/passwd", "/srv/root/etc/passwd"),
        ("/a/../../b", "/srv/root/b"),
        ("/%2e%2e/%2e%2e/etc/passwd", "/srv/root/etc/passwd"),
        ("/..%2f..%2fetc/passwd", "/srv/root/etc/passwd"),
        ("/a%20b.txt", "/srv/root/a b.txt"),
        ("/caf%C3%A9", "/srv/root/caf\u00e9"),
        ("//etc/passwd", "/srv/root/etc/passwd"),
        ("/./a/./b", "/srv/root/a/b"),
        ("/..\\..\\x", "/srv/root/..\\..\\x"),
    ],
)
def test_url_to_fs_path(url: str, expected: str) -> None:
    assert url_to_fs_path(url, ROOT) == expected


def test_url_to_fs_path_never_leaves_root_lexically() -> None:
    for url in ["/..", "/../..", "/%2e%2e", "/a/%2e%2e/%2e%2e", "/%2F..%2F..", "/.%2e/.%2e"]:
        result = url_to_fs_path(url, ROOT)
        assert os.path.normpath(result).startswith(ROOT), url


def test_symlink_policy(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "f.txt").write_text("in")
    (tmp_path / "outside.txt").write_text("out")
    (root / "in_link").symlink_to(root / "real")
    (root / "out_link").symlink_to(tmp_path / "outside.txt")
    r = str(root)
    inside, outside = str(root / "in_link" / "f.txt"), str(root / "out_link")
    plain = str(root / "real" / "f.txt")
    assert symlink_allowed(plain, r, "inside")
    assert symlink_allowed(inside, r, "inside")
    assert not symlink_allowed(outside, r, "inside")
    assert symlink_allowed(outside, r, "always")
    assert not symlink_allowed(inside, r, "never")
    assert symlink_allowed(plain, r, "never")
    # the root itself behind a link is fine under every policy
    (tmp_path / "root_link").symlink_to(root)
    via = str(tmp_path / "root_link")
    assert symlink_allowed(os.path.join(via, "real", "f.txt"), via, "inside")
    assert symlink_allowed(os.path.join(via, "real", "f.txt"), via, "never")
    assert not symlink_allowed(os.path.join(via, "out_link"), via, "inside")


# --------------------------------------------------------------------------- MIME


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.js", "text/javascript"),
        ("mod.MJS", "text/javascript"),
        ("x.wasm", "application/wasm"),
        ("site.webmanifest", "application/manifest+json"),
        ("logo.svg", "image/svg+xml"),
        ("data.json", "application/json"),
        ("style.css", "text/css"),
        ("index.html", "text/html"),
        ("font.woff2", "font/woff2"),
        ("archive.tar.gz", "application/gzip"),
        ("no_extension", "application/octet-stream"),
        ("weird.zzzunknown", "application/octet-stream"),
    ],
)
def test_guess_type(name: str, expected: str) -> None:
    assert guess_type(name, {".gz": "application/gzip"}) == expected


def test_guess_type_overrides_win_case_insensitively() -> None:
    overrides = {".js": "application/x-custom", ".Bin": "x/exact"}
    assert guess_type("a.JS", overrides) == "application/x-custom"
    assert guess_type("a.Bin", overrides) == "x/exact"


# --------------------------------------------------------------------------- listing


def test_listing_escapes_and_sorts() -> None:
    entries = [
        Entry("b<x>.txt", False, False),
        Entry("A dir", True, False),
        Entry("link", False, True),
    ]
    page = render_listing("/some%20path/<i>/?q=<b>#frag", entries, "utf-8").decode()
    # Python 3.15: the title shows the path without the query or the fragment.
    assert "<title>Directory listing for /some path/&lt;i&gt;/</title>" in page
    assert page.index("A dir/") < page.index("b&lt;x&gt;.txt") < page.index("link@")
    assert '<a href="A%20dir/">A dir/</a>' in page
    assert '<a href="b%3Cx%3E.txt">b&lt;x&gt;.txt</a>' in page


# --------------------------------------------------------------------------- CGI paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/cgi-bin/a.py", "/cgi-bin/a.py"),
        ("/cgi-bin/../x?q=1", "/x?q=1"),
        ("/a/./b/../c", "/a/c"),
        ("/../../etc", "/etc"),
        ("/cgi-bin/%2e%2e/x", "/x"),
        ("/cgi-bin/%252e%252e/x", "/cgi-bin/%2e%2e/x"),
        ("/cgi-bin/a.py%3Fx=1", "/cgi-bin/a.py?x=1"),
        ("/cgi-bin/a.py?x=%2F", "/cgi-bin/a.py?x=%2F"),
    ],
)
def test_collapse_url_path(path: str, expected: str) -> None:
    assert collapse_url_path(path) == expected


@pytest.mark.parametrize(
    ("path", "script", "info", "query"),
    [
        ("/cgi-bin/a.py", "/cgi-bin/a.py", "", ""),
        ("/cgi-bin/a.py/x/y?k=v", "/cgi-bin/a.py", "/x/y", "k=v"),
        ("/cgi-bin/sub/a.py/p%2520q", "/cgi-bin/sub/a.py", "/p%20q", ""),
        ("/cgi-bin/a.py%3Fx=1", "/cgi-bin/a.py?x=1", "", ""),
        ("/cgi-bin/%252e%252e/x", "/cgi-bin/%2e%2e", "/x", ""),
        ("/cgi-bin/a.py?q=a//b?c", "/cgi-bin/a.py", "", "q=a//b?c"),
    ],
)
def test_locate_script_decodes_once(path: str, script: str, info: str, query: str) -> None:
    where = locate_script(path, "/cgi-bin", lambda url: url == "/cgi-bin/sub")
    assert where is not None
    assert (where.script_name, where.path_info, where.query) == (script, info, query)
    # mapping back to a URL for translate_path never yields a decodable "..":
    assert ".." not in urllib.parse.unquote(url_for_decoded(where.script_name))


# --------------------------------------------------------------------------- fast paths agree


_FIELD_BYTES = st.sampled_from(
    [b"Host: x", b"A:b", b"Sp:  v  ", b"T:\tv", b"Lat: caf\xe9", b" fold", b"\tfold", b"Bad : x",
     b"No colon", b"X: a\rb", b"X: \x00", b"N\xe4me: x", b": v", b"Empty:", b"X-Y_z: 1"]
)  # fmt: skip


@given(st.lists(st.tuples(_FIELD_BYTES, st.sampled_from([b"\r\n", b"\n"])), max_size=8))
@settings(max_examples=400)
def test_a_header_section_reads_as_its_lines_do(lines: list[tuple[bytes, bytes]]) -> None:
    """parse_field_section (the event loop's) == parse_field_lines (the handler's)."""
    raw = [line + end for line, end in lines]

    def outcome(parse: Any, data: Any) -> Any:
        try:
            return parse(data)
        except ProtocolError as error:
            return error.status

    assert outcome(parse_field_section, b"".join(raw)) == outcome(parse_field_lines, raw)


def _url_to_fs_path_by_the_rule(url_path: str, root: str) -> str:
    """The documented mapping step by step, with no fast path (the reference)."""
    path = url_path.split("?", 1)[0].split("#", 1)[0]
    trailing_slash = path.rstrip().endswith("/")
    try:
        path = urllib.parse.unquote(path, errors="surrogatepass")
    except UnicodeDecodeError:
        path = urllib.parse.unquote(path)
    trailing_slash = trailing_slash or path.endswith("/")
    result = root
    for word in posixpath.normpath(path).split("/"):
        if not word or os.path.dirname(word) or word in (os.curdir, os.pardir):
            continue
        result = os.path.join(result, word)
    return result + "/" if trailing_slash else result


@given(st.text(st.sampled_from(list("/.%abc \t-_~2fF\\\x00é?#")), max_size=24))
@settings(max_examples=1000)
def test_url_to_fs_path_agrees_with_the_rule_step_by_step(tail: str) -> None:
    for root in ("/srv/site", "/"):
        assert url_to_fs_path("/" + tail, root) == _url_to_fs_path_by_the_rule("/" + tail, root)


@pytest.mark.parametrize(
    ("lines", "folded"),
    [
        ([b"Host: a\r\n", b"X: b\r\n"], False),
        ([b"Host: a\r\n", b" continued\r\n"], True),
        ([b"Host: a\r\n", b"\tcontinued\r\n"], True),
        ([], False),
    ],
)
def test_has_obs_fold(lines: list[bytes], folded: bool) -> None:
    assert has_obs_fold(lines) is folded
