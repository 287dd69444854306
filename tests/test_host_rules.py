"""Table tests of the static hosts' rules (devserve._host_rules): no sockets, no files."""

from __future__ import annotations

import pytest

from devserve._host_rules import (
    HeaderRule,
    Match,
    Pattern,
    Problem,
    Redirect,
    applies,
    clean_path,
    compile_pattern,
    first_match,
    header_fields,
    parse_headers,
    parse_redirects,
    substitute,
    unslashed_path,
    with_headers,
)

FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


def pattern(text: str) -> Pattern:
    compiled = compile_pattern(text)
    assert isinstance(compiled, Pattern), compiled
    return compiled


# --------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("text", "path", "captures"),
    [
        ("/", "/", {}),
        ("/", "/a", None),
        ("/about", "/about", {}),
        ("/about", "/about/", {}),  # a trailing slash is optional (Netlify normalises it)
        ("/about/", "/about", {}),
        ("/about", "/about/x", None),
        ("/about", "/About", None),  # paths are case-sensitive
        ("/news/*", "/news/2024/01/hello", {"splat": "2024/01/hello"}),
        ("/news/*", "/news/", {"splat": ""}),
        ("/news/*", "/news", None),
        ("/*", "/anything/at/all", {"splat": "anything/at/all"}),
        ("/*.jpg", "/img/cat.jpg", {"splat": "img/cat"}),  # a splat anywhere (Cloudflare)
        ("/*.jpg", "/img/cat.png", None),
        ("/blog/:year/:slug", "/blog/2024/hi", {"year": "2024", "slug": "hi"}),
        ("/blog/:year/:slug", "/blog/2024/hi/", {"year": "2024", "slug": "hi"}),
        ("/blog/:year/:slug", "/blog/2024", None),
        ("/blog/:year/:slug", "/blog/2024/a/b", None),  # a placeholder never spans a /
        ("/blog/:slug.html", "/blog/hi.html", {"slug": "hi"}),
        ("/u/:id/*", "/u/7/a/b", {"id": "7", "splat": "a/b"}),
        ("/c%C3%A9line", "/céline", {}),  # compared percent-decoded
        ("/a.b", "/aXb", None),  # a dot is a dot
        ("/a+(b)", "/a+(b)", {}),
        ("/line", "/line\nx", None),
    ],
)
def test_patterns_match_decoded_paths(
    text: str, path: str, captures: dict[str, str] | None
) -> None:
    assert pattern(text).match(path) == captures


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("about", "is not a path"),
        ("/a/*/b/*", "more than one *"),
        ("/:id/:id", "uses :id twice"),
        ("/:splat/*", "uses :splat twice"),
    ],
)
def test_bad_patterns_say_why(text: str, problem: str) -> None:
    compiled = compile_pattern(text)
    assert isinstance(compiled, str)
    assert problem in compiled


@pytest.mark.parametrize(
    ("template", "captures", "result"),
    [
        ("/blog/:splat", {"splat": "a/b c"}, "/blog/a/b%20c"),
        ("/p/:id", {"id": "a/b"}, "/p/a%2Fb"),  # a placeholder stays one segment
        ("/p/:id-:id2", {"id": "1", "id2": "2"}, "/p/1-2"),
        ("/p/:idx", {"id": "1"}, "/p/:idx"),  # only whole names are replaced
        ("/p/:other", {"id": "1"}, "/p/:other"),
        ("X: :id", {"id": "\r\nSet-Cookie: a=1"}, "X: %0D%0ASet-Cookie%3A%20a%3D1"),
        ("/p/:id", {"id": "\udcff"}, "/p/%FF"),  # undecodable bytes come back as they were
        ("/static", {"id": "1"}, "/static"),
    ],
)
def test_substitution_percent_encodes_captures(
    template: str, captures: dict[str, str], result: str
) -> None:
    assert substitute(template, captures) == result


# --------------------------------------------------------------------------- _redirects


def redirects(text: str) -> tuple[Redirect, ...]:
    rules, problems = parse_redirects(text)
    assert problems == (), problems
    return rules


