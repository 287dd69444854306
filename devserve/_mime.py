"""Content types that do not depend on what the operating system's registry says.

Browsers refuse module scripts, wasm and stylesheets served with the wrong type, and
the system tables (``/etc/mime.types``, the Windows registry) disagree from machine
to machine, so the types web pages depend on are fixed here. The system table is
still consulted for everything else.
"""

from __future__ import annotations

import mimetypes
import posixpath

# Compression suffixes map to their own type, as the documented handler's
# ``extensions_map`` does (a .tar.gz is served as application/gzip, not as tar).
ENCODINGS_MAP: dict[str, str] = {
    ".gz": "application/gzip",
    ".Z": "application/octet-stream",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
}

WEB_TYPES: dict[str, str] = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".jsonld": "application/ld+json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".xml": "text/xml",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".vtt": "text/vtt",
}

# mimetypes reads the system tables once, here, not on a request.
_SYSTEM = mimetypes.MimeTypes()


def guess_type(
    path: str, overrides: dict[str, str], default: str = "application/octet-stream"
) -> str:
    """The content type for ``path``: the overrides, then the web table, then the system's.

    ``overrides`` is tried with the suffix as written, then lower-cased (the
    documented ``extensions_map`` rule); unknown files get ``default``.
    """
    ext = posixpath.splitext(path)[1]
    if ext in overrides:
        return overrides[ext]
    lower = ext.lower()
    if lower in overrides:
        return overrides[lower]
    known = WEB_TYPES.get(lower)
    if known is not None:
        return known
    guess, _ = _SYSTEM.guess_type(path)
    return guess or default
