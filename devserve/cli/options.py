"""The options the commands share, declared once.

Their defaults are the configuration's own (devserve.config is cheap to import),
so ``--help`` and the server cannot disagree, nor `serve` and `cgi`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from devserve.config import (
    BadInput,
    parse_count,
    parse_port,
    parse_proxy,
    parse_seconds,
)
from devserve.config import CGIConfig as _CGIDefaults
from devserve.config import ProxyConfig as _ProxyDefaults
from devserve.config import ServeConfig as _ServeDefaults

# The configuration's defaults, shown by --help (devserve.config is cheap to import).
IDLE_TIMEOUT = _ServeDefaults.idle_timeout
MAX_CONNECTIONS = _ServeDefaults.max_connections
CGI_TIMEOUT = _CGIDefaults.timeout
CGI_MAX_BODY = _CGIDefaults.max_body
PROXY_TIMEOUT = _ProxyDefaults.timeout


class Protocol(str, Enum):
    """HTTP versions the server can speak."""

    http10 = "HTTP/1.0"
    http11 = "HTTP/1.1"


class LogFormat(str, Enum):
    """How request lines are written."""

    pretty = "pretty"
    plain = "plain"
    json = "json"


def parsed_by(parse: Callable[[str, str], Any], option: str) -> Callable[[Any], Any]:
    """An option parser from a devserve.config one: its BadInput is the usage error.

    Defaults arrive already converted and pass through.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # from a settings file, or a default: checked alike
        if not isinstance(value, str):
            return value
        try:
            return parse(value, option)
        except BadInput as error:
            raise typer.BadParameter(str(error)) from None

    return convert


# Options shared by `serve` and `cgi`, declared once; their defaults are the
# configuration's own (devserve.config), so the two cannot drift apart.
Directory = Annotated[Path, typer.Argument(help="Folder to serve.", show_default=True)]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        "-p",
        metavar="PORT",
        parser=parsed_by(parse_port, "--port"),
        help="Port to listen on; 0 picks any free port. [default: 8000, or the next free one]",
    ),
]
BindOption = Annotated[
    str | None,
    typer.Option(
        "--bind",
        "-b",
        metavar="ADDRESS",
        help="Address to listen on, IPv4 or IPv6 (:: also accepts IPv4). [default: 127.0.0.1]",
    ),
]
LanOption = Annotated[
    bool,
    typer.Option("--lan", help="Listen on every interface; print the LAN URLs and a QR code."),
]
ProtocolOption = Annotated[Protocol, typer.Option("--protocol", help="HTTP version to speak.")]
OpenOption = Annotated[bool, typer.Option("--open", help="Open the default browser on the URL.")]
CorsOption = Annotated[
    bool,
    typer.Option("--cors", help="Allow cross-origin requests (Access-Control-Allow-Origin: *)."),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header", "-H", metavar="'NAME: VALUE'", help="Add a response header (repeatable)."
    ),
]
SpaOption = Annotated[
    bool,
    typer.Option("--spa", help="Single-page app: unknown routes answer index.html with 200."),
]
NoListingOption = Annotated[
    bool, typer.Option("--no-listing", help="Never list directories (404 instead).")
]
ShowHiddenOption = Annotated[
    bool,
    typer.Option("--show-hidden", help="List and serve dotfiles (by default only .well-known/)."),
]
FollowSymlinksOption = Annotated[
    bool, typer.Option("--follow-symlinks", help="Follow symlinks that lead outside the folder.")
]
CleanUrlsOption = Annotated[
    bool,
    typer.Option(
        "--clean-urls",
        help="Redirect /about.html and /about/ to /about (308), as Cloudflare Pages does "
        "(/about serves about.html either way).",
    ),
]
NoHostFilesOption = Annotated[
    bool,
    typer.Option("--no-host-files", help="Ignore the _redirects and _headers files at the root."),
]
NotFoundPageOption = Annotated[
    str | None,
    typer.Option(
        "--404",
        metavar="FILE",
        help="Page in the folder served, with status 404, for missing paths. "
        "[default: 404.html, if there is one]",
    ),
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option("--tls-cert", metavar="FILE", help="Serve HTTPS with this certificate (PEM)."),
]
TlsKeyOption = Annotated[
    Path | None,
    typer.Option("--tls-key", metavar="FILE", help="Private key for --tls-cert (PEM)."),
]
TlsPasswordOption = Annotated[
    Path | None,
    typer.Option("--tls-password-file", metavar="FILE", help="File holding the key's password."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No request log.")]
LogFormatOption = Annotated[LogFormat, typer.Option("--log-format", help="Request log style.")]
IdleTimeoutOption = Annotated[
    float,
    typer.Option(
        "--idle-timeout",
        metavar="SECONDS",
        parser=parsed_by(parse_seconds, "--idle-timeout"),
        help="Close a kept-alive connection after this long without a request.",
    ),
]
MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        "--max-connections",
        metavar="N",
        parser=parsed_by(parse_count, "--max-connections"),
        help=(
            "Open connections at most; a new one pushes out the oldest slow or idle one, "
            "else gets 503. Another machine may hold a quarter of them."
        ),
    ),
]
ShowSettingsOption = Annotated[
    bool,
    typer.Option(
        "--show-settings",
        help="Print every setting and where it came from (flag, DEVSERVE_* variable, "
        "devserve.toml or pyproject.toml, default), then exit.",
    ),
]
ReloadOption = Annotated[
    bool,
    typer.Option(
        "--reload/--no-reload",
        help="Refresh open pages when files change (adds a small script to HTML pages).",
    ),
]
WatchOption = Annotated[
    list[Path] | None,
    typer.Option("--watch", metavar="PATH", help="With --reload, also watch PATH (repeatable)."),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="GLOB",
        help="With --reload, changes matching GLOB do not reload (repeatable; "
        "VCS folders, node_modules, virtualenvs and editor temp files never do).",
    ),
]


