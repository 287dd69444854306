"""The ``devserve`` command line (the only module that imports Typer).

It parses options into a `ServeConfig`, calls one core function, and turns
devserve's errors into exit codes. Heavy modules (the server, rich, segno) are
imported inside the commands, so ``--help`` and completion stay quick.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from devserve import __version__

app = typer.Typer(
    name="devserve",
    help="A development web server: serve a folder over HTTP.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
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


@app.command()
def serve(
    directory: Annotated[
        Path,
        typer.Argument(help="Folder to serve.", show_default=True),
    ] = Path("."),
    port: Annotated[
        Optional[int],  # noqa: UP045 - Typer reads the annotation at run time
        typer.Option(
            "--port",
            "-p",
            help="Port to listen on; 0 picks any free port. [default: 8000, or the next free one]",
        ),
    ] = None,
    bind: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--bind",
            "-b",
            metavar="ADDRESS",
            help="Address to listen on, IPv4 or IPv6 (:: also accepts IPv4). [default: 127.0.0.1]",
        ),
    ] = None,
    lan: Annotated[
        bool,
        typer.Option(
            "--lan", help="Listen on every interface and print the LAN URLs and a QR code."
        ),
    ] = False,
    protocol: Annotated[
        Protocol, typer.Option("--protocol", help="HTTP version to speak.")
    ] = Protocol.http11,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the default browser on the URL.")
    ] = False,
    cors: Annotated[
        bool,
        typer.Option(
            "--cors", help="Allow cross-origin requests (Access-Control-Allow-Origin: *)."
        ),
    ] = False,
    header: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--header",
            "-H",
            metavar="'NAME: VALUE'",
            help="Add a response header (repeatable).",
        ),
    ] = None,
    spa: Annotated[
        bool,
        typer.Option("--spa", help="Single-page app: unknown routes answer index.html with 200."),
    ] = False,
    no_listing: Annotated[
        bool, typer.Option("--no-listing", help="Never list directories (404 instead).")
    ] = False,
    show_hidden: Annotated[
        bool,
        typer.Option(
            "--show-hidden", help="List and serve dotfiles (by default only .well-known/)."
        ),
    ] = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option("--follow-symlinks", help="Follow symlinks that lead outside the folder."),
    ] = False,
    tls_cert: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM)."),
    ] = None,
    tls_key: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--tls-key", help="Private key for --tls-cert (PEM)."),
    ] = None,
    tls_password_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--tls-password-file", help="File holding the key's password."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No request log.")] = False,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Request log style.")
    ] = LogFormat.pretty,
) -> None:
    """Serve DIRECTORY over HTTP."""
    from devserve import serving
    from devserve.console import RequestLog, make_console, print_error

    console = make_console()
    try:
        headers = tuple(serving.parse_header(text) for text in header or ())
    except serving.ServeError as error:
        print_error(console, str(error))
        raise typer.Exit(1) from None
    config = serving.ServeConfig(
        directory=directory,
        port=port,
        bind=bind,
        lan=lan,
        protocol=protocol.value,
        open_browser=open_browser,
        cors=cors,
        headers=headers,
        spa=spa,
        listing=not no_listing,
        show_hidden=show_hidden,
        follow_symlinks=follow_symlinks,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_password_file=tls_password_file,
        quiet=quiet,
        log_format=log_format.value,
    )
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


def main() -> None:
    """Console-script entry point."""
    app(prog_name="devserve")
