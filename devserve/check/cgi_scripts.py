"""CGI scripts (DS6xx): what would stop a script in a CGI folder from running.

Every file below a CGI folder is a script (the walk hands them over, never as
pages). Each is checked as the gateway would start it, with what it needs from
the gateway asked of `server_model`: whether it refuses the script (DS601), the
folder and environment the script runs with and the user it runs as (the
gateway's own `script_base_env`, `cgi_environment` and `script_user`). The rest
is how the system runs a program, modelled here because it is the kernel's and
``env``'s, not devserve's: the ``#!`` line (DS602-DS604), the ``PATH`` search of
``#!/usr/bin/env NAME`` as the user the script runs as (DS603, DS606), and the
permission bits (DS605, DS606).

How a ``#!`` line runs (Linux): the first word is the interpreter, the rest of
the line is ONE argument. ``#!/usr/bin/env python3 -u`` makes ``env`` look for a
program named "python3 -u"; only ``env -S`` splits it. ``env`` searches like
execvp: each ``PATH`` entry in turn (an empty one is the working folder, the
script's own), skipping the ones the user cannot reach or execute; without
``PATH`` it searches `os.defpath`. So a ``python3`` in a folder nobody cannot
enter (``/root/.pyenv/shims``) does not stop the script when a later entry
(``/usr/bin``) has one.

Invariants:
- No script is run: the first line of each is read, and the interpreters it
  names (and the folders above them) are looked at, nothing else outside the tree.
- A folder is checked for world-writability once, however many scripts are in it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from typing import NamedTuple

from devserve import _cgi
from devserve._paths import is_within
from devserve.check.exposure import read_head
from devserve.check.report import Findings
from devserve.check.server_model import ServerModel

# (uid, gid) with no other groups, as the gateway starts scripts when root.
User = tuple[int, int]


class Launch(NamedTuple):
    """What running a script starts: its programs, or why one cannot be found or run.

    ``programs``: the interpreter and, through ``env``, the program it runs.
    ``problem``: (code, message) when the system cannot start them.
    """

    programs: list[str]
    problem: tuple[str, str] | None = None


class EnvCommand(NamedTuple):
    """What ``env`` runs for the argument of a ``#!`` line, and the PATH it searches."""

    command: str | None  # None: env runs nothing (prints its environment)
    search_path: str | None  # None: PATH is unset, execvp searches os.defpath
    error: str | None = None  # why env refuses the line


class ScriptChecker:
    """Checks the scripts of one tree's CGI folders; findings go to ``findings``."""

    def __init__(
        self, server: ServerModel, findings: Findings, root: str, runs_as_root: bool | None
    ) -> None:
        self.server = server
        self.add = findings.add
        self.root = root
        # Who scripts run as: nobody when the server is root, else the server's user.
        self.user = server.script_user(runs_as_root)
        self._environment: dict[str, str] | None = None
        self._writable_checked: set[str] = set()

    def check_folders(self) -> None:
        """DS607 for each ``--cgi-dir`` that names no folder in the tree."""
        for directory in self.server.cgi_directories:
            if not os.path.isdir(self.server.fs_path(directory)):
                self.add("DS607", directory.strip("/"), f"no folder for --cgi-dir {directory}")

    def check_script(self, fs: str, rel: str, cgi_root: str) -> None:
        """What stops the script at ``fs`` (in the CGI folder ``cgi_root``) from running."""
        try:
            st = os.stat(fs)
        except OSError:
            return
        refused = self.server.script_not_executable(fs)
        if refused:
            self.add("DS601", rel, f"mode {stat.filemode(st.st_mode)}: the server answers 403")
        first = read_head(fs, 1024).split(b"\n", 1)[0]
        binary = first.startswith(b"\x7fELF")
        programs: list[str] = []
        if first.startswith(b"#!"):
            line = _cgi.shebang(fs) or ""
            if first.endswith(b"\r"):
                self.add("DS604", rel, f"#!{line}<CR>: the interpreter's name ends with a CR")
            else:
                if self._environment is None:
                    self._environment = self.server.script_environment()
                launch = shebang_launch(
                    line, self.server.script_folder(fs), self._environment, self.user
                )
                programs = launch.programs
                if launch.problem is not None:
                    self.add(launch.problem[0], rel, launch.problem[1])
                    programs = []
        elif not binary:
            self.add("DS602", rel, "no #! line: the system cannot tell how to run it")
        self._world_writable(fs, rel, st, cgi_root)
        if not refused and self.user is not None:
            why = _nobody_cannot_run(fs, st, programs, binary, self.user)
            if why is not None:
                self.add("DS606", rel, f"{why}: the script would fail with 403")

    def _world_writable(self, fs: str, rel: str, st: os.stat_result, cgi_root: str) -> None:
        """The script, and each folder from its own up to the CGI folder, once each."""
        if st.st_mode & stat.S_IWOTH:
            self.add("DS605", rel, f"mode {stat.filemode(st.st_mode)}: anyone can rewrite it")
        directory = os.path.dirname(fs)
        while is_within(directory, cgi_root):
            if directory not in self._writable_checked:
                self._writable_checked.add(directory)
                try:
                    mode = os.stat(directory).st_mode
                except OSError:
                    mode = 0
                if mode & stat.S_IWOTH:
                    relative = os.path.relpath(directory, self.root).replace(os.sep, "/")
                    self.add(
                        "DS605",
                        relative + "/",
                        f"folder mode {stat.filemode(mode)}: anyone can add or replace scripts",
                    )
            if directory == cgi_root:
                return
            directory = os.path.dirname(directory)


