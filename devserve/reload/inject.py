"""Put the live-reload script into HTML: pure functions over bytes and strings.

Invariants:
- Only the snippet is added: every byte of the page is kept, in order, and the
  snippet goes before the last ``</body>``, else before the first ``</head>``,
  else at the end (`inject_html`; `StreamInjector` for bodies that stream, which
  has no ``</head>`` fallback because it cannot look ahead).
- The snippet is encoded the way the page is: ASCII-compatible encodings (UTF-8,
  Latin-1, Shift_JIS...) are edited as bytes, UTF-16 pages are decoded and
  re-encoded, and a page that cannot be edited safely raises `CannotInject`
  (the caller serves it unchanged and says why).
- Nothing from the request reaches the snippet except ``../`` repeated
  (`root_prefix`), so injection adds no way to inject markup.
"""

from __future__ import annotations

import codecs
import functools
import json
from importlib import resources

# The URL folder the server reserves for live reload, below the served root.
RESERVED_PREFIX = "/__devserve__/"
EVENTS_PATH = RESERVED_PREFIX + "events"
WORKER_PATH = RESERVED_PREFIX + "worker.js"

# Pages larger than this are served as they are (the body is read into memory).
MAX_INJECT_SIZE = 16 * 1024 * 1024
# Response fields that described a page's original body, or let it be cached, and no
# longer hold once the script is in it (the page goes out framed anew, with no-store).
STALE_AFTER_INJECTION = frozenset(
    {"content-length", "etag", "last-modified", "cache-control", "expires"}
)

_HTML_TYPES = frozenset({"text/html"})
# What may follow a tag name: a tag "</body" must not match "</bodyguard>".
_TAG_END = frozenset(b" \t\n\r\f/>")
# Labels browsers read as UTF-16 (the WHATWG Encoding Standard maps "utf-16" to LE).
_UTF16_LABELS = {
    "utf-16": "utf-16-le",
    "utf-16le": "utf-16-le",
    "utf-16-le": "utf-16-le",
    "utf-16be": "utf-16-be",
    "utf-16-be": "utf-16-be",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)


class CannotInject(Exception):
    """The page cannot take the script; the message says why, for the log."""


def _load_script(name: str) -> str:
    """A script shipped beside this module, with whole-line comments and indentation gone.

    The scripts are written for this: no block comments, no multi-line strings.
    """
    text = resources.files(__package__ or "devserve.reload").joinpath(name).read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    compact = "\n".join(line for line in lines if line and not line.startswith("//"))
    if not compact.isascii() or "</" in compact or "%" in compact:
        raise RuntimeError(f"{name} must be ASCII without '</' or '%'")  # pragma: no cover
    return compact


CLIENT_SCRIPT = _load_script("client.js")
WORKER_SCRIPT = _load_script("worker.js").encode("ascii")