@pytest.mark.parametrize(
    ("line", "source", "query", "destination", "status", "force"),
    [
        ("/home / 301", "/home", (), "/", 301, False),
        ("/home /", "/home", (), "/", 301, False),  # Netlify's default status
        ("/a /b 302", "/a", (), "/b", 302, False),
        ("/a /b 303", "/a", (), "/b", 303, False),
        ("/a /b 307", "/a", (), "/b", 307, False),
        ("/a /b 308", "/a", (), "/b", 308, False),
        ("/app/* /index.html 200", "/app/*", (), "/index.html", 200, False),
        ("/app/ /app/index.html 200!", "/app/", (), "/app/index.html", 200, True),
        ("/old /new 301!", "/old", (), "/new", 301, True),
        ("/en/* /en/404.html 404", "/en/*", (), "/en/404.html", 404, False),
        ("/store id=:id /blog/:id 301", "/store", (("id", ":id"),), "/blog/:id", 301, False),
        ("/a x=1 y=:y /b", "/a", (("x", "1"), ("y", ":y")), "/b", 301, False),
        ("/go https://example.com/x 302", "/go", (), "https://example.com/x", 302, False),
        ("  /spaced    /out   302  ", "/spaced", (), "/out", 302, False),
        ("/a /b 302 # why", "/a", (), "/b", 302, False),  # a comment ends the line
        ("/a /b#frag 302", "/a", (), "/b#frag", 302, False),  # a fragment is no comment
        ("/é /ü", "/é", (), "/%C3%BC", 301, False),  # a destination is percent-encoded
    ],
)
def test_redirect_lines(
    line: str,
    source: str,
    query: tuple[tuple[str, str], ...],
    destination: str,
    status: int,
    force: bool,
) -> None:
    [rule] = redirects(line)
    assert (rule.source.text, rule.query, rule.destination, rule.status, rule.force) == (
        source,
        query,
        destination,
        status,
        force,
    )
    assert rule.line == 1


def test_comments_and_blank_lines_keep_line_numbers() -> None:
    rules = redirects("# header\n\n   \n/a /b\n  # indented comment\n/c /d 302\n")
    assert [rule.line for rule in rules] == [4, 6]


@pytest.mark.parametrize(
    ("line", "kind", "words"),
    [
        ("/x /y 999", "status", "status 999"),
        ("/x /y 418", "status", "status 418"),
        ("/x /y 200! extra", "syntax", "unexpected"),
        ("/x /y fast", "syntax", "not a status code"),
        ("/x", "syntax", "no destination"),
        ("/x y", "syntax", "not a destination"),
        ("x /y", "syntax", "not a path"),
        ("/a/*/b/* /c", "syntax", "more than one *"),
        ("/x =1 /y", "syntax", "not a query parameter"),
        ("/x /y 302 Country=us", "unsupported", "conditions"),
        ("/x /y 200! Role=admin", "unsupported", "conditions"),
        ("/api/* https://api.example.com/:splat 200", "unsupported", "proxy"),
        ("/x https://example.com/404.html 404", "unsupported", "proxy"),
        ("https://blog.example.com/* /blog/:splat 301", "unsupported", "domain-level"),
        ("/" + "a" * 5000 + " /b", "syntax", "longer than"),
    ],
)
def test_bad_redirect_lines_are_reported_with_their_line(line: str, kind: str, words: str) -> None:
    rules, problems = parse_redirects(f"# first\n/ok /fine\n{line}\n/after /fine\n")
    assert [rule.line for rule in rules] == [2, 4]  # the others still apply
    [problem] = problems
    assert (problem.file, problem.line, problem.kind) == ("_redirects", 3, kind)
    assert words in problem.message
    assert str(problem).startswith("_redirects line 3 ignored: ")


RULES = redirects(
    """
/forced /elsewhere 302!
/home / 301
/news/* /blog/:splat 302
/store id=:id /blog/:id 307
/pick v=2 /v2 302
/q /with?own=1 301
/app/* /index.html 200
/en/* /en/404.html 404
/news/:slug /never 301
"""
)