def shebang_launch(
    line: str, script_dir: str, environment: Mapping[str, str], user: User | None
) -> Launch:
    """The programs the ``#!`` line ``line`` starts, as the system starts them for ``user``.

    ``script_dir`` is the working folder (relative paths start there),
    ``environment`` the script's (its PATH is what ``env`` searches), ``user``
    who runs it (None: this process's user). DS603 when a program is not
    found; DS606 when ``env`` finds the program only where ``user`` cannot run it
    (for the interpreter itself, `_nobody_cannot_run` says why).
    """
    words = line.split(maxsplit=1)
    if not words:
        return Launch([], ("DS603", f"#!{line}: no interpreter named (500)"))
    interpreter = os.path.join(script_dir, words[0])  # an absolute name stays as it is
    argument = words[1].strip() if len(words) > 1 else None
    if not os.path.isfile(interpreter):
        return Launch([], ("DS603", f"#!{line}: {interpreter} not found (500)"))
    if user is None and not os.access(interpreter, os.X_OK):
        return Launch([], ("DS603", f"#!{line}: {interpreter} is not executable (403)"))
    if os.path.basename(interpreter) != "env":
        return Launch([interpreter])
    run = env_command(argument, environment.get("PATH"))
    if run.error is not None:
        return Launch([], ("DS603", f"#!{line}: {run.error}: env fails (502)"))
    if run.command is None:
        return Launch([interpreter])

    def runs(path: str) -> bool:
        return os.access(path, os.X_OK) if user is None else _denial(path, 1, user) is None

    found, denied = execvp_search(run.command, run.search_path, script_dir, runs)
    if found is not None:
        return Launch([interpreter, found])
    searched = run.search_path
    where = f"PATH {searched}" if searched is not None else f"default PATH {os.defpath}"
    if not denied:
        return Launch([], ("DS603", f"#!{line}: no {run.command} on the script's {where} (502)"))
    if user is None:
        return Launch([], ("DS603", f"#!{line}: {denied[0]} is not executable (502)"))
    why = _denial(denied[0], 1, user) or f"nobody cannot execute {denied[0]}"
    return Launch(
        [],
        (
            "DS606",
            f"#!{line}: {why}, and there is no other {run.command} on the script's {where} (502)",
        ),
    )


