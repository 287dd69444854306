"""The server as `devserve check` sees it: what it would answer, asked of its own code.

`handler_class` builds the handler class with the server's own
`serving.make_handler` from the `ServeConfig` that `devserve serve` (or `cgi`)
would build from the same flags. `ServerModel` puts questions to one instance
of it that never sees a socket: its documented hooks (`translate_path`,
`guess_type`, `is_cgi`, `is_executable`, `is_python`), the helpers behind them
(`_may_serve`, `_is_app_route`, `_listed`), and the server's pure functions
(`_cgi.locate_script`, `_cgi.url_for_decoded`, `_cgi.nobody_uid`/`nobody_gid`,
`_paths.is_hidden`/`is_within`, `_suggest.suggest_path`, and `reload.inject`'s
`should_inject`, `charset_of`, `page_encoding` and `insertion_index`). It is
the only module of `devserve.check` that asks the server how it serves; the
others ask it, and import from the server only neutral helpers (the
`_paths.is_within` path test, `_cgi.shebang` to read a ``#!`` line).

Rules still copied here, because the server has no function that answers them
yet (each copy is named after the server code it mirrors, and is to be replaced
by a call when that code becomes a pure function):

1. `ServerModel._resolve` mirrors `SimpleHTTPRequestHandler.send_head`
   (`devserve/_static.py`), preceded by `CGIHTTPRequestHandler.send_head`
   (`devserve/_gateway.py`): a CGI path runs the script; otherwise the target
   is opened; a folder without a trailing slash redirects (followed here, as a
   browser does), then `index_pages` answer in order, then the listing unless
   `list_directories` is off; anything but a regular file, and a file asked for
   with a trailing slash, is 404.
2. `ServerModel.serves_file` is the ``S_ISREG`` test of `send_head` (`_static.py`),
   for the entries of the walk: FIFOs, sockets and devices are never served.
3. `ServerModel._servable` mirrors `SimpleHTTPRequestHandler._open_servable`
   (`_static.py`): a NUL in the path is 404, the ``os.open`` is modelled by
   ``os.stat`` and ``os.access(R_OK)``, then `_may_serve` is asked.
4. `ServerModel._not_found` mirrors `SimpleHTTPRequestHandler._not_found`
   (`_static.py`): the `spa_fallback` file, joined to the root
   (`ServerModel.spa_entry`), answers when `_is_app_route` says so and it is a
   servable regular file.
5. `ServerModel._resolve_cgi` mirrors the script lookup of
   `CGIHTTPRequestHandler.run_cgi` (`_gateway.py`): a decoded URL reaches the
   disk as ``translate_path(url_for_decoded(url))``, `locate_script` descends
   into ``os.path.isdir`` folders, a script `_may_serve` refuses or that does
   not exist is 404, one that is not a plain file 403.
6. `ServerModel.script_not_executable` mirrors `run_cgi`'s 403 for a script
   that is not executable (``have_fork or not is_python``, then `is_executable`).
7. `ServerModel.script_folder` and `ServerModel.script_search_path` mirror the
   process `run_cgi` starts (`_gateway.py`): its working folder is the script's
   own, its ``PATH`` is `cgi_extra_env`'s, else the server's own when
   `cgi_pass_env` lets it through (the base `_cgi.cgi_environment` starts from).
8. `ServerModel.script_user` mirrors `CGIHTTPRequestHandler._launch`
   (`_gateway.py`): a server running as root runs scripts as nobody's uid and gid.
9. `ServerModel.listed` asks `_listed`, the listing's rule (`_static.py`), which
   names the walk may enter: it agrees with the hidden-file policy of
   `_may_serve` (both are ``show_hidden or not is_hidden_name``) at one call per
   entry, where `_may_serve` would resolve every path. `ServerModel.suggest`
   uses it as the hidden-name filter of the "did you mean" that
   `serving.make_handler`'s ``send_error`` builds for a 404.
10. `ServerModel.is_inside` is the "inside" test of `_paths.symlink_allowed`
    (the resolved path is within the resolved root), for the wording of symlink
    findings and which linked folders are walked; whether a link is served is
    always asked of `_may_serve`.
11. `ServerModel.url_for` is the inverse of `_paths.url_to_fs_path` for the
    names the walk yields: ``translate_path(url_for(u)) == root + u``.
12. `served_directory` repeats the ``--cgi-dir`` validation of `serving.create_server`
    (`serving.py`); the folder itself is checked by `serving.check_directory`.
13. `read_watch_limit` mirrors the reload watcher (`reload/watcher.py`):
    `ChangeWatcher._watch` falls back to polling when the inotify watch limit
    (read where `watch_limit_hint` reads it) is reached, one watch per folder.

Invariants:
- No request is handled and no socket opened: the probe only maps paths,
  applies policies and guesses types. Nothing is written anywhere.
- `ServerModel.resolve` is cached per (path, navigation): a tree is assumed not
  to change during one check.
"""

from __future__ import annotations