@pytest.mark.parametrize(
    ("path", "query", "line", "location"),
    [
        ("/home", "", 3, "/"),
        ("/home/", "", 3, "/"),
        ("/home", "utm=1&b=2", 3, "/?utm=1&b=2"),  # the query is kept
        ("/news/2024/hi", "", 4, "/blog/2024/hi"),
        ("/news/a b", "x=1", 4, "/blog/a%20b?x=1"),
        ("/store", "id=hello", 5, "/blog/hello?id=hello"),
        ("/store", "z=1&id=hello", 5, "/blog/hello?z=1&id=hello"),  # others may come along
        ("/store", "id=a%2Fb", 5, "/blog/a%2Fb?id=a%2Fb"),
        ("/store", "", None, None),  # the parameter is missing
        ("/store", "ident=1", None, None),
        ("/pick", "v=2", 6, "/v2?v=2"),
        ("/pick", "v=3", None, None),  # a literal value must be equal
        ("/q", "a=1", 7, "/with?own=1"),  # a destination's own query wins
        ("/app/settings", "tab=2", 8, "/index.html?tab=2"),
        ("/en/missing", "a=1", 9, "/en/404.html"),  # a 404 keeps no query
        ("/news/one", "", 4, "/blog/one"),  # the first match wins (line 10 never does)
        ("/forced", "", 2, "/elsewhere"),
        ("/nothing", "", None, None),
    ],
)
def test_the_first_matching_rule_decides(
    path: str, query: str, line: int | None, location: str | None
) -> None:
    found = first_match(RULES, path, query)
    if line is None:
        assert found is None
    else:
        assert found is not None
        assert (found.rule.line, found.location) == (line, location)


@pytest.mark.parametrize(
    ("force", "has_content", "applied"),
    [(False, False, True), (False, True, False), (True, False, True), (True, True, True)],
)
def test_shadowing_and_forcing(force: bool, has_content: bool, applied: bool) -> None:
    rule = redirects(f"/a /b 200{'!' if force else ''}")[0]
    assert applies(Match(rule, "/b"), has_content) is applied


# --------------------------------------------------------------------------- _headers


HEADERS = """
# security for everything
/*
  X-Frame-Options: DENY
  Link: </style.css>; rel=preload
  Set-Cookie: a=1

/*.jpg
  ! X-Frame-Options
  Link: </img.css>; rel=preload
  Set-Cookie: b=2

/movies/:title
  X-Movie: watching :title
/files/*
  X-Path: /:splat
  Cache-Control: public, max-age=60
"""


def header_rules(text: str) -> tuple[HeaderRule, ...]:
    rules, problems = parse_headers(text, FRAMING)
    assert problems == (), problems
    return rules


def test_header_blocks_are_read_in_order() -> None:
    rules = header_rules(HEADERS)
    assert [(rule.line, rule.pattern.text) for rule in rules] == [
        (3, "/*"),
        (8, "/*.jpg"),
        (13, "/movies/:title"),
        (15, "/files/*"),
    ]
    assert rules[1].detach == frozenset({"x-frame-options"})
    assert rules[0].fields[1] == ("Link", "</style.css>; rel=preload")


