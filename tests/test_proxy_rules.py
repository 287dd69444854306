"""The reverse proxy's pure rules (devserve._proxy), as tables: routes, paths, fields, framing."""

from __future__ import annotations

import pytest

from devserve._proxy import (
    BadRoute,
    BadTarget,
    Client,
    ProxyRoute,
    Routes,
    client_address,
    duplicate_prefixes,
    end_to_end,
    expects_continue,
    forwarded_element,
    hides_dot_segment,
    normalize_path,
    parse_route,
    public_location,
    refused_request,
    request_fields,
    response_fields,
    wants_websocket,
)
from devserve._proxy_response import (
    BadResponse,
    ClientFraming,
    ResponseBody,
    backend_keeps_alive,
    client_framing,
    parse_status_line,
    response_body,
)

# --------------------------------------------------------------------------- parsing routes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/api=http://127.0.0.1:5000",
            ProxyRoute("/api", "http://127.0.0.1:5000", "http", "127.0.0.1", 5000, None),
        ),
        (
            "/api/=http://127.0.0.1:5000/",
            ProxyRoute("/api/", "http://127.0.0.1:5000/", "http", "127.0.0.1", 5000, "/"),
        ),
        (
            "/=HTTPS://Example.COM/v1",
            ProxyRoute("/", "HTTPS://Example.COM/v1", "https", "example.com", 443, "/v1"),
        ),
        (
            "/ws=http://[::1]:8080",
            ProxyRoute("/ws", "http://[::1]:8080", "http", "::1", 8080, None),
        ),
        (" /a = http://h ", ProxyRoute("/a", "http://h", "http", "h", 80, None)),
        (
            "/caf%c3%a9=http://h",
            ProxyRoute("/caf%c3%a9", "http://h", "http", "h", 80, None),
        ),
    ],
)
def test_routes_parse(text: str, expected: ProxyRoute) -> None:
    assert parse_route(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/api", "expected PREFIX=URL"),
        ("=http://h", "expected PREFIX=URL"),
        ("/api=", "expected PREFIX=URL"),
        ("api=http://h", "must start with /"),
        ("/a?b=http://h", "a character a URL path cannot"),
        ("/a#b=http://h", "a character a URL path cannot"),
        ("/a b=http://h", "a character a URL path cannot"),
        ("/caf\u00e9=http://h", "a character a URL path cannot"),
        ("/100%=http://h", "a character a URL path cannot"),
        ("/a/../b=http://h", ". or .. segments"),
        ("/./a=http://h", ". or .. segments"),
        ("/%61pi=http://h", "encoded letters"),
        ("/api=ftp://h", "only http:// and https://"),
        ("/api=file:///etc/passwd", "only http:// and https://"),
        ("/api=127.0.0.1:5000", "only http:// and https://"),
        ("/api=//h:5000", "only http:// and https://"),
        ("/api=http://h/?a=1", "query or a fragment"),
        ("/api=http://h?", "query or a fragment"),
        ("/api=http://h/#top", "query or a fragment"),
        ("/api=http://user:pw@h/", "user name or password"),
        ("/api=http://h:99999", "bad port"),
        ("/api=http://h:port", "bad port"),
        ("/api=http://", "names no host"),
        ("/api=http://:5000", "names no host"),
        ("/api=http://h/a b", "is not a URL"),
        ("/api=http://h\r\nX: y", "is not a URL"),
        ("/api=http://h/a/../b", ". or .. segments"),
    ],
)
def test_bad_routes_say_why(text: str, message: str) -> None:
    with pytest.raises(BadRoute, match=message.replace(".", r"\.").replace("?", r"\?")):
        parse_route(text)


def test_a_prefix_with_and_without_its_slash_is_the_same_prefix() -> None:
    routes = [parse_route(t) for t in ("/api=http://a", "/b=http://b", "/api/=http://c")]
    assert duplicate_prefixes(routes) == ["/api and /api/"]
    assert duplicate_prefixes(routes[:2]) == []


