"""What `devserve serve` and `devserve cgi` can be told: the configuration, its checks and defaults.

The CLI builds a `ServeConfig` and hands it to `devserve.serving.serve`; the
defaults here are the CLI's defaults (it reads them from these classes: a frozen
dataclass's class attribute is its field's default). A bad
value fails where the configuration is built, with a `ServeError` whose message
is one line for the user. This module imports nothing heavy: the CLI imports it
for ``--help`` and completion.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from devserve._auth import User
    from devserve._proxy import ProxyRoute

DEFAULT_PORT = 8000
# How many ports after the default are tried when it is busy.
PORT_SEARCH = 20
PROTOCOLS = ("HTTP/1.0", "HTTP/1.1")
LogFormat = Literal["pretty", "plain", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("pretty", "plain", "json")
LOOPBACK = "127.0.0.1"
# Live-reload event streams open at once, at most (a new one ends the oldest).
EVENT_STREAMS = 64

# Headers about the connection and the message framing: one response's own
# business, so --header cannot set them (a fixed value would break keep-alive).
FRAMING_HEADERS = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding", "te", "trailer", "upgrade"}
)
# The server's variables every CGI script gets (PATH finds interpreters in #! lines).
CGI_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
# Characters a header name may hold (an RFC 9110 token).
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class ServeError(Exception):
    """A problem with the configuration or the environment, in one line for the user.

    The command line exits with status 1 for it (the server could not run: a busy
    port, say), or 2 for a `BadInput`.
    """


class BadInput(ServeError):
    """What the user gave cannot be used: an option's value, or a file or folder it
    names (exit status 2, like any other bad usage)."""


# Size units for --max-body and friends: binary, as the sizes devserve prints.
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE | re.ASCII)


def parse_size(text: str, option: str = "size") -> int:
    """``10M``, ``512k``, ``1.5G``, ``10MiB``, ``10 MB`` or a plain byte count, as bytes.

    Units are binary (K = 1024). BadInput for anything else.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise BadInput(f"{option}: expected a size such as 1048576, 512K, 10M or 1G, not {text!r}")
    return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])


def size_text(size: int) -> str:
    """``size`` as `parse_size` reads it, in the largest unit it is a whole number of."""
    for unit in "TGMK":
        if size and size % _SIZE_UNITS[unit.lower()] == 0:
            return f"{size // _SIZE_UNITS[unit.lower()]}{unit}"
    return str(size)


