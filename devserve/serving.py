"""Build a server from a configuration and run it: the one entry point the CLI calls.

Nothing here prints or exits; problems a user can fix are raised as `ServeError`
with a one-line message, and the caller decides how to show them.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from devserve.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_PORT = 8000
# How many ports after the default are tried when it is busy.
PORT_SEARCH = 20
PROTOCOLS = ("HTTP/1.0", "HTTP/1.1")


class ServeError(Exception):
    """A problem with the configuration or the environment, in one line for the user."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything `devserve serve` can be told; the CLI builds one and calls `serve`."""

    directory: Path = Path(".")
    port: int | None = None  # None: the default port, or the next free one
    bind: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    quiet: bool = False


def make_handler(config: ServeConfig) -> Callable[..., Any]:
    """The handler class the configuration asks for, bound to its directory."""

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = config.protocol

        if config.quiet:

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: no request log."""

    return functools.partial(Handler, directory=str(config.directory))


def check_directory(directory: Path) -> Path:
    """The absolute directory to serve, or ServeError saying why it cannot be."""
    if not directory.exists():
        raise ServeError(f"directory not found: {directory}")
    if not directory.is_dir():
        raise ServeError(f"not a directory: {directory}")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise ServeError(f"directory not readable: {directory}")
    return directory.resolve()


def create_server(config: ServeConfig) -> tuple[ThreadingHTTPServer, bool]:
    """Bind the server; returns it and whether the default port was busy.

    An explicit busy port is an error; a busy default moves on to the next free one.
    """
    if config.protocol not in PROTOCOLS:
        raise ServeError(f"unsupported protocol {config.protocol!r} (use HTTP/1.0 or HTTP/1.1)")
    if config.port is not None and not 0 <= config.port <= 65535:
        raise ServeError(f"port out of range: {config.port} (use 0-65535)")
    root = check_directory(config.directory)
    handler = make_handler(
        ServeConfig(root, config.port, config.bind, config.protocol, config.quiet)
    )
    candidates = (
        [config.port] if config.port is not None else [DEFAULT_PORT + i for i in range(PORT_SEARCH)]
    )
    for port in candidates:
        try:
            return ThreadingHTTPServer((config.bind, port), handler), port != candidates[0]
        except OSError as error:
            if error.errno == errno.EADDRINUSE and port != candidates[-1]:
                continue
            raise ServeError(_bind_message(config.bind, port, error)) from None
        except (socket.gaierror, OverflowError, UnicodeError) as error:
            raise ServeError(f"cannot bind {config.bind}:{port}: {error}") from None
    raise ServeError("no free port found")  # pragma: no cover - the loop always returns


def _bind_message(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host} (try --port 0 for any free port)"
    if error.errno == errno.EACCES:
        return f"permission denied binding {host}:{port} (ports below 1024 need privileges)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"address {host} is not available on this machine"
    return f"cannot bind {host}:{port}: {error.strerror or error}"


def urls_for(server: ThreadingHTTPServer) -> list[str]:
    """The URLs a browser can use to reach the server."""
    host, port = str(server.server_address[0]), server.server_address[1]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return [f"http://{shown}:{port}/"]


def serve(config: ServeConfig, on_ready: Callable[[ThreadingHTTPServer, bool], None]) -> None:
    """Run until SIGINT or SIGTERM; ``on_ready`` is called once the socket listens."""
    server, moved = create_server(config)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        on_ready(server, moved)
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