@pytest.mark.parametrize(
    ("route", "origin", "authority"),
    [
        ("/=http://h", "http://h", "h"),
        ("/=http://h:80", "http://h", "h"),
        ("/=https://h:443/", "https://h", "h"),
        ("/=https://h:8443", "https://h:8443", "h:8443"),
        ("/=http://[::1]:5000", "http://[::1]:5000", "[::1]:5000"),
    ],
)
def test_backend_names(route: str, origin: str, authority: str) -> None:
    parsed = parse_route(route)
    assert (parsed.origin, parsed.authority) == (origin, authority)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/a/b", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/%2e%2e/x", "/x"),
        ("/a/%2E/b", "/a/b"),
        ("/%61pi/%7euser", "/api/~user"),
        ("/a%2fb", "/a%2Fb"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a//b", "/a//b"),
        ("/.well-known/x", "/.well-known/x"),
        ("/100%", "/100%"),
    ],
)
def test_paths_normalize_as_rfc_3986_says(path: str, normal: str) -> None:
    assert normalize_path(path) == normal


ROUTES = Routes(
    [
        parse_route("/api=http://keep:5000"),
        parse_route("/strip/=http://strip:5000/"),
        parse_route("/v1=http://based:5000/v1"),
        parse_route("/v2/=http://based:5000/v2/"),
        parse_route("/api/admin=http://admin:6000"),
    ],
    reserved="/__devserve__/",
)


@pytest.mark.parametrize(
    ("target", "host", "sent"),
    [
        # kept: the URL has no path
        ("/api", "keep", "/api"),
        ("/api/", "keep", "/api/"),
        ("/api/x?q=1", "keep", "/api/x?q=1"),
        ("/api?q=/x", "keep", "/api?q=/x"),
        ("/apix", None, None),
        ("/ap", None, None),
        ("/API/x", None, None),
        # the longest prefix wins
        ("/api/admin/users", "admin", "/api/admin/users"),
        ("/api/administrator", "keep", "/api/administrator"),
        # stripped: the URL's path replaces the prefix, one slash between
        ("/strip/x", "strip", "/x"),
        ("/strip/", "strip", "/"),
        ("/strip", "strip", "/"),
        ("/strip/a/b?c", "strip", "/a/b?c"),
        ("/v1/x", "based", "/v1/x"),
        ("/v1", "based", "/v1"),
        ("/v1/", "based", "/v1/"),
        ("/v2/x", "based", "/v2/x"),
        ("/v2", "based", "/v2/"),
        # normalized before matching, and sent normalized
        ("/static/../api/x", "keep", "/api/x"),
        ("/api/../secret.txt", None, None),
        ("/strip/../../etc/passwd", None, None),
        ("/strip/a/../../b", None, None),
        ("/strip/a/../b", "strip", "/b"),
        ("/%61pi/x", "keep", "/api/x"),
        ("/api/%2e%2e/%2e%2e/x", None, None),
        ("/api/a%2fb", "keep", "/api/a%2Fb"),
        # never forwarded: not origin form, or live reload's own folder
        ("http://evil.example/api/x", None, None),
        ("https://evil.example/api", None, None),
        ("*", None, None),
        ("api/x", None, None),
        ("", None, None),
    ],
)
def test_which_targets_go_where(target: str, host: str | None, sent: str | None) -> None:
    forward = ROUTES.forward(target)
    assert ROUTES.claims(target) is (forward is not None)
    if host is None:
        assert forward is None
    else:
        assert forward is not None
        assert (forward.route.host, forward.target) == (host, sent)