def parse_seconds(text: str, option: str = "seconds") -> float:
    """A positive, finite number of seconds; BadInput otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise BadInput(f"{option}: expected a number of seconds above 0, not {text!r}")
    return value


def parse_count(text: str, option: str = "count") -> int:
    """A whole number of at least 1; BadInput otherwise."""
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise BadInput(f"{option}: expected a whole number of at least 1, not {text!r}")
    return int(text)


def parse_port(text: str, option: str = "--port") -> int:
    """A port number, 0 to 65535 (0: any free port); BadInput otherwise."""
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or int(stripped) > 65535:
        raise BadInput(f"{option}: expected a port number from 0 to 65535, not {text!r}")
    return int(stripped)


@dataclass(frozen=True)
class CGIConfig:
    """What `devserve cgi` adds to `serve`."""

    directories: tuple[str, ...] = ("/cgi-bin", "/htbin")
    timeout: float = 60.0
    env: tuple[tuple[str, str], ...] = ()
    pass_env: tuple[str, ...] = ()
    max_body: int = 1024**3
    # Hand scripts the request's Authorization field (unverified) as HTTP_AUTHORIZATION.
    pass_authorization: bool = False

    def __post_init__(self) -> None:
        for directory in self.directories:
            if not directory.startswith("/") or not directory.strip("/"):
                raise BadInput(f"--cgi-dir must be a URL folder like /cgi-bin, not {directory!r}")
        # "/cgi-bin/" names the same folder as "/cgi-bin" (the gateway matches the latter).
        normal = tuple(directory.rstrip("/") for directory in self.directories)
        object.__setattr__(self, "directories", normal)
        if self.timeout <= 0:
            raise BadInput("--timeout must be more than 0 seconds")
        if self.max_body < 0:
            raise BadInput("--max-body cannot be negative")


@dataclass(frozen=True)
class ReloadConfig:
    """What ``--reload`` adds: the folders watched besides the served one, and globs ignored."""

    watch: tuple[Path, ...] = ()
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProxyConfig:
    """What ``--proxy PREFIX=URL`` adds: routes to backends, and how requests are forwarded.

    README: "Forward API calls to a backend (--proxy)". Routes come from `parse_proxy`.
    """

    routes: tuple[ProxyRoute, ...]
    keep_host: bool = False  # send the client's Host, not the backend's
    # Seconds a backend may take to answer, and to send each piece of a response
    # (and the most a WebSocket tunnel may stay silent both ways).
    timeout: float = 60.0
    connect_timeout: float = 5.0  # seconds to connect to a backend
    ca: Path | None = None  # certificates trusted for https:// backends (PEM)

    def __post_init__(self) -> None:
        from devserve._proxy import duplicate_prefixes

        if not self.routes:
            raise BadInput("--proxy-keep-host, --proxy-timeout and --proxy-ca need --proxy")
        duplicates = duplicate_prefixes(self.routes)
        if duplicates:
            raise BadInput(f"--proxy: the prefix is given twice: {duplicates[0]}")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise BadInput("--proxy-timeout must be more than 0 seconds")


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
    log_format: LogFormat = "pretty"
    cgi: CGIConfig | None = None
    reload: ReloadConfig | None = None
    # How static hosts serve a site (README: "Preview a site as it will be hosted").
    host_files: bool = True  # honour _redirects and _headers at the root
    clean_urls: bool = False  # redirect /about.html (and /about/) to /about
    not_found_page: str | None = None  # --404: a page in the folder; None: 404.html if there
    # Limits that keep slow, idle and flooding clients in check.
    idle_timeout: float = 30.0  # seconds a kept-alive connection may sit idle
    # Beyond this, a new connection pushes out the oldest slow or idle one, or gets 503.
    max_connections: int = 1024
    request_timeout: float = 10.0  # seconds for a request line and headers to arrive
    # Access and HTTPS without files (issue 14; README: "--auth" and "--tls auto").
    auth: tuple[User, ...] = ()  # HTTP Basic: only these users are served (none: everyone)
    tls_auto: bool = False  # HTTPS with a certificate devserve makes and keeps (devserve._tls_auto)
    # --proxy PREFIX=URL: requests under a prefix go to a backend
    # (README: "Forward API calls to a backend (--proxy)").
    proxy: ProxyConfig | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise BadInput(f"unsupported protocol {self.protocol!r} (use HTTP/1.0 or HTTP/1.1)")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise BadInput(f"port out of range: {self.port} (use 0-65535)")
        if self.idle_timeout <= 0 or self.request_timeout <= 0:
            raise BadInput("timeouts must be more than 0 seconds")
        if self.max_connections < 1:
            raise BadInput("--max-connections must be at least 1")
        if self.lan and self.bind is not None:
            raise BadInput("use either --lan or --bind, not both")
        if self.tls_cert is None and (self.tls_key or self.tls_password_file):
            raise BadInput("--tls-key and --tls-password-file need --tls-cert")
        if self.log_format not in LOG_FORMATS:
            raise BadInput(f"unknown log format {self.log_format!r}")
        for name, value in self.headers:
            check_header(name, value)
        if self.not_found_page is not None:
            check_page_path(self.not_found_page)
        if self.tls_auto and self.tls_cert is not None:
            raise BadInput("use either --tls auto or --tls-cert, not both")
        if len({user.name for user in self.auth}) != len(self.auth):
            raise BadInput("--auth: a user name is given twice")

    @property
    def max_connections_per_client(self) -> int:
        """What one address other than this machine may hold: a quarter of the cap."""
        return max(1, self.max_connections // 4)

    @property
    def max_event_streams(self) -> int:
        """Live-reload streams open at once (each is a thread and four descriptors):
        64, or a quarter of the connection cap, so streams never fill it."""
        return max(1, min(EVENT_STREAMS, self.max_connections // 4))

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS (``--tls-cert`` or ``--tls auto``)."""
        return self.tls_cert is not None or self.tls_auto

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def check_header(name: str, value: str) -> None:
    """Refuse a header the server could not send as given (ServeError, at start-up)."""
    shown = f"{name}: {value}"
    if not name or any(c not in _TOKEN_CHARS for c in name):
        raise BadInput(f"malformed --header {shown!r}: {name!r} is not a header name")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise BadInput(
            f"malformed --header {shown!r}: header values must be Latin-1 "
            "(percent-encode other characters)"
        ) from None
    if any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) < 0xA0 for c in value):
        raise BadInput(f"malformed --header {shown!r}: control characters")
    if name.lower() in FRAMING_HEADERS:
        raise BadInput(
            f"--header {name!r} is not allowed: the server sets it for each response itself"
        )


def check_page_path(page: str) -> None:
    """Refuse a ``--404`` page that is not a relative path inside the folder (ServeError)."""
    parts = page.replace("\\", "/").split("/")
    if not page or "\x00" in page or page.startswith("/") or ".." in parts or not parts[-1]:
        raise ServeError(
            f"--404 must name a file inside the served folder, like 404.html (not {page!r})"
        )


