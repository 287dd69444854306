"""Build a server from a configuration and run it: the one entry point the CLI calls.

Nothing here prints or exits. Problems a user can fix are raised as `ServeError`
with a one-line message; everything worth showing (the banner, each request,
errors, the final summary) goes to a `Reporter` as plain data from `events`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from devserve import __version__
from devserve._io import CLIENT_GONE, SocketWriter
from devserve._loop import EventLoopMixIn
from devserve._net import lan_addresses, url_host
from devserve._paths import is_hidden_name
from devserve._protocol import check_header_field
from devserve._suggest import suggest_path
from devserve.events import LogEvent, ReadyInfo, RequestRecord, Summary
from devserve.server import (
    CGIHTTPRequestHandler,
    HTTPServer,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
    ThreadingHTTPSServer,
)

if TYPE_CHECKING:
    from devserve.reload.hub import ReloadHub
    from devserve.reload.watcher import Change, ChangeWatcher

DEFAULT_PORT = 8000
# How many ports after the default are tried when it is busy.
PORT_SEARCH = 20
PROTOCOLS = ("HTTP/1.0", "HTTP/1.1")
LOOPBACK = "127.0.0.1"
# Seconds in-flight requests get to finish after Ctrl-C / SIGTERM.
SHUTDOWN_GRACE = 5.0


@dataclass(frozen=True)
class CGIConfig:
    """What `devserve cgi` adds to `serve`."""

    directories: tuple[str, ...] = ("/cgi-bin", "/htbin")
    timeout: float = 60.0
    env: tuple[tuple[str, str], ...] = ()
    pass_env: tuple[str, ...] = ()
    max_body: int = 1024**3


# The server's variables every script gets (PATH finds interpreters in #! lines).
CGI_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class ReloadConfig:
    """What ``--reload`` adds: the folders watched besides the served one, and globs ignored."""

    watch: tuple[Path, ...] = ()
    ignore: tuple[str, ...] = ()


# Headers about the connection and the message framing: one response's own
# business, so --header cannot set them (a fixed value would break keep-alive).
FRAMING_HEADERS = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding", "te", "trailer", "upgrade"}
)


class ServeError(Exception):
    """A problem with the configuration or the environment, in one line for the user."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything `devserve serve` can be told; the CLI builds one and calls `serve`."""

    directory: Path = Path(".")
    port: int | None = None  # None: the default port, or the next free one
    bind: str | None = None  # None: loopback only (all interfaces with lan)
    lan: bool = False
    protocol: str = "HTTP/1.1"
    open_browser: bool = False
    cors: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    spa: bool = False
    listing: bool = True
    show_hidden: bool = False
    follow_symlinks: bool = False
    cache_control: str = "no-cache"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_password_file: Path | None = None
    quiet: bool = False
    log_format: str = "pretty"
    cgi: CGIConfig | None = None
    reload: ReloadConfig | None = None
    # Limits that keep slow, idle and flooding clients in check.
    idle_timeout: float = 30.0  # seconds a kept-alive connection may sit idle
    max_connections: int = 1024  # beyond this, new connections get 503
    request_timeout: float = 10.0  # seconds for a request line and headers to arrive

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


class Reporter(Protocol):
    """Whoever presents the server to the user (the console, in the CLI)."""

    def __call__(self, item: RequestRecord | LogEvent) -> None: ...

    def ready(self, info: ReadyInfo) -> None: ...

    def stopped(self, summary: Summary) -> None: ...


def parse_header(text: str) -> tuple[str, str]:
    """A ``--header "Name: value"`` option as (name, value), or ServeError."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ServeError(f"malformed --header {text!r} (expected 'Name: value')")
    if any(c in name for c in ' \t()<>@,;\\"/[]?={}') or not name.isascii():
        raise ServeError(f"malformed --header {text!r}: {name!r} is not a header name")
    try:
        check_header_field(name, value)
    except ValueError:
        raise ServeError(f"malformed --header {text!r}: control characters") from None
    if name.lower() in FRAMING_HEADERS:
        raise ServeError(
            f"--header {name!r} is not allowed: the server sets it for each response itself"
        )
    return name, value


def reload_config(
    enabled: bool, watch: Sequence[Path] = (), ignore: Sequence[str] = ()
) -> ReloadConfig | None:
    """The ``--reload``, ``--watch`` and ``--ignore`` options as a ReloadConfig, or ServeError."""
    if not enabled:
        if watch or ignore:
            raise ServeError("--watch and --ignore need --reload")
        return None
    return ReloadConfig(watch=tuple(watch), ignore=tuple(ignore))


def parse_env(text: str) -> tuple[str, str]:
    """A ``--env NAME=VALUE`` option as (name, value), or ServeError."""
    name, sep, value = text.partition("=")
    if not sep or not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise ServeError(f"malformed --env {text!r} (expected NAME=VALUE)")
    return name, value


class Stats:
    """Totals for the summary line, updated from every request thread."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests = 0
        self.size = 0
        self.errors = 0
        self._lock = threading.Lock()

    def add(self, size: int, error: bool) -> None:
        with self._lock:
            self.requests += 1
            self.size += size
            self.errors += error

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def summary(self) -> Summary:
        return Summary(self.requests, self.size, self.errors, time.monotonic() - self.started)