def should_inject(content_type: str | None, content_encoding: str | None = None) -> bool:
    """Whether a response with these headers is an HTML page the script can go into.

    Compressed bodies (any Content-Encoding but identity) are left alone.
    """
    if not content_type:
        return False
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        return False
    return content_type.partition(";")[0].strip().lower() in _HTML_TYPES


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type, lower-cased, or None."""
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def root_prefix(request_path: str) -> str:
    """The relative URL from the page at ``request_path`` back to the served root.

    Relative, so the script finds the server behind a proxy that mounts it under
    a prefix, on HTTPS and under any host name: ``/a/b.html`` gives ``../``.
    """
    path = request_path.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):  # absolute-form request target: scheme://host/path
        _, _, rest = path.partition("//")
        path = "/" + rest.partition("/")[2] if rest else "/"
    depth = path.count("/") - 1
    return "../" * depth if depth > 0 else "./"


def reload_snippet(root: str, server_id: str, seq: int, posted: bool = False) -> str:
    """The ``<script>`` element for a page: the client plus what this page was built from.

    ``seq`` is the number of changes the server had seen before the page was read:
    the client reloads when the server has seen more, or is another server. A page
    that ``posted`` (answered a POST) is fetched again with a GET, never resubmitted.
    """
    settings: dict[str, object] = {"root": root, "server": server_id, "seq": seq}
    if posted:
        settings["get"] = True
    config = json.dumps(settings, separators=(",", ":"))
    return f"<script data-devserve-reload>\n{CLIENT_SCRIPT}({config});\n</script>"


@functools.lru_cache(maxsize=64)
def _ascii_compatible(codec: str) -> bool:
    """Whether ASCII text and markup are the same bytes in ``codec`` (stateless codecs only)."""
    if codec.startswith(("utf-16", "utf-32", "utf-7", "iso2022", "hz")):
        return False
    try:
        return "</body></head>".encode(codec) == b"</body></head>"
    except (LookupError, UnicodeError):
        return False


def page_encoding(body: bytes, charset: str | None) -> tuple[str | None, int]:
    """(codec, BOM length) of a page: a BOM wins over the charset (as in browsers).

    The codec is None when any ASCII-compatible encoding will do (unknown or absent
    charset: the page's markup is ASCII either way).
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec, len(bom)
    if charset is None:
        return None, 0
    if charset in _UTF16_LABELS:
        return _UTF16_LABELS[charset], 0
    try:
        return codecs.lookup(charset).name, 0
    except LookupError:
        return None, 0


def _tag_at(text: bytes, index: int, length: int) -> bool:
    after = index + length
    return after >= len(text) or text[after] in _TAG_END


def _last_tag(lowered: bytes, tag: bytes) -> int:
    index = lowered.rfind(tag)
    while index >= 0 and not _tag_at(lowered, index, len(tag)):
        index = lowered.rfind(tag, 0, index)
    return index


def _first_tag(lowered: bytes, tag: bytes) -> int:
    index = lowered.find(tag)
    while index >= 0 and not _tag_at(lowered, index, len(tag)):
        index = lowered.find(tag, index + 1)
    return index


def insertion_index(markup: bytes) -> int:
    """Where the snippet goes in ASCII-compatible markup (see the module invariants)."""
    lowered = markup.lower()  # ASCII-only lowering: the same length, the same offsets
    index = _last_tag(lowered, b"</body")
    if index < 0:
        index = _first_tag(lowered, b"</head")
    return index if index >= 0 else len(markup)


def inject_html(body: bytes, snippet: str, charset: str | None = None) -> bytes:
    """``body`` with ``snippet`` inserted, in the page's own encoding; or CannotInject."""
    codec, bom = page_encoding(body, charset)
    if codec is None or _ascii_compatible(codec):
        index = insertion_index(body)
        return b"".join((body[:index], snippet.encode("ascii"), body[index:]))
    try:
        text = body[bom:].decode(codec)
    except UnicodeDecodeError:
        raise CannotInject(f"not valid {codec}") from None
    # Offsets in the text are found on a stand-in with the same characters, so the
    # ASCII search applies: every non-ASCII character becomes one '?' character.
    stand_in = text.encode("ascii", "replace")
    index = insertion_index(stand_in)
    return body[:bom] + (text[:index] + snippet + text[index:]).encode(codec)


def snippet_bytes(snippet: str, charset: str | None) -> bytes | None:
    """The snippet for a streamed page, or None when the page cannot be edited as bytes."""
    codec, _ = page_encoding(b"", charset)
    if codec is None or _ascii_compatible(codec):
        return snippet.encode("ascii")
    return None


class StreamInjector:
    """Inserts the snippet into an HTML body that arrives in pieces (a CGI script's output).

    Bytes pass through as they come, except from the last ``</body`` seen so far
    (at most ``hold`` bytes are kept back waiting for the end) and the last five
    bytes (a ``</body`` may be split across pieces). At the end, the snippet goes
    before the held ``</body``, or after everything.
    """

    _TAG = b"</body"

    def __init__(self, snippet: bytes, hold: int = 64 * 1024) -> None:
        self._snippet = snippet
        self._hold = hold
        self._pending = b""
        self._done = False

    def feed(self, data: bytes) -> bytes:
        """The bytes that can be sent now."""
        if self._done:
            return data
        pending = self._pending + data
        index = _last_tag(pending.lower(), self._TAG)
        if index >= 0 and len(pending) - index <= self._hold:
            self._pending = pending[index:]
            return pending[:index]
        keep = len(self._TAG) - 1
        self._pending = pending[-keep:]
        return pending[:-keep]

    def finish(self) -> bytes:
        """The rest of the body, with the snippet in it."""
        if self._done:
            return b""
        self._done = True
        pending, self._pending = self._pending, b""
        if pending.lower().startswith(self._TAG) and _tag_at(pending.lower(), 0, len(self._TAG)):
            return self._snippet + pending
        return pending + self._snippet
