"""``devserve serve`` and ``devserve cgi``: options in, one `ServeConfig` out, then serve.

Heavy modules (the server, rich, segno) are imported inside the functions, so
``--help`` and completion stay quick.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devserve.cli.app import fail
from devserve.cli.options import (
    CGI_MAX_BODY,
    CGI_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    PROXY_TIMEOUT,
    AuthFileOption,
    AuthOption,
    BindOption,
    CleanUrlsOption,
    CorsOption,
    Directory,
    FollowSymlinksOption,
    HeaderOption,
    IdleTimeoutOption,
    IgnoreOption,
    LanOption,
    LogFormat,
    LogFormatOption,
    MaxConnectionsOption,
    NoHostFilesOption,
    NoListingOption,
    NotFoundPageOption,
    OpenOption,
    PortOption,
    Protocol,
    ProtocolOption,
    ProxyCaOption,
    ProxyKeepHostOption,
    ProxyOption,
    ProxyTimeoutOption,
    QuietOption,
    ReloadOption,
    ShowHiddenOption,
    ShowSettingsOption,
    SpaOption,
    TlsCertOption,
    TlsKeyOption,
    TLSMode,
    TlsOption,
    TlsPasswordOption,
    WatchOption,
    parsed_by,
)
from devserve.config import parse_seconds, parse_size, size_text

if TYPE_CHECKING:
    from devserve._auth import User
    from devserve._proxy import ProxyRoute
    from devserve.config import CGIConfig, ProxyConfig, ServeConfig


def serve(
    ctx: typer.Context,
    directory: Directory = Path("."),
    port: PortOption = None,
    bind: BindOption = None,
    lan: LanOption = False,
    protocol: ProtocolOption = Protocol.http11,
    open_browser: OpenOption = False,
    cors: CorsOption = False,
    header: HeaderOption = None,
    spa: SpaOption = False,
    no_listing: NoListingOption = False,
    show_hidden: ShowHiddenOption = False,
    follow_symlinks: FollowSymlinksOption = False,
    clean_urls: CleanUrlsOption = False,
    no_host_files: NoHostFilesOption = False,
    not_found_page: NotFoundPageOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_password_file: TlsPasswordOption = None,
    quiet: QuietOption = False,
    log_format: LogFormatOption = LogFormat.pretty,
    reload: ReloadOption = False,
    idle_timeout: IdleTimeoutOption = IDLE_TIMEOUT,
    max_connections: MaxConnectionsOption = MAX_CONNECTIONS,
    watch: WatchOption = None,
    ignore: IgnoreOption = None,
    auth: AuthOption = None,
    auth_file: AuthFileOption = None,
    tls: TlsOption = None,
    proxy: ProxyOption = None,
    proxy_keep_host: ProxyKeepHostOption = False,
    proxy_timeout: ProxyTimeoutOption = PROXY_TIMEOUT,
    proxy_ca: ProxyCaOption = None,
    show_settings: ShowSettingsOption = False,
) -> None:
    """Serve DIRECTORY over HTTP."""
    config = _configured(
        lambda: _serve_config(
            directory=directory,
            port=port,
            bind=bind,
            lan=lan,
            protocol=protocol,
            open_browser=open_browser,
            cors=cors,
            header=header,
            spa=spa,
            no_listing=no_listing,
            show_hidden=show_hidden,
            follow_symlinks=follow_symlinks,
            clean_urls=clean_urls,
            no_host_files=no_host_files,
            not_found_page=not_found_page,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_password_file=tls_password_file,
            quiet=quiet,
            log_format=log_format,
            reload=reload,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            watch=watch,
            ignore=ignore,
            cgi=None,
            auth=_users(auth, auth_file),
            tls_auto=tls is TLSMode.auto,
            proxy=_proxy_options(proxy, proxy_keep_host, proxy_timeout, proxy_ca),
        )
    )
    if show_settings:
        _print_settings(ctx)
        return
    _serve(config)


def cgi(
    ctx: typer.Context,
    directory: Directory = Path("."),
    cgi_dir: Annotated[
        list[str] | None,
        typer.Option(
            "--cgi-dir",
            metavar="URL-PATH",
            help="URL folder whose files run as CGI scripts (repeatable). "
            "[default: /cgi-bin and /htbin]",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            parser=parsed_by(parse_seconds, "--timeout"),
            help="Seconds a script may run before it is killed.",
        ),
    ] = CGI_TIMEOUT,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", metavar="NAME=VALUE", help="Set a variable for scripts (repeatable)."
        ),
    ] = None,
    pass_env: Annotated[
        list[str] | None,
        typer.Option(
            "--pass-env",
            metavar="NAME",
            help="Hand this variable of devserve's environment to scripts (repeatable; "
            "PATH, LANG, LC_ALL and TZ always are).",
        ),
    ] = None,
    max_body: Annotated[
        int,
        typer.Option(
            "--max-body",
            metavar="SIZE",
            parser=parsed_by(parse_size, "--max-body"),
            show_default=False,
            help="Largest request body accepted: bytes, or with a unit (512K, 10M, 1G). "
            f"[default: {size_text(CGI_MAX_BODY)}]",
        ),
    ] = CGI_MAX_BODY,
    pass_authorization: Annotated[
        bool,
        typer.Option(
            "--pass-authorization",
            help="Hand scripts the request's Authorization header, unverified, as "
            "HTTP_AUTHORIZATION (REMOTE_USER is only ever a user devserve checked).",
        ),
    ] = False,
    port: PortOption = None,
    bind: BindOption = None,
    lan: LanOption = False,
    protocol: ProtocolOption = Protocol.http11,
    open_browser: OpenOption = False,
    cors: CorsOption = False,
    header: HeaderOption = None,
    spa: SpaOption = False,
    no_listing: NoListingOption = False,
    show_hidden: ShowHiddenOption = False,
    follow_symlinks: FollowSymlinksOption = False,
    clean_urls: CleanUrlsOption = False,
    no_host_files: NoHostFilesOption = False,
    not_found_page: NotFoundPageOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_password_file: TlsPasswordOption = None,
    quiet: QuietOption = False,
    log_format: LogFormatOption = LogFormat.pretty,
    reload: ReloadOption = False,
    idle_timeout: IdleTimeoutOption = IDLE_TIMEOUT,
    max_connections: MaxConnectionsOption = MAX_CONNECTIONS,
    watch: WatchOption = None,
    ignore: IgnoreOption = None,
    auth: AuthOption = None,
    auth_file: AuthFileOption = None,
    tls: TlsOption = None,
    proxy: ProxyOption = None,
    proxy_keep_host: ProxyKeepHostOption = False,
    proxy_timeout: ProxyTimeoutOption = PROXY_TIMEOUT,
    proxy_ca: ProxyCaOption = None,
    show_settings: ShowSettingsOption = False,
) -> None:
    """Serve DIRECTORY and run CGI scripts in its CGI folders (RFC 3875)."""

    def build() -> ServeConfig:
        from devserve.config import CGIConfig, parse_env

        gateway = CGIConfig(
            directories=tuple(cgi_dir) if cgi_dir else CGIConfig.directories,
            timeout=timeout,
            env=tuple(parse_env(text) for text in env or ()),
            pass_env=tuple(pass_env or ()),
            max_body=max_body,
            pass_authorization=pass_authorization,
        )
        return _serve_config(
            directory=directory,
            port=port,
            bind=bind,
            lan=lan,
            protocol=protocol,
            open_browser=open_browser,
            cors=cors,
            header=header,
            spa=spa,
            no_listing=no_listing,
            show_hidden=show_hidden,
            follow_symlinks=follow_symlinks,
            clean_urls=clean_urls,
            no_host_files=no_host_files,
            not_found_page=not_found_page,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_password_file=tls_password_file,
            quiet=quiet,
            log_format=log_format,
            reload=reload,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            watch=watch,
            ignore=ignore,
            cgi=gateway,
            auth=_users(auth, auth_file),
            tls_auto=tls is TLSMode.auto,
            proxy=_proxy_options(proxy, proxy_keep_host, proxy_timeout, proxy_ca),
        )

    config = _configured(build)
    if show_settings:
        _print_settings(ctx)
        return
    _serve(config)


def _serve_config(
    *,
    directory: Path,
    port: int | None,
    bind: str | None,
    lan: bool,
    protocol: Protocol,
    open_browser: bool,
    cors: bool,
    header: list[str] | None,
    spa: bool,
    no_listing: bool,
    show_hidden: bool,
    follow_symlinks: bool,
    clean_urls: bool,
    no_host_files: bool,
    not_found_page: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_password_file: Path | None,
    quiet: bool,
    log_format: LogFormat,
    reload: bool,
    idle_timeout: float,
    max_connections: int,
    watch: list[Path] | None,
    ignore: list[str] | None,
    cgi: CGIConfig | None,
    auth: tuple[User, ...],
    tls_auto: bool,
    proxy: ProxyConfig | None = None,
) -> ServeConfig:
    """The configuration the options of `serve` (and `cgi`) describe; ServeError if bad."""
    from devserve.config import ServeConfig, parse_header, reload_config

    return ServeConfig(
        directory=directory,
        port=port,
        bind=bind,
        lan=lan,
        protocol=protocol.value,
        open_browser=open_browser,
        cors=cors,
        headers=tuple(parse_header(text) for text in header or ()),
        spa=spa,
        listing=not no_listing,
        show_hidden=show_hidden,
        follow_symlinks=follow_symlinks,
        host_files=not no_host_files,
        clean_urls=clean_urls,
        not_found_page=not_found_page,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_password_file=tls_password_file,
        quiet=quiet,
        log_format=log_format.value,
        cgi=cgi,
        reload=reload_config(reload, tuple(watch or ()), tuple(ignore or ())),
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        auth=auth,
        tls_auto=tls_auto,
        proxy=proxy,
    )


def _users(auth: str | None, auth_file: Path | None) -> tuple[User, ...]:
    """The users --auth (or DEVSERVE_AUTH) or --auth-file names; BadInput if bad or both."""
    if auth is None and auth_file is None:
        return ()
    from devserve._auth import users_from

    return users_from(auth, auth_file)


def _proxy_options(
    routes: list[ProxyRoute] | None, keep_host: bool, timeout: float, ca: Path | None
) -> ProxyConfig | None:
    """The --proxy options as the configuration holds them (BadInput if they are bad)."""
    from devserve.config import proxy_config

    return proxy_config(tuple(routes or ()), keep_host, timeout, ca)


def _configured(build: Callable[[], ServeConfig]) -> ServeConfig:
    """The configuration ``build`` makes, or the error on one line and exit status 2."""
    from devserve.config import ServeError

    try:
        return build()
    except ServeError as error:
        fail(error)


def _print_settings(ctx: typer.Context) -> None:
    """--show-settings: every option's value (TOML) and where it came from."""
    import os

    settings_file = ctx.find_root().obj.get("settings_file") if ctx.find_root().obj else None
    where = {
        "COMMANDLINE": "command line",
        "DEFAULT_MAP": str(settings_file),
        "DEFAULT": "default",
    }
    for param in ctx.command.params:
        name = param.name
        if not name or name == "show_settings":
            continue
        source = ctx.get_parameter_source(name)
        said = where.get(source.name if source else "", "")
        if source is not None and source.name == "ENVIRONMENT":
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
            said = f"environment: {next((n for n in names if n in os.environ), names[0])}"
        value, key = ctx.params.get(name), name.replace("_", "-")
        if value is None or (isinstance(value, (list, tuple)) and not value):
            typer.echo(f"# {key} is not set ({said})")
            continue
        shown = '"***"' if name == "auth" else _toml(value)  # never a password
        typer.echo(f"{key} = {shown}  # {said}")


def _toml(value: Any) -> str:
    """``value`` as a TOML value (not None: TOML has none)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    import json

    return json.dumps(str(value))


def _serve(config: ServeConfig) -> None:
    """Run the server for ``config`` with the request log on the terminal."""
    import sys

    from devserve import serving
    from devserve.console import RequestLog, make_console

    # JSON lines go to standard output, so `devserve --log-format json | jq` works;
    # the other formats are for a person, on standard error.
    console = make_console(sys.stdout) if config.log_format == "json" else make_console()
    log = RequestLog(console, config.log_format)
    log.start()
    try:
        serving.serve(config, log)
    except serving.ServeError as error:
        log.close()
        fail(error)
    finally:
        log.close()