# --proxy (issue 14): forward requests under a URL prefix to a backend server (serve
# and cgi alike); devserve.config.ProxyConfig holds what they say.
# README: "Forward API calls to a backend (--proxy)".
ProxyOption = Annotated[
    list[Any] | None,  # ProxyRoute (devserve._proxy, imported only when used)
    typer.Option(
        "--proxy",
        metavar="PREFIX=URL",
        parser=parsed_by(parse_proxy, "--proxy"),
        help="Forward requests under PREFIX to the http:// or https:// backend URL "
        "(repeatable). A URL without a path keeps the request's path "
        "(/api=http://127.0.0.1:5000: /api/x goes to /api/x); a URL with one, even /, "
        "replaces the prefix (/api/=http://127.0.0.1:5000/: /api/x goes to /x).",
    ),
]
ProxyKeepHostOption = Annotated[
    bool,
    typer.Option(
        "--proxy-keep-host", help="Send backends the client's Host header, not their own."
    ),
]
ProxyTimeoutOption = Annotated[
    float,
    typer.Option(
        "--proxy-timeout",
        metavar="SECONDS",
        parser=parsed_by(parse_seconds, "--proxy-timeout"),
        help="Answer 504 when a backend sends no response for this long; also the most a "
        "response or a WebSocket may stay silent.",
    ),
]
ProxyCaOption = Annotated[
    Path | None,
    typer.Option(
        "--proxy-ca",
        metavar="FILE",
        help="Trust the certificates in FILE (PEM) for https:// backends, such as a "
        "self-signed one.",
    ),
]


# ---- Access and HTTPS without files (issue 14): --auth, --auth-file, --tls auto.
# The rules are devserve._auth's and devserve._tls_auto's.


class TLSMode(str, Enum):
    """How ``--tls`` gets its certificate."""

    auto = "auto"


# --auth is read where the configuration is built (devserve._auth.users_from), so
# that hashing is imported only when it is given, and its errors never echo it.
AuthOption = Annotated[
    str | None,
    typer.Option(
        "--auth",
        metavar="USER:PASSWORD",
        envvar="DEVSERVE_AUTH",
        show_envvar=True,
        show_default=False,
        help="HTTP Basic authentication for everything served. On the command line "
        "the password shows in ps and shell history: prefer DEVSERVE_AUTH or --auth-file.",
    ),
]
AuthFileOption = Annotated[
    Path | None,
    typer.Option(
        "--auth-file",
        metavar="FILE",
        help="HTTP Basic authentication: user:password lines (UTF-8; # comments).",
    ),
]
TlsOption = Annotated[
    TLSMode | None,
    typer.Option(
        "--tls",
        metavar="auto",
        help="auto: serve HTTPS with a self-signed certificate devserve makes and keeps.",
    ),
]
