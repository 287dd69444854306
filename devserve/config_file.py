"""Settings from a file: ``devserve.toml``, or ``[tool.devserve]`` in ``pyproject.toml``.

Looked for in the current folder (where you run devserve, usually the project's
root): ``devserve.toml`` if it is there, else ``pyproject.toml`` if it has a
``[tool.devserve]`` table. Keys are the long option names (``port``,
``max-connections`` or ``max_connections``, ``reload``, ``header``); keys at the
top apply to every command that has that option, and a ``[serve]``, ``[cgi]``
or ``[check]`` table (``[tool.devserve.cgi]``) to that command only. Paths are
relative to the file's folder. An unknown key is an error, so a typo is not
silently ignored.

Precedence (the command line's, not this module's): flags, then ``DEVSERVE_*``
environment variables, then this file, then the defaults.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devserve.config import BadInput

COMMANDS = ("serve", "cgi", "check")
# Options whose values are paths: relative ones are taken from the file's folder.
PATH_SETTINGS = frozenset(
    {"directory", "tls_cert", "tls_key", "tls_password_file", "watch", "auth_file", "proxy_ca"}
)


def find(folder: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """The settings file in ``folder`` and its devserve table, or None if there is none."""
    own = folder / "devserve.toml"
    if own.is_file():
        return own, _read(own)
    project = folder / "pyproject.toml"
    if project.is_file():
        table = _read(project).get("tool", {}).get("devserve")
        if table is not None:
            if not isinstance(table, dict):
                raise BadInput(f"{project}: [tool.devserve] must be a table")
            return project, table
    return None


def _read(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as file:
            data: dict[str, Any] = tomllib.load(file)
            return data
    except (OSError, ValueError) as error:  # TOMLDecodeError is a ValueError
        raise BadInput(f"{path}: {error}") from None


def defaults_by_command(
    path: Path, table: Mapping[str, Any], known: Mapping[str, frozenset[str]]
) -> dict[str, dict[str, Any]]:
    """The file's settings as each command's option defaults (Click's ``default_map``).

    ``known`` names each command's options (Python names, ``max_connections``).
    """
    shared = {key: value for key, value in table.items() if key not in COMMANDS}
    every = frozenset().union(*known.values())
    unknown = sorted(key for key in shared if _name(key) not in every)
    if unknown:
        raise BadInput(f"{path}: unknown setting {unknown[0]!r}")
    result: dict[str, dict[str, Any]] = {}
    for command, options in known.items():
        own = table.get(command, {})
        if not isinstance(own, dict):
            raise BadInput(f"{path}: [{command}] must be a table")
        strangers = sorted(key for key in own if _name(key) not in options)
        if strangers:
            raise BadInput(f"{path}: [{command}] has no setting {strangers[0]!r}")
        chosen = {_name(k): v for k, v in shared.items() if _name(k) in options}
        chosen.update({_name(k): v for k, v in own.items()})
        result[command] = {
            name: _relative_to(path.parent, value) if name in PATH_SETTINGS else value
            for name, value in chosen.items()
        }
    return result


def _name(key: str) -> str:
    return key.replace("-", "_")


def _relative_to(folder: Path, value: Any) -> Any:
    if isinstance(value, str):
        return str(folder / value)
    if isinstance(value, list):
        return [str(folder / item) if isinstance(item, str) else item for item in value]
    return value