def parse_header(text: str) -> tuple[str, str]:
    """A ``--header "Name: value"`` option as (name, value), or ServeError."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise BadInput(f"malformed --header {text!r} (expected 'Name: value')")
    check_header(name, value)
    return name, value


def parse_env(text: str) -> tuple[str, str]:
    """A ``--env NAME=VALUE`` option as (name, value), or ServeError."""
    name, sep, value = text.partition("=")
    if not sep or not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise BadInput(f"malformed --env {text!r} (expected NAME=VALUE)")
    return name, value


def parse_proxy(text: str, option: str = "--proxy") -> ProxyRoute:
    """A ``--proxy PREFIX=URL`` option as a route, or BadInput saying what is wrong."""
    from devserve._proxy import BadRoute, parse_route

    try:
        return parse_route(text)
    except BadRoute as error:
        raise BadInput(f"{option} {text!r}: {error}") from None


def proxy_config(
    routes: tuple[ProxyRoute, ...] | list[ProxyRoute] = (),
    keep_host: bool = False,
    timeout: float = ProxyConfig.timeout,
    ca: Path | None = None,
) -> ProxyConfig | None:
    """The ``--proxy`` options as a ProxyConfig (None without routes), or BadInput."""
    if not routes and not keep_host and timeout == ProxyConfig.timeout and ca is None:
        return None
    return ProxyConfig(tuple(routes), keep_host=keep_host, timeout=timeout, ca=ca)


def reload_config(
    enabled: bool,
    watch: tuple[Path, ...] | list[Path] = (),
    ignore: tuple[str, ...] | list[str] = (),
) -> ReloadConfig | None:
    """The ``--reload``, ``--watch`` and ``--ignore`` options as a ReloadConfig, or ServeError."""
    if not enabled:
        if watch or ignore:
            raise BadInput("--watch and --ignore need --reload")
        return None
    return ReloadConfig(watch=tuple(watch), ignore=tuple(ignore))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 request``, ``2 requests`` (``nouns``: an irregular plural)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


# Settings the start-up banner shows elsewhere (the URLs, the log itself) or never
# (secrets); every other field of ServeConfig is described when it is not the default.
_NOT_DESCRIBED = frozenset(
    {"directory", "port", "bind", "lan", "tls_key", "tls_password_file", "log_format"}
)


def describe_settings(config: ServeConfig) -> list[str]:
    """Every setting of ``config`` that is not the default, in words (the banner's Options).

    A new field of ServeConfig must be described here or listed in _NOT_DESCRIBED
    (a test walks the fields), so a setting can never be on without the banner saying so.
    """
    default = ServeConfig()
    said: list[str] = []
    for name in ServeConfig.__dataclass_fields__:
        value, usual = getattr(config, name), getattr(default, name)
        if name in _NOT_DESCRIBED or value == usual:
            continue
        said.extend(_describe(name, value))
    return said


def _describe(name: str, value: object) -> list[str]:
    simple = {
        "open_browser": "opens the browser",
        "cors": "cors",
        "spa": "spa",
        "listing": "no listing",
        "show_hidden": "hidden files served",
        "follow_symlinks": "symlinks leave the root",
        "tls_cert": "tls",
        "tls_auto": "tls auto",
        "quiet": "quiet",
        "clean_urls": "clean URLs",
        "host_files": "no host files",
    }
    if name in simple:
        return [simple[name]]
    if name == "headers":
        assert isinstance(value, tuple)
        return [plural(len(value), "extra header")]
    if name == "auth":  # how many users: never a name or a password
        assert isinstance(value, tuple)
        return [f"auth: {plural(len(value), 'user')}"]
    if name == "reload":
        assert isinstance(value, ReloadConfig)
        extra = [plural(len(value.watch), "more path") + " watched"] if value.watch else []
        ignored = [plural(len(value.ignore), "ignore pattern")] if value.ignore else []
        return ["live reload", *extra, *ignored]
    if name == "cgi":
        assert isinstance(value, CGIConfig)
        return _describe_cgi(value)
    if name == "proxy":
        assert isinstance(value, ProxyConfig)
        return _describe_proxy(value)
    described = {
        "protocol": lambda: str(value),
        "cache_control": lambda: f"Cache-Control: {value}",
        "not_found_page": lambda: f"404 page: {value}",
        "idle_timeout": lambda: f"idle timeout {value:g} s",
        "request_timeout": lambda: f"request timeout {value:g} s",
        "max_connections": lambda: f"at most {plural(int(str(value)), 'connection')}",
    }
    if name not in described:
        raise KeyError(f"describe_settings does not know {name!r}")
    return [described[name]()]


def _describe_proxy(proxy: ProxyConfig) -> list[str]:
    said = [f"proxy {route.prefix} -> {route.url}" for route in proxy.routes]
    if proxy.keep_host:
        said.append("backends get the client's Host")
    if proxy.timeout != ProxyConfig.timeout:
        said.append(f"proxy timeout {proxy.timeout:g} s")
    if proxy.ca is not None:
        said.append(f"backend certificates from {proxy.ca}")
    return said


def _describe_cgi(cgi: CGIConfig) -> list[str]:
    default = CGIConfig()
    said = [f"cgi: {', '.join(cgi.directories)}"]
    if cgi.timeout != default.timeout:
        said.append(f"script timeout {cgi.timeout:g} s")
    if cgi.max_body != default.max_body:
        said.append(f"max body {size_text(cgi.max_body)}")
    if cgi.env:
        said.append(plural(len(cgi.env), "script variable"))
    if cgi.pass_env:
        said.append(f"passes {', '.join(cgi.pass_env)}")
    if cgi.pass_authorization:
        said.append("Authorization passed to scripts")
    return said
