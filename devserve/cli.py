"""The ``devserve`` command line (the only module that imports Typer).

It parses options into a `ServeConfig`, calls one core function, and turns
devserve's errors into exit codes. Heavy modules (the server, rich, segno) are
imported inside the commands, so ``--help`` and completion stay quick.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from devserve import __version__

app = typer.Typer(
    name="devserve",
    help="A development web server: serve a folder over HTTP.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
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


# Options shared by `serve` and `cgi`, declared once. Typer reads these
# annotations at run time, hence Optional[...] rather than "X | None".
Directory = Annotated[Path, typer.Argument(help="Folder to serve.", show_default=True)]
PortOption = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--port",
        "-p",
        help="Port to listen on; 0 picks any free port. [default: 8000, or the next free one]",
    ),
]
BindOption = Annotated[
    Optional[str],  # noqa: UP045
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
    Optional[list[str]],  # noqa: UP045
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
TlsCertOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM)."),
]
TlsKeyOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--tls-key", help="Private key for --tls-cert (PEM)."),
]
TlsPasswordOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--tls-password-file", help="File holding the key's password."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No request log.")]
LogFormatOption = Annotated[LogFormat, typer.Option("--log-format", help="Request log style.")]
IdleTimeoutOption = Annotated[
    float,
    typer.Option(
        "--idle-timeout",
        min=0.1,
        metavar="SECONDS",
        help="Close a kept-alive connection after this long without a request.",
    ),
]
MaxConnectionsOption = Annotated[
    int,
    typer.Option(
        "--max-connections",
        min=1,
        metavar="N",
        help="Open connections beyond this are answered 503 (each one is a thread).",
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
    Optional[list[Path]],  # noqa: UP045
    typer.Option("--watch", metavar="PATH", help="With --reload, also watch PATH (repeatable)."),
]
IgnoreOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--ignore",
        metavar="GLOB",
        help="With --reload, changes matching GLOB do not reload (repeatable; "
        "VCS folders, node_modules, virtualenvs and editor temp files never do).",
    ),
]


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
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_password_file: TlsPasswordOption = None,
    quiet: QuietOption = False,
    log_format: LogFormatOption = LogFormat.pretty,
    reload: ReloadOption = False,
    idle_timeout: IdleTimeoutOption = 30.0,
    max_connections: MaxConnectionsOption = 1024,
    watch: WatchOption = None,
    ignore: IgnoreOption = None,
) -> None:
    """Serve DIRECTORY over HTTP."""
    _run(locals(), None)


@app.command()
def cgi(
    directory: Directory = Path("."),
    cgi_dir: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--cgi-dir",
            metavar="URL-PATH",
            help="URL folder whose files run as CGI scripts (repeatable). "
            "[default: /cgi-bin and /htbin]",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds a script may run before it is killed."),
    ] = 60.0,
    env: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--env", metavar="NAME=VALUE", help="Set a variable for scripts (repeatable)."
        ),
    ] = None,
    pass_env: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--pass-env",
            metavar="NAME",
            help="Hand this variable of devserve's environment to scripts (repeatable; "
            "PATH, LANG, LC_ALL and TZ always are).",
        ),
    ] = None,
    max_body: Annotated[
        int,
        typer.Option("--max-body", min=0, metavar="BYTES", help="Largest request body accepted."),
    ] = 1024**3,
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
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    tls_password_file: TlsPasswordOption = None,
    quiet: QuietOption = False,
    log_format: LogFormatOption = LogFormat.pretty,
    reload: ReloadOption = False,
    idle_timeout: IdleTimeoutOption = 30.0,
    max_connections: MaxConnectionsOption = 1024,
    watch: WatchOption = None,
    ignore: IgnoreOption = None,
) -> None:
    """Serve DIRECTORY and run CGI scripts in its CGI folders (RFC 3875)."""
    options = locals()
    _run(options, options)


def _run(options: dict[str, Any], cgi_options: dict[str, Any] | None) -> None:
    """Build the configuration from parsed options, serve, and map errors to exit codes."""
    from devserve import config as settings
    from devserve import serving
    from devserve.console import RequestLog, make_console, print_error

    console = make_console()
    log_format: LogFormat = options["log_format"]
    try:
        headers = tuple(settings.parse_header(text) for text in options["header"] or ())
        reload = settings.reload_config(
            options["reload"], options["watch"] or (), options["ignore"] or ()
        )
        cgi = None
        if cgi_options is not None:
            cgi = settings.CGIConfig(
                directories=tuple(cgi_options["cgi_dir"] or settings.CGIConfig.directories),
                timeout=cgi_options["timeout"],
                env=tuple(settings.parse_env(text) for text in cgi_options["env"] or ()),
                pass_env=tuple(cgi_options["pass_env"] or ()),
                max_body=cgi_options["max_body"],
            )
        config = settings.ServeConfig(
            directory=options["directory"],
            port=options["port"],
            bind=options["bind"],
            lan=options["lan"],
            protocol=options["protocol"].value,
            open_browser=options["open_browser"],
            cors=options["cors"],
            headers=headers,
            spa=options["spa"],
            listing=not options["no_listing"],
            show_hidden=options["show_hidden"],
            follow_symlinks=options["follow_symlinks"],
            tls_cert=options["tls_cert"],
            tls_key=options["tls_key"],
            tls_password_file=options["tls_password_file"],
            quiet=options["quiet"],
            log_format=log_format.value,
            cgi=cgi,
            reload=reload,
            idle_timeout=options["idle_timeout"],
            max_connections=options["max_connections"],
        )
    except settings.ServeError as error:
        print_error(console, str(error))
        raise typer.Exit(1) from None
    log = RequestLog(console, log_format.value)
    log.start()
    try:
        serving.serve(config, log)
    except serving.ServeError as error:
        log.close()
        print_error(console, str(error))
        raise typer.Exit(1) from None
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
    cgi_dir: Annotated[
        Optional[list[str]],  # noqa: UP045
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
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--ignore",
            metavar="CODE",
            help="Do not report this finding code, or a family such as DS5xx (repeatable).",
        ),
    ] = None,
) -> None:
    """Check DIRECTORY for what would go wrong if it were served with these options.

    Exposed secrets, symlinks, broken links, MIME types, live reload, CGI scripts
    and file names. Exit status: 0 no errors, 1 errors (with --strict, warnings
    too), 2 bad usage.
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
            ignore=parse_ignore(ignore or ()),
        )
        progress = CheckProgress(errors)
        try:
            report = run_check(config, progress)
        finally:
            progress.close()
    except CheckError as error:
        print_error(errors, str(error))
        raise typer.Exit(2) from None
    print_check_report(make_console(sys.stdout), report, output_format.value)
    if report.failed(strict):
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="devserve")
