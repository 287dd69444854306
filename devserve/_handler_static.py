"""SimpleHTTPRequestHandler: files, listings, validators and ranges.

Part of the documented API re-exported by `devserve.server`; see there.
"""

from __future__ import annotations

import functools
import io
import os
import secrets
import shutil
import stat
import sys
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from http import HTTPStatus
from typing import IO, Any, ClassVar, cast

from devserve._handler_base import BaseHTTPRequestHandler, Body, __version__
from devserve._io import FileSlice, MemoryFile, MultipartBody, OpenFile, SocketWriter
from devserve._listing import Entry, render_listing
from devserve._mime import ENCODINGS_MAP
from devserve._mime import guess_type as _guess_type
from devserve._paths import (
    SymlinkPolicy,
    is_hidden,
    is_hidden_name,
    symlink_allowed,
    url_to_fs_path,
)
from devserve._protocol import (
    Unsatisfiable,
    etag_matches,
    make_etag,
    parse_http_date,
    parse_ranges,
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
    # "inside" (default): follow a link only when its target stays inside the
    # served directory; "always": the stdlib's behaviour; "never": no links.
    follow_symlinks: ClassVar[SymlinkPolicy] = "inside"
    # devserve's options; the defaults keep the documented behaviour.
    show_hidden: ClassVar[bool] = True  # False: dotfiles are neither listed nor served
    list_directories: ClassVar[bool] = True  # False: a directory without index is 404
    spa_fallback: ClassVar[str | None] = None  # e.g. "index.html" for single-page apps
    # What answered the last request: file, index, listing, spa, redirect, cgi.
    answered_by = ""
    # An event-loop server (devserve._loop) reproduces this class's behaviour.
    _replay_base = True
    _opened: tuple[OpenFile, os.stat_result] | None = None
    # The small-file cache key of a file being answered 200 in full: an event-loop
    # server may record the response to replay it (see devserve._loop).
    _replayable: tuple[str, str, str, bool] | None = None

    def __init__(
        self,
        *args: Any,
        directory: str | os.PathLike[str] | None = None,
        response_headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if directory is None:
            directory = os.getcwd()
        self.directory = os.fspath(directory)
        self.response_headers = response_headers
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
        self._replayable = self._replay_pending = None
        self._discard_body()
        path = self.translate_path(self.path)
        cached = self._from_cache(path)
        if cached is not None:
            self.answered_by = "file"
            self._replayable = cached[2]
            return self._send_file_head(cached[0], cached[1], self.guess_type(path))
        # Open first, then look: one open and one fstat answer "exists? directory?
        # regular file?" and the symlink check reads where the open descriptor
        # really points. Every syscall here lets the GIL go, so fewer is faster.
        opened = self._open_servable(path)
        if opened is None:
            return self._not_found()
        fd, st = opened
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            parts = urllib.parse.urlsplit(self.path)
            if not parts.path.endswith("/"):
                self.answered_by = "redirect"
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                new_url = urllib.parse.urlunsplit(
                    (parts[0], parts[1], parts[2] + "/", parts[3], parts[4])
                )
                self.send_header("Location", new_url)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            for name in self.index_pages:
                index = os.path.join(path, name)
                opened = self._open_servable(index)
                if opened is not None and stat.S_ISREG(opened[1].st_mode):
                    path, (fd, st) = index, opened
                    self.answered_by = "index"
                    break
                if opened is not None:
                    os.close(opened[0])
            else:
                if not self.list_directories:
                    return self._not_found()
                self.answered_by = "listing"
                return self.list_directory(path)
        if not stat.S_ISREG(st.st_mode) or path.endswith("/"):
            os.close(fd)  # FIFOs and devices are never opened for reading
            return self._not_found()
        return self._serve_opened(path, fd, st, self.answered_by or "file")

    def _discard_body(self) -> None:
        """Read and drop a body sent with GET or HEAD; a file server has no use for it.

        Left unread, its bytes would be parsed as the next request on a kept-alive
        connection (request smuggling). A large or chunked body closes the
        connection instead of being read.
        """
        headers = self.headers
        if "transfer-encoding" in headers:
            self.close_connection = True
            return
        length = headers.get("content-length")
        if length is None:
            return
        length = length.strip()
        if length.isdigit() and int(length) <= _DISCARD_LIMIT:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _open_servable(self, path: str) -> tuple[int, os.stat_result] | None:
        """Open ``path`` if it exists and the policies allow it; None otherwise."""
        if "\x00" in path:
            return None
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (OSError, ValueError):
            return None
        try:
            st = os.fstat(fd)
            if self._may_serve(path, fd):
                return fd, st
        except OSError:
            pass
        os.close(fd)
        return None

    def _cache_key(self, path: str) -> tuple[str, str, str, bool] | None:
        """The small-file cache key, or None when this request must not use the cache."""
        if self.command not in ("GET", "HEAD") or "range" in self.headers or "\x00" in path:
            return None
        return (path, self.directory, self.follow_symlinks, self.show_hidden)

    def _from_cache(
        self, path: str
    ) -> tuple[MemoryFile, os.stat_result, tuple[str, str, str, bool]] | None:
        """The small-file cache's copy of ``path``: one stat instead of open, fstat, check, read."""
        key = self._cache_key(path)
        if key is None:
            return None
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        data = _SMALL_FILES.get(key, st)
        if data is None:
            return None
        return MemoryFile(data, path), st, key

    def _serve_opened(self, path: str, fd: int, st: os.stat_result, kind: str) -> Body | None:
        key = self._cache_key(path) if kind == "file" else None
        if key is not None and st.st_size <= _SMALL_FILES.max_entry:
            data = os.pread(fd, st.st_size, 0)
            if len(data) == st.st_size and stat.S_ISREG(st.st_mode):
                _SMALL_FILES.put(key, st, data)
                self._replayable = key
        f = OpenFile(fd, path)
        self.answered_by = kind
        self._opened = (f, st)
        try:
            return self._send_file_head(f, st, self.guess_type(path))
        except BaseException:
            f.close()
            raise

    def _not_found(self) -> Body | None:
        """404, or the single-page-app entry point for a route the app handles itself."""
        fallback = self.spa_fallback
        if fallback is not None and self._is_app_route():
            path = os.path.join(self.directory, fallback)
            opened = self._open_servable(path)
            if opened is not None and stat.S_ISREG(opened[1].st_mode):
                return self._serve_opened(path, opened[0], opened[1], "spa")
            if opened is not None:
                os.close(opened[0])
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def _is_app_route(self) -> bool:
        """A path the page's router handles: no file suffix, or a browser asking for HTML.

        A missing asset (``/app.js``) stays a 404 instead of turning into HTML.
        """
        last = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
        return "." not in last or "text/html" in self.headers.get("Accept", "")

    def _may_serve(self, path: str, fd: int | None = None) -> bool:
        """Whether the hidden-file and symlink policies let ``path`` be served.

        ``fd``, an open descriptor of ``path``, makes the symlink check one syscall.
        """
        if not self.show_hidden and is_hidden(path, self.directory):
            return False
        try:
            return symlink_allowed(path, self.directory, self.follow_symlinks, fd)
        except (OSError, ValueError):
            return False

    def _send_file_head(self, f: OpenFile, fs: os.stat_result, ctype: str) -> Body | None:
        size = fs.st_size
        etag = make_etag(fs.st_mtime_ns, size, fs.st_ino)
        mtime = int(fs.st_mtime)
        headers = self.headers

        failed = self._precondition_failed(etag, mtime)
        if failed:
            f.close()
            self.send_error(HTTPStatus.PRECONDITION_FAILED)
            return None
        if self._not_modified(etag, mtime):
            f.close()
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self._send_extra_headers()
            self.end_headers()
            return None

        range_header = headers.get("Range") if self.command == "GET" else None
        if range_header is not None and self._range_applies(etag, mtime):
            try:
                ranges = parse_ranges(range_header, size)
            except Unsatisfiable:
                f.close()
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if ranges is not None:
                self.send_response(HTTPStatus.PARTIAL_CONTENT)
                body: Body
                if len(ranges) == 1:
                    body = FileSlice(f, ranges[0].first, ranges[0].length)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Range", ranges[0].content_range(size))
                    self.send_header("Content-Length", str(ranges[0].length))
                else:
                    boundary = secrets.token_hex(12)
                    parts: list[bytes | FileSlice] = []
                    for item in ranges:
                        parts.append(
                            f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\n"
                            f"Content-Range: {item.content_range(size)}\r\n\r\n".encode("latin-1")
                        )
                        parts.append(FileSlice(f, item.first, item.length))
                    parts.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
                    multipart = MultipartBody(parts, f)
                    body = multipart
                    self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
                    self.send_header("Content-Length", str(multipart.length))
                self._send_validators(etag, fs.st_mtime)
                self.end_headers()
                return body

        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", ctype)
        self.send_header("Content-Length", str(size))
        self._send_validators(etag, fs.st_mtime)
        self._offer_replay(fs)
        self.end_headers()
        return f

    def _offer_replay(self, fs: os.stat_result) -> None:
        """Let an event-loop server record this full small-file response (once it is complete)."""
        key, self._replayable = self._replayable, None
        remember = getattr(self.server, "remember_reply", None)
        if key is not None and remember is not None:
            self._replay_pending = (key, SmallFileCache.identity(fs), remember)

    _replay_pending: tuple[tuple[str, str, str, bool], tuple[int, ...], Any] | None = None

    def flush_headers(self) -> None:
        """Keeps the documented contract; hands a replayable header block to the server."""
        pending = self._replay_pending
        if pending is not None:
            self._replay_pending = None
            key, identity, remember = pending
            # The recorded headers describe this version of the file only.
            remember(self, key[0], functools.partial(_SMALL_FILES.get_version, key, identity))
        super().flush_headers()

    def _send_validators(self, etag: str, mtime: float) -> None:
        self.send_header("Last-Modified", self.date_time_string(mtime))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self._send_extra_headers()

    def _send_extra_headers(self) -> None:
        """The ``response_headers`` given to the handler (Python 3.15's --header)."""
        if self.response_headers:
            for name, value in self.response_headers.items():
                self.send_header(name, value)

    def _precondition_failed(self, etag: str, mtime: int) -> bool:
        """RFC 9110 13.2.2 steps 1-2: If-Match, else If-Unmodified-Since."""
        if_match = self.headers.get("If-Match")
        if if_match is not None:
            return not etag_matches(if_match, etag, weak=False)
        since = self.headers.get("If-Unmodified-Since")
        if since is not None:
            limit = parse_http_date(since)
            return limit is not None and mtime > limit
        return False

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """RFC 9110 13.2.2 steps 3-4: If-None-Match, else If-Modified-Since (documented)."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return etag_matches(if_none_match, etag, weak=True)
        since = self.headers.get("If-Modified-Since")
        if since is not None:
            limit = parse_http_date(since)
            return limit is not None and mtime <= limit
        return False

    def _range_applies(self, etag: str, mtime: int) -> bool:
        """If-Range: the range is honoured only if the validator still matches."""
        if_range = self.headers.get("If-Range")
        if if_range is None:
            return True
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            return if_range == etag
        date = parse_http_date(if_range)
        return date is not None and int(date) == mtime

    def list_directory(self, path: str | os.PathLike[str]) -> Body | None:
        """Send the headers of a listing of ``path``; return its body (documented)."""
        listing = self._listing_page(path)
        if listing is None:
            return None
        body, encoding = listing
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-type", f"text/html; charset={encoding}")
        self.send_header("Content-Length", str(len(body)))
        self._send_extra_headers()
        self.end_headers()
        return io.BytesIO(body)

    def _listing_page(self, path: str | os.PathLike[str]) -> tuple[bytes, str] | None:
        """The listing page of ``path`` and its encoding; answers 404 itself if unreadable."""
        try:
            with os.scandir(path) as it:
                entries = [_entry(item) for item in it if self._listed(item.name)]
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "No permission to list directory")
            return None
        encoding = sys.getfilesystemencoding()
        return render_listing(self.path, entries, encoding), encoding

    def _listed(self, name: str) -> bool:
        """Whether a directory entry appears in listings (hook for subclasses)."""
        return self.show_hidden or not is_hidden_name(name)

    def translate_path(self, path: str) -> str:
        """Map a URL path to a filesystem path below ``directory`` (documented)."""
        return url_to_fs_path(path, self.directory)

    def copyfile(self, source: Body, outputfile: Body) -> None:
        """Copy ``source`` to ``outputfile`` (documented); zero-copy to the socket."""
        if isinstance(outputfile, SocketWriter):
            opened = self._opened
            size = opened[1].st_size if opened is not None and opened[0] is source else None
            outputfile.send_body(source, size)
        else:
            shutil.copyfileobj(cast(IO[bytes], source), cast(IO[bytes], outputfile))

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        """The content type of ``path``: ``extensions_map`` first, then web defaults."""
        return _guess_type(os.fspath(path), self.extensions_map)


def _entry(item: os.DirEntry[str]) -> Entry:
    try:
        is_dir = item.is_dir()
    except OSError:
        is_dir = False
    return Entry(item.name, is_dir, item.is_symlink())


class SmallFileCache:
    """Contents of small files that already passed the serving policies, by path.

    An entry is used only while ``os.stat(path)`` still reports the same device,
    inode, size, mtime and ctime: any write, replacement or symlink swap to
    another file is a miss, and the full open-and-check path runs again. This
    turns a hit into one stat where a miss costs open, fstat, a symlink check, a
    read and a close; on a busy threaded server each syscall is a GIL round trip.
    """

    def __init__(self, max_bytes: int = 6 << 20, max_entry: int = 256 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._entries: OrderedDict[object, tuple[tuple[int, ...], bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @staticmethod
    def identity(st: os.stat_result) -> tuple[int, ...]:
        """What must stay the same for a cached copy to be used."""
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)

    def get(self, key: object, st: os.stat_result) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] != self.identity(st):
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def get_version(
        self, key: object, identity: tuple[int, ...], st: os.stat_result
    ) -> bytes | None:
        """The cached bytes if ``st`` (a fresh stat) is still exactly the version ``identity``."""
        if self.identity(st) != identity:
            return None
        return self.get(key, st)

    def put(self, key: object, st: os.stat_result, data: bytes) -> None:
        if len(data) > self.max_entry or not stat.S_ISREG(st.st_mode):
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (self.identity(st), data)
            self._size += len(data)
            while self._size > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: object) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= len(entry[1])


_SMALL_FILES = SmallFileCache()

# Bodies sent with GET/HEAD up to this size are read and dropped; larger ones
# close the connection.
_DISCARD_LIMIT = 64 * 1024

# O_NONBLOCK keeps a FIFO from blocking the open (it is refused right after); it has
# no effect on regular files, so the descriptor is read as usual.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
