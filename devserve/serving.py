"""Build a server from a configuration and run it: the one entry point the CLI calls.

Nothing here prints or exits. Problems a user can fix are raised as `ServeError`
with a one-line message; everything worth showing (the banner, each request,
errors, the final summary) goes to a `Reporter` as plain data from `events`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import time
import traceback
import webbrowser
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from devserve import __version__
from devserve._auth import Gate, clear_text_warning
from devserve._files import Policy, withheld_under
from devserve._handler_dev import CGIContext, DevCGIHandler, DevHandler, HandlerContext
from devserve._host_files import HostFiles
from devserve._io import CLIENT_GONE
from devserve._loop import LoopHTTPServer
from devserve._net import lan_addresses, url_host
from devserve._reporting import Notices, Reporter, ServerJournal, Stats
from devserve._site import Site
from devserve._static_rules import head_rules
from devserve.config import (
    CGI_BASE_ENV,
    DEFAULT_PORT,
    FRAMING_HEADERS,
    LOOPBACK,
    PORT_SEARCH,
    BadInput,
    CGIConfig,
    ReloadConfig,
    ServeConfig,
    ServeError,
    describe_settings,
    parse_env,
    parse_header,
    reload_config,
)
from devserve.events import Journal, LogEvent, ReadyInfo, Summary, refusal
from devserve.limits import descriptor_warning, fit_descriptors
from devserve.server import HTTPServer, ThreadingHTTPSServer

if TYPE_CHECKING:
    import ssl

    from devserve._tls_auto import AutoCertificate
    from devserve._upstream import Proxy
    from devserve.reload.hub import ReloadHub
    from devserve.reload.watcher import Change, ChangeWatcher

__all__ = [
    "CGIConfig",
    "ReloadConfig",
    "Reporter",
    "ServeConfig",
    "ServeError",
    "Stats",
    "create_server",
    "parse_env",
    "parse_header",
    "reload_config",
    "serve",
]

# Seconds in-flight requests get to finish after Ctrl-C / SIGTERM.
SHUTDOWN_GRACE = 5.0


class _Reporting(HTTPServer):
    """What devserve's two server classes share: limits, context, and reporting."""

    context: HandlerContext
    reporting: ServerJournal

    def _set_up(self, config: ServeConfig, context: HandlerContext, journal: ServerJournal) -> None:
        self.context = context
        self.reporting = journal
        self.request_timeout = config.request_timeout
        self.idle_timeout = config.idle_timeout
        self.max_connections = config.max_connections
        self.max_connections_per_client = config.max_connections_per_client

    def refused(self, client_address: Any) -> None:
        """A connection over the limit got 503: reported like any request."""
        self.reporting.answered(refusal(str(client_address[0]), time.time()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], CLIENT_GONE):
            self.reporting.failed(str(client_address[0]), traceback.format_exc())

    def server_close(self) -> None:
        """Close the listening socket (the socketserver contract) and idle backend connections."""
        super().server_close()
        proxy = self.context.proxy
        if proxy is not None:
            proxy.close()

    def service_actions(self) -> None:
        """Called by serve_forever every turn: backend connections idle too long are closed."""
        proxy = self.context.proxy
        if proxy is not None:
            proxy.sweep()
        super().service_actions()


class DevServer(_Reporting, LoopHTTPServer):
    """`devserve serve`'s server: the event loop answers what the site serves."""

    def __init__(
        self,
        address: tuple[Any, ...],
        config: ServeConfig,
        context: HandlerContext,
        journal: ServerJournal,
    ) -> None:
        self._set_up(config, context, journal)
        handler = _handler_class(config)
        LoopHTTPServer.__init__(
            self,
            address,
            handler,
            site=context.site,
            journal=journal,
            protocol_version=context.protocol,
            server_version=context.server_version,
        )


