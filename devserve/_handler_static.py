"""SimpleHTTPRequestHandler: files, listings, validators and ranges.

Part of the documented API re-exported by `devserve.server`; see there. What a
path answers is `devserve._files.locate`'s decision and how a file is answered
is `devserve._static_rules.answer_file`'s; this class sends those decisions
through the documented hooks.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import sys
import warnings
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import IO, Any, ClassVar, cast

from devserve._files import FILES, Found, Policy, list_entries, locate
from devserve._handler_base import BaseHTTPRequestHandler, Body, __version__
from devserve._io import OpenFile, SocketWriter, file_reader, layout_body
from devserve._listing import render_listing
from devserve._mime import ENCODINGS_MAP
from devserve._mime import guess_type as _guess_type
from devserve._paths import SymlinkPolicy, url_to_fs_path
from devserve._static_rules import (
    Conditions,
    answer_file,
    directory_location,
    validators,
)

# =========================================================================== static files


class SimpleHTTPRequestHandler(BaseHTTPRequestHandler):
    """Serve files from ``directory`` (documented).

    Beyond the stdlib: ETag/If-None-Match, If-Match/If-Unmodified-Since, byte
    ranges (single and multipart) with If-Range, zero-copy bodies, web-correct
    MIME types, and the ``follow_symlinks`` policy (links must stay inside the
    root by default, where the stdlib follows every link).
    """

    server_version = "SimpleHTTP/" + __version__
    index_pages: ClassVar[tuple[str, ...]] = ("index.html", "index.htm")
    extensions_map: ClassVar[dict[str, str]] = dict(ENCODINGS_MAP)
    # The type sent when none can be guessed (Python 3.15).
    default_content_type: ClassVar[str] = "application/octet-stream"
    # "inside" (default): follow a link only when its target stays inside the
    # served directory; "always": the stdlib's behaviour; "never": no links.
    follow_symlinks: SymlinkPolicy = "inside"
    # devserve's options; the defaults keep the documented behaviour.
    show_hidden: bool = True  # False: dotfiles are neither listed nor served
    list_directories: bool = True  # False: a directory without index is 404
    spa_fallback: str | None = None  # e.g. "index.html" for single-page apps
    # What answered the last request: file, index, listing, spa, redirect, cgi.
    answered_by = ""
    # devserve's site answers as this class does (see devserve._loop.reproduces).
    _site_base = True
    extra_response_headers: tuple[tuple[str, str], ...] | None
    # The file being answered, while send_head's body is copied (copyfile's size hint).
    _opened: tuple[OpenFile, int] | None = None
    # The listing send_head found, for list_directory (the directory it checked).
    _listing: Found | None = None

    def __init__(
        self,
        *args: Any,
        directory: str | os.PathLike[str] | None = None,
        extra_response_headers: Iterable[tuple[str, str]] | None = None,
        response_headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if directory is None:
            directory = os.getcwd()
        self.directory = os.fspath(directory)
        if response_headers is not None:
            warnings.warn(
                "response_headers is deprecated: use extra_response_headers, "
                "a sequence of (name, value) pairs (Python 3.15)",
                DeprecationWarning,
                stacklevel=2,
            )
            if extra_response_headers is None:
                extra_response_headers = response_headers.items()
        self.extra_response_headers = (
            None if extra_response_headers is None else tuple(extra_response_headers)
        )
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        """Serve a GET: headers from send_head, then the body via copyfile (documented)."""
        self._hold_headers = True
        self._opened = None
        f = self.send_head()
        if f:
            try:
                self.copyfile(f, self.wfile)
            finally:
                f.close()
                self._opened = None

    def do_HEAD(self) -> None:
        """Serve a HEAD: the headers a GET would get (documented)."""
        self._hold_headers = True
        f = self.send_head()
        if f:
            f.close()

    def send_head(self) -> Body | None:
        """Send the status and headers for the request; return the body to copy, or None.

        Keeps the documented contract (redirect for a directory without a slash,
        index pages, listing, 404, If-Modified-Since → 304).
        """
        self.answered_by = ""
        self._discard_body()
        path = self.translate_path(self.path)
        found = locate(path, self.path, self.headers.get("Accept"), self._policy(), FILES)
        kind = found.kind
        if kind == "redirect":
            self.answered_by = kind
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", directory_location(self.path) or self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if kind == "listing":
            self.answered_by = kind
            self._listing = found
            try:
                return self.list_directory(found.path)
            finally:
                self._release_listing()
        if kind == "missing":
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        self.answered_by = kind
        return self._send_file(found, self.guess_type(found.path))

    def _policy(self) -> Policy:
        """The serving policies this handler's attributes describe."""
        return Policy(
            self.directory,
            self.follow_symlinks,
            self.show_hidden,
            tuple(self.index_pages),
            self.list_directories,
            self.spa_fallback,
        )

    def _discard_body(self) -> None:
        """Read and drop a body sent with GET or HEAD; a file server has no use for it.

        Left unread, its bytes would be parsed as the next request on a kept-alive
        connection (request smuggling). A large or chunked body closes the
        connection instead of being read.
        """
        framing = self._framing
        if framing.chunked:
            self.close_connection = True
        elif framing.length:
            if framing.length <= _DISCARD_LIMIT:
                self.rfile.read(framing.length)
            else:
                self.close_connection = True

    def _send_file(self, found: Found, ctype: str) -> Body | None:
        """Answer a file ``locate`` found: 200, 206, 304, 412 or 416."""
        st = found.st
        assert st is not None
        f = file_reader(found.fd, found.data, found.path)
        try:
            answer = answer_file(
                str(self.command),
                Conditions.from_headers(self.headers.get),
                validators(st.st_size, st.st_mtime_ns, st.st_ino, self.date_time_string),
                st.st_size,
                ctype,
                _boundary,
            )
            if answer.status == HTTPStatus.PRECONDITION_FAILED:
                f.close()
                self.send_error(HTTPStatus.PRECONDITION_FAILED)
                return None
            self.send_response(answer.status)
            for name, value in answer.fields:
                self.send_header(name, value)
            if answer.status == HTTPStatus.OK:
                self._send_extra_response_headers()
            self.end_headers()
        except BaseException:
            f.close()
            raise
        body = layout_body(f, answer.parts, st.st_size)
        if body is None:
            f.close()
        elif body is f:
            self._opened = (f, st.st_size)
        return body

    def _send_extra_response_headers(self) -> None:
        """The ``extra_response_headers`` given to the handler (Python 3.15), on 200 only."""
        for name, value in self.extra_response_headers or ():
            self.send_header(name, value)

    def list_directory(self, path: str | os.PathLike[str]) -> Body | None:
        """Send the headers of a listing of ``path``; return its body (documented)."""
        listing = self._listing_page(path)
        if listing is None:
            return None
        body, encoding = listing
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", f"text/html; charset={encoding}")
        self.send_header("Content-Length", str(len(body)))
        self._send_extra_response_headers()
        self.end_headers()
        return io.BytesIO(body)

    def _listing_page(self, path: str | os.PathLike[str]) -> tuple[bytes, str] | None:
        """The listing page of ``path`` and its encoding; answers 404 itself if unreadable.

        The directory send_head checked is the one listed (its open descriptor),
        whatever the name points to by now.
        """
        policy = self._policy()
        found = self._listing
        try:
            if found is not None and found.path == os.fspath(path):
                entries = found.entries
                if entries is None:
                    assert found.fd is not None
                    assert found.st is not None
                    entries = list_entries(found.path, found.fd, found.st, policy, FILES)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
                try:
                    entries = list_entries(os.fspath(path), fd, os.fstat(fd), policy, FILES)
                finally:
                    os.close(fd)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "No permission to list directory")
            return None
        encoding = sys.getfilesystemencoding()
        return render_listing(self.path, list(entries), encoding), encoding

    def _release_listing(self) -> None:
        found, self._listing = self._listing, None
        if found is not None and found.fd is not None:
            os.close(found.fd)

    def translate_path(self, path: str) -> str:
        """Map a URL path to a filesystem path below ``directory`` (documented)."""
        return url_to_fs_path(path, self.directory)

    def copyfile(self, source: Body, outputfile: Body) -> None:
        """Copy ``source`` to ``outputfile`` (documented); zero-copy to the socket."""
        if isinstance(outputfile, SocketWriter):
            opened = self._opened
            size = opened[1] if opened is not None and opened[0] is source else None
            outputfile.send_body(source, size)
        else:
            shutil.copyfileobj(cast(IO[bytes], source), cast(IO[bytes], outputfile))

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        """The content type of ``path``: ``extensions_map`` first, then web defaults."""
        return _guess_type(os.fspath(path), self.extensions_map, self.default_content_type)


def _boundary() -> str:
    return secrets.token_hex(12)


# Bodies sent with GET/HEAD up to this size are read and dropped; larger ones
# close the connection.
_DISCARD_LIMIT = 64 * 1024
