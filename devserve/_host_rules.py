"""Static hosts' conventions as pure rules: ``_redirects``, ``_headers`` and clean URLs.

Netlify and Cloudflare Pages read two plain-text files at the root of a site:
``_redirects`` (one rule a line: ``/from [key=value ...] /to [status][!]``) and
``_headers`` (a path pattern, then indented ``Name: value`` lines). This module
reads their text into rules, with the problems found on the way (each with its
line number), and answers which rule a request path meets and which headers it
gets. Reading the files, caching them by stat identity and answering requests
is `devserve._host_files` and `devserve._site`'s business; `devserve check`
reports the problems and judges the rules with these same functions.

Patterns (both files): ``*`` (one per pattern) matches any characters, ``/``
included, and is ``:splat`` in a destination or value; ``:name`` matches one or
more characters other than ``/``. Paths are compared percent-decoded; a path
that does not end in ``*`` matches with or without a trailing slash (Netlify
normalises the slash away before matching).

Invariants:
- Nothing here reads a file, opens a socket or prints; regular expressions are
  compiled when a file is parsed, never per request.
- A value a rule produces is safe to send: header lines are read with the
  request-header grammar (`devserve._protocol.parse_field_lines`: no CR, LF,
  NUL or other control character, Latin-1), names in ``refused`` (framing
  headers) are refused, and captured path text is substituted percent-encoded,
  so a request cannot put a control character or a line break into a
  ``Location`` or a header through a placeholder.
- A rewrite (200) or custom 404 always names a local path: proxying to another
  site is refused when the file is read.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import NamedTuple

from devserve._protocol import ProtocolError, parse_field_lines

REDIRECTS_FILE = "_redirects"
HEADERS_FILE = "_headers"
# Statuses a `_redirects` rule may give: redirects, a rewrite, a custom 404.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REWRITE = 200
NOT_FOUND = 404
STATUSES = REDIRECT_STATUSES | {REWRITE, NOT_FOUND}
DEFAULT_STATUS = 301  # Netlify's (Cloudflare Pages uses 302)
# Lines longer than this are refused (Cloudflare Pages: 1,000 and 2,000 characters).
MAX_LINE = 4096

Fields = tuple[tuple[str, str], ...]

_PLACEHOLDER = re.compile(r":([A-Za-z]\w*)", re.ASCII)
_STATUS = re.compile(r"(\d{3})(!?)")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_EXTERNAL = ("http://", "https://")


class Problem(NamedTuple):
    """A line of a host file that is not applied, and why.

    ``kind``: ``syntax`` (not understood), ``status`` (a status no host gives a
    rule), ``unsupported`` (a host feature devserve does not preview).
    """

    file: str
    line: int
    message: str
    kind: str = "syntax"

    def __str__(self) -> str:
        return f"{self.file} line {self.line} ignored: {self.message}"


class Pattern(NamedTuple):
    """A path pattern as written, and the expression that matches decoded paths."""

    text: str
    regex: re.Pattern[str]
    names: tuple[str, ...]  # its placeholders ("splat" for the *), in order

    def match(self, path: str) -> dict[str, str] | None:
        """The captures when ``path`` (decoded, no query) matches, else None."""
        found = self.regex.fullmatch(path)
        return None if found is None else found.groupdict()


def compile_pattern(text: str) -> Pattern | str:
    """The pattern ``text`` (starting with ``/``), or why it is not one."""
    if not text.startswith("/"):
        return f"{text!r} is not a path (it must start with /)"
    decoded = urllib.parse.unquote(text, errors="surrogateescape")
    if decoded.count("*") > 1:
        return f"{text!r} has more than one *"
    names: list[str] = []
    pieces: list[str] = []
    position = 0
    body = decoded
    optional_slash = not body.endswith("*") and body != "/"
    if optional_slash and body.endswith("/"):
        body = body[:-1]
    while position < len(body):
        char = body[position]
        placeholder = _PLACEHOLDER.match(body, position)
        if char == "*":
            name, expression = "splat", "(?P<splat>.*)"
            position += 1
        elif placeholder is not None:
            name = placeholder[1]
            expression = f"(?P<{name}>[^/]+)"
            position = placeholder.end()
        else:
            pieces.append(re.escape(char))
            position += 1
            continue
        if name in names:
            return f"{text!r} uses :{name} twice"
        names.append(name)
        pieces.append(expression)
    if optional_slash:
        pieces.append("/?")
    return Pattern(text, re.compile("".join(pieces), re.DOTALL), tuple(names))


# --------------------------------------------------------------------------- _redirects


class Redirect(NamedTuple):
    """One `_redirects` rule."""

    line: int
    source: Pattern
    query: tuple[tuple[str, str], ...]  # key=value the query must hold (":name" captures)
    destination: str
    status: int
    force: bool

    @property
    def external(self) -> bool:
        return self.destination.startswith(_EXTERNAL)


class Match(NamedTuple):
    """The rule a request meets, and where it leads (captures substituted, query kept)."""

    rule: Redirect
    location: str


def parse_redirects(text: str) -> tuple[tuple[Redirect, ...], tuple[Problem, ...]]:
    """The rules of a `_redirects` file, in order, and the lines that are not applied."""
    rules: list[Redirect] = []
    problems: list[Problem] = []
    for number, line in _lines(text):
        rule = _redirect(number, line)
        if isinstance(rule, Problem):
            problems.append(rule)
        else:
            rules.append(rule)
    return tuple(rules), tuple(problems)


def _redirect(number: int, line: str) -> Redirect | Problem:
    def problem(message: str, kind: str = "syntax") -> Problem:
        return Problem(REDIRECTS_FILE, number, message, kind)

    if len(line) > MAX_LINE:
        return problem(f"longer than {MAX_LINE} characters")
    tokens = line.split()
    for index, token in enumerate(tokens):
        if token.startswith("#"):  # a comment to the end of the line
            tokens = tokens[:index]
            break
    source, *rest = tokens
    if source.startswith(_EXTERNAL):
        return problem("domain-level rules (a source with a host) are not previewed", "unsupported")
    pattern = compile_pattern(source)
    if isinstance(pattern, str):
        return problem(pattern)
    query: list[tuple[str, str]] = []
    while rest and "=" in rest[0] and not rest[0].startswith(("/", *_EXTERNAL)):
        key, _, value = rest.pop(0).partition("=")
        if not key:
            return problem(f"{key}={value} is not a query parameter (key=value)")
        query.append((key, value))
    if not rest:
        return problem("no destination (a path starting with /, or a URL)")
    destination = rest.pop(0)
    if not destination.startswith(("/", *_EXTERNAL)):
        return problem(f"{destination!r} is not a destination (a path starting with /, or a URL)")
    status, force = DEFAULT_STATUS, False
    if rest:
        found = _STATUS.fullmatch(rest[0])
        if found is not None:
            rest.pop(0)
            status, force = int(found[1]), bool(found[2])
            if status not in STATUSES:
                return problem(
                    f"status {status} is not one a rule can give "
                    "(200, 301, 302, 303, 307, 308 or 404)",
                    "status",
                )
        elif not rest[0].startswith(("/", *_EXTERNAL)) and "=" not in rest[0]:
            return problem(f"{rest[0]!r} is not a status code")
    if rest:
        if "=" in rest[0]:
            return problem(
                f"conditions ({' '.join(rest)}) are not previewed",
                "unsupported",
            )
        return problem(f"unexpected {' '.join(rest)!r} after the status")
    if destination.startswith(_EXTERNAL) and status not in REDIRECT_STATUSES:
        return problem(
            f"a {status} to another site is a proxy, which devserve does not preview",
            "unsupported",
        )
    return Redirect(number, pattern, tuple(query), _encoded(destination), status, force)


def first_match(rules: Iterable[Redirect], path: str, query: str) -> Match | None:
    """The first rule ``path`` (decoded) and ``query`` (as sent) meet, with its location.

    A rule's query parameters must all be present (other parameters may be too);
    ``key=:name`` captures the value, ``key=value`` wants exactly that value. The
    request's query is kept (appended to the location) unless the destination
    has one of its own.
    """
    params: dict[str, str] | None = None
    for rule in rules:
        captures = rule.source.match(path)
        if captures is None:
            continue
        if rule.query:
            if params is None:
                params = _query_params(query)
            captured = _query_captures(rule.query, params)
            if captured is None:
                continue
            captures.update(captured)
        location = substitute(rule.destination, captures)
        if query and "?" not in location and rule.status != NOT_FOUND:
            location = _with_query(location, query)
        return Match(rule, location)
    return None


def applies(match: Match, has_content: bool) -> bool:
    """Whether a matched rule is applied: when forced (``!``), or when nothing is there.

    Only the first matching rule counts: a rule shadowed by content (Netlify's
    "shadowing") lets the content be served, and no later rule is tried.
    """
    return match.rule.force or not has_content


def _query_params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value)
    return params


def _query_captures(
    wanted: tuple[tuple[str, str], ...], params: dict[str, str]
) -> dict[str, str] | None:
    captures: dict[str, str] = {}
    for key, value in wanted:
        given = params.get(key)
        if given is None:
            return None
        placeholder = _PLACEHOLDER.fullmatch(value)
        if placeholder is not None:
            captures[placeholder[1]] = given
        elif given != value:
            return None
    return captures


def _with_query(location: str, query: str) -> str:
    path, hash_mark, fragment = location.partition("#")
    return f"{path}?{query}{hash_mark}{fragment}"


def substitute(template: str, captures: dict[str, str]) -> str:
    """``template`` with each ``:name`` it captured replaced, percent-encoded.

    The splat keeps its slashes; other captures are one path segment or value.
    """
    if ":" not in template or not captures:
        return template

    def replace(found: re.Match[str]) -> str:
        name = found[1]
        value = captures.get(name)
        if value is None:
            return found[0]
        return urllib.parse.quote(
            value, safe="/" if name == "splat" else "", errors="surrogateescape"
        )

    return _PLACEHOLDER.sub(replace, template)


def _encoded(destination: str) -> str:
    """A destination as written, with any character a URL cannot hold percent-encoded."""
    return urllib.parse.quote(destination, safe="/:?#[]@!$&'()*+,;=%~", errors="surrogateescape")


# --------------------------------------------------------------------------- _headers


class HeaderRule(NamedTuple):
    """One `_headers` block: a pattern, the headers it sets, and the names it detaches."""

    line: int
    pattern: Pattern
    fields: Fields
    detach: frozenset[str]  # lower-cased


def parse_headers(
    text: str, refused: frozenset[str] = frozenset()
) -> tuple[tuple[HeaderRule, ...], tuple[Problem, ...]]:
    """The blocks of a `_headers` file, in order, and the lines that are not applied.

    ``refused`` are lower-cased names a rule may neither set nor detach (the
    framing headers the server sets for each response).
    """
    rules: list[HeaderRule] = []
    problems: list[Problem] = []
    block: tuple[int, Pattern] | None = None
    fields: list[tuple[str, str]] = []
    detach: set[str] = set()
    skipping = False

    def close() -> None:
        if block is not None:
            rules.append(HeaderRule(block[0], block[1], tuple(fields), frozenset(detach)))

    for number, line in _lines(text, keep_indent=True):
        stripped = line.strip()
        if len(line) > MAX_LINE:
            problems.append(
                _header_problem(number, f"the line is longer than {MAX_LINE} characters")
            )
            continue
        if not line[0].isspace():
            close()
            block, fields, detach, skipping = None, [], set(), True
            if stripped.startswith(_EXTERNAL):
                problems.append(
                    _header_problem(
                        number,
                        "a rule for an absolute URL (a host) is not previewed",
                        "unsupported",
                    )
                )
                continue
            pattern = compile_pattern(stripped) if " " not in stripped else "a path has no spaces"
            if isinstance(pattern, str):
                problems.append(_header_problem(number, pattern))
                continue
            block, skipping = (number, pattern), False
            continue
        if skipping:
            continue
        if block is None:
            problems.append(_header_problem(number, "a header line comes before any path"))
            skipping = True
            continue
        found = _detach(stripped[1:].strip()) if stripped.startswith("!") else _field(stripped)
        if isinstance(found, str):
            problems.append(_header_problem(number, found))
        elif found[0].lower() in refused:
            message = f"{found[0]} is set by the server for each response"
            problems.append(_header_problem(number, message))
        elif stripped.startswith("!"):
            detach.add(found[0].lower())
        else:
            fields.append(found)
    close()
    return tuple(rules), tuple(problems)


def _header_problem(number: int, message: str, kind: str = "syntax") -> Problem:
    return Problem(HEADERS_FILE, number, message, kind)


def _detach(name: str) -> tuple[str, str] | str:
    """A ``! Name`` line's name (as a field with no value), or why it is not one."""
    if _HEADER_NAME.fullmatch(name) is None:
        return f"{name!r} is not a header name"
    return name, ""


