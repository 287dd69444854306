"""`devserve check`: what would go wrong if this directory were served (findings as data).

The directory is seen exactly as `devserve serve` (or `devserve cgi`) with the
same flags would serve it: the handler class is built by `serving.make_handler`
from the same `ServeConfig`, and every question — which file a URL names, whether
it may be served (hidden names, the symlink policy), its content type, which
index page answers a directory, when the listing or the single-page-app fallback
answers, where a CGI script is — is answered by that class's own hooks and the
helpers it uses (`_paths`, `_mime`, `_cgi`, `_suggest`), never by a second copy
of the rules.

Invariants:
- Nothing here prints, exits, or touches the network: external URLs are never fetched.
- The checked tree is only read, never written; outside it, only the resolved
  targets of symlinks and the interpreters named by CGI scripts are looked at.
- Memory grows with the number of findings, of pages (their paths are listed
  during the walk) and of distinct link targets (resolved once each), not with
  the size of the files: pages are read and parsed one at a time.
"""

from __future__ import annotations

import codecs
import email.message
import errno
import os
import posixpath
import re
import shutil
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from devserve import _cgi
from devserve._paths import is_hidden, is_hidden_name, is_within
from devserve._suggest import suggest_path

if TYPE_CHECKING:
    from devserve.server import SimpleHTTPRequestHandler

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
# Version of the JSON report's schema (README: "devserve check" → JSON).
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Rule:
    """What one finding code means: its fixed severity, a title and the usual fix."""

    code: str
    severity: Severity
    title: str
    fix: str


RULES: tuple[Rule, ...] = (
    # -- DS1xx exposure: files that would be served and look secret
    Rule("DS101", "error", ".env file served", "move it out of the served folder"),
    Rule("DS102", "error", "version-control folder served", "serve a build folder, not the repo"),
    Rule("DS103", "error", "private key served", "move the key out of the served folder"),
    Rule("DS104", "error", ".htpasswd served", "move it out of the served folder"),
    Rule("DS105", "error", "JSON with credentials served", "move it out of the served folder"),
    Rule("DS106", "error", "credential file or folder served", "move it out of the served folder"),
    # -- DS2xx symlinks
    Rule(
        "DS201",
        "warning",
        "symlink leaves the folder: refused (404)",
        "copy the target in, or serve with --follow-symlinks if exposing it is intended",
    ),
    Rule(
        "DS202",
        "warning",
        "symlink leaves the folder: served because of --follow-symlinks",
        "replace the link with a copy, or serve without --follow-symlinks",
    ),
    Rule("DS203", "warning", "broken symlink (404)", "fix or remove the link"),
    Rule("DS204", "warning", "symlink loop (404)", "fix or remove one of the links"),
    Rule(
        "DS205",
        "warning",
        "directory symlink to a folder above it: URLs without end",
        "remove the link (crawlers and wget -r would never finish)",
    ),
    # -- DS3xx links in pages and stylesheets
    Rule("DS301", "error", "broken link (404)", "fix the link or add the missing file"),
    Rule(
        "DS302",
        "error",
        "link differs from the file name in letter case (404 on Linux)",
        "write the name with the file's exact case",
    ),
    Rule(
        "DS303",
        "error",
        "link to a folder without an index page under --no-listing (404)",
        "add an index.html, link to a file, or serve without --no-listing",
    ),
    Rule(
        "DS304",
        "error",
        "link to a file the server refuses (a hidden name, or a symlink leaving the folder)",
        "link to a visible file, or serve with the flag the message names",
    ),
    Rule(
        "DS305",
        "warning",
        "relative link in the --spa entry page breaks on nested routes",
        'use a root-relative URL (/app.js) or add <base href="/">',
    ),
    # -- DS4xx content types browsers reject for the use
    Rule(
        "DS401",
        "error",
        "module script not served as JavaScript",
        "give it a .js or .mjs name (browsers refuse module scripts of any other type)",
    ),
    Rule("DS402", "warning", "script not served as JavaScript", "give it a .js name"),
    Rule("DS403", "error", "stylesheet not served as text/css", "give it a .css name"),
    Rule(
        "DS404",
        "error",
        "WebAssembly not served as application/wasm",
        "give it a .wasm name (instantiateStreaming refuses any other type)",
    ),
    Rule("DS405", "warning", "font not served as a font type", "name it .woff2, .woff, .ttf, .otf"),
    Rule("DS406", "warning", "manifest not served as JSON", "name it .webmanifest or .json"),
    Rule(
        "DS407",
        "info",
        "page link to a file served as application/octet-stream (downloaded, not shown)",
        "give it a name with a known type (.txt, .html, .pdf ...)",
    ),
    # -- DS5xx live reload
    Rule(
        "DS501",
        "info",
        "no </body> or </head>: the reload script is appended at the very end",
        "close the page's <body>",
    ),
    Rule(
        "DS502",
        "warning",
        "page is not UTF-8 and declares no charset (browsers guess the encoding)",
        "save it as UTF-8, or declare its charset with <meta charset>",
    ),
    Rule(
        "DS503",
        "warning",
        "UTF-32 page, or UTF-16 without a byte-order mark: the reload script would corrupt it",
        "save it as UTF-8",
    ),
    Rule(
        "DS504",
        "warning",
        "more folders than the inotify watch limit: --reload falls back to polling",
        "serve a smaller folder, or raise fs.inotify.max_user_watches",
    ),
    # -- DS6xx CGI (with --cgi-dir)
    Rule("DS601", "error", "CGI script not executable (403)", "chmod +x it"),
    Rule(
        "DS602",
        "error",
        "CGI script has no #! line (500)",
        "start it with a line such as #!/usr/bin/env python3",
    ),
    Rule(
        "DS603",
        "error",
        "CGI script's interpreter does not exist (500)",
        "fix the #! line or install the interpreter",
    ),
    Rule(
        "DS604",
        "error",
        "CGI script's #! line ends with CR (Windows line endings; 500)",
        "convert the script to Unix line endings (dos2unix)",
    ),
    Rule(
        "DS605",
        "error",
        "world-writable CGI script or folder: anyone on the machine can change what runs",
        "chmod o-w it",
    ),
    Rule(
        "DS606",
        "error",
        "CGI script the user nobody cannot run (devserve runs scripts as nobody when root; 403)",
        "make the script and every folder above it readable and searchable by others",
    ),
    Rule(
        "DS607",
        "warning",
        "--cgi-dir names no folder in the tree",
        "create the folder or fix --cgi-dir",
    ),
    # -- DS7xx names
    Rule("DS701", "warning", "control character in a file name", "rename the file"),
    Rule(
        "DS702",
        "warning",
        "file name is not valid UTF-8 (hand-written links cannot reach it)",
        "rename the file with a UTF-8 name",
    ),
    Rule("DS703", "warning", "file name starts or ends with a space", "rename the file"),
    Rule(
        "DS704",
        "error",
        "link to a name with # or ? that does not percent-encode it (404)",
        "write # as %23 and ? as %3F in the link",
    ),
    Rule(
        "DS705",
        "warning",
        "link to a name with a space that does not percent-encode it",
        "write the space as %20 in the link",
    ),
)
CODES: dict[str, Rule] = {rule.code: rule for rule in RULES}