def make_handler(
    config: ServeConfig,
    root: str,
    report: Reporter,
    stats: Stats,
    base: type[SimpleHTTPRequestHandler] = SimpleHTTPRequestHandler,
    hub: ReloadHub | None = None,
) -> Callable[..., Any]:
    """The handler class the configuration asks for, bound to its directory.

    With a ``hub`` (``--reload``), pages get the reload script and the hub's
    endpoints are served; without one, the handler is exactly ``base``'s.
    """
    extra_headers = [("Cache-Control", config.cache_control)] if config.cache_control else []
    if config.cors:
        extra_headers.append(("Access-Control-Allow-Origin", "*"))
    extra_headers.extend(config.headers)
    # For responses that say Cache-Control: no-store themselves (injected pages).
    uncacheable_headers = [h for h in extra_headers if h[0].lower() != "cache-control"]
    quiet = config.quiet
    if hub is not None:
        from devserve.reload.handler import reloading

        told: set[str] = set()
        told_lock = threading.Lock()

        def notice(key: str, message: str) -> None:
            """Say ``message`` the first time ``key`` comes up (a page that stays uninjected)."""
            with told_lock:
                if key in told:
                    return
                told.add(key)
            report(LogEvent(time.time(), "warning", message))

        base = reloading(base, hub, notice)

    def visible(name: str) -> bool:
        return config.show_hidden or not is_hidden_name(name)

    cgi = config.cgi

    class DevHandler(base):  # type: ignore[valid-type,misc]
        protocol_version = config.protocol
        # The socket timeout bounds a client that stops reading (or sending) in
        # the middle of a request; it is longer than the idle and request
        # deadlines, which the server enforces itself.
        timeout = max(60.0, config.idle_timeout + config.request_timeout)
        if cgi is not None:
            cgi_directories = list(cgi.directories)
            cgi_timeout = cgi.timeout
            cgi_max_body = cgi.max_body
            cgi_pass_env = (*CGI_BASE_ENV, *cgi.pass_env)
            cgi_extra_env = dict(cgi.env)
        server_version = f"devserve/{__version__}"
        show_hidden = config.show_hidden
        list_directories = config.listing
        spa_fallback = "index.html" if config.spa else None
        follow_symlinks = "always" if config.follow_symlinks else "inside"
        # Its overrides give a replayed response the same bytes, and
        # DevServer.replayed reports it (see devserve._loop).
        _replay_safe = True
        _note = ""
        # Set per request by live reload (see devserve.reload.handler).
        _uncacheable = False
        _unlogged = False

        def handle_one_request(self) -> None:
            when = time.time()
            started = time.perf_counter()
            writer = self.wfile
            before = writer.bytes_written if isinstance(writer, SocketWriter) else 0
            self._note = ""
            self.raw_requestline = b""
            super().handle_one_request()
            status = self._status
            if not self.raw_requestline or status is None:
                return
            sent = (writer.bytes_written if isinstance(writer, SocketWriter) else 0) - before
            stats.add(sent, status >= 500)
            if not quiet and not (self._unlogged and status < 400):
                report(
                    RequestRecord(
                        when=when,
                        client=self.address_string(),
                        method=self.command or "",
                        path=self.path if self.command else self.requestline,
                        status=status,
                        size=sent,
                        duration=time.perf_counter() - started,
                        served=self.answered_by,
                        note=self._note,
                    )
                )

        def end_headers(self) -> None:
            if self._status is not None and self._status >= 200:
                for name, value in uncacheable_headers if self._uncacheable else extra_headers:
                    self.send_header(name, value)
            super().end_headers()

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            self.answered_by = ""
            if code == 404 and self.command in ("GET", "HEAD"):
                suggestion = suggest_path(self.path, root, visible)
                if suggestion is not None:
                    self._note = f"did you mean {suggestion}"
                    explain = f"Nothing matches the given URI. Did you mean {suggestion} ?"
            elif message and code >= 400:
                self._note = message
            super().send_error(code, message, explain)

        def do_OPTIONS(self) -> None:
            if not config.cors:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            self.send_response(204)
            methods = "GET, HEAD, POST, OPTIONS" if hasattr(self, "do_POST") else "GET, HEAD"
            self.send_header("Access-Control-Allow-Methods", methods)
            requested = self.headers.get("Access-Control-Request-Headers")
            if requested:
                self.send_header("Access-Control-Allow-Headers", requested)
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """The request line is reported once the response is complete."""

        def log_message(self, format: str, *args: Any) -> None:
            if format.startswith("code %d, message"):
                return  # the request line shows the status
            report(LogEvent(time.time(), "error", format % args))

    return functools.partial(DevHandler, directory=root)


