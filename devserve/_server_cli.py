"""``python -m devserve.server``: the command line of ``python -m http.server``.

The options, defaults, help and usage errors are those of Python 3.15's module
(3.14's ``--tls-*`` options, 3.15's ``-H/--header`` and ``--content-type``), on
every Python devserve supports, plus ``--cgi``, which 3.15 removed and devserve
keeps. What runs is what the stdlib's ``test()`` runs: a threading server bound
to the first address ``getaddrinfo`` gives for ``--bind`` and the port, with
IPv6 dual-stack on, the banner on stdout, and exit status 0 after Ctrl-C.

Differences, all at start-up: handler options apply to a subclass made for
this run (the stdlib assigns ``protocol_version`` on its own class); header
names and values are checked before anything is served; a server that cannot
start (address in use, unreadable certificate) is reported in one line on
stderr with exit status 1 where the stdlib prints a traceback (also status 1).

It imports the standard library, ``devserve.server`` and the header rule of
``devserve._protocol``, nothing else (no Typer, no rich), so it starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from devserve._protocol import check_header_field
from devserve.server import (
    CGIHTTPRequestHandler,
    HTTPServer,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
    ThreadingHTTPSServer,
)

# =========================================================================== servers


class _DualStackMixIn(HTTPServer):
    """What the stdlib's command line adds to its server class.

    The address family is chosen per run (the stdlib assigns it to the class);
    IPv6 sockets accept IPv4 too; every handler is given ``directory``.
    """

    def __init__(self, *args: Any, address_family: int, directory: str, **kwargs: Any) -> None:
        self.address_family = address_family
        self.directory = directory
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        # Some systems make IPv6 sockets IPv6-only by default; an IPv4 socket
        # has no such option, hence the suppressed error (as in the stdlib).
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        handler: Callable[..., object] = self.RequestHandlerClass
        handler(request, client_address, self, directory=self.directory)


class DualStackServer(_DualStackMixIn, ThreadingHTTPServer):
    """The server ``python -m devserve.server`` runs."""


class DualStackHTTPSServer(_DualStackMixIn, ThreadingHTTPSServer):
    """The server ``python -m devserve.server --tls-cert ...`` runs."""


def best_family(host: str | None, port: int) -> tuple[int, tuple[Any, ...]]:
    """The family and socket address to bind: the first passive ``getaddrinfo`` answer.

    ``host=None`` means every interface; which family comes first (``0.0.0.0`` or
    ``::``) is the system resolver's choice, as for the stdlib.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _canonname, sockaddr = infos[0]
    return family, sockaddr


# =========================================================================== options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``python -m http.server``'s options, help and errors."""
    # What argparse itself shows for ``python -m`` since 3.14, on every Python.
    prog = f"{os.path.basename(sys.executable) or 'python'} -m devserve.server"
    if sys.version_info >= (3, 14):
        parser = argparse.ArgumentParser(prog=prog, color=True)
    else:
        parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--cgi", action="store_true", help="run as CGI server")
    parser.add_argument(
        "-b", "--bind", metavar="ADDRESS", help="bind to this address (default: all interfaces)"
    )
    parser.add_argument(
        "-d",
        "--directory",
        default=os.getcwd(),
        help="serve this directory (default: current directory)",
    )
    parser.add_argument(
        "-p",
        "--protocol",
        metavar="VERSION",
        default="HTTP/1.0",
        help="conform to this HTTP version (default: %(default)s)",
    )
    parser.add_argument("--tls-cert", metavar="PATH", help="path to the TLS certificate chain file")
    parser.add_argument("--tls-key", metavar="PATH", help="path to the TLS key file")
    parser.add_argument(
        "--tls-password-file", metavar="PATH", help="path to the password file for the TLS key"
    )
    parser.add_argument(
        "-H",
        "--header",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="add this header to successful responses (can be used multiple times)",
    )
    parser.add_argument(
        "--content-type",
        metavar="TYPE",
        help="send this Content-Type when none can be guessed (default: application/octet-stream)",
    )
    parser.add_argument(
        "port", default=8000, type=int, nargs="?", help="bind to this port (default: %(default)s)"
    )
    return parser


def _header_problem(name: str, value: str) -> str | None:
    """Why ``name: value`` cannot be sent as a response header, or None."""
    try:
        check_header_field(name, value)
        f"{name}: {value}".encode("latin-1")
    except ValueError as error:  # UnicodeEncodeError is a ValueError
        return str(error)
    return None


def _read_password(parser: argparse.ArgumentParser, path: str) -> str:
    """The TLS key password: the whole file, stripped (as Python 3.14 reads it)."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError as error:
        parser.error(f"Failed to read TLS password file: {error}")


# =========================================================================== running


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until Ctrl-C; return the exit status (usage errors exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    # The stdlib's checks and wording (3.14).
    if not args.tls_cert and args.tls_key:
        parser.error("--tls-key requires --tls-cert to be set")
    password: str | None = None
    if args.tls_password_file:
        if not args.tls_cert:
            parser.error("--tls-password-file requires --tls-cert to be set")
        password = _read_password(parser, args.tls_password_file)

    headers: list[tuple[str, str]] = [(name, value) for name, value in args.header or ()]
    for name, value in headers:
        problem = _header_problem(name, value)
        if problem:
            parser.error(f"argument -H/--header: {problem}")
    if args.content_type is not None:
        problem = _header_problem("Content-Type", args.content_type)
        if problem:
            parser.error(f"argument --content-type: {problem}")

    base = CGIHTTPRequestHandler if args.cgi else SimpleHTTPRequestHandler
    attributes: dict[str, object] = {"protocol_version": args.protocol}
    if args.content_type is not None:
        attributes["default_content_type"] = args.content_type
    # A subclass for this run, so that devserve.server's own classes never change.
    handler_class: Callable[..., object] = type(base.__name__, (base,), attributes)
    if headers:
        handler_class = functools.partial(
            handler_class, directory=args.directory, extra_response_headers=headers
        )

    scheme = "https" if args.tls_cert else "http"
    try:
        family, address = best_family(args.bind, args.port)
        if args.tls_cert:
            httpd: HTTPServer = DualStackHTTPSServer(
                address,
                handler_class,
                address_family=family,
                directory=args.directory,
                certfile=args.tls_cert,
                keyfile=args.tls_key,
                password=password,
            )
        else:
            httpd = DualStackServer(
                address, handler_class, address_family=family, directory=args.directory
            )
    except (OSError, OverflowError, RuntimeError) as error:
        print(f"{parser.prog}: cannot serve: {error}", file=sys.stderr)
        return 1

    with httpd:
        host, port = httpd.socket.getsockname()[:2]
        url_host = f"[{host}]" if ":" in host else host
        # Unlike the stdlib, a Ctrl-C that lands between the banner and
        # serve_forever is not a traceback.
        try:
            print(
                f"Serving {scheme.upper()} on {host} port {port} "
                f"({scheme}://{url_host}:{port}/) ...",
                flush=True,  # a pipe (a test, a supervisor) sees it at once
            )
            httpd.serve_forever()
        except KeyboardInterrupt:
            print("\nKeyboard interrupt received, exiting.")
    return 0