class DevTLSServer(_Reporting, ThreadingHTTPSServer):
    """`devserve serve --tls-cert`'s server: threads do the TLS (no event loop).

    ``certificate``: the one ``--tls auto`` made or kept (None: the user's own).
    """

    def __init__(
        self,
        address: tuple[Any, ...],
        config: ServeConfig,
        context: HandlerContext,
        journal: ServerJournal,
        certificate: AutoCertificate | None = None,
        **tls: Any,
    ) -> None:
        self._set_up(config, context, journal)
        self.certificate = certificate
        ThreadingHTTPSServer.__init__(self, address, _handler_class(config), **tls)

    def _create_context(self) -> ssl.SSLContext:
        """``--tls auto``'s pair as loaded while its folder was locked; else the files'."""
        if self.certificate is None:
            return super()._create_context()
        context = self.certificate.context
        context.set_alpn_protocols(self.alpn_protocols)
        return context


def _handler_class(config: ServeConfig) -> type[DevHandler]:
    """The handler class the configuration needs."""
    if config.reload is None:
        return DevHandler if config.cgi is None else DevCGIHandler
    from devserve.reload.handler import ReloadingCGIHandler, ReloadingHandler

    return ReloadingHandler if config.cgi is None else ReloadingCGIHandler


def handler_context(
    config: ServeConfig,
    root: Path,
    journal: Journal,
    hub: ReloadHub | None = None,
    notice: Callable[[str, str], None] | None = None,
) -> HandlerContext:
    """What devserve's handlers and event loop read: the site and the handler settings."""
    handler = _handler_class(config)
    cgi = config.cgi
    proxy = _proxy(config, hub)
    policy = Policy(
        str(root),
        "always" if config.follow_symlinks else "inside",
        config.show_hidden,
        tuple(handler.index_pages),
        config.listing,
        "index.html" if config.spa else None,
        try_html=True,  # /about serves about.html, as static hosts do
    )
    host = HostFiles(policy, FRAMING_HEADERS, notice) if config.host_files else None
    site = Site(
        policy,
        head=head_rules(config.cache_control, config.cors, config.headers),
        extensions_map=handler.extensions_map,
        default_content_type=handler.default_content_type,
        error_template=handler.error_message_format,
        error_content_type=handler.error_content_type,
        cgi_directories=cgi.directories if cgi is not None else (),
        hub=hub,
        notice=notice,
        host=host,
        clean_urls=config.clean_urls,
        not_found_page=not_found_path(config, root),
        routes=proxy.routes if proxy is not None else None,
        gate=Gate(config.auth, config.cors) if config.auth else None,
        withheld=withheld_folders(root),
    )
    cgi_context = None
    if cgi is not None:
        cgi_context = CGIContext(
            cgi.directories,
            cgi.timeout,
            cgi.max_body,
            (*CGI_BASE_ENV, *cgi.pass_env),
            dict(cgi.env),
            cgi.pass_authorization,
        )
    return HandlerContext(
        site=site,
        journal=journal,
        server_version=f"devserve/{__version__}",
        protocol=config.protocol,
        timeout=max(60.0, config.idle_timeout + config.request_timeout),
        follow_symlinks=policy.follow_symlinks,
        show_hidden=config.show_hidden,
        list_directories=config.listing,
        spa_fallback=policy.spa_fallback,
        cors=config.cors,
        quiet=config.quiet,
        cgi=cgi_context,
        proxy=proxy,
    )


def withheld_folders(root: Path) -> tuple[str, ...]:
    """The folders under ``root`` never served: ``--tls auto``'s key folder, if it is there.

    Whatever this run's options: the key an earlier ``--tls auto`` run kept is
    there still (``devserve serve ~`` on macOS, where the data folder has no
    dot-folder on its way, would serve it otherwise).
    """
    from devserve._tls_auto import key_folder

    try:
        folder = key_folder()
    except ImportError:  # no platformdirs: devserve never kept a key in its data folder
        return ()
    return withheld_under(str(root), (str(folder),))


def _proxy(config: ServeConfig, hub: ReloadHub | None) -> Proxy | None:
    """The routes and backend connections for --proxy (None without it), or BadInput."""
    if config.proxy is None:
        return None
    from devserve._upstream import Proxy

    reserved = None
    if hub is not None:
        from devserve.reload.inject import RESERVED_PREFIX

        reserved = RESERVED_PREFIX  # live reload's own paths are never forwarded
    try:
        return Proxy(config.proxy, reserved)
    except OSError as error:  # --proxy-ca unreadable or not certificates (ssl.SSLError)
        detail = getattr(error, "reason", None) or error.strerror or error
        raise BadInput(f"cannot use --proxy-ca {config.proxy.ca}: {detail}") from None