import email.message
import os
import stat
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from devserve import _cgi
from devserve._paths import is_hidden, is_within
from devserve._suggest import suggest_path
from devserve.check.report import CheckConfig, CheckError
from devserve.reload import inject

if TYPE_CHECKING:
    from devserve.server import CGIHTTPRequestHandler, SimpleHTTPRequestHandler


def served_directory(config: CheckConfig) -> str:
    """The absolute folder `devserve serve` would serve; CheckError for bad flags."""
    from devserve import serving

    try:
        root = str(serving.check_directory(config.directory))
    except serving.ServeError as error:
        raise CheckError(str(error)) from None
    for directory in config.cgi_directories:  # copy 12
        if not directory.startswith("/") or directory == "/":
            raise CheckError(f"--cgi-dir must be a URL folder like /cgi-bin, not {directory!r}")
    return root


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


def read_watch_limit() -> int | None:
    """The per-user inotify watch limit, or None where there is none to read (copy 13)."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches", "rb") as limit:
            return int(limit.read().strip())
    except (OSError, ValueError):
        return None


class Outcome(NamedTuple):
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
NAVIGATION_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class ServerModel:
    """Answers "what would the server do with this?" with the handler's own hooks."""

    def __init__(self, handler: type[SimpleHTTPRequestHandler], root: str) -> None:
        from devserve.server import CGIHTTPRequestHandler

        self.handler = handler
        self.root = root
        self.real_root = os.path.realpath(root)
        # A handler instance that never sees a socket: only its path, policy and
        # type hooks are called, with the attributes those hooks read.
        self.probe = handler.__new__(handler)
        self.probe.directory = root
        self._cgi_probe: CGIHTTPRequestHandler | None = None
        self.cgi_directories: list[str] = []
        if isinstance(self.probe, CGIHTTPRequestHandler):
            self._cgi_probe = self.probe
            self.cgi_directories = list(self.probe.cgi_directories)
        self.spa_fallback = handler.spa_fallback
        # The page that answers app routes under --spa (copy 4).
        self.spa_entry = os.path.join(root, handler.spa_fallback) if handler.spa_fallback else None
        self._accept: dict[bool, email.message.Message] = {}
        for navigation, accept in ((True, NAVIGATION_ACCEPT), (False, "*/*")):
            headers = email.message.Message()
            headers["Accept"] = accept
            self._accept[navigation] = headers
        self._cache: dict[tuple[str, bool], Outcome] = {}

    @classmethod
    def for_config(cls, config: CheckConfig, root: str) -> ServerModel:
        """The server `devserve serve` (or `cgi`) would run with ``config``'s flags."""
        return cls(handler_class(config, root), root)

    # -- policies, types and names

    def may_serve(self, fs_path: str) -> bool:
        """The hidden-file and symlink policies, exactly as the handler applies them."""
        return self.probe._may_serve(fs_path)

    def content_type(self, fs_path: str) -> str:
        return self.probe.guess_type(fs_path)

    def listed(self, name: str) -> bool:
        """Whether a folder entry of this name may be served at all (copy 9)."""
        return self.probe._listed(name)

    def needs_show_hidden(self, rel: str) -> bool:
        """Whether the hidden-file policy refuses ``rel`` (relative to the root) by default."""
        return is_hidden(os.path.join(self.root, rel), self.root)

    def is_inside(self, real: str) -> bool:
        """Whether a resolved path is inside the resolved root (copy 10)."""
        return is_within(real, self.real_root)

    @staticmethod
    def serves_file(entry: os.DirEntry[str] | os.stat_result) -> bool:
        """Whether a walked entry, or a link's target, is sent as a file (copy 2).

        A DirEntry is asked without a stat and without following links; it may
        raise OSError.
        """
        if isinstance(entry, os.stat_result):
            return stat.S_ISREG(entry.st_mode)
        return entry.is_file(follow_symlinks=False)

    @staticmethod
    def url_for(decoded: str) -> str:
        """The URL path the server maps to the decoded path ``decoded`` (copy 11)."""
        return urllib.parse.quote(decoded, safe="/", errors="surrogatepass")

    def fs_path(self, decoded: str) -> str:
        """Where the server looks on disk for the decoded URL path ``decoded``."""
        return self.probe.translate_path(self.url_for(decoded))

    def suggest(self, url_path: str) -> str | None:
        """The "did you mean" of the server's 404 for ``url_path`` (copy 9)."""
        return suggest_path(url_path, self.root, self.listed)

    # -- what a GET answers

    def resolve(self, url_path: str, navigation: bool) -> Outcome:
        """What a GET of ``url_path`` (no query, no fragment) gets; redirects followed."""
        key = (url_path, navigation)
        outcome = self._cache.get(key)
        if outcome is None:
            outcome = self._resolve(url_path, navigation)
            self._cache[key] = outcome
        return outcome

    def _resolve(self, url_path: str, navigation: bool) -> Outcome:
        """Copy 1: the order of send_head."""
        directory = self.cgi_directory(url_path)
        if directory is not None:
            return self._resolve_cgi(url_path, directory)
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
                    return Outcome("ok", "index", index, self.content_type(index))
            if not self.handler.list_directories:
                return self._not_found(url_path, navigation, "no-listing")
            return Outcome("ok", "listing", None, "text/html")
        if not self.serves_file(opened) or path.endswith("/"):
            return self._not_found(url_path, navigation, "missing")
        return Outcome("ok", "file", path, self.content_type(path))

    def _servable(self, path: str) -> os.stat_result | str:
        """The stat of ``path`` if the server would open it, else why not (copy 3)."""
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

    def _not_found(self, url_path: str, navigation: bool, why: str) -> Outcome:
        """404, unless the single-page-app fallback answers (copy 4)."""
        if self.spa_entry is not None and self._is_app_route(url_path, navigation):
            found = self._servable(self.spa_entry)
            if not isinstance(found, str) and stat.S_ISREG(found.st_mode):
                return Outcome("ok", "spa", self.spa_entry, self.content_type(self.spa_entry))
        return Outcome(why)

    def _is_app_route(self, url_path: str, navigation: bool) -> bool:
        self.probe.path = url_path
        self.probe.headers = self._accept[navigation]
        return self.probe._is_app_route()

    # -- CGI

    def cgi_directory(self, url_path: str) -> str | None:
        """The CGI directory ``url_path`` lies in, as the handler's `is_cgi` finds it."""
        probe = self._cgi_probe
        if probe is None:
            return None
        probe.path = url_path
        return probe.cgi_info[0] if probe.is_cgi() else None

    def is_cgi_folder(self, decoded: str) -> bool:
        """Whether the folder at the decoded URL path ``decoded`` is a CGI directory."""
        return self.cgi_directory(self.url_for(decoded) + "/") == decoded

    def _resolve_cgi(self, url_path: str, directory: str) -> Outcome:
        """The script a CGI path runs (copy 5)."""

        def fs_path(decoded_url: str) -> str:
            return self.probe.translate_path(_cgi.url_for_decoded(decoded_url))

        where = _cgi.locate_script(url_path, directory, lambda url: os.path.isdir(fs_path(url)))
        if where is None:
            return Outcome("missing")
        script = fs_path(where.script_name)
        if not self.may_serve(script) or not os.path.exists(script):
            return Outcome("missing")
        if not os.path.isfile(script):
            return Outcome("forbidden")
        return Outcome("ok", "cgi", script, None)

    def script_not_executable(self, script: str) -> bool:
        """Whether the gateway refuses ``script`` (403) for want of an execute bit (copy 6)."""
        probe = self._cgi_probe
        if probe is None:
            return False  # no CGI directories: nothing runs as a script
        return (probe.have_fork or not probe.is_python(script)) and not probe.is_executable(script)

    @staticmethod
    def script_folder(script: str) -> str:
        """The working folder a script runs in: its own (copy 7)."""
        return os.path.dirname(script)

    def script_search_path(self) -> str:
        """The ``PATH`` a script is given, which ``#!/usr/bin/env name`` searches (copy 7)."""
        probe = self._cgi_probe
        if probe is not None and "PATH" in probe.cgi_extra_env:
            return probe.cgi_extra_env["PATH"]
        if probe is None or probe.cgi_pass_env is None or "PATH" in probe.cgi_pass_env:
            return os.environ.get("PATH", os.defpath)
        return os.defpath

    @staticmethod
    def script_user(runs_as_root: bool | None) -> tuple[int, int] | None:
        """(uid, gid) scripts run as, or None for the server's own user (copy 8).

        ``runs_as_root`` None: whether this process is root.
        """
        if runs_as_root is None:
            runs_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        return (_cgi.nobody_uid(), _cgi.nobody_gid()) if runs_as_root else None

    # -- live reload

    @staticmethod
    def injects_reload(content_type: str) -> bool:
        """Whether ``--reload`` puts its script into a response of this type."""
        return inject.should_inject(content_type)

    @staticmethod
    def reload_corrupts(data: bytes, content_type: str, codec: str, wide: bool) -> bool:
        """Whether the reload script would corrupt a page a browser decodes with ``codec``.

        The server edits a page in the encoding `inject.page_encoding` picks (a
        byte-order mark, else the Content-Type's charset), or as ASCII bytes when
        it picks none or an ASCII-compatible one. A ``wide`` page (UTF-16, UTF-32)
        survives only when that encoding is the browser's.
        """
        if not wide:
            return False
        edited_as, _ = inject.page_encoding(data, inject.charset_of(content_type))
        return edited_as != codec

    @staticmethod
    def reload_appended_at_end(text: str) -> bool:
        """Whether the reload script would go after a page's last byte (no </body>, </head>).

        `inject.insertion_index` looks at an ASCII stand-in of the text, as
        `inject.inject_html` does for a page it re-encodes: every other character
        becomes one "?", which ends no tag.
        """
        stand_in = text.encode("ascii", "replace")
        return inject.insertion_index(stand_in) == len(stand_in)