def env_command(argument: str | None, search_path: str | None) -> EnvCommand:
    """What ``env`` runs when a ``#!`` line hands it ``argument`` (one argument, or None).

    Only ``-S`` (``-vS``) splits the argument into words; otherwise it is one
    program name, spaces and all, and an option with anything after it is an
    invalid option. The words before the program may clear the environment
    (``-i``, ``-``), unset (``-u PATH``) or set (``PATH=...``) the PATH searched.
    """
    if argument is None:
        return EnvCommand(None, search_path)
    if argument.startswith(("-S", "-vS")):
        words = argument.split("S", 1)[1].split()
    elif argument.startswith("-") and len(argument.split()) > 1:
        why = f'env reads "{argument}" as one option, an invalid one: write env -S {argument}'
        return EnvCommand(None, search_path, why)
    else:
        words = [argument]
    at = 0
    while at < len(words):
        word = words[at]
        if word in ("-i", "--ignore-environment", "-"):
            search_path = None
        elif word in ("-u", "--unset") and at + 1 < len(words):
            at += 1
            search_path = None if words[at] == "PATH" else search_path
        elif word in ("-uPATH", "--unset=PATH"):
            search_path = None
        elif word in ("-C", "--chdir"):
            at += 1
        elif word == "--":
            at += 1
            break
        elif word.startswith("-") and len(word) > 1:
            pass  # -0, -v, --debug, -u NAME ...: nothing that changes the search
        elif "=" in word:
            name, _, value = word.partition("=")
            search_path = value if name == "PATH" else search_path
        else:
            break
        at += 1
    command = words[at] if at < len(words) else None
    if command is not None and " " in command:
        name = command.split()[0]
        return EnvCommand(
            None,
            search_path,
            f'the system hands env "{command}" as one program name: '
            f"write env -S {command} (or {name} alone)",
        )
    return EnvCommand(command, search_path)


def execvp_search(
    name: str, search_path: str | None, cwd: str, runs: Callable[[str], bool]
) -> tuple[str | None, list[str]]:
    """Where execvp (``env``) finds ``name``: the first file ``runs`` accepts, and the
    files before it (or instead of it) it skips because the user cannot run them.

    A name with a slash is not searched; an empty PATH entry is the working
    folder ``cwd``; no PATH at all searches `os.defpath`.
    """
    if "/" in name:
        candidates = [os.path.join(cwd, name)]
    else:
        folders = (search_path if search_path is not None else os.defpath).split(":")
        candidates = [os.path.join(cwd, folder, name) for folder in folders]
    denied: list[str] = []
    for candidate in candidates:
        if not os.path.isfile(candidate):
            continue
        if runs(candidate):
            return candidate, denied
        denied.append(candidate)
    return None, denied


def _user_can(st: os.stat_result, want: int, user: User) -> bool:
    """Whether ``user`` (uid, gid, no other groups) has ``want`` (rwx bits) on it."""
    uid, gid = user
    if st.st_uid == uid:
        bits = st.st_mode >> 6
    elif st.st_gid == gid:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


_WANTS = {1: "execute", 5: "read and execute"}


def _denial(path: str, want: int, user: User, st: os.stat_result | None = None) -> str | None:
    """Why ``user`` cannot reach ``path`` (every folder above it, as written and resolved)
    or lacks ``want`` on it ("nobody cannot search /root (drwx------ root)"), or None."""
    checks: list[tuple[str, int, str]] = []
    for spelled in (os.path.abspath(path), os.path.realpath(path)):
        parent = os.path.dirname(spelled)
        while True:
            checks.append((parent, 1, "search"))
            if parent == os.path.dirname(parent):
                break
            parent = os.path.dirname(parent)
    checks.append((path, want, _WANTS[want]))
    for where, bits, what in checks:
        try:
            info = st if where == path and st is not None else os.stat(where)
        except OSError:
            continue
        if not _user_can(info, bits, user):
            owner = _owner(info.st_uid)
            return f"nobody cannot {what} {where} ({stat.filemode(info.st_mode)} {owner})"
    return None


def _nobody_cannot_run(
    script: str, st: os.stat_result, programs: list[str], binary: bool, user: User
) -> str | None:
    """Why nobody could not run ``script`` (folders, script, interpreters), or None."""
    why = _denial(script, 1 if binary else 5, user, st)
    for program in programs:
        why = why or _denial(program, 1, user)
    return why


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
