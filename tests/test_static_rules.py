"""Table tests of the static-file rules (devserve._static_rules): no sockets, no files."""

from __future__ import annotations

import pytest

from devserve._protocol import ByteRange, http_date, make_etag
from devserve._static_rules import (
    Conditions,
    Validators,
    answer_file,
    body_length,
    closing_connection_field,
    directory_location,
    error_has_body,
    error_page,
    is_app_route,
    keeps_alive,
    precondition_status,
    range_applies,
    validators,
)

MTIME = 1_577_836_800  # 2020-01-01 00:00:00 GMT
FILE = Validators('"e1"', MTIME, http_date(MTIME))
PAST = "Tue, 01 Jan 2019 00:00:00 GMT"
SAME = "Wed, 01 Jan 2020 00:00:00 GMT"
FUTURE = "Sun, 01 Jan 2040 00:00:00 GMT"


def test_validators_of_a_file_version() -> None:
    found = validators(10, MTIME * 10**9 + 500_000_000, 42)
    assert found.etag == make_etag(MTIME * 10**9 + 500_000_000, 10, 42)
    assert found.mtime == MTIME  # whole seconds, as HTTP dates carry them
    assert found.last_modified == SAME


@pytest.mark.parametrize(
    ("conditions", "status"),
    [
        (Conditions(), None),
        (Conditions(if_none_match='"e1"'), 304),
        (Conditions(if_none_match='W/"e1"'), 304),  # weak comparison
        (Conditions(if_none_match='"x", "e1"'), 304),
        (Conditions(if_none_match="*"), 304),
        (Conditions(if_none_match='"x"'), None),
        (Conditions(if_modified_since=SAME), 304),
        (Conditions(if_modified_since=FUTURE), 304),
        (Conditions(if_modified_since=PAST), None),
        (Conditions(if_modified_since="garbage"), None),
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2 step 3 before 4)
        (Conditions(if_none_match='"x"', if_modified_since=FUTURE), None),
        (Conditions(if_match='"e1"'), None),
        (Conditions(if_match='W/"e1"'), 412),  # strong comparison
        (Conditions(if_match='"x"'), 412),
        (Conditions(if_match="*"), None),
        (Conditions(if_unmodified_since=PAST), 412),
        (Conditions(if_unmodified_since=SAME), None),
        # If-Match wins over If-Unmodified-Since (step 1 before 2)
        (Conditions(if_match='"e1"', if_unmodified_since=PAST), None),
        # 412 is decided before 304 (steps 1-2 before 3-4)
        (Conditions(if_match='"x"', if_none_match='"e1"'), 412),
        (Conditions(if_match='"e1"', if_none_match='"e1"'), 304),
    ],
)
def test_preconditions_follow_rfc_9110_order(conditions: Conditions, status: int | None) -> None:
    assert precondition_status(conditions, FILE) == status


@pytest.mark.parametrize(
    ("if_range", "applies"),
    [
        (None, True),
        ('"e1"', True),
        ('"x"', False),
        ('W/"e1"', False),  # If-Range needs a strong validator
        (SAME, True),
        (PAST, False),
        ("garbage", False),
    ],
)
def test_if_range(if_range: str | None, applies: bool) -> None:
    assert range_applies(if_range, FILE) is applies


def _answer(method: str = "GET", size: int = 100, **conditions: str) -> tuple[int, dict[str, str]]:
    answer = answer_file(method, Conditions(**conditions), FILE, size, "text/plain", lambda: "B")
    return answer.status, dict(answer.fields)


def test_a_whole_file() -> None:
    answer = answer_file("GET", Conditions(), FILE, 100, "text/plain", lambda: "B")
    assert answer.status == 200
    assert answer.fields == (
        ("Content-type", "text/plain"),
        ("Content-Length", "100"),
        ("Last-Modified", SAME),
        ("ETag", '"e1"'),
        ("Accept-Ranges", "bytes"),
    )
    assert answer.parts == (ByteRange(0, 99),)
    assert answer_file("GET", Conditions(), FILE, 0, "text/plain", lambda: "B").parts == ()


def test_not_modified_carries_the_etag_and_nothing_else() -> None:
    answer = answer_file("GET", Conditions(if_none_match="*"), FILE, 100, "x/y", lambda: "B")
    assert (answer.status, answer.fields, answer.parts) == (304, (("ETag", '"e1"'),), ())