def not_found_path(config: ServeConfig, root: Path) -> str:
    """Where the page served with a 404 is: ``--404`` (inside the folder), else 404.html."""
    return os.path.normpath(os.path.join(root, config.not_found_page or "404.html"))


def check_directory(directory: Path) -> Path:
    """The absolute directory to serve, or BadInput saying why it cannot be."""
    if not directory.exists():
        raise BadInput(f"directory not found: {directory}")
    if not directory.is_dir():
        raise BadInput(f"not a directory: {directory}")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise BadInput(f"directory not readable: {directory}")
    return directory.resolve()


def _check_readable(path: Path, what: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise BadInput(f"cannot read {what} {path}: {error.strerror}") from None


def _tls_options(config: ServeConfig) -> dict[str, Any]:
    if config.tls_auto:
        from devserve._tls_auto import auto_certificate, names_needed

        made = auto_certificate(names_needed(config.lan, config.bind))
        return {"certfile": str(made.cert), "keyfile": str(made.key), "certificate": made}
    if config.tls_cert is None:
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
    from devserve._tls import tls_problem

    problem = tls_problem(config.tls_cert, config.tls_key, options["password"])
    if problem is not None:
        raise BadInput(problem)
    return options


def create_server(
    config: ServeConfig, report: Reporter, stats: Stats
) -> tuple[DevServer | DevTLSServer, int | None]:
    """Bind the server; returns it and the busy default port it moved from, if any.

    An explicit busy port is an error; a busy default moves on to the next free one.
    """
    root = check_directory(config.directory)
    if config.not_found_page is not None and not os.path.isfile(not_found_path(config, root)):
        raise ServeError(f"--404 page not found: {not_found_path(config, root)}")
    tls = _tls_options(config)
    hub = None
    if config.reload is not None:
        from devserve.reload.hub import ReloadHub

        watched_paths(config, root)
        hub = ReloadHub(max_streams=config.max_event_streams)
    journal = ServerJournal(stats, report, config.quiet)
    context = handler_context(config, root, journal, hub, Notices(report))
    hosts = [config.bind or LOOPBACK]
    if config.lan:
        hosts = ["::", "0.0.0.0"] if socket.has_ipv6 else ["0.0.0.0"]
    ports = (
        [config.port] if config.port is not None else [DEFAULT_PORT + i for i in range(PORT_SEARCH)]
    )
    for host in hosts:
        for port in ports:
            try:
                server: DevServer | DevTLSServer
                if tls:
                    server = DevTLSServer((host, port), config, context, journal, **tls)
                else:
                    server = DevServer((host, port), config, context, journal)
            except OSError as error:
                if error.errno == errno.EADDRINUSE and port != ports[-1]:
                    continue
                if host != hosts[-1] and error.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    break  # no IPv6 here: try the next host
                failure = _tls_failure(error) if tls else None
                if failure is not None:
                    raise ServeError(failure) from None
                raise ServeError(_bind_message(host, port, error)) from None
            except (OverflowError, UnicodeError, ValueError) as error:
                raise ServeError(f"cannot bind {host}:{port}: {error}") from None
            except RuntimeError as error:  # HTTPS on a Python built without ssl
                raise ServeError(str(error)) from None
            moved = DEFAULT_PORT if config.port is None and port != DEFAULT_PORT else None
            return server, moved
    raise ServeError("no free port found")  # pragma: no cover - the loops return or raise


def watched_paths(config: ServeConfig, root: Path) -> list[Path]:
    """What ``--reload`` watches: the served folder, then each ``--watch`` path outside it."""
    paths = [root]
    for path in config.reload.watch if config.reload is not None else ():
        if not path.exists():
            raise BadInput(f"--watch path not found: {path}")
        resolved = path.resolve()
        if not any(resolved == p or resolved.is_relative_to(p) for p in paths):
            paths.append(resolved)
    return paths


def start_watcher(
    config: ServeConfig, root: Path, hub: ReloadHub, report: Reporter
) -> ChangeWatcher:
    """Watch for ``--reload`` (watches in place on return); each batch is published and logged."""
    from devserve.reload.watcher import (
        ChangeWatcher,
        WatchError,
        describe,
        is_css_only,
        own_output_files,
    )

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
        own_files=own_output_files(),  # `devserve serve site --reload 2> site/log`
    )
    try:
        watcher.start()
    except WatchError as error:
        raise ServeError(str(error)) from None
    return watcher