@pytest.mark.parametrize(
    ("path", "hides"),
    [
        ("/api/x", False),
        ("/api/x.y/..z/a..b/...", False),
        ("/api/.well-known/x", False),
        ("/api/a%2Fb", False),
        ("/api/a%5Cb", False),
        ("/api/a\\b", False),
        ("/api/a;b=c/d", False),
        # dot segments a backend sees once ";" parameters go
        ("/api/..;/admin", True),
        ("/api/.;x=1/admin", True),
        ("/api/..;jsessionid=1/admin", True),
        # ... or once %2F, %5C and "\\" separate segments (escapes in any case)
        ("/api/..%2Fadmin", True),
        ("/api/..%2fadmin", True),
        ("/api/x/..%2F..%2Fadmin", True),
        ("/api/..%5Cadmin", True),
        ("/api/..%5cadmin", True),
        ("/api/..\\..\\admin", True),
        ("/api/x\\.", True),
        ("/api/%2E%2E%2Fadmin", True),
        ("/api/.%2e%5cadmin", True),
        ("/api/x%2F.", True),
        # decoded once only: %252F is a "%2F" inside a name
        ("/api/..%252Fadmin", False),
        ("/api/..%255Cadmin", False),
        ("/api/%252E%252E/admin", False),
        # plain dot segments are removed by normalize_path before this rule is asked
        ("/api/../admin", True),
        ("/api/./x", True),
    ],
)
def test_dot_segments_hidden_from_the_normalization(path: str, hides: bool) -> None:
    assert hides_dot_segment(path) is hides


@pytest.mark.parametrize(
    "target",
    [
        "/api/..;/admin",
        "/api/..%2f..%2fadmin",
        "/api/..%5C..%5Cadmin",
        "/api/..\\..\\admin",
        "/api/%2e%2e;/admin",
        "/strip/x/..%2F..%2F..%2Fetc/passwd",
        "/v1/..%2fv2?q=1",
        "/static/../api/..;/x",
    ],
)
def test_a_claimed_target_that_may_climb_out_of_the_base_is_refused(target: str) -> None:
    with pytest.raises(BadTarget):
        ROUTES.forward(target)
    assert ROUTES.claims(target)  # the route's to refuse: never served from the folder


@pytest.mark.parametrize(
    ("target", "sent"),
    [
        ("/api/..%252Fadmin", "/api/..%252Fadmin"),
        ("/api/a..;/b", "/api/a..;/b"),
        ("/api/x/%2E%2E/y", "/api/y"),  # unreserved: decoded, then removed
    ],
)
def test_neighbours_of_hidden_dot_segments_are_forwarded(target: str, sent: str) -> None:
    forward = ROUTES.forward(target)
    assert forward is not None
    assert forward.target == sent


def test_the_root_prefix_takes_every_path_but_live_reloads_own() -> None:
    routes = Routes([parse_route("/=http://h:1")], reserved="/__devserve__/")
    for target in ("/", "/x", "/a/b?c", "/__devserve", "/__devserve__x", "/%7e"):
        assert routes.claims(target), target
    assert not routes.claims("/__devserve__/events")
    assert not routes.claims("/__devserve__/worker.js")
    assert not routes.claims("/x/../__devserve__/events")
    assert not routes.claims("http://h/x")
    assert Routes([parse_route("/=http://h:1")]).claims("/__devserve__/events")


# --------------------------------------------------------------------------- fields

ROUTE = parse_route("/api=http://backend:5000")
CLIENT = Client("192.0.2.7", "http", "localhost:8000")


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ([("Accept", "*/*"), ("Connection", "keep-alive")], [("Accept", "*/*")]),
        (
            [("Connection", "close, X-Private"), ("X-Private", "1"), ("X-Public", "2")],
            [("X-Public", "2")],
        ),
        (
            [
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Trailer", "X-Sum"),
                ("Transfer-Encoding", "chunked"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic eDp5"),
                ("Proxy-Authenticate", "Basic"),
                ("Content-Length", "5"),
                ("Authorization", "Bearer t"),
            ],
            [("Authorization", "Bearer t")],
        ),
        ([("connection", "UPGRADE"), ("upgrade", "websocket")], []),
    ],
)
def test_hop_by_hop_fields_never_cross(
    fields: list[tuple[str, str]], kept: list[tuple[str, str]]
) -> None:
    assert end_to_end(fields) == kept


