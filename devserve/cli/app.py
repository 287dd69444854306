"""The ``devserve`` Typer application: its top-level options and exit statuses.

The commands register themselves on `app` (devserve.cli.serve, devserve.cli.check);
devserve.cli.entry runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from devserve import __version__
from devserve.config import BadInput

# Exit statuses: 0 done; 1 could not run (a busy port) or, for check, errors
# found; 2 bad usage: an option, a value, or a file or folder it names.
EXIT_FAILED = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="devserve",
    help="A development web server: serve a folder over HTTP. "
    "Without a command, devserve [DIRECTORY] [OPTIONS] is devserve serve.",
    context_settings={"help_option_names": ["-h", "--help"]},
    # devserve's own --install-completion/--show-completion (devserve.completion):
    # Typer's zsh install adds a zstyle that changes every command's completion.
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: Typer's rich help pulls in rich's markdown renderer, which alone
    # costs more start-up time than the whole command may take.
    rich_markup_mode=None,
)

COMPLETION_FILES = {"bash": "devserve.bash", "zsh": "_devserve", "fish": "devserve.fish"}
# Set by a completion script when it asks devserve what to complete.
COMPLETE_VAR = "_DEVSERVE_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script for ``shell`` (what completions/ ships, statically)."""
    from devserve.completion import script

    return script(shell)


def write_completions(folder: Path = Path("completions")) -> None:
    """Regenerate the static completion scripts in ``folder``."""
    from devserve.completion import write_all

    write_all(folder)


def _install_completion(value: bool) -> None:
    if not value:
        return
    from devserve.completion import CompletionError, detect_shell, install

    try:
        for line in install(detect_shell(), Path.home()):
            typer.echo(line)
    except (CompletionError, OSError) as error:
        print_error(f"--install-completion: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit()


def _show_completion(value: bool) -> None:
    if not value:
        return
    from devserve.completion import CompletionError, detect_shell, script

    try:
        typer.echo(script(detect_shell()), nl=False)
    except CompletionError as error:
        print_error(f"--show-completion: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    raise typer.Exit()


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
    install_completion: Annotated[
        bool,
        typer.Option(
            "--install-completion",
            callback=_install_completion,
            is_eager=True,
            help="Install completion for your shell ($SHELL: bash, zsh or fish).",
        ),
    ] = False,
    show_completion: Annotated[
        bool,
        typer.Option(
            "--show-completion",
            callback=_show_completion,
            is_eager=True,
            help="Print the completion script for your shell, to install it yourself.",
        ),
    ] = False,
) -> None:
    """A development web server: serve a folder over HTTP."""


def fail(error: Exception) -> NoReturn:
    """Say what went wrong on one line; bad input is status 2, anything else 1."""
    print_error(str(error))
    raise typer.Exit(EXIT_USAGE if isinstance(error, BadInput) else EXIT_FAILED)


def print_error(message: str) -> None:
    """``devserve: error: message`` on standard error."""
    from devserve.console import make_console, print_error

    print_error(make_console(), message)