@dataclass(frozen=True)
class Finding:
    """One problem: where (``path`` relative to the root, ``line`` for links), what, and the fix."""

    severity: Severity
    code: str
    path: str
    line: int | None
    message: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        """The finding as the JSON report writes it (README: "devserve check")."""
        return {
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


def _sort_key(finding: Finding) -> tuple[int, str, int, str, str]:
    return (
        SEVERITIES.index(finding.severity),
        finding.path,
        finding.line or 0,
        finding.code,
        finding.message,
    )


class CheckError(Exception):
    """Bad usage (a missing directory, an unknown code), in one line for the user."""


@dataclass(frozen=True)
class CheckConfig:
    """What `devserve check` is told: the serve flags to mirror, and what to report."""

    directory: Path = Path(".")
    show_hidden: bool = False
    follow_symlinks: bool = False
    spa: bool = False
    listing: bool = True
    # URL folders as `devserve cgi --cgi-dir` takes them; empty: `devserve serve`.
    cgi_directories: tuple[str, ...] = ()
    ignore: frozenset[str] = frozenset()
    # None: read from /proc/sys/fs/inotify/max_user_watches (no DS504 without it).
    watch_limit: int | None = None
    # None: whether this process is root (devserve then runs scripts as nobody).
    runs_as_root: bool | None = None


@dataclass(frozen=True)
class Report:
    """The outcome of a check: the findings (sorted) and what was looked at."""

    directory: str
    config: CheckConfig
    findings: tuple[Finding, ...]
    ignored: int
    files: int
    pages: int
    links: int
    seconds: float

    def count(self, severity: Severity) -> int:
        return sum(1 for finding in self.findings if finding.severity == severity)

    def failed(self, strict: bool = False) -> bool:
        """Whether the check fails: an error, or with ``strict`` also a warning."""
        failing = ("error", "warning") if strict else ("error",)
        return any(finding.severity in failing for finding in self.findings)

    def as_dict(self) -> dict[str, object]:
        """The JSON report (stable schema, README: "devserve check")."""
        config = self.config
        return {
            "version": SCHEMA_VERSION,
            "directory": self.directory,
            "options": {
                "show_hidden": config.show_hidden,
                "follow_symlinks": config.follow_symlinks,
                "spa": config.spa,
                "listing": config.listing,
                "cgi_directories": list(config.cgi_directories),
                "ignore": sorted(config.ignore),
            },
            "summary": {
                "errors": self.count("error"),
                "warnings": self.count("warning"),
                "info": self.count("info"),
                "ignored": self.ignored,
                "files": self.files,
                "pages": self.pages,
                "links": self.links,
                "seconds": round(self.seconds, 3),
            },
            "findings": [finding.as_dict() for finding in self.findings],
        }


# Called with a stage ("scan", "pages"), the items done and the total when known.
Progress = Callable[[str, int, int | None], None]


def parse_ignore(codes: Iterable[str]) -> frozenset[str]:
    """The codes ``--ignore`` names: exact codes or a family such as ``DS5xx``.

    Raises CheckError for a code that does not exist.
    """
    chosen: set[str] = set()
    for text in codes:
        code = text.strip().upper()
        if code in CODES:
            chosen.add(code)
            continue
        family = [known for known in CODES if code.endswith("XX") and known[:3] == code[:3]]
        if len(code) != 5 or not family:
            raise CheckError(f"unknown finding code for --ignore: {text!r} (see devserve check -h)")
        chosen.update(family)
    return frozenset(chosen)


def check(config: CheckConfig, progress: Progress | None = None) -> Report:
    """Check ``config.directory`` as the server would serve it; never prints.

    Raises CheckError when the directory cannot be checked or an option is invalid.
    """
    from devserve import serving

    started = time.perf_counter()
    try:
        root = str(serving.check_directory(config.directory))
    except serving.ServeError as error:
        raise CheckError(str(error)) from None
    for directory in config.cgi_directories:
        if not directory.startswith("/") or directory == "/":
            raise CheckError(f"--cgi-dir must be a URL folder like /cgi-bin, not {directory!r}")
    unknown = sorted(code for code in config.ignore if code not in CODES)
    if unknown:
        raise CheckError(f"unknown finding code for --ignore: {unknown[0]!r}")
    checker = _Checker(config, root, handler_class(config, root), progress or _no_progress)
    findings = checker.run()
    kept = sorted((f for f in findings if f.code not in config.ignore), key=_sort_key)
    return Report(
        directory=root,
        config=config,
        findings=tuple(kept),
        ignored=len(findings) - len(kept),
        files=checker.file_count,
        pages=len(checker.pages),
        links=checker.link_count,
        seconds=time.perf_counter() - started,
    )


def handler_class(config: CheckConfig, root: str) -> type[SimpleHTTPRequestHandler]:
    """The handler class `devserve serve` (or `cgi`) would use with these flags.

    Built by the server's own `serving.make_handler` from the same `ServeConfig`,
    so a change to how the server maps its flags is seen here too.
    """
    from devserve import serving
    from devserve.server import CGIHTTPRequestHandler, SimpleHTTPRequestHandler

    cgi = serving.CGIConfig(directories=config.cgi_directories) if config.cgi_directories else None
    serve_config = serving.ServeConfig(
        directory=Path(root),
        spa=config.spa,
        listing=config.listing,
        show_hidden=config.show_hidden,
        follow_symlinks=config.follow_symlinks,
        quiet=True,
        cgi=cgi,
    )
    base = CGIHTTPRequestHandler if cgi is not None else SimpleHTTPRequestHandler
    factory = serving.make_handler(serve_config, root, _Silent(), serving.Stats(), base)
    made = getattr(factory, "func", factory)
    assert isinstance(made, type)
    assert issubclass(made, SimpleHTTPRequestHandler)
    return made


class _Silent:
    """A reporter for a handler class that never handles a request."""

    def __call__(self, item: object) -> None:
        """Requests are never made."""

    def ready(self, info: object) -> None:
        """The server is never started."""

    def stopped(self, summary: object) -> None:
        """The server is never started."""


def _no_progress(stage: str, done: int, total: int | None) -> None:
    """No progress display."""


def read_watch_limit() -> int | None:
    """The per-user inotify watch limit, or None where there is none to read."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches", "rb") as limit:
            return int(limit.read().strip())
    except (OSError, ValueError):
        return None


# ============================================================ how the server answers a URL


class _Outcome(NamedTuple):
    """What the server does with one request path.

    ``status``: ok, missing, hidden, symlink (refused by the policies), no-listing
    (a directory without index under --no-listing), forbidden (403).
    """

    status: str
    answered_by: str = ""  # file, index, listing, spa, cgi
    fs_path: str | None = None
    content_type: str | None = None


# What a browser sends when it navigates (links, frames); the fetches a page makes
# itself (images, scripts, stylesheets) send */*. The --spa fallback answers a
# navigation whatever its suffix, a fetch only when the path has no suffix.
_NAVIGATION_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class _Server:
    """Answers "what would the server send for this path?" with the handler's own hooks."""

    def __init__(self, handler: type[SimpleHTTPRequestHandler], root: str) -> None:
        self.handler = handler
        self.root = root
        # A handler instance that never sees a socket: only its path, policy and
        # type hooks are called, with the attributes those hooks read.
        self.probe = handler.__new__(handler)
        self.probe.directory = root
        self.cgi_directories: list[str] = list(getattr(handler, "cgi_directories", []) or [])
        self._accept: dict[bool, email.message.Message] = {}
        for navigation, accept in ((True, _NAVIGATION_ACCEPT), (False, "*/*")):
            headers = email.message.Message()
            headers["Accept"] = accept
            self._accept[navigation] = headers
        self._cache: dict[tuple[str, bool], _Outcome] = {}

    def may_serve(self, fs_path: str) -> bool:
        """The hidden-file and symlink policies, exactly as the handler applies them."""
        return self.probe._may_serve(fs_path)

    def content_type(self, fs_path: str) -> str:
        return self.probe.guess_type(fs_path)

    def is_cgi(self, url_path: str) -> bool:
        if not self.cgi_directories:
            return False
        collapsed = _cgi.collapse_url_path(url_path)
        return _cgi.find_cgi_directory(collapsed, self.cgi_directories) is not None

    def resolve(self, url_path: str, navigation: bool) -> _Outcome:
        """What a GET of ``url_path`` (no query, no fragment) gets; redirects followed."""
        key = (url_path, navigation)
        outcome = self._cache.get(key)
        if outcome is None:
            outcome = self._resolve(url_path, navigation)
            self._cache[key] = outcome
        return outcome

    def _resolve(self, url_path: str, navigation: bool) -> _Outcome:
        # The order of SimpleHTTPRequestHandler.send_head: CGI paths first, then
        # open (existence and policies), directory → redirect → index → listing.
        if self.is_cgi(url_path):
            return self._resolve_cgi(url_path)
        path = self.probe.translate_path(url_path)
        opened = self._servable(path)
        if isinstance(opened, str):
            return self._not_found(url_path, navigation, opened)
        if stat.S_ISDIR(opened.st_mode):
            if not url_path.endswith("/"):
                return self.resolve(url_path + "/", navigation)  # the 301 a browser follows
            for name in self.handler.index_pages:
                index = os.path.join(path, name)
                found = self._servable(index)
                if not isinstance(found, str) and stat.S_ISREG(found.st_mode):
                    return _Outcome("ok", "index", index, self.content_type(index))
            if not self.handler.list_directories:
                return self._not_found(url_path, navigation, "no-listing")
            return _Outcome("ok", "listing", None, "text/html")
        if not stat.S_ISREG(opened.st_mode) or path.endswith("/"):
            return self._not_found(url_path, navigation, "missing")
        return _Outcome("ok", "file", path, self.content_type(path))

    def _servable(self, path: str) -> os.stat_result | str:
        """The stat of ``path`` if the server would open it, else why not."""
        if "\x00" in path:
            return "missing"
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return "missing"
        if not os.access(path, os.R_OK):
            return "missing"
        if not self.may_serve(path):
            return "hidden" if is_hidden(path, self.root) else "symlink"
        return st

    def _not_found(self, url_path: str, navigation: bool, why: str) -> _Outcome:
        """404, unless the single-page-app fallback answers (as the handler decides)."""
        fallback = self.handler.spa_fallback
        if fallback is not None and self._is_app_route(url_path, navigation):
            path = os.path.join(self.root, fallback)
            found = self._servable(path)
            if not isinstance(found, str) and stat.S_ISREG(found.st_mode):
                return _Outcome("ok", "spa", path, self.content_type(path))
        return _Outcome(why)

    def _is_app_route(self, url_path: str, navigation: bool) -> bool:
        self.probe.path = url_path
        self.probe.headers = self._accept[navigation]
        return self.probe._is_app_route()

    def _resolve_cgi(self, url_path: str) -> _Outcome:
        """The script a CGI path runs, as CGIHTTPRequestHandler.run_cgi finds it."""
        found = _cgi.find_cgi_directory(_cgi.collapse_url_path(url_path), self.cgi_directories)
        assert found is not None

        def fs_path(decoded_url: str) -> str:
            return self.probe.translate_path(_cgi.url_for_decoded(decoded_url))

        where = _cgi.locate_script(url_path, found[0], lambda url: os.path.isdir(fs_path(url)))
        if where is None:
            return _Outcome("missing")
        script = fs_path(where.script_name)
        if not self.may_serve(script) or not os.path.exists(script):
            return _Outcome("missing")
        if not os.path.isfile(script):
            return _Outcome("forbidden")
        return _Outcome("ok", "cgi", script, None)


# ================================================================== references in pages

# What a reference is used for: decides the --spa fallback (navigations ask for
# HTML) and which content types a browser accepts for it.
Kind = Literal["page", "script", "module", "style", "font", "manifest", "image", "media", "other"]


class _Ref(NamedTuple):
    line: int
    url: str
    kind: Kind


_JS_TYPES = frozenset(
    {
        "text/javascript", "application/javascript", "application/ecmascript",
        "application/x-ecmascript", "application/x-javascript", "text/ecmascript",
        "text/javascript1.0", "text/javascript1.1", "text/javascript1.2", "text/javascript1.3",
        "text/javascript1.4", "text/javascript1.5", "text/jscript", "text/livescript",
        "text/x-ecmascript", "text/x-javascript",
    }
)  # fmt: skip
_MANIFEST_TYPES = frozenset({"application/manifest+json", "application/json"})
_FONT_TYPES = frozenset(
    {"application/font-woff", "application/font-sfnt", "application/vnd.ms-fontobject",
     "application/x-font-ttf", "application/x-font-otf", "application/x-font-woff"}
)  # fmt: skip
_FONT_SUFFIXES = (".woff2", ".woff", ".ttf", ".otf", ".eot")
# Tags whose href/src a browser navigates to (with an HTML Accept header).
_NAVIGATION_TAGS = frozenset({"a", "area", "iframe", "frame"})
_MEDIA_TAGS = frozenset({"audio", "video", "track"})

_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?(?:"([^"]*)"|'([^']*)'|([^\s'"();]+))""", re.I)
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^\s'"()]*))\s*\)""", re.I)
_CSS_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)
# <meta http-equiv="refresh" content="0; url=/next/">: the delay, then the URL.
_REFRESH_URL = re.compile(r"""\s*[\d.]+\s*[;,]\s*(?:url\s*=\s*)?(['"]?)(.*?)\1\s*\Z""", re.I | re.S)
_TEMPLATED = ("{{", "{%", "${", "<%")