def test_request_fields_set_host_and_forwarding_and_reframe() -> None:
    fields = [
        ("Host", "localhost:8000"),
        ("User-Agent", "curl"),
        ("Content-Length", "10"),
        ("Transfer-Encoding", "chunked"),
        ("Expect", "100-continue"),
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "secret"),
        ("X-Forwarded-For", "198.51.100.1"),
        ("X-Forwarded-Host", "forged.example"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=198.51.100.1"),
        ("Via", "1.0 corp"),
    ]
    assert request_fields(fields, ROUTE, CLIENT, chunked=True, expect=True) == [
        ("Host", "backend:5000"),
        ("User-Agent", "curl"),
        ("Transfer-Encoding", "chunked"),
        ("Expect", "100-continue"),
        ("X-Forwarded-For", "198.51.100.1, 192.0.2.7"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "localhost:8000"),
        ("Forwarded", 'for=198.51.100.1, for=192.0.2.7;host="localhost:8000";proto=http'),
        ("Via", "1.0 corp, 1.1 devserve"),
    ]


def test_request_fields_keep_host_length_websocket_and_page_reload() -> None:
    fields = [
        ("Host", "dev.test"),
        ("If-None-Match", '"abc"'),
        ("Range", "bytes=0-1"),
        ("Accept-Encoding", "gzip, br"),
        ("Sec-WebSocket-Key", "k"),
    ]
    client = Client("::ffff:10.0.0.2", "https", "dev.test")
    got = request_fields(fields, ROUTE, client, keep_host=True, length=0, page_reload=True)
    assert got == [
        ("Host", "dev.test"),
        ("Sec-WebSocket-Key", "k"),
        ("Content-Length", "0"),
        ("Accept-Encoding", "identity"),
        ("X-Forwarded-For", "10.0.0.2"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "dev.test"),
        ("Forwarded", "for=10.0.0.2;host=dev.test;proto=https"),
        ("Via", "1.1 devserve"),
    ]
    no_host = Client("2001:db8::1", "http", None)
    upgraded = request_fields(fields[4:], ROUTE, no_host, keep_host=True, websocket=True)
    assert upgraded == [
        ("Host", "backend:5000"),
        ("Sec-WebSocket-Key", "k"),
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("X-Forwarded-For", "2001:db8::1"),
        ("X-Forwarded-Proto", "http"),
        ("Forwarded", 'for="[2001:db8::1]";proto=http'),
        ("Via", "1.1 devserve"),
    ]


def test_request_fields_keep_a_backends_authorization_but_never_devserves() -> None:
    fields = [("Authorization", "Bearer app-token"), ("Cookie", "a=1")]
    passed = request_fields(fields, ROUTE, CLIENT)
    assert ("Authorization", "Bearer app-token") in passed
    own = request_fields(fields, ROUTE, CLIENT, own_credentials=True)
    assert [name for name, _ in own if name.lower() == "authorization"] == []
    assert ("Cookie", "a=1") in own


@pytest.mark.parametrize(
    ("address", "host", "proto", "element"),
    [
        ("192.0.2.43", None, "http", "for=192.0.2.43;proto=http"),
        ("2001:db8:cafe::17", None, "https", 'for="[2001:db8:cafe::17]";proto=https'),
        ("::1", "[::1]:8000", "http", 'for="[::1]";host="[::1]:8000";proto=http'),
        ("10.1.2.3", "example.com", "http", "for=10.1.2.3;host=example.com;proto=http"),
        ("10.1.2.3", 'a"b\\c', "http", 'for=10.1.2.3;host="a\\"b\\\\c";proto=http'),
        ("unknown", "h", "http", "for=unknown;host=h;proto=http"),
    ],
)
def test_forwarded_elements_quote_as_rfc_7239_says(
    address: str, host: str | None, proto: str, element: str
) -> None:
    assert forwarded_element(address, host, proto) == element


