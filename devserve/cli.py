"""The ``devserve`` command line (the only module that imports Typer).

It parses options into a `ServeConfig`, calls one core function, and turns
devserve's errors into exit codes. Heavy modules (the server, rich, segno) are
imported inside the commands, so ``--help`` and completion stay quick.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from devserve import __version__
from devserve.config import (
    BadInput,
    parse_count,
    parse_port,
    parse_seconds,
    parse_size,
    size_text,
)
from devserve.config import CGIConfig as _CGIDefaults
from devserve.config import ServeConfig as _ServeDefaults

if TYPE_CHECKING:
    from devserve._auth import User
    from devserve.config import CGIConfig, ServeConfig

# The configuration's defaults, shown by --help (devserve.config is cheap to import).
IDLE_TIMEOUT = _ServeDefaults.idle_timeout
MAX_CONNECTIONS = _ServeDefaults.max_connections
CGI_TIMEOUT = _CGIDefaults.timeout
CGI_MAX_BODY = _CGIDefaults.max_body

app = typer.Typer(
    name="devserve",
    help="A development web server: serve a folder over HTTP. "
    "Without a command, devserve [DIRECTORY] [OPTIONS] is devserve serve.",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help: Typer's rich help pulls in rich's markdown renderer, which alone
    # costs more start-up time than the whole command may take.
    rich_markup_mode=None,
)

COMPLETION_FILES = {"bash": "devserve.bash", "zsh": "_devserve", "fish": "devserve.fish"}


class Protocol(str, Enum):
    """HTTP versions the server can speak."""

    http10 = "HTTP/1.0"
    http11 = "HTTP/1.1"


class LogFormat(str, Enum):
    """How request lines are written."""

    pretty = "pretty"
    plain = "plain"
    json = "json"


def _parsed_by(parse: Callable[[str, str], Any], option: str) -> Callable[[Any], Any]:
    """An option parser from a devserve.config one: its BadInput is the usage error.

    Defaults arrive already converted and pass through.
    """

    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse(value, option)
        except BadInput as error:
            raise typer.BadParameter(str(error)) from None

    return convert


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (what completions/ ships, statically)."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(
        prog_name="devserve", complete_var="_DEVSERVE_COMPLETE", shell=shell
    )


def write_completions(folder: Path = Path("completions")) -> None:
    """Regenerate the static completion scripts in ``folder``."""
    for shell, name in COMPLETION_FILES.items():
        (folder / name).write_text(completion_script(shell))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"devserve {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """A development web server: serve a folder over HTTP."""


# Options shared by `serve` and `cgi`, declared once; their defaults are the
# configuration's own (devserve.config), so the two cannot drift apart.
Directory = Annotated[Path, typer.Argument(help="Folder to serve.", show_default=True)]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        "-p",
        metavar="PORT",
        parser=_parsed_by(parse_port, "--port"),
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
        parser=_parsed_by(parse_seconds, "--idle-timeout"),
        help="Close a kept-alive connection after this long without a request.",
    ),
]
MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        "--max-connections",
        metavar="N",
        parser=_parsed_by(parse_count, "--max-connections"),
        help=(
            "Open connections at most; a new one pushes out the oldest slow or idle one, "
            "else gets 503. Another machine may hold a quarter of them."
        ),
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


# ---- Access and HTTPS without files (issue 14): --auth, --auth-file, --tls auto.
# Declared together; the rules are devserve._auth's and devserve._tls_auto's.


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
        help="auto: serve HTTPS with a self-signed certificate devserve makes and keeps "
        "(pip install 'devserve[tls]').",
    ),
]


def _users(auth: str | None, auth_file: Path | None) -> tuple[User, ...]:
    """The users --auth (or DEVSERVE_AUTH) or --auth-file names; BadInput if bad or both."""
    if auth is None and auth_file is None:
        return ()
    from devserve._auth import users_from

    return users_from(auth, auth_file)


@app.command()
def serve(
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
        )
    )
    _serve(config)


@app.command()
def cgi(
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
            parser=_parsed_by(parse_seconds, "--timeout"),
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
            parser=_parsed_by(parse_size, "--max-body"),
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
        )

    _serve(_configured(build))


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
    )


def _configured(build: Callable[[], ServeConfig]) -> ServeConfig:
    """The configuration ``build`` makes, or the error on one line and exit status 2."""
    from devserve.config import ServeError

    try:
        return build()
    except ServeError as error:
        _fail(error)


def _fail(error: Exception) -> NoReturn:
    """Say what went wrong on one line; bad input is status 2, anything else 1."""
    _print_error(str(error))
    raise typer.Exit(EXIT_USAGE if isinstance(error, BadInput) else EXIT_FAILED)


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
        _fail(error)
    finally:
        log.close()


# ---------------------------------------------------------------- devserve check


class CheckFormat(str, Enum):
    """How `devserve check` writes its findings."""

    pretty = "pretty"
    json = "json"
    github = "github"


CheckDirectory = Annotated[Path, typer.Argument(help="Folder to check.", show_default=True)]


@app.command()
def check(
    directory: CheckDirectory = Path("."),
    show_hidden: ShowHiddenOption = False,
    follow_symlinks: FollowSymlinksOption = False,
    spa: SpaOption = False,
    no_listing: NoListingOption = False,
    no_host_files: NoHostFilesOption = False,
    cgi_dir: Annotated[
        list[str] | None,
        typer.Option(
            "--cgi-dir",
            metavar="URL-PATH",
            help="Check as `devserve cgi --cgi-dir URL-PATH` would serve: every file in "
            "that URL folder is a CGI script (repeatable).",
        ),
    ] = None,
    output_format: Annotated[
        CheckFormat,
        typer.Option(
            "--format",
            help="pretty: grouped by severity; json: machine-readable; "
            "github: GitHub Actions annotations.",
        ),
    ] = CheckFormat.pretty,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with status 1 on warnings too, not only errors.")
    ] = False,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="CODE",
            help="Do not report this finding code, or a family such as DS5xx (repeatable).",
        ),
    ] = None,
    lan: LanOption = False,
    bind: BindOption = None,
    tls: TlsOption = None,
    tls_cert: TlsCertOption = None,
) -> None:
    """Check DIRECTORY for what would go wrong if it were served with these options.

    Exposed secrets, symlinks, broken links, MIME types, live reload, CGI scripts,
    file names, the _redirects and _headers files, and (with --lan or --bind and
    no TLS) APIs that need HTTPS on other machines. Exit status: 0 no errors,
    1 errors (with --strict, warnings too), 2 bad usage.
    """
    import sys

    from devserve.check import CheckConfig, CheckError, parse_ignore
    from devserve.check import check as run_check
    from devserve.console import CheckProgress, make_console, print_check_report, print_error

    errors = make_console()
    try:
        config = CheckConfig(
            directory=directory,
            show_hidden=show_hidden,
            follow_symlinks=follow_symlinks,
            spa=spa,
            listing=not no_listing,
            cgi_directories=tuple(cgi_dir or ()),
            host_files=not no_host_files,
            ignore=parse_ignore(ignore or ()),
            lan=lan,
            bind=bind,
            tls_auto=tls is TLSMode.auto,
            tls_cert=tls_cert,
        )
        progress = CheckProgress(errors)
        try:
            report = run_check(config, progress)
        finally:
            progress.close()
    except CheckError as error:
        print_error(errors, str(error))
        raise typer.Exit(EXIT_USAGE) from None
    print_check_report(make_console(sys.stdout), report, output_format.value)
    if report.failed(strict):
        raise typer.Exit(1)


# What may come first on the command line without meaning "serve".
_COMMANDS = ("serve", "cgi", "check")
_TOP_LEVEL = ("-h", "--help", "--version", "--install-completion", "--show-completion")
# Exit statuses: 0 done; 1 could not run (a busy port) or, for check, errors
# found; 2 bad usage: an option, a value, or a file or folder it names.
EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: ``devserve [COMMAND] [OPTIONS] [DIRECTORY]``.

    Without a command, devserve serves (``devserve``, ``devserve site -p 3000``),
    as http-server, live-server, miniserve and serve do; ``devserve -h`` lists
    the commands. Every usage error is one ``devserve: error:`` line, status 2.
    """
    import os
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if "_DEVSERVE_COMPLETE" not in os.environ:
        args = _with_command(args)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="devserve", standalone_mode=False)
    except typer.TyperException as error:  # Click's usage errors and their kin
        _print_error(_usage_message(error))
        raise SystemExit(getattr(error, "exit_code", EXIT_USAGE)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _with_command(args: list[str]) -> list[str]:
    """``args`` with ``serve`` in front unless they start with a command or a top-level
    option; a near miss of a command name is an error rather than a folder name."""
    if args and (args[0] in _COMMANDS or args[0] in _TOP_LEVEL):
        return args
    if args and not args[0].startswith("-") and not Path(args[0]).exists():
        import difflib

        close = difflib.get_close_matches(args[0], _COMMANDS, n=1, cutoff=0.75)
        if close:
            _print_error(f"no such command {args[0]!r} (did you mean {close[0]!r}?)")
            raise SystemExit(EXIT_USAGE)
    return ["serve", *args]


def _usage_message(error: typer.TyperException) -> str:
    """One line for a usage error, without the framework's wording or type names."""
    param = getattr(error, "param", None)
    message = str(getattr(error, "message", None) or error.format_message())
    option_name = getattr(error, "option_name", None)
    if option_name:  # an unknown option
        import difflib

        known = list(getattr(error, "possibilities", None) or ())
        possible = difflib.get_close_matches(option_name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {possible[0]}?)" if possible else ""
        where = getattr(getattr(error, "ctx", None), "command_path", None) or "devserve"
        return f"no such option: {option_name}{hint}; see '{where} -h'"
    if param is not None:
        names = [name for name in getattr(param, "opts", ()) if name.startswith("--")]
        name = names[0] if names else str(getattr(param, "human_readable_name", ""))
        if not message.startswith(name):
            message = f"{name}: {message}"
    return (message[:1].lower() + message[1:]).rstrip(".")


def _print_error(message: str) -> None:
    from devserve.console import make_console, print_error

    print_error(make_console(), message)