def css_references(text: str, first_line: int = 1) -> Iterator[_Ref]:
    """Every ``url(...)`` and ``@import`` in a stylesheet, with its line.

    ``url()`` inside ``@font-face`` is a font; an ``@import`` is a stylesheet;
    anything else is an image (backgrounds, cursors, masks).
    """
    lowered = text.lower()
    if "url(" not in lowered and "@import" not in lowered:
        return
    if "/*" in text:  # blank out comments, keeping newlines for line numbers
        text = _CSS_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    fonts = [m.span() for m in _CSS_FONT_FACE.finditer(text)]
    imports = []
    found: list[tuple[int, str, Kind]] = []
    for match in _CSS_IMPORT.finditer(text):
        imports.append(match.span())
        found.append((match.start(), _first_group(match), "style"))
    for match in _CSS_URL.finditer(text):
        offset = match.start()
        if any(start <= offset < end for start, end in imports):
            continue  # the url() of an @import
        in_font = any(start <= offset < end for start, end in fonts)
        found.append((offset, _first_group(match), "font" if in_font else "image"))
    found.sort()
    line, last = first_line, 0
    for offset, url, kind in found:
        line += text.count("\n", last, offset)
        last = offset
        yield _Ref(line, url, kind)


def _first_group(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None)


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` (the HTML spec's candidate parsing, descriptors dropped)."""
    urls: list[str] = []
    pos, end = 0, len(value)
    spaces = " \t\n\r\f"
    while True:
        while pos < end and (value[pos] in spaces or value[pos] == ","):
            pos += 1
        if pos >= end:
            return urls
        start = pos
        while pos < end and value[pos] not in spaces:
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            depth = 0
            while pos < end:
                char = value[pos]
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth = max(0, depth - 1)
                elif char == "," and depth == 0:
                    pos += 1
                    break
                pos += 1
        if url:
            urls.append(url)


class _PageParser(HTMLParser):
    """Collects a page's references (with their kind and line) and its ``<base href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[_Ref] = []
        self.base: str | None = None
        self._in_style = False

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        line = self.getpos()[0]
        add = self.refs.append
        if tag == "style":
            self._in_style = True
        if tag == "base":
            if self.base is None and "href" in values:
                self.base = values["href"]
            return
        if "style" in values:
            self.refs.extend(css_references(values["style"], line))
        if tag == "link":
            href = values.get("href")
            link_kind = _link_kind(values)
            if href is not None and link_kind is not None:
                add(_Ref(line, href, link_kind))
            return
        if tag == "meta":
            if values.get("http-equiv", "").lower() == "refresh":
                found = _REFRESH_URL.match(values.get("content", ""))
                if found and found.group(2):
                    add(_Ref(line, found.group(2), "page"))
            return
        kind = _tag_kind(tag, values)
        for name in ("href", "src", "poster", "data", "xlink:href"):
            value = values.get(name)
            if value is None or (name == "data" and tag != "object"):
                continue
            add(_Ref(line, value, "image" if name == "poster" else kind))
        srcset = values.get("srcset")
        if srcset is not None:
            for url in srcset_urls(srcset):
                add(_Ref(line, url, "image"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.refs.extend(css_references(data, self.getpos()[0]))


def _tag_kind(tag: str, values: dict[str, str]) -> Kind:
    if tag in _NAVIGATION_TAGS:
        return "other" if "download" in values else "page"  # a download may be any type
    if tag == "script":
        kind = values.get("type", "").strip().lower()
        if kind == "module":
            return "module"
        if not kind or kind in _JS_TYPES:
            return "script"
        return "other"  # a data block (importmap, JSON, templates): not run as script
    if tag in ("img", "picture", "input", "use", "image"):
        return "image"
    if tag in _MEDIA_TAGS or tag == "source":
        return "media"
    return "other"


_PRELOAD_KINDS: dict[str, Kind] = {
    "script": "script",
    "style": "style",
    "font": "font",
    "image": "image",
    "document": "page",
}
# <link rel> values that name another page (the --spa fallback answers those).
_PAGE_RELS = frozenset(
    {"canonical", "alternate", "next", "prev", "author", "help", "license", "bookmark", "search"}
)


def _link_kind(values: dict[str, str]) -> Kind | None:
    """What a ``<link>`` fetches; None for hints that name an origin, not a file."""
    rels = values.get("rel", "").lower().split()
    if "stylesheet" in rels:
        return "style"
    if "modulepreload" in rels:
        return "module"
    if "manifest" in rels:
        return "manifest"
    if "preload" in rels or "prefetch" in rels:
        return _PRELOAD_KINDS.get(values.get("as", "").lower(), "other")
    if any("icon" in rel for rel in rels):
        return "image"
    if "preconnect" in rels or "dns-prefetch" in rels:
        return None
    if _PAGE_RELS.intersection(rels):
        return "page"
    return "other"


# ===================================================================== page encodings

_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)""", re.I)


class _Decoded(NamedTuple):
    text: str
    problem: str | None  # "wide" (UTF-32, BOM-less UTF-16) or "undeclared" (not UTF-8)


def decode_page(data: bytes) -> _Decoded:
    """A page's text as a browser would decode it, and what stands in the reload script's way.

    The reload script is inserted as ASCII bytes unless a byte-order mark says
    UTF-16 (`devserve.reload` decodes those), so a UTF-32 page or a UTF-16 one
    without a mark would be corrupted.
    """
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return _Decoded(data.decode("utf-32", "replace"), "wide")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _Decoded(data.decode("utf-16", "replace"), None)
    if data.startswith(codecs.BOM_UTF8):
        return _Decoded(data[3:].decode("utf-8", "replace"), None)
    if len(data) > 1 and (data[0] == 0) != (data[1] == 0):
        codec = "utf-16-be" if data[0] == 0 else "utf-16-le"
        return _Decoded(data.decode(codec, "replace"), "wide")
    try:
        return _Decoded(data.decode("utf-8"), None)
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:1024])
    if declared is not None:
        try:
            codec = codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            pass
        else:
            if codec != "utf-8":
                return _Decoded(data.decode(codec, "replace"), None)
    return _Decoded(data.decode("windows-1252", "replace"), "undeclared")


# Where the reload script goes: before </body>, else before </head> ("</bodyx" is
# not the tag), else after the last byte.
_INJECTION_POINT = re.compile(r"</(?:body|head)(?:[\s/>]|\Z)", re.I)


# ===================================================================== secrets and names

_ENV_TEMPLATES = (".example", ".sample", ".template", ".dist")
_VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
_CREDENTIAL_DIRS = frozenset({".ssh", ".gnupg", ".aws", ".docker"})
_CREDENTIAL_FILES = frozenset({".netrc", "_netrc", ".git-credentials", ".pypirc"})
_KEY_NAME = re.compile(r"id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?:[._-].*)?\Z")
_KEY_SUFFIXES = (".pem", ".key", ".ppk")
_KEY_BUNDLES = (".p12", ".pfx")
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File-")
_JSON_SECRET = re.compile(
    rb'"(private_key|client_secret|aws_secret_access_key|secret_access_key|refresh_token)"'
    rb'\s*:\s*"(?:[^"\\]|\\.){8,}"'
)
_NPM_TOKEN = re.compile(rb"_auth(?:Token)?\s*=|_password\s*=")
_JSON_SCAN_LIMIT = 1 << 20  # only the start of a larger JSON file is looked at
_HEAD = 64 * 1024


def _read_head(path: str, size: int = _HEAD) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except OSError:
        return b""


def secret_kind(name: str, parent: str, fs_path: str) -> tuple[str, str] | None:
    """(code, what) when a served file looks secret; reads the few files that need it."""
    lower = name.lower()
    if lower == ".envrc" or (
        (lower == ".env" or lower.startswith(".env.")) and not lower.endswith(_ENV_TEMPLATES)
    ):
        return "DS101", "environment file"
    if lower.startswith(".htpasswd"):
        return "DS104", "password file"
    if lower in _CREDENTIAL_FILES or (lower == "credentials" and parent == ".aws"):
        return "DS106", "credential file"
    if lower == ".npmrc":
        return ("DS106", "npm token file") if _NPM_TOKEN.search(_read_head(fs_path)) else None
    if lower.endswith(_KEY_BUNDLES):
        return "DS103", "key bundle"
    key_named = lower.endswith(_KEY_SUFFIXES) or (
        _KEY_NAME.match(lower) is not None and not lower.endswith(".pub")
    )
    if key_named and _PRIVATE_KEY.search(_read_head(fs_path)):
        return "DS103", "private key"
    if lower.endswith(".json"):
        found = _JSON_SECRET.search(_read_head(fs_path, _JSON_SCAN_LIMIT))
        if found:
            return "DS105", f'JSON with "{found.group(1).decode()}"'
    return None


def name_problems(name: str) -> list[tuple[str, str]]:
    """(code, message) for a name that breaks URLs or tools."""
    problems = []
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):
        problems.append(("DS702", "name is not valid UTF-8"))
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        problems.append(("DS701", "name has a control character"))
    if name != name.strip():
        problems.append(("DS703", "name starts or ends with a space"))
    return problems


def display(text: str) -> str:
    """A file system string as text: bytes that are not UTF-8 shown as \\xNN."""
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _url_quote(decoded: str) -> str:
    return urllib.parse.quote(decoded, safe="/", errors="surrogatepass")


# ============================================================================ the walk

_SNIFF = (
    (b"\x00asm", "DS404", "WebAssembly"),
    (b"wOF2", "DS405", "font (WOFF2)"),
    (b"wOFF", "DS405", "font (WOFF)"),
    (b"OTTO", "DS405", "font (OpenType)"),
    (b"\x00\x01\x00\x00", "DS405", "font (TrueType)"),
)


@dataclass(frozen=True)
class _Dir:
    fs: str  # where it is on disk (lexically: through the links it was reached by)
    url: str  # decoded URL path, ending with "/"
    rel: str  # path relative to the root for findings, "" or ending with "/"
    real: str  # resolved path
    cgi_root: str | None  # the CGI folder it is in (every file below is a script)


_KIND_NAMES: dict[str, str] = {
    "page": "page",
    "script": "script",
    "module": "module script",
    "style": "stylesheet",
    "font": "font",
    "manifest": "manifest",
    "image": "image",
    "media": "media file",
    "other": "resource",
}


class _Checker:
    """One run of the checks over one tree; collects findings, never prints."""

    def __init__(
        self,
        config: CheckConfig,
        root: str,
        handler: type[SimpleHTTPRequestHandler],
        progress: Progress,
    ) -> None:
        self.config = config
        self.root = root
        self.handler = handler
        self.progress = progress
        self.server = _Server(handler, root)
        self.real_root = os.path.realpath(root)
        self.cgi_urls = frozenset(d.rstrip("/") for d in self.server.cgi_directories)
        fallback = handler.spa_fallback
        self.spa_entry = os.path.join(root, fallback) if fallback else None
        self.findings: list[Finding] = []
        self.pages: list[tuple[str, str, str]] = []  # fs path, decoded URL, relative path
        self.stylesheets: list[tuple[str, str, str]] = []
        self.scripts: list[tuple[str, str, str]] = []  # fs path, relative path, CGI folder
        self.file_count = 0
        self.link_count = 0
        self.dir_count = 0
        self._scanned = 0
        # Resolved folders already walked, and directory links still to walk.
        self._walked: set[str] = set()
        self._deferred: list[_Dir] = []
        self._writable_checked: set[str] = set()

    def add(
        self, code: str, path: str, message: str, line: int | None = None, fix: str | None = None
    ) -> None:
        rule = CODES[code]
        self.findings.append(
            Finding(rule.severity, code, display(path) or ".", line, message, fix or rule.fix)
        )

    def run(self) -> list[Finding]:
        self.dir_count = 1
        self._walked.add(self.real_root)
        self._walk(_Dir(self.root, "/", "", self.real_root, None))
        while self._deferred:
            linked = self._deferred.pop(0)
            if linked.real not in self._walked:
                self._walked.add(linked.real)
                self._walk(linked)
        self.progress("scan", self._scanned, self._scanned)
        self._check_watch_limit()
        self._check_cgi_folders()
        total = len(self.pages) + len(self.stylesheets)
        done = 0
        for fs, url, rel in self.pages:
            self._check_page(fs, url, rel)
            done += 1
            if done % 25 == 0:
                self.progress("pages", done, total)
        for fs, url, rel in self.stylesheets:
            self._check_stylesheet(fs, url, rel)
            done += 1
            if done % 25 == 0:
                self.progress("pages", done, total)
        self.progress("pages", total, total)
        for script in self.scripts:
            self._check_script(*script)
        return self.findings

    # -- walking the served tree

    def _walk(self, start: _Dir) -> None:
        """Every entry the server would serve below ``start`` (hidden ones only counted)."""
        stack = [start]
        show_hidden = self.config.show_hidden
        while stack:
            where = stack.pop()
            try:
                with os.scandir(where.fs) as scan:
                    entries = sorted(scan, key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                self._scanned += 1
                if self._scanned % 1024 == 0:
                    self.progress("scan", self._scanned, None)
                name = entry.name
                visible = show_hidden or not is_hidden_name(name)
                rel = where.rel + name
                if entry.is_symlink():
                    if visible:
                        self._names(name, rel)
                        self._link(entry.path, name, where, rel)
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    regular = not is_dir and entry.is_file(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    self.dir_count += 1
                    if visible:
                        self._names(name, rel)
                    if not visible or name in _VCS_DIRS:
                        if visible:
                            self._exposed("DS102", rel + "/", "version-control folder")
                        self.dir_count += _count_dirs(entry.path)
                        continue
                    if name in _CREDENTIAL_DIRS and where.cgi_root is None:
                        self._exposed("DS106", rel + "/", "credential folder")
                    real = os.path.join(where.real, name)
                    self._walked.add(real)
                    stack.append(self._subdir(entry.path, where.url + name, rel, real, where))
                elif visible:
                    self._names(name, rel)
                    if regular:  # FIFOs, sockets and devices are never served
                        self._file(entry.path, where.url + name, rel, name, where)

    def _subdir(self, fs: str, url: str, rel: str, real: str, parent: _Dir) -> _Dir:
        cgi_root = parent.cgi_root
        if cgi_root is None and url in self.cgi_urls:
            cgi_root = fs
        return _Dir(fs, url + "/", rel + "/", real, cgi_root)

    def _link(self, path: str, name: str, where: _Dir, rel: str) -> None:
        """A symlink the server would be asked for: broken, a loop, refused, or served."""
        target = display(_readlink(path))
        try:
            st = os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                self.add("DS204", rel, f"symlink loop: {name} -> {target} never resolves")
            else:
                self.add("DS203", rel, f"broken symlink: {name} -> {target} (target missing)")
            return
        real = os.path.realpath(path)
        inside = is_within(real, self.real_root)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not self.server.may_serve(path):
            self.add("DS201", rel, f"{name} -> {display(real)} leaves the folder: refused (404)")
            return
        if not inside:
            self.add(
                "DS202",
                rel,
                f"{name} -> {display(real)} serves a {'folder' if is_dir else 'file'} "
                "from outside the folder (--follow-symlinks)",
            )
        real_name = os.path.basename(real)
        if is_dir:
            if is_within(os.path.realpath(where.fs), real):
                self.add(
                    "DS205",
                    rel,
                    f"{name} -> {target} leads back to a folder above it: "
                    f"{where.url}{name}/.../{name}/ never ends",
                )
            elif real_name in _VCS_DIRS:
                self._exposed(
                    "DS102", rel + "/", f"version-control folder ({real_name})", not inside
                )
            elif real_name in _CREDENTIAL_DIRS:
                self._exposed("DS106", rel + "/", f"credential folder ({real_name})", not inside)
            elif inside:  # an outside tree is not walked: DS202 says what it exposes
                self._deferred.append(self._subdir(path, where.url + name, rel, real, where))
        elif stat.S_ISREG(st.st_mode):
            self._file(path, where.url + name, rel, name, where, real, not inside)

    def _file(
        self,
        fs: str,
        url: str,
        rel: str,
        name: str,
        where: _Dir,
        real: str | None = None,
        outside: bool = False,
    ) -> None:
        """A file the server would send: secrets, types, and the pages and stylesheets to parse."""
        self.file_count += 1
        if where.cgi_root is not None:
            self.scripts.append((fs, rel, where.cgi_root))
            return
        parent = posixpath.basename(where.rel.rstrip("/"))
        secret = secret_kind(name, parent, fs)
        if secret is None and real is not None:
            real_parent = os.path.basename(os.path.dirname(real))
            secret = secret_kind(os.path.basename(real), real_parent, fs)
        if secret is not None:
            self._exposed(secret[0], rel, secret[1], outside)
        content_type = self.server.content_type(fs)
        if content_type == "text/html":
            self.pages.append((fs, url, rel))
        elif content_type == "text/css":
            self.stylesheets.append((fs, url, rel))
        elif name.lower().endswith(".wasm") and content_type != "application/wasm":
            self.add("DS404", rel, f"served as {content_type}, not application/wasm")
        elif content_type == "application/octet-stream":
            head = _read_head(fs, 8)
            for magic, code, what in _SNIFF:
                if head.startswith(magic):
                    self.add(code, rel, f"{what} served as application/octet-stream")
                    break

    def _exposed(self, code: str, rel: str, what: str, outside: bool = False) -> None:
        """A secret-looking file is served; say which flag serves it."""
        flags = []
        if any(is_hidden_name(part) for part in rel.split("/")):
            flags.append("--show-hidden")
        if outside:
            flags.append("--follow-symlinks")
        if flags:
            because = f"served because of {' and '.join(flags)}"
            fix = f"{CODES[code].fix}, or serve without {' and '.join(flags)}"
        else:
            because = "served with the default options"
            fix = CODES[code].fix
        self.add(code, rel, f"{what} {because}", fix=fix)

    def _names(self, name: str, rel: str) -> None:
        for code, message in name_problems(name):
            self.add(code, rel, f"{message}: {display(name)!r}")

    # -- tree-wide

    def _check_watch_limit(self) -> None:
        limit = self.config.watch_limit
        if limit is None:
            limit = read_watch_limit()
        if limit is not None and self.dir_count > limit:
            self.add(
                "DS504",
                "",
                f"{self.dir_count} folders to watch, the inotify limit is {limit}: "
                "--reload would poll instead",
            )

    def _check_cgi_folders(self) -> None:
        for directory in self.server.cgi_directories:
            if not os.path.isdir(self.server.probe.translate_path(_url_quote(directory))):
                self.add("DS607", directory.strip("/"), f"no folder for --cgi-dir {directory}")

    # -- pages and stylesheets

    def _check_page(self, fs: str, url: str, rel: str) -> None:
        try:
            with open(fs, "rb") as page:
                data = page.read()
        except OSError:
            return
        text, problem = decode_page(data)
        if problem == "wide":
            self.add(
                "DS503",
                rel,
                "page is UTF-32, or UTF-16 without a byte-order mark: "
                "the reload script would be inserted as ASCII bytes and corrupt it",
            )
        elif problem == "undeclared":
            self.add("DS502", rel, "page is not UTF-8 and declares no charset: browsers guess it")
        if problem != "wide" and text.strip() and _INJECTION_POINT.search(text) is None:
            self.add(
                "DS501", rel, "no </body> or </head>: --reload appends its script after the end"
            )
        parser = _PageParser()
        parser.feed(text)
        parser.close()
        base: str | None = _url_quote(url)
        if parser.base is not None:
            base = join_url(base, _clean_url(parser.base), keep_query=True)
        spa_entry = self.spa_entry is not None and fs == self.spa_entry and parser.base is None
        for ref in parser.refs:
            self._check_ref(rel, ref, base, spa_entry)

    def _check_stylesheet(self, fs: str, url: str, rel: str) -> None:
        try:
            with open(fs, "rb") as sheet:
                text = sheet.read().decode("utf-8", "replace")
        except OSError:
            return
        base = _url_quote(url)
        for ref in css_references(text):
            self._check_ref(rel, ref, base, False)

    def _check_ref(self, rel: str, ref: _Ref, base: str | None, spa_entry: bool) -> None:
        """Resolve one reference as the browser, then the server, would."""
        raw = _clean_url(ref.url)
        if not raw or raw.startswith("#") or any(mark in raw for mark in _TEMPLATED):
            return
        url_path = join_url(base, raw)
        if url_path is None:
            return  # another site, or mailto:, data:, javascript: ...: never fetched
        self.link_count += 1
        navigation = ref.kind == "page"
        outcome = self.server.resolve(url_path, navigation)
        shown = ref.url.strip()
        if outcome.status != "ok":
            self._broken(rel, ref, raw, base, url_path, outcome)
            return
        if outcome.answered_by == "spa" and not navigation:
            self.add(
                "DS301",
                rel,
                f"{shown} is not found: --spa answers it with {self.handler.spa_fallback}, "
                f"not the {_KIND_NAMES[ref.kind]} the page expects",
                ref.line,
            )
            return
        path_part = raw.split("?", 1)[0].split("#", 1)[0]
        if " " in path_part:
            self.add("DS705", rel, f"{shown}: the space is not written as %20", ref.line)
        if spa_entry and not navigation and not raw.startswith("/"):
            self.add(
                "DS305",
                rel,
                f"{shown} is relative: on a nested route such as /a/b the browser asks for "
                f"/a/{path_part}",
                ref.line,
            )
        self._check_type(rel, ref, outcome)

    def _broken(
        self, rel: str, ref: _Ref, raw: str, base: str | None, url_path: str, outcome: _Outcome
    ) -> None:
        shown = ref.url.strip()
        line = ref.line
        if outcome.status == "missing" and ("#" in raw or "?" in raw):
            encoded = join_url(base, raw.replace("#", "%23").replace("?", "%3F"))
            if encoded and self.server.resolve(encoded, ref.kind == "page").status == "ok":
                mark = "#" if "#" in raw else "?"
                self.add(
                    "DS704",
                    rel,
                    f"{shown}: the browser asks for {url_path}, because an unencoded {mark} "
                    "ends the path",
                    line,
                )
                return
        if outcome.status in ("hidden", "symlink"):
            hidden = outcome.status == "hidden"
            flag = "--show-hidden" if hidden else "--follow-symlinks"
            why = "a hidden name" if hidden else "a symlink leaving the folder"
            self.add(
                "DS304",
                rel,
                f"{shown} is {why}: the server refuses it without {flag} (404)",
                line,
                f"link to a visible file, or serve with {flag}",
            )
        elif outcome.status == "no-listing":
            self.add(
                "DS303", rel, f"{shown} is a folder without an index page (--no-listing: 404)", line
            )
        elif outcome.status == "forbidden":
            self.add("DS301", rel, f"{shown} names a CGI folder, not a script (403)", line)
        else:
            suggestion = self._suggest(url_path)
            if suggestion is not None and _same_but_case(suggestion, url_path):
                self.add(
                    "DS302",
                    rel,
                    f"{shown}: the file is {suggestion} (works on macOS and Windows, 404 on Linux)",
                    line,
                )
                return
            hint = f"; did you mean {suggestion}?" if suggestion else ""
            self.add("DS301", rel, f"{shown} is not found (404){hint}", line)

    def _suggest(self, url_path: str) -> str | None:
        show_hidden = self.config.show_hidden

        def visible(name: str) -> bool:
            return show_hidden or not is_hidden_name(name)

        return suggest_path(url_path, self.root, visible)

    def _check_type(self, rel: str, ref: _Ref, outcome: _Outcome) -> None:
        """Whether the type the server sends is one the browser accepts for this use."""
        served = outcome.content_type
        if served is None or outcome.answered_by == "cgi":
            return
        essence = served.split(";", 1)[0].strip().lower()
        shown = ref.url.strip()
        kind = ref.kind
        line = ref.line
        if kind == "module" and essence not in _JS_TYPES:
            self.add("DS401", rel, f"{shown} is served as {served}, not JavaScript", line)
        elif kind == "script" and essence not in _JS_TYPES:
            self.add("DS402", rel, f"{shown} is served as {served}, not JavaScript", line)
        elif kind == "style" and essence != "text/css":
            self.add("DS403", rel, f"{shown} is served as {served}, not text/css", line)
        elif kind == "font" and not (essence.startswith("font/") or essence in _FONT_TYPES):
            self.add("DS405", rel, f"{shown} is served as {served}, not a font type", line)
        elif kind == "manifest" and essence not in _MANIFEST_TYPES:
            self.add("DS406", rel, f"{shown} is served as {served}, not JSON", line)
        elif kind == "page" and essence == "application/octet-stream":
            self.add("DS407", rel, f"{shown} is served as {served}: browsers download it", line)

    # -- CGI scripts

    def _check_script(self, fs: str, rel: str, cgi_root: str) -> None:
        """What stops a script in a CGI folder from running as the gateway runs it."""
        try:
            st = os.stat(fs)
        except OSError:
            return
        executable = _cgi.is_executable(fs)
        if not executable:
            self.add("DS601", rel, f"mode {stat.filemode(st.st_mode)}: the server answers 403")
        first = _read_head(fs, 1024).split(b"\n", 1)[0]
        binary = first.startswith(b"\x7fELF")
        interpreters: list[str] = []
        if first.startswith(b"#!"):
            line = _cgi.shebang(fs) or ""
            if first.endswith(b"\r"):
                self.add("DS604", rel, f"#!{line}<CR>: the interpreter's name ends with a CR")
            else:
                interpreters = _interpreter(line, os.path.dirname(fs))
                missing = next((path for path in interpreters if not _is_program(path)), None)
                if not interpreters or missing is not None:
                    self.add("DS603", rel, f"#!{line}: {missing or 'no interpreter'} not found")
                    interpreters = []
        elif not binary:
            self.add("DS602", rel, "no #! line: the system cannot tell how to run it")
        self._world_writable(fs, rel, st, cgi_root)
        runs_as_root = self.config.runs_as_root
        if runs_as_root is None:
            runs_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        if executable and runs_as_root:
            why = _nobody_cannot_run(fs, st, interpreters, binary)
            if why is not None:
                self.add("DS606", rel, why)

    def _world_writable(self, fs: str, rel: str, st: os.stat_result, cgi_root: str) -> None:
        """The script, and each folder from its own up to the CGI folder, once each."""
        if st.st_mode & stat.S_IWOTH:
            self.add("DS605", rel, f"mode {stat.filemode(st.st_mode)}: anyone can rewrite it")
        directory = os.path.dirname(fs)
        while is_within(directory, cgi_root):
            if directory not in self._writable_checked:
                self._writable_checked.add(directory)
                try:
                    mode = os.stat(directory).st_mode
                except OSError:
                    mode = 0
                if mode & stat.S_IWOTH:
                    relative = os.path.relpath(directory, self.root).replace(os.sep, "/")
                    self.add(
                        "DS605",
                        relative + "/",
                        f"folder mode {stat.filemode(mode)}: anyone can add or replace scripts",
                    )
            if directory == cgi_root:
                return
            directory = os.path.dirname(directory)


# A URL that starts with a scheme ("https:", "mailto:", "data:"): never this server.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_DOUBLE_DOTS = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})
_SINGLE_DOTS = frozenset({".", "%2e"})


def join_url(base: str | None, url: str, keep_query: bool = False) -> str | None:
    """The path a browser asks this server for when ``url`` appears on a page whose
    base URL has the path ``base`` (RFC 3986 reference resolution, WHATWG dot rules).

    None when it leads to another origin: a scheme, ``//host``, or an external
    base (None). The fragment is dropped, and the query too unless ``keep_query``.
    """
    if base is None or url.startswith("//") or _SCHEME.match(url):
        return None
    path = url.partition("#")[0]
    path, question_mark, query = path.partition("?")
    if not path:
        path = base.partition("?")[0]
    elif not path.startswith("/"):
        path = base[: base.rfind("/") + 1] + path
    path = remove_dot_segments(path)
    return path + question_mark + query if keep_query else path


def remove_dot_segments(path: str) -> str:
    """``/a/./b/../c`` → ``/a/c``: a ``..`` never climbs above ``/`` (as in browsers)."""
    if "/." not in path and "%2" not in path:
        return path
    segments = path.split("/")[1:]
    kept: list[str] = []
    for segment in segments:
        lowered = segment.lower()
        if lowered in _DOUBLE_DOTS:
            if kept:
                kept.pop()
        elif lowered not in _SINGLE_DOTS:
            kept.append(segment)
    result = "/" + "/".join(kept)
    if segments and segments[-1].lower() in _DOUBLE_DOTS | _SINGLE_DOTS and kept:
        result += "/"
    return result


def _clean_url(url: str) -> str:
    """A URL attribute as a browser reads it: outer spaces gone, tabs and newlines
    removed, backslashes taken for slashes (the WHATWG URL rules for http)."""
    url = url.strip(" \t\n\r\f")
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    if "\\" in url:
        head, sep, tail = url.partition("?")
        url = head.replace("\\", "/") + sep + tail
    return url


def _same_but_case(suggestion: str, url_path: str) -> bool:
    wanted = urllib.parse.unquote(url_path).rstrip("/")
    found = urllib.parse.unquote(suggestion).rstrip("/")
    return found != wanted and found.lower() == wanted.lower()


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _count_dirs(path: str) -> int:
    """Folders below ``path`` (links not followed): each is one inotify watch."""
    count = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as scan:
                for entry in scan:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            count += 1
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return count


def _interpreter(line: str, script_dir: str) -> list[str]:
    """The programs a #! line runs: the interpreter, and what ``env`` looks up on PATH.

    Relative paths are looked up from the script's folder (its working directory).
    An empty list when a program cannot be found.
    """
    words = line.split()
    if not words:
        return []
    program = words[0]
    if not os.path.isabs(program):
        program = os.path.join(script_dir, program)
    programs = [program]
    if os.path.basename(program) == "env":
        args = words[1:]
        if args and args[0].startswith("-S"):
            args = [args[0][2:], *args[1:]] if len(args[0]) > 2 else args[1:]
        name = next((a for a in args if not a.startswith("-") and "=" not in a), None)
        if name is not None:
            # env finds it on the PATH devserve hands to scripts (its own PATH).
            found = shutil.which(name) if "/" not in name else name
            programs.append(found or name)
    return programs


def _is_program(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _nobody_can(st: os.stat_result, want: int) -> bool:
    """Whether nobody (its uid, its group, no other groups) has ``want`` (rwx bits) on it."""
    if st.st_uid == _cgi.nobody_uid():
        bits = st.st_mode >> 6
    elif st.st_gid == _cgi.nobody_gid():
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


def _nobody_cannot_run(
    script: str, st: os.stat_result, interpreters: list[str], binary: bool
) -> str | None:
    """Why nobody could not run ``script`` (folders, script, interpreter), or None."""
    checks: list[tuple[str, int, str]] = []
    for path in (os.path.abspath(script), os.path.realpath(script), *interpreters):
        parent = os.path.dirname(path)
        while True:
            checks.append((parent, 1, "search"))
            if parent == os.path.dirname(parent):
                break
            parent = os.path.dirname(parent)
    checks.append((script, 1 if binary else 5, "execute" if binary else "read and execute"))
    checks.extend((path, 1, "execute") for path in interpreters)
    for path, want, what in checks:
        try:
            info = st if path == script else os.stat(path)
        except OSError:
            continue
        if not _nobody_can(info, want):
            owner = _owner(info.st_uid)
            return (
                f"nobody cannot {what} {path} ({stat.filemode(info.st_mode)} {owner}): "
                "the script would fail with 403"
            )
    return None


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
