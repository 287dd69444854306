"""Pages and stylesheets: their references, the types they are served with, live reload.

A page is decoded and parsed as a browser would (`markup`); each reference is
resolved to the path the browser asks for (`markup.join_url`), and what the
server answers for it is asked of `server_model`: broken and refused links
(DS3xx), unencoded ``#``, ``?`` and spaces in names (DS704, DS705), content types
the browser rejects for the use (DS4xx), and whether the reload script fits the
page (DS501-DS503). Files served as themselves get the type checks that need no
page (`file_type_problem`).

Invariants:
- One page or stylesheet is read and parsed at a time; only its references are
  kept while it is checked.
- External URLs (a scheme, ``//host``) and fragments are never resolved or
  fetched, and count as no link; templates (``{{ }}``, ``${}``) are skipped.
"""

from __future__ import annotations

import urllib.parse

from devserve.check.exposure import FileHead
from devserve.check.markup import (
    JS_TYPES,
    TEMPLATE_MARKS,
    PageParser,
    Ref,
    clean_url,
    css_references,
    decode_page,
    join_url,
)
from devserve.check.report import Findings
from devserve.check.secure_context import SecureContextChecker
from devserve.check.server_model import Outcome, ServerModel

_MANIFEST_TYPES = frozenset({"application/manifest+json", "application/json"})
_FONT_TYPES = frozenset(
    {"application/font-woff", "application/font-sfnt", "application/vnd.ms-fontobject",
     "application/x-font-ttf", "application/x-font-otf", "application/x-font-woff"}
)  # fmt: skip

# Magic numbers of files browsers need a specific type for.
_SNIFF = (
    (b"\x00asm", "DS404", "WebAssembly"),
    (b"wOF2", "DS405", "font (WOFF2)"),
    (b"wOFF", "DS405", "font (WOFF)"),
    (b"OTTO", "DS405", "font (OpenType)"),
    (b"\x00\x01\x00\x00", "DS405", "font (TrueType)"),
)

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


def file_type_problem(name: str, content_type: str, head: FileHead) -> tuple[str, str] | None:
    """(code, message) for a file served with a type its contents do not work with.

    A ``.wasm`` not served as application/wasm; WebAssembly or a font (by its
    magic number) served as application/octet-stream. Asks ``head`` for 8 bytes.
    """
    if name.lower().endswith(".wasm") and content_type != "application/wasm":
        return "DS404", f"served as {content_type}, not application/wasm"
    if content_type == "application/octet-stream":
        magic_number = head.read(8)
        for magic, code, what in _SNIFF:
            if magic_number.startswith(magic):
                return code, f"{what} served as application/octet-stream"
    return None


class PageChecker:
    """Checks pages and stylesheets one at a time; counts the links it resolves."""

    def __init__(
        self,
        server: ServerModel,
        findings: Findings,
        secure: SecureContextChecker | None = None,
    ) -> None:
        self.server = server
        self.secure = secure  # DS901: only when pages go to other machines over plain HTTP
        self.findings = findings
        self.add = findings.add
        self.link_count = 0
        # Files reported as secrets (DS1xx): a link to one gets no advice on its type.
        self.secrets: set[str] = set()

    def check_page(self, fs: str, url: str, rel: str) -> None:
        """A page at ``fs``, served at the decoded URL path ``url``; ``rel`` for findings."""
        try:
            with open(fs, "rb") as page:
                data = page.read()
        except OSError:
            return
        decoded = decode_page(data)
        text = decoded.text
        server = self.server
        content_type = server.content_type(fs)
        if server.injects_reload(content_type):
            if server.reload_corrupts(data, content_type, decoded.codec, decoded.wide):
                self.add(
                    "DS503",
                    rel,
                    "page is UTF-32, or UTF-16 without a byte-order mark: "
                    "the reload script would be inserted as ASCII bytes and corrupt it",
                )
            elif text.strip() and server.reload_appended_at_end(text):
                self.add(
                    "DS501",
                    rel,
                    "no </body> or </head>: --reload appends its script after the end",
                )
        if decoded.guessed:  # windows-1252: never wide, so never DS503 as well
            self.add("DS502", rel, "page is not UTF-8 and declares no charset: browsers guess it")
        if self.secure is not None:
            self.secure.check(rel, text)
        parser = PageParser()
        parser.feed(text)
        parser.close()
        base: str | None = server.url_for(url)
        if parser.base is not None:
            base = join_url(base, clean_url(parser.base), keep_query=True)
        spa_entry = server.spa_entry is not None and fs == server.spa_entry and parser.base is None
        for ref in parser.refs:
            self.check_ref(rel, ref, base, spa_entry)

    def check_stylesheet(self, fs: str, url: str, rel: str) -> None:
        """A stylesheet at ``fs``, served at the decoded URL path ``url``."""
        try:
            with open(fs, "rb") as sheet:
                text = sheet.read().decode("utf-8", "replace")
        except OSError:
            return
        base = self.server.url_for(url)
        for ref in css_references(text):
            self.check_ref(rel, ref, base, False)

    def check_ref(self, rel: str, ref: Ref, base: str | None, spa_entry: bool) -> None:
        """Resolve one reference as the browser, then the server, would."""
        raw = clean_url(ref.url)
        if not raw or raw.startswith("#") or any(mark in raw for mark in TEMPLATE_MARKS):
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
                f"{shown} is not found: --spa answers it with {self.server.spa_fallback}, "
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
        self, rel: str, ref: Ref, raw: str, base: str | None, url_path: str, outcome: Outcome
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
            suggestion = self.server.suggest(url_path)
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

    def _check_type(self, rel: str, ref: Ref, outcome: Outcome) -> None:
        """Whether the type the server sends is one the browser accepts for this use."""
        served = outcome.content_type
        if served is None or outcome.answered_by == "cgi":
            return
        essence = served.split(";", 1)[0].strip().lower()
        shown = ref.url.strip()
        kind = ref.kind
        line = ref.line
        if kind == "module" and essence not in JS_TYPES:
            self.add("DS401", rel, f"{shown} is served as {served}, not JavaScript", line)
        elif kind == "script" and essence not in JS_TYPES:
            self.add("DS402", rel, f"{shown} is served as {served}, not JavaScript", line)
        elif kind == "style" and essence != "text/css":
            self.add("DS403", rel, f"{shown} is served as {served}, not text/css", line)
        elif kind == "font" and not (essence.startswith("font/") or essence in _FONT_TYPES):
            self.add("DS405", rel, f"{shown} is served as {served}, not a font type", line)
        elif kind == "manifest" and essence not in _MANIFEST_TYPES:
            self.add("DS406", rel, f"{shown} is served as {served}, not JSON", line)
        elif (
            kind == "page"
            and essence == "application/octet-stream"
            and outcome.fs_path not in self.secrets  # never "rename config.env to .txt"
        ):
            self.add("DS407", rel, f"{shown} is served as {served}: browsers download it", line)


def _same_but_case(suggestion: str, url_path: str) -> bool:
    wanted = urllib.parse.unquote(url_path).rstrip("/")
    found = urllib.parse.unquote(suggestion).rstrip("/")
    return found != wanted and found.lower() == wanted.lower()
