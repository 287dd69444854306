"""The server as `devserve check` sees it: what it would answer, asked of its own code.

`server_context` builds, with the server's own `serving.handler_context`, the
frozen context `devserve serve` (or `cgi`) would run with for the same flags;
`ServerModel` asks the functions the server calls with it: `_files.locate`
(what a path answers, with a file table that never reads contents),
`_paths.may_serve` and `_files.listed` (the policies), `Site.content_type`,
the site's 404 suggestions, `_cgi.find_cgi_directory` and
`_handler_cgi.find_script` (the gateway's script lookup), the environment and
user a script is started with (`_handler_cgi.script_base_env`,
`_cgi.cgi_environment`, `_handler_cgi.script_user`), and `reload.inject`'s
`should_inject`, `charset_of`, `page_encoding` and `insertion_index`. It is the
only module of `devserve.check` that asks the server how it serves.

Rules still modelled here rather than asked, each named after the server code it
mirrors:

1. `ServerModel.serves_file` is the regular-file test of `_files.locate`, for
   the entries of the walk: FIFOs, sockets and devices are never served.
2. `ServerModel.script_not_executable` mirrors `run_cgi`'s 403 for a script
   that is not executable (``have_fork or not is_python``, then `is_executable`).
3. `ServerModel.script_folder` is the working folder `run_cgi` starts a
   script in: its own.
4. `ServerModel.is_inside` is the "inside" test of `_paths.may_serve` (the
   resolved path is within the resolved root), for the wording of symlink
   findings and which linked folders are walked.
5. `ServerModel.url_for` is the inverse of `_paths.url_to_fs_path` for the
   names the walk yields: ``url_to_fs_path(url_for(u)) == root + u``.
6. `read_watch_limit` mirrors the reload watcher (`reload/watcher.py`):
   `ChangeWatcher._watch` falls back to polling when the inotify watch limit
   (read where `watch_limit_hint` reads it) is reached, one watch per folder.

Invariants:
- No request is handled and no socket opened: the model only maps paths,
  applies policies and guesses types. Nothing is written anywhere, and no
  file's contents are read to answer where it would be served.
- `ServerModel.resolve` is cached per (path, navigation): a tree is assumed not
  to change during one check.
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from devserve import _cgi
from devserve._files import FileTable, Policy, listed, locate, refusal
from devserve._paths import is_within, may_serve, url_to_fs_path
from devserve.check.report import CheckConfig, CheckError
from devserve.reload import inject

if TYPE_CHECKING:
    from collections.abc import Callable

    from devserve._handler_dev import HandlerContext
    from devserve.config import ServeConfig
    from devserve.events import RequestRecord


def serve_config(config: CheckConfig, root: str) -> ServeConfig:
    """The `ServeConfig` `devserve serve` (or `cgi`) would build from the same flags."""
    from devserve.config import CGIConfig, ServeConfig, ServeError

    try:
        cgi = CGIConfig(directories=config.cgi_directories) if config.cgi_directories else None
        return ServeConfig(
            directory=Path(root),
            spa=config.spa,
            listing=config.listing,
            show_hidden=config.show_hidden,
            follow_symlinks=config.follow_symlinks,
            host_files=config.host_files,
            quiet=True,
            cgi=cgi,
            lan=config.lan,
            bind=config.bind,
            tls_auto=config.tls_auto,
            tls_cert=config.tls_cert,
        )
    except ServeError as error:
        raise CheckError(str(error)) from None


def served_directory(config: CheckConfig) -> str:
    """The absolute folder `devserve serve` would serve; CheckError for bad flags."""
    from devserve import serving

    try:
        root = str(serving.check_directory(config.directory))
    except serving.ServeError as error:
        raise CheckError(str(error)) from None
    serve_config(config, root)  # the flags are checked as the server checks them
    return root


def server_context(config: CheckConfig, root: str) -> HandlerContext:
    """The context the server's handlers and event loop would read, built by the server."""
    from devserve import serving

    return serving.handler_context(serve_config(config, root), Path(root), _Unheard())