@pytest.mark.parametrize(
    ("address", "told"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::1", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("not an address", "not an address"),
    ],
)
def test_client_addresses(address: str, told: str) -> None:
    assert client_address(address) == told


@pytest.mark.parametrize(
    ("method", "version", "fields", "wanted"),
    [
        ("GET", "HTTP/1.1", [("Connection", "Upgrade"), ("Upgrade", "websocket")], True),
        (
            "GET",
            "HTTP/1.1",
            [("Connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket")],
            True,
        ),
        ("GET", "HTTP/1.1", [("Upgrade", "websocket")], False),
        ("GET", "HTTP/1.1", [("Connection", "Upgrade"), ("Upgrade", "h2c")], False),
        ("POST", "HTTP/1.1", [("Connection", "Upgrade"), ("Upgrade", "websocket")], False),
        ("GET", "HTTP/1.0", [("Connection", "Upgrade"), ("Upgrade", "websocket")], False),
    ],
)
def test_only_websocket_upgrades_are_tunnelled(
    method: str, version: str, fields: list[tuple[str, str]], wanted: bool
) -> None:
    assert wants_websocket(method, version, fields) is wanted


@pytest.mark.parametrize(
    ("route", "location", "public"),
    [
        ("/api=http://b:5000", "http://b:5000/api/login?next=/", "/api/login?next=/"),
        ("/api=http://b:5000", "http://b:5000/elsewhere", "http://b:5000/elsewhere"),
        ("/api=http://b:5000", "http://other:5000/api/x", "http://other:5000/api/x"),
        ("/api=http://b:5000", "https://b:5000/api/x", "https://b:5000/api/x"),
        ("/api=http://b:5000", "/api/relative", "/api/relative"),
        ("/api=http://b", "http://B:80/api#top", "/api#top"),
        ("/api/=http://b:5000/", "http://b:5000/login", "/api/login"),
        ("/api/=http://b:5000/", "http://b:5000/", "/api/"),
        ("/api=http://b:5000/v1", "http://b:5000/v1/x", "/api/x"),
        ("/api=http://b:5000/v1", "http://b:5000/v1", "/api"),
        ("/api=http://b:5000/v1", "http://b:5000/v10", "http://b:5000/v10"),
        ("/=http://b:5000/app/", "http://b:5000/app/x", "/x"),
        ("/=http://b:5000", "http://b:5000", "/"),
        ("/api=http://b:5000", "http://b:bad/api", "http://b:bad/api"),
    ],
)
def test_locations_pointing_at_the_backend_point_at_devserve(
    route: str, location: str, public: str
) -> None:
    assert public_location(location, parse_route(route)) == public