def check_directory(directory: Path) -> Path:
    """The absolute directory to serve, or ServeError saying why it cannot be."""
    if not directory.exists():
        raise ServeError(f"directory not found: {directory}")
    if not directory.is_dir():
        raise ServeError(f"not a directory: {directory}")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise ServeError(f"directory not readable: {directory}")
    return directory.resolve()


def _check_readable(path: Path, what: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ServeError(f"cannot read {what} {path}: {error.strerror}") from None


def _tls_options(config: ServeConfig) -> dict[str, Any]:
    if config.tls_cert is None:
        if config.tls_key or config.tls_password_file:
            raise ServeError("--tls-key and --tls-password-file need --tls-cert")
        return {}
    _check_readable(config.tls_cert, "TLS certificate")
    options: dict[str, Any] = {"certfile": str(config.tls_cert)}
    if config.tls_key is not None:
        _check_readable(config.tls_key, "TLS key")
        options["keyfile"] = str(config.tls_key)
    # Never let OpenSSL prompt on the terminal for an encrypted key: without a
    # password file the password is empty, and a key that needs one fails at once.
    options["password"] = ""
    if config.tls_password_file is not None:
        _check_readable(config.tls_password_file, "TLS password file")
        lines = config.tls_password_file.read_text(errors="replace").splitlines()
        options["password"] = lines[0] if lines else ""
    return options


def _server_class(
    base: type[HTTPServer], config: ServeConfig, report: Reporter, stats: Stats
) -> type[HTTPServer]:
    # Without TLS, idle connections wait in an event loop that also answers
    # repeat requests for small files itself (devserve._loop).
    bases = (base,) if config.tls_cert else (EventLoopMixIn, base)
    quiet = config.quiet
    # Replays log through a reporter's prepared lines when it offers them.
    repeater: Callable[[RequestRecord], Callable[[float, float], None]] | None = getattr(
        report, "repeater", None
    )
    repeaters: dict[tuple[object, ...], Callable[[float, float], None]] = {}

    class DevServer(*bases):  # type: ignore[misc]
        # The live-reload hub its handlers serve (with --reload).
        reload_hub: ReloadHub | None = None
        request_timeout = config.request_timeout
        idle_timeout = config.idle_timeout
        max_connections = config.max_connections

        def replayed(
            self,
            client_address: Any,
            method: str,
            path: str,
            size: int,
            when: float,
            duration: float,
        ) -> None:
            stats.add(size, False)
            if quiet:
                return
            key = (client_address[0], method, path, size)
            emit = repeaters.get(key)
            if emit is None:
                record = RequestRecord(
                    when, client_address[0], method, path, 200, size, duration, "file", ""
                )
                if repeater is None:
                    report(record)
                    return
                if len(repeaters) >= 1024:
                    repeaters.clear()
                emit = repeaters[key] = repeater(record)
            emit(when, duration)

        def handle_error(self, request: Any, client_address: Any) -> None:
            if isinstance(sys.exc_info()[1], CLIENT_GONE):
                return
            stats.error()
            report(
                LogEvent(
                    time.time(),
                    "error",
                    f"error while handling a request from {client_address[0]}",
                    traceback.format_exc(),
                )
            )

    return DevServer


def create_server(
    config: ServeConfig,
    report: Reporter,
    stats: Stats,
    handler_base: type[SimpleHTTPRequestHandler] = SimpleHTTPRequestHandler,
) -> tuple[HTTPServer, int | None]:
    """Bind the server; returns it and the busy default port it moved from, if any.

    An explicit busy port is an error; a busy default moves on to the next free one.
    """
    if config.protocol not in PROTOCOLS:
        raise ServeError(f"unsupported protocol {config.protocol!r} (use HTTP/1.0 or HTTP/1.1)")
    if config.port is not None and not 0 <= config.port <= 65535:
        raise ServeError(f"port out of range: {config.port} (use 0-65535)")
    if config.idle_timeout <= 0 or config.request_timeout <= 0:
        raise ServeError("timeouts must be more than 0 seconds")
    if config.max_connections < 1:
        raise ServeError("--max-connections must be at least 1")
    if config.lan and config.bind is not None:
        raise ServeError("use either --lan or --bind, not both")
    root = check_directory(config.directory)
    tls = _tls_options(config)
    if config.cgi is not None:
        for directory in config.cgi.directories:
            if not directory.startswith("/") or directory == "/":
                raise ServeError(f"--cgi-dir must be a URL folder like /cgi-bin, not {directory!r}")
        handler_base = CGIHTTPRequestHandler
    hub = None
    if config.reload is not None:
        from devserve.reload.hub import ReloadHub

        watched_paths(config, root)
        hub = ReloadHub()
    handler = make_handler(config, str(root), report, stats, handler_base, hub)
    base: type[HTTPServer] = ThreadingHTTPSServer if tls else ThreadingHTTPServer
    server_class = _server_class(base, config, report, stats)
    hosts = [config.bind or LOOPBACK]
    if config.lan:
        hosts = ["::", "0.0.0.0"] if socket.has_ipv6 else ["0.0.0.0"]
    ports = (
        [config.port] if config.port is not None else [DEFAULT_PORT + i for i in range(PORT_SEARCH)]
    )
    for host in hosts:
        for port in ports:
            try:
                server = server_class((host, port), handler, **tls)
            except OSError as error:
                if error.errno == errno.EADDRINUSE and port != ports[-1]:
                    continue
                if host != hosts[-1] and error.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    break  # no IPv6 here: try the next host
                if isinstance(error, ssl.SSLError):
                    raise ServeError(f"TLS setup failed: {error.reason or error}") from None
                raise ServeError(_bind_message(host, port, error)) from None
            except (OverflowError, UnicodeError, ValueError) as error:
                raise ServeError(f"cannot bind {host}:{port}: {error}") from None
            moved = DEFAULT_PORT if config.port is None and port != DEFAULT_PORT else None
            server.reload_hub = hub  # type: ignore[attr-defined]
            return server, moved
    raise ServeError("no free port found")  # pragma: no cover - the loops return or raise


def watched_paths(config: ServeConfig, root: Path) -> list[Path]:
    """What ``--reload`` watches: the served folder, then each ``--watch`` path outside it."""
    paths = [root]
    for path in config.reload.watch if config.reload is not None else ():
        if not path.exists():
            raise ServeError(f"--watch path not found: {path}")
        resolved = path.resolve()
        if not any(resolved == p or resolved.is_relative_to(p) for p in paths):
            paths.append(resolved)
    return paths


def start_watcher(
    config: ServeConfig, root: Path, hub: ReloadHub, report: Reporter
) -> ChangeWatcher:
    """Watch for ``--reload`` (watches in place on return); each batch is published and logged."""
    from devserve.reload.watcher import ChangeWatcher, WatchError, describe, is_css_only

    assert config.reload is not None

    def on_changes(changes: list[Change]) -> None:
        css_only = is_css_only(changes)
        told = hub.publish(css_only)
        if config.quiet:
            return
        files = describe(changes, watcher.rules)
        browsers = f"{told} browser{'' if told == 1 else 's'}"
        if not told:
            message = f"changed: {files} (no browser is connected to reload)"
        elif css_only:
            message = f"stylesheets swapped in {browsers}: {files}"
        else:
            message = f"reload sent to {browsers}: {files}"
        report(LogEvent(time.time(), "info", message))

    def on_warning(message: str) -> None:
        report(LogEvent(time.time(), "warning", message))

    def on_error(message: str, error: BaseException) -> None:
        report(LogEvent(time.time(), "error", message, "".join(traceback.format_exception(error))))

    watcher = ChangeWatcher(
        [str(p) for p in watched_paths(config, root)],
        on_changes,
        ignore=config.reload.ignore,
        on_warning=on_warning,
        on_error=on_error,
    )
    try:
        watcher.start()
    except WatchError as error:
        raise ServeError(str(error)) from None
    return watcher


def _bind_message(host: str, port: int, error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return f"cannot bind {host}:{port}: not a valid address ({error.strerror})"
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host} (try --port 0 for any free port)"
    if error.errno == errno.EACCES:
        return f"permission denied binding {host}:{port} (ports below 1024 need privileges)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot bind {host}:{port}: address not available on this machine"
    return f"cannot bind {host}:{port}: {error.strerror or error}"


def ready_info(config: ServeConfig, server: HTTPServer, moved: int | None) -> ReadyInfo:
    """What the banner shows for a bound server."""
    host, port = str(server.server_address[0]), int(server.server_address[1])
    scheme = config.scheme
    lan: list[str] = []
    if host in ("0.0.0.0", "::"):
        local = [f"{scheme}://{LOOPBACK}:{port}/"]
        lan = [f"{scheme}://{url_host(a)}:{port}/" for a in lan_addresses()]
        if host == "0.0.0.0":
            lan = [url for url in lan if "[" not in url]
        hint = "reachable from your network: anyone on it can read these files"
    else:
        local = [f"{scheme}://{url_host(host)}:{port}/"]
        loopback = host in (LOOPBACK, "::1", "localhost") or host.startswith("127.")
        hint = (
            "only this machine can connect; add --lan to share on your network"
            if (loopback)
            else ""
        )
    options = []
    if config.tls_cert:
        options.append("tls")
    if config.spa:
        options.append("spa")
    if config.cors:
        options.append("cors")
    if not config.listing:
        options.append("no listing")
    if config.show_hidden:
        options.append("hidden files served")
    if config.follow_symlinks:
        options.append("symlinks leave the root")
    if config.headers:
        options.append(f"{len(config.headers)} extra header(s)")
    if config.cgi is not None:
        options.append(f"cgi: {', '.join(config.cgi.directories)} ({config.cgi.timeout:g} s)")
    if config.reload is not None:
        options.append("live reload")
    if config.protocol != "HTTP/1.1":
        options.append(config.protocol)
    return ReadyInfo(
        version=__version__,
        directory=str(check_directory(config.directory)),
        urls=tuple(local),
        lan_urls=tuple(lan),
        options=tuple(options),
        hint=hint,
        moved_from=moved,
    )


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (never lower it).

    Each connection needs a descriptor; the usual soft limit (1024) would make the
    connection cap unreachable. Returns the soft limit in force afterwards.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def serve(
    config: ServeConfig,
    reporter: Reporter,
    handler_base: type[SimpleHTTPRequestHandler] = SimpleHTTPRequestHandler,
) -> Summary:
    """Run until SIGINT or SIGTERM, then stop gracefully and return the totals.

    On a signal: stop accepting, close idle keep-alive connections, give
    in-flight requests up to SHUTDOWN_GRACE seconds (a second signal cuts it
    short), then close what is left.
    """
    stats = Stats()
    raise_fd_limit(2 * config.max_connections + 256)
    server, moved = create_server(config, reporter, stats, handler_base)
    hub: ReloadHub | None = getattr(server, "reload_hub", None)
    watcher = None
    stopping = threading.Event()
    hurry = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            hurry.set()
            return
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    try:
        if hub is not None:
            watcher = start_watcher(config, check_directory(config.directory), hub, reporter)
        info = ready_info(config, server, moved)
        reporter.ready(info)
        if config.open_browser:
            threading.Thread(target=webbrowser.open, args=(info.urls[0],), daemon=True).start()
        server.serve_forever(poll_interval=0.2)
    finally:
        if hub is not None:
            hub.close()  # event streams end now, so they do not hold up the drain
        if watcher is not None:
            watcher.stop()
        _drain(server, hurry)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = stats.summary()
    reporter.stopped(summary)
    return summary


def _drain(server: HTTPServer, hurry: threading.Event) -> None:
    """Stop accepting and let in-flight requests finish, within SHUTDOWN_GRACE."""
    with contextlib.suppress(OSError):
        server.socket.close()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    while server.connection_count() and time.monotonic() < deadline and not hurry.is_set():
        server.close_connections(idle_only=True)
        time.sleep(0.02)
    server.close_connections(idle_only=False)
    server.block_on_close = False  # type: ignore[attr-defined]
    server.server_close()
