"""The console-script entry point: ``devserve [COMMAND] [OPTIONS] [DIRECTORY]``.

Reads the settings file and the DEVSERVE_* variables into the commands' defaults,
puts ``serve`` in front when no command is given, and turns every usage error into
one ``devserve: error:`` line with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from devserve.cli.app import COMPLETE_VAR, EXIT_USAGE, app, print_error
from devserve.config import BadInput

# What may come first on the command line without meaning "serve".
_COMMANDS = ("serve", "cgi", "check")
_TOP_LEVEL = ("-h", "--help", "--version", "--install-completion", "--show-completion")


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: ``devserve [COMMAND] [OPTIONS] [DIRECTORY]``.

    Without a command, devserve serves (``devserve``, ``devserve site -p 3000``),
    as http-server, live-server, miniserve and serve do; ``devserve -h`` lists
    the commands. Every usage error is one ``devserve: error:`` line, status 2.
    """
    import os
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if COMPLETE_VAR in os.environ:
        from typer._completion_classes import completion_init

        completion_init()  # Typer's answers to the completion scripts' questions
    else:
        args = _with_command(args)
    command = typer.main.get_command(app)
    try:
        settings_file, default_map = _settings(command)
        code = command.main(
            args=args,
            prog_name="devserve",
            standalone_mode=False,
            default_map=default_map,
            obj={"settings_file": settings_file},
        )
    except typer.TyperException as error:  # Click's usage errors and their kin
        print_error(_usage_message(error))
        raise SystemExit(getattr(error, "exit_code", EXIT_USAGE)) from None
    except BadInput as error:  # the settings file
        print_error(str(error))
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


# Options also read from the environment as DEVSERVE_<NAME> (scalar ones: a list
# option would be split on spaces); PORT too, as hosting platforms set it.
_ENVIRONMENT_EXTRA = {"port": ["PORT"]}


def _settings(command: Any) -> tuple[Path | None, dict[str, Any]]:
    """Wire the environment into ``command``'s options; the settings file and the
    option defaults it gives each command (Click's ``default_map``)."""
    from devserve import config_file

    known: dict[str, frozenset[str]] = {}
    for name, sub in command.commands.items():
        known[name] = frozenset(p.name for p in sub.params if p.name)
        for param in sub.params:
            if param.name and not getattr(param, "multiple", False) and param.name != "ctx":
                envvar = f"DEVSERVE_{param.name.upper()}"
                param.envvar = [envvar, *_ENVIRONMENT_EXTRA.get(param.name, ())]
    found = config_file.find(Path.cwd())
    if found is None:
        return None, {}
    path, table = found
    return path, config_file.defaults_by_command(path, table, known)


def _with_command(args: list[str]) -> list[str]:
    """``args`` with ``serve`` in front unless they start with a command or a top-level
    option; a near miss of a command name is an error rather than a folder name."""
    if args and (args[0] in _COMMANDS or args[0] in _TOP_LEVEL):
        return args
    if args and not args[0].startswith("-") and not Path(args[0]).exists():
        import difflib

        close = difflib.get_close_matches(args[0], _COMMANDS, n=1, cutoff=0.75)
        if close:
            print_error(f"no such command {args[0]!r} (did you mean {close[0]!r}?)")
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