@pytest.mark.parametrize(
    ("path", "fields", "detached"),
    [
        (
            "/index.html",
            (("X-Frame-Options", "DENY"), ("Link", "</style.css>; rel=preload"),
             ("Set-Cookie", "a=1")),
            set(),
        ),
        (
            # merged: values joined with ", ", a detached name left out, cookies one each
            "/img/cat.jpg",
            (("Link", "</style.css>; rel=preload, </img.css>; rel=preload"),
             ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")),
            {"x-frame-options"},
        ),
        (
            "/movies/a b",
            (("X-Frame-Options", "DENY"), ("Link", "</style.css>; rel=preload"),
             ("X-Movie", "watching a%20b"), ("Set-Cookie", "a=1")),
            set(),
        ),
        (
            "/files/a/b",
            (("X-Frame-Options", "DENY"), ("Link", "</style.css>; rel=preload"),
             ("X-Path", "/a/b"), ("Cache-Control", "public, max-age=60"),
             ("Set-Cookie", "a=1")),
            set(),
        ),
    ],
)  # fmt: skip
def test_headers_of_every_matching_rule_are_merged(
    path: str, fields: tuple[tuple[str, str], ...], detached: set[str]
) -> None:
    assert header_fields(header_rules(HEADERS), path) == (fields, frozenset(detached))


def test_a_detached_cookie_drops_every_cookie() -> None:
    rules = header_rules("/*\n  Set-Cookie: a=1\n/x\n  ! set-cookie\n")
    assert header_fields(rules, "/x") == ((), frozenset({"set-cookie"}))


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("  X-A: 1\n", 1, "before any path"),
        ("/a\n  no colon here\n", 2, "not a header line"),
        ("/a\n  Bad Name: x\n", 2, "not a header line"),
        ("/a\n  X-A : x\n", 2, "not a header line"),  # no blank before the colon
        ("/a\n  X-A: bell\x07\n", 2, "not a header line"),
        ("/a\n  X-A: €\n", 2, "Latin-1"),
        ("/a\n  Content-Length: 5\n", 2, "set by the server"),
        ("/a\n  ! Transfer-Encoding\n", 2, "set by the server"),
        ("/a\n  ! Not A Name\n", 2, "not a header name"),
        ("a\n  X-A: 1\n", 1, "not a path"),
        ("/a b\n  X-A: 1\n", 1, "no spaces"),
        ("/a/*/b/*\n  X-A: 1\n", 1, "more than one *"),
        ("https://example.com/*\n  X-A: 1\n", 1, "absolute URL"),
    ],
)
def test_bad_header_lines_are_reported_and_skipped(text: str, line: int, words: str) -> None:
    rules, problems = parse_headers(text + "/ok\n  X-Ok: yes\n", FRAMING)
    assert rules[-1].fields == (("X-Ok", "yes"),)  # the rest of the file still applies
    [problem] = problems
    assert (problem.file, problem.line) == ("_headers", line)
    assert words in problem.message


def test_a_block_with_a_bad_path_skips_its_header_lines() -> None:
    rules, problems = parse_headers("nope\n  X-A: 1\n  X-B: 2\n", FRAMING)
    assert rules == ()
    assert problems == (Problem("_headers", 1, "'nope' is not a path (it must start with /)"),)


@pytest.mark.parametrize(
    ("fields", "added", "detached", "result"),
    [
        ((("Content-type", "text/html"), ("ETag", '"1"')), (), {"etag"},
         (("Content-type", "text/html"),)),
        ((("Content-type", "text/html"),), (("content-type", "text/plain"),), set(),
         (("content-type", "text/plain"),)),
        ((("Content-Length", "3"),), (("X-A", "1"),), set(),
         (("Content-Length", "3"), ("X-A", "1"))),
    ],
)  # fmt: skip
def test_rule_headers_replace_the_servers_own(
    fields: tuple[tuple[str, str], ...],
    added: tuple[tuple[str, str], ...],
    detached: set[str],
    result: tuple[tuple[str, str], ...],
) -> None:
    assert with_headers(fields, added, frozenset(detached)) == result


# --------------------------------------------------------------------------- clean URLs


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("/about.html", "/about"),
        ("/docs/index.html", "/docs/"),
        ("/index.html", "/"),
        ("/a/b.c.html", "/a/b.c"),
        ("/.html", None),
        ("/about.htm", None),
        ("/about", None),
        ("/about/", None),
        ("/x.html/", None),
    ],
)
def test_clean_paths(path: str, clean: str | None) -> None:
    assert clean_path(path) == clean


@pytest.mark.parametrize(
    ("path", "unslashed"),
    [("/about/", "/about"), ("/a/b/", "/a/b"), ("/", None), ("/about", None), ("/a//", None)],
)
def test_unslashed_paths(path: str, unslashed: str | None) -> None:
    assert unslashed_path(path) == unslashed
