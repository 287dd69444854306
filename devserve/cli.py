"""The ``devserve`` command line (the only module that imports Typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devserve import __version__

app = typer.Typer(
    name="devserve",
    help="A development web server: serve a folder over HTTP.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
)


COMPLETION_FILES = {"bash": "devserve.bash", "zsh": "_devserve", "fish": "devserve.fish"}


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
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """A development web server: serve a folder over HTTP."""


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="Folder to serve.", show_default=True)] = Path(
        "."
    ),
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", help="Port to listen on (0: any free port). [default: 8000]"),
    ] = None,
    bind: Annotated[
        str, typer.Option("--bind", "-b", help="Address to listen on (IPv4 or IPv6).")
    ] = "127.0.0.1",
    protocol: Annotated[
        str, typer.Option("--protocol", help="HTTP version to speak: HTTP/1.0 or HTTP/1.1.")
    ] = "HTTP/1.1",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No request log.")] = False,
) -> None:
    """Serve DIRECTORY over HTTP."""
    from devserve.serving import ServeConfig, ServeError, urls_for
    from devserve.serving import serve as run

    config = ServeConfig(directory, port, bind, protocol, quiet)

    def ready(server: object, moved: bool) -> None:
        from devserve.server import ThreadingHTTPServer

        assert isinstance(server, ThreadingHTTPServer)
        if moved:
            typer.echo(f"port 8000 is busy, using {server.server_address[1]}", err=True)
        for url in urls_for(server):
            typer.echo(f"Serving {config.directory} at {url}", err=True)

    try:
        run(config, ready)
    except ServeError as error:
        typer.echo(f"devserve: error: {error}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Console-script entry point."""
    app(prog_name="devserve")