def _tls_failure(error: OSError) -> str | None:
    """The message for a failure to set up TLS, or None if ``error`` is something else."""
    import ssl  # only ever asked with --tls-cert, which needs it

    if isinstance(error, ssl.SSLError):
        return f"TLS setup failed: {error.reason or error}"
    return None


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
        who = "anyone on it with the password" if config.auth else "anyone on it"
        hint = f"reachable from your network: {who} can read these files"
    else:
        local = [f"{scheme}://{url_host(host)}:{port}/"]
        loopback = host in (LOOPBACK, "::1", "localhost") or host.startswith("127.")
        hint = (
            "only this machine can connect; add --lan to share on your network"
            if (loopback)
            else ""
        )
    made = server.certificate if isinstance(server, DevTLSServer) else None
    return ReadyInfo(
        version=__version__,
        directory=str(check_directory(config.directory)),
        urls=tuple(local),
        lan_urls=tuple(lan),
        options=tuple(describe_settings(config)),
        hint=hint,
        moved_from=moved,
        certificate=str(made.cert) if made is not None else "",
        fingerprint=made.fingerprint if made is not None else "",
        certificate_made=made is not None and made.made,
    )


def serve(config: ServeConfig, reporter: Reporter) -> Summary:
    """Run until SIGINT or SIGTERM, then stop gracefully and return the totals.

    On a signal: stop accepting, close idle keep-alive connections, give
    in-flight requests up to SHUTDOWN_GRACE seconds (a second signal cuts it
    short), then close what is left.
    """
    stats = Stats()
    config, fitted_from = fit_descriptors(config)
    server, moved = create_server(config, reporter, stats)
    if isinstance(server, LoopHTTPServer):
        server.drain_grace = SHUTDOWN_GRACE
    hub = server.context.site.hub
    watcher = None
    stopping = threading.Event()
    hurry = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            hurry.set()
            if isinstance(server, LoopHTTPServer):
                server.abandon()
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
        host = server.context.site.host
        if host is not None:
            host.current()  # read the rule files now: their problems are logged at start-up
        if fitted_from is not None:
            reporter(LogEvent(time.time(), "warning", descriptor_warning(config, fitted_from)))
        clear = clear_text_warning(config.lan, config.bind, config.tls) if config.auth else None
        if clear is not None:
            reporter(LogEvent(time.time(), "warning", clear))
        if config.open_browser:
            threading.Thread(
                target=_open_browser, args=(info.urls[0], reporter), daemon=True
            ).start()
        server.serve_forever(poll_interval=0.2)
    finally:
        if hub is not None:
            hub.close()  # event streams end now, so they do not hold up the drain
        if server.context.proxy is not None:
            server.context.proxy.end_streams()  # and so do proxied ones, and WebSockets
        if watcher is not None:
            watcher.stop()
        _drain(server, hurry)
        if server.context.cgi is not None:
            server.context.cgi.scripts.end_all()  # and whatever they left running
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = stats.summary()
    reporter.stopped(summary)
    return summary


def _open_browser(url: str, report: Reporter) -> None:
    """--open: open ``url`` in the default browser, or say that none could be opened."""
    try:
        opened = webbrowser.open(url)
    except Exception as error:  # a broken BROWSER setting, a missing display
        opened, why = False, f" ({error})"
    else:
        why = ""
    if not opened:
        message = f"--open: no browser could be opened{why}; open {url} yourself"
        report(LogEvent(time.time(), "warning", message))


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