def test_response_fields_drop_hop_by_hop_and_framing_and_rewrite_location() -> None:
    forward = ROUTES.forward("/strip/x")
    assert forward is not None
    fields = [
        ("Content-Type", "text/html"),
        ("Content-Length", "12"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close, X-Internal"),
        ("X-Internal", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Location", "http://strip:5000/next"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert response_fields(fields, forward) == [
        ("Content-Type", "text/html"),
        ("Location", "/strip/next"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Via", "1.1 devserve"),
    ]


def test_response_fields_extend_the_backends_via() -> None:
    forward = ROUTES.forward("/strip/x")
    assert forward is not None
    fields = [("Via", "1.1 cache"), ("X", "1"), ("via", "1.0 edge")]
    assert response_fields(fields, forward) == [
        ("X", "1"),
        ("Via", "1.1 cache, 1.0 edge, 1.1 devserve"),
    ]


@pytest.mark.parametrize(
    ("fields", "folded", "refused"),
    [
        ([("Content-Length", "5")], False, None),
        ([("Transfer-Encoding", "chunked")], False, None),
        ([("Transfer-Encoding", " Chunked ")], False, None),
        ([("X", "a b")], True, (400, "Folded header line (obs-fold)")),
        (
            [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            False,
            (400, "Content-Length with Transfer-Encoding"),
        ),
        (
            [("transfer-encoding", "chunked"), ("content-length", "0")],
            False,
            (400, "Content-Length with Transfer-Encoding"),
        ),
        (
            [("Transfer-Encoding", "gzip, chunked")],
            False,
            (501, "Transfer-Encoding other than chunked"),
        ),
        (
            [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
            False,
            (501, "Transfer-Encoding other than chunked"),
        ),
    ],
)
def test_refused_request(
    fields: list[tuple[str, str]], folded: bool, refused: tuple[int, str] | None
) -> None:
    assert refused_request(fields, folded) == refused


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([("Expect", "100-continue")], True),
        ([("expect", " 100-Continue ")], True),
        ([("Expect", "something-else")], False),
        ([], False),
    ],
)
def test_expects_continue(fields: list[tuple[str, str]], expected: bool) -> None:
    assert expects_continue(fields) is expected


@pytest.mark.parametrize(
    ("body", "status", "method", "fields", "chunked_ok", "framing"),
    [
        (ResponseBody("length", 12), 200, "GET", [], True, ClientFraming("length", 12)),
        (ResponseBody("length", 12), 200, "GET", [], False, ClientFraming("length", 12)),
        (ResponseBody("chunked"), 200, "GET", [], True, ClientFraming("chunked")),
        (ResponseBody("chunked"), 200, "GET", [], False, ClientFraming("close")),
        (ResponseBody("close", last=True), 200, "GET", [], True, ClientFraming("chunked")),
        (ResponseBody("close", last=True), 200, "GET", [], False, ClientFraming("close")),
        (
            ResponseBody("none"),
            200,
            "HEAD",
            [("Content-Length", "42")],
            True,
            ClientFraming("none", 42),
        ),
        (
            ResponseBody("none"),
            304,
            "GET",
            [("Content-Length", "42")],
            True,
            ClientFraming("none", 42),
        ),
        (ResponseBody("none"), 204, "GET", [("Content-Length", "42")], True, ClientFraming("none")),
        (
            ResponseBody("none"),
            200,
            "HEAD",
            [("Content-Length", "4, 5")],
            True,
            ClientFraming("none"),
        ),
        (
            ResponseBody("none"),
            200,
            "HEAD",
            [("Content-Length", "-1")],
            True,
            ClientFraming("none"),
        ),
        (ResponseBody("none"), 200, "HEAD", [], True, ClientFraming("none")),
    ],
)
def test_client_framing(
    body: ResponseBody,
    status: int,
    method: str,
    fields: list[tuple[str, str]],
    chunked_ok: bool,
    framing: ClientFraming,
) -> None:
    assert client_framing(body, status, method, fields, chunked_ok) == framing


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"HTTP/1.1 200 OK\r\n", ((1, 1), 200, "OK")),
        (b"HTTP/1.0 404 Not Found\n", ((1, 0), 404, "Not Found")),
        (b"HTTP/1.1 204\r\n", ((1, 1), 204, "")),
        (b"HTTP/1.1 200 \r\n", ((1, 1), 200, "")),
        (b"HTTP/1.1 599 Caf\xe9\r\n", ((1, 1), 599, "Caf\xe9")),
    ],
)
def test_status_lines(line: bytes, parsed: tuple[tuple[int, int], int, str]) -> None:
    assert tuple(parse_status_line(line)) == parsed


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\r\n",
        b"HTTP/1.1 OK\r\n",
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 2000 OK\r\n",
        b"HTTP/1.1 099 x\r\n",
        b"HTTP/11 200 OK\r\n",
        b"http/1.1 200 OK\r\n",
        b"HTTP/1.1 200 O\rK\r\n",
        b"HTTP/1.1 200 O\x00K\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"<html>\n",
    ],
)
def test_malformed_status_lines_are_refused(line: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_status_line(line)


H11 = (1, 1)
H10 = (1, 0)
CLOSE = ResponseBody("close", last=True)
NONE_LAST = ResponseBody("none", last=True)
EMPTY = ResponseBody("length", 0)


@pytest.mark.parametrize(
    ("status", "method", "version", "fields", "body", "alive"),
    [
        (200, "GET", H11, [("Content-Length", "5")], ResponseBody("length", 5), True),
        (200, "GET", H11, [("Content-Length", "5, 5")], ResponseBody("length", 5), True),
        # After a HEAD, or a 204/304 announcing a body, a backend that sends
        # one anyway would have it read as the next response: never reused.
        (200, "HEAD", H11, [("Content-Length", "5")], ResponseBody("none", last=True), False),
        (404, "HEAD", H11, [], ResponseBody("none", last=True), False),
        (204, "GET", H11, [], ResponseBody("none"), True),
        (204, "GET", H11, [("Content-Length", "0")], ResponseBody("none"), True),
        (204, "GET", H11, [("Content-Length", "3")], ResponseBody("none", last=True), False),
        (304, "GET", H11, [("Content-Length", "5")], ResponseBody("none"), True),
        (304, "GET", H11, [("ETag", '"x"')], ResponseBody("none"), True),
        (304, "GET", H11, [("Transfer-Encoding", "chunked")], NONE_LAST, False),
        (100, "GET", H11, [], ResponseBody("none"), True),
        (200, "GET", H11, [("Transfer-Encoding", "chunked")], ResponseBody("chunked"), True),
        (
            200,
            "GET",
            H11,
            [("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
            ResponseBody("chunked", last=True),
            False,
        ),
        (200, "GET", H11, [], CLOSE, False),
        (200, "GET", H11, [("Content-Length", "0"), ("Connection", "close")], EMPTY, False),
        (200, "GET", H10, [("Content-Length", "1")], ResponseBody("length", 1), False),
        (
            200,
            "GET",
            H10,
            [("Content-Length", "1"), ("Connection", "Keep-Alive")],
            ResponseBody("length", 1),
            True,
        ),
    ],
)  # fmt: skip
def test_response_framing_and_reuse(
    status: int,
    method: str,
    version: tuple[int, int],
    fields: list[tuple[str, str]],
    body: ResponseBody,
    alive: bool,
) -> None:
    assert response_body(status, method, version, fields) == body
    assert backend_keeps_alive(version, fields, body) is alive


@pytest.mark.parametrize(
    "fields",
    [
        [("Content-Length", "5"), ("Content-Length", "6")],
        [("Content-Length", "5, 6")],
        [("Content-Length", "-1")],
        [("Content-Length", "five")],
        [("Content-Length", "\u0665")],
        [("Content-Length", "1" * 19)],
        [("Content-Length", "")],
    ],
)
def test_bad_response_lengths_are_refused(fields: list[tuple[str, str]]) -> None:
    with pytest.raises(BadResponse):
        response_body(200, "GET", H11, fields)


@pytest.mark.parametrize(
    ("version", "codings"),
    [
        (H11, "gzip"),
        (H11, "gzip, chunked"),
        (H11, "chunked, chunked"),
        (H11, "chunked, gzip"),
        (H11, "identity"),
        (H10, "chunked"),
    ],
)
def test_transfer_codings_other_than_chunked_are_refused(
    version: tuple[int, int], codings: str
) -> None:
    """devserve cannot frame them again: a client would get coded bytes, unlabelled."""
    with pytest.raises(BadResponse, match="transfer coding"):
        response_body(200, "GET", version, [("Transfer-Encoding", codings)])