def _field(text: str) -> tuple[str, str] | str:
    """A ``Name: value`` line as (name, value), or why it is not one."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return f"{text!r}: header values must be Latin-1 (percent-encode other characters)"
    try:
        [(name, value)] = parse_field_lines([raw + b"\n"])
    except ProtocolError:
        return f"{text!r} is not a header line (Name: value)"
    return name, value.strip()


def header_fields(rules: Iterable[HeaderRule], path: str) -> tuple[Fields, frozenset[str]]:
    """The headers every rule ``path`` (decoded) matches sets, and the names they detach.

    A name set by several rules (or lines) gets their values joined with ", "
    (Set-Cookie keeps one line each); a name detached by any matching rule is
    left out, whichever rule set it. ``:name`` and ``:splat`` in values are
    the path's captures, percent-encoded.
    """
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    detached: set[str] = set()
    cookies: list[str] = []
    for rule in rules:
        captures = rule.pattern.match(path)
        if captures is None:
            continue
        detached |= rule.detach
        for name, value in rule.fields:
            key = name.lower()
            value = substitute(value, captures)
            if key == "set-cookie":
                cookies.append(value)
                continue
            names.setdefault(key, name)
            values.setdefault(key, []).append(value)
    fields = [
        (names[key], ", ".join(found)) for key, found in values.items() if key not in detached
    ]
    if "set-cookie" not in detached:
        fields.extend(("Set-Cookie", value) for value in cookies)
    return tuple(fields), frozenset(detached)


def with_headers(fields: Fields, added: Fields, detached: frozenset[str]) -> Fields:
    """``fields`` with ``added`` in place of the names it sets, and ``detached`` names left out."""
    dropped = detached | {name.lower() for name, _ in added}
    return tuple(field for field in fields if field[0].lower() not in dropped) + added


# --------------------------------------------------------------------------- clean URLs


def clean_path(path: str) -> str | None:
    """Where ``--clean-urls`` sends a request for an HTML file, or None.

    ``/about.html`` → ``/about``, ``/docs/index.html`` → ``/docs/``,
    ``/index.html`` → ``/``. ``path`` is the URL path as sent (no query).
    """
    if path.endswith("/index.html"):
        return path[: -len("index.html")]
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".html") and len(name) > len(".html"):
        return path[: -len(".html")]
    return None


def unslashed_path(path: str) -> str | None:
    """``/about/`` → ``/about`` (for ``--clean-urls`` when only about.html exists), or None."""
    if len(path) < 3 or not path.endswith("/") or path.endswith("//"):
        return None
    return path[:-1]


# --------------------------------------------------------------------------- lines


def _lines(text: str, keep_indent: bool = False) -> Iterable[tuple[int, str]]:
    """(number, line) for each line that is neither blank nor a comment."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, (line.rstrip() if keep_indent else stripped)