def test_precondition_failed_is_left_to_the_error_page() -> None:
    answer = answer_file("GET", Conditions(if_match='"x"'), FILE, 100, "x/y", lambda: "B")
    assert (answer.status, answer.fields, answer.parts) == (412, (), ())


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "length"),
    [
        ("bytes=0-9", 206, "bytes 0-9/100", "10"),
        ("bytes=90-", 206, "bytes 90-99/100", "10"),
        ("bytes=-5", 206, "bytes 95-99/100", "5"),
        ("bytes=95-200", 206, "bytes 95-99/100", "5"),
        ("bytes=0-9,5-15", 206, "bytes 0-15/100", "16"),  # merged into one
        ("bytes=100-", 416, "bytes */100", "0"),
        ("bytes=9-0", 200, None, "100"),  # malformed: ignored
        ("items=0-1", 200, None, "100"),  # another unit: ignored
    ],
)
def test_single_ranges(
    range_header: str, status: int, content_range: str | None, length: str
) -> None:
    got, fields = _answer(range=range_header)
    assert got == status
    assert fields.get("Content-Range") == content_range
    assert fields["Content-Length"] == length


def test_ranges_apply_to_get_only_and_only_while_if_range_matches() -> None:
    assert _answer("HEAD", range="bytes=0-9")[0] == 200
    assert _answer(range="bytes=0-9", if_range='"x"')[0] == 200
    assert _answer(range="bytes=0-9", if_range='"e1"')[0] == 206


def test_multipart_ranges_lay_out_parts_and_count_them() -> None:
    answer = answer_file(
        "GET", Conditions(range="bytes=0-1,10-11"), FILE, 100, "text/plain", lambda: "SEP"
    )
    assert answer.status == 206
    fields = dict(answer.fields)
    assert fields["Content-Type"] == "multipart/byteranges; boundary=SEP"
    assert int(fields["Content-Length"]) == body_length(answer.parts)
    assert answer.parts == (
        b"\r\n--SEP\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/100\r\n\r\n",
        ByteRange(0, 1),
        b"\r\n--SEP\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-11/100\r\n\r\n",
        ByteRange(10, 11),
        b"\r\n--SEP--\r\n",
    )


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/docs", "/docs/"),
        ("/docs?x=1", "/docs/?x=1"),
        ("/docs#top", "/docs/#top"),
        ("/docs/", None),
        ("/docs%2f", None),  # an encoded slash ends the path too (Python 3.15)
        ("/docs%2F", None),
        ("/a%20b", "/a%20b/"),
    ],
)
def test_directory_redirects(target: str, location: str | None) -> None:
    assert directory_location(target) == location


@pytest.mark.parametrize(
    ("target", "accept", "app"),
    [
        ("/settings", None, True),
        ("/users/42", "*/*", True),
        ("/app.js", "*/*", False),
        ("/missing.png", None, False),
        ("/about.html", "text/html,*/*", True),  # a browser navigating
        ("/a.b/route", None, True),
        ("/route?x=a.b", None, True),
    ],
)
def test_app_routes(target: str, accept: str | None, app: bool) -> None:
    assert is_app_route(target, accept) is app


def test_error_pages() -> None:
    page = error_page("%(code)d|%(message)s|%(explain)s", 404, "<x>", "a & b")
    assert page == b"404|&lt;x&gt;|a &amp; b"
    assert error_has_body(404, "GET")
    for code, method in ((404, "HEAD"), (304, "GET"), (204, "GET"), (205, "GET"), (101, "GET")):
        assert not error_has_body(code, method)


@pytest.mark.parametrize(
    ("version", "protocol", "connection", "keep"),
    [
        ((1, 1), "HTTP/1.1", None, True),
        ((1, 1), "HTTP/1.1", "close", False),
        ((1, 1), "HTTP/1.1", "Keep-Alive, Close", False),
        ((1, 0), "HTTP/1.1", None, False),
        ((1, 0), "HTTP/1.1", "keep-alive", True),
        ((1, 0), "HTTP/1.0", "keep-alive", False),  # an HTTP/1.0 server closes
        ((1, 1), "HTTP/1.0", None, False),
        ((1, 1), "HTTP/1.1", " upgrade ,keep-alive ", True),
    ],
)
def test_keep_alive(
    version: tuple[int, int], protocol: str, connection: str | None, keep: bool
) -> None:
    assert keeps_alive(version, protocol, connection) is keep


@pytest.mark.parametrize(
    ("close", "framed", "status", "method", "version", "field"),
    [
        (True, False, 200, "GET", "HTTP/1.1", None),
        (False, True, 200, "GET", "HTTP/1.1", None),
        (False, False, 200, "GET", "HTTP/1.1", "close"),  # no length: ends with the connection
        (False, False, 200, "HEAD", "HTTP/1.1", None),
        (False, False, 304, "GET", "HTTP/1.1", None),
        (False, False, 204, "GET", "HTTP/1.1", None),
        (False, True, 200, "GET", "HTTP/1.0", "keep-alive"),
        (False, True, 100, "GET", "HTTP/1.0", None),
    ],
)
def test_connection_field_at_the_end_of_a_head(
    close: bool, framed: bool, status: int, method: str, version: str, field: str | None
) -> None:
    assert closing_connection_field(close, framed, status, method, version) == field