class _Unheard:
    """The journal of a server that never runs: nothing is ever reported to it."""

    def answered(self, record: RequestRecord) -> None:
        """Requests are never made."""

    def repeats(self, record: RequestRecord) -> Callable[[float, float], None]:
        """Requests are never made."""
        return lambda when, duration: None

    def error(self, message: str, detail: str = "") -> None:
        """Requests are never made."""

    def failed(self, client: str, detail: str) -> None:
        """Requests are never made."""


def read_watch_limit() -> int | None:
    """The per-user inotify watch limit, or None where there is none to read (copy 6)."""
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
    """Answers "what would the server do with this?" with the server's own functions."""

    def __init__(self, context: HandlerContext) -> None:
        site = context.site
        self.context = context
        self.site = site
        self.policy: Policy = site.policy
        self.root = site.root
        self.real_root = os.path.realpath(self.root)
        self.spa_fallback = self.policy.spa_fallback
        # The page that answers app routes under --spa.
        fallback = self.spa_fallback
        self.spa_entry = os.path.join(self.root, fallback) if fallback is not None else None
        self.cgi = context.cgi
        self.cgi_directories: list[str] = list(self.cgi.directories) if self.cgi else []
        # What `locate` finds, remembered without ever reading a file's contents.
        self._table = FileTable(max_file=-1)
        self._cache: dict[tuple[str, bool], Outcome] = {}

    @classmethod
    def for_config(cls, config: CheckConfig, root: str) -> ServerModel:
        """The server `devserve serve` (or `cgi`) would run with ``config``'s flags."""
        return cls(server_context(config, root))

    # -- policies, types and names

    def may_serve(self, fs_path: str) -> bool:
        """The hidden-file and symlink policies, exactly as the server applies them."""
        policy = self.policy
        return may_serve(fs_path, policy.root, policy.follow_symlinks, policy.show_hidden)

    def content_type(self, fs_path: str) -> str:
        return self.site.content_type(fs_path)

    def listed(self, name: str) -> bool:
        """Whether a folder entry of this name shows in listings (the server's rule)."""
        return listed(name, self.policy)

    def needs_show_hidden(self, rel: str) -> bool:
        """Whether the server would refuse ``rel`` (relative to the root) as hidden by default.

        A link to a hidden file or folder counts: the rule applies to where it leads.
        """
        default = self.policy._replace(show_hidden=False)
        return refusal(os.path.join(self.root, rel), default) == "hidden"

    def is_inside(self, real: str) -> bool:
        """Whether a resolved path is inside the resolved root (copy 4)."""
        return is_within(real, self.real_root)

    @staticmethod
    def serves_file(entry: os.DirEntry[str] | os.stat_result) -> bool:
        """Whether a walked entry, or a link's target, is sent as a file (copy 1).

        A DirEntry is asked without a stat and without following links; it may
        raise OSError.
        """
        if isinstance(entry, os.stat_result):
            return stat.S_ISREG(entry.st_mode)
        return entry.is_file(follow_symlinks=False)

    @staticmethod
    def url_for(decoded: str) -> str:
        """The URL path the server maps to the decoded path ``decoded`` (copy 5)."""
        return urllib.parse.quote(decoded, safe="/", errors="surrogatepass")

    def fs_path(self, decoded: str) -> str:
        """Where the server looks on disk for the decoded URL path ``decoded``."""
        return url_to_fs_path(self.url_for(decoded), self.root)

    def suggest(self, url_path: str) -> str | None:
        """The "did you mean" of the server's 404 for ``url_path``."""
        return self.site.suggestions.suggest(url_path)

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
        directory = self.cgi_directory(url_path)
        if directory is not None:
            return self._resolve_cgi(url_path, directory)
        path = url_to_fs_path(url_path, self.root)
        accept = NAVIGATION_ACCEPT if navigation else "*/*"
        found = locate(path, url_path, accept, self.policy, self._table)
        if found.fd is not None:
            os.close(found.fd)
        kind = found.kind
        if kind == "redirect":
            return self.resolve(url_path + "/", navigation)  # the 301 a browser follows
        if kind == "listing":
            return Outcome("ok", "listing", None, "text/html")
        if kind == "missing":
            why = refusal(path, self.policy)
            return Outcome(why if why in ("hidden", "symlink", "no-listing") else "missing")
        return Outcome("ok", kind, found.path, self.content_type(found.path))

    # -- CGI

    def cgi_directory(self, url_path: str) -> str | None:
        """The CGI directory ``url_path`` lies in, as the gateway's `is_cgi` finds it."""
        if not self.cgi_directories:
            return None
        found = _cgi.find_cgi_directory(_cgi.collapse_url_path(url_path), self.cgi_directories)
        return found[0] if found is not None else None

    def is_cgi_folder(self, decoded: str) -> bool:
        """Whether the folder at the decoded URL path ``decoded`` is a CGI directory."""
        return self.cgi_directory(self.url_for(decoded) + "/") == decoded

    def _resolve_cgi(self, url_path: str, directory: str) -> Outcome:
        """The script a CGI path runs, as the gateway finds it."""
        from devserve._handler_cgi import ScriptRefused, find_script

        root = self.root
        found = find_script(url_path, directory, lambda u: url_to_fs_path(u, root), self.may_serve)
        if isinstance(found, ScriptRefused):
            return Outcome("forbidden" if found.status == 403 else "missing")
        return Outcome("ok", "cgi", found.path, None)

    def script_not_executable(self, script: str) -> bool:
        """Whether the gateway refuses ``script`` (403) for want of an execute bit (copy 2)."""
        from devserve._handler_cgi import CGIHTTPRequestHandler, executable

        if self.cgi is None:
            return False  # no CGI directories: nothing runs as a script
        have_fork = CGIHTTPRequestHandler.have_fork
        return (have_fork or not _cgi.is_python_script(script)) and not executable(script)

    @staticmethod
    def script_folder(script: str) -> str:
        """The working folder a script runs in: its own (copy 3)."""
        return os.path.dirname(script)

    def script_environment(self) -> dict[str, str]:
        """The variables a script starts with, built by the gateway's own functions.

        What the server passes on (`_handler_cgi.script_base_env`) and the
        configured variables, as `_cgi.cgi_environment` joins them for a bare
        GET: the variables a request adds (HTTP_*, QUERY_STRING ...) never
        include PATH, which is what the check needs.
        """
        from email.message import Message

        from devserve._handler_cgi import script_base_env

        cgi = self.cgi
        facts = _cgi.RequestFacts(
            method="GET",
            protocol="HTTP/1.1",
            script_name="",
            path_info="",
            path_translated="",
            query="",
            remote_addr="127.0.0.1",
            server_name="",
            server_port=0,
            server_software="",
            headers=Message(),
            extra=cgi.extra_env if cgi is not None else {},
        )
        return _cgi.cgi_environment(facts, script_base_env(cgi.pass_env if cgi else None))

    def script_search_path(self) -> str:
        """The ``PATH`` ``#!/usr/bin/env name`` searches: the script's, else the default.

        With no PATH in its environment, ``env`` (execvp) searches `os.defpath`.
        """
        return self.script_environment().get("PATH", os.defpath)

    @staticmethod
    def script_user(runs_as_root: bool | None) -> tuple[int, int] | None:
        """(uid, gid) scripts run as, or None for the server's own user: the gateway's rule.

        ``runs_as_root`` None: whether this process is root.
        """
        from devserve._handler_cgi import script_user

        return script_user(runs_as_root)

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
