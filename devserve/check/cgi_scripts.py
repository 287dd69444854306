"""CGI scripts (DS6xx): what would stop a script in a CGI folder from running.

Every file below a CGI folder is a script (the walk hands them over, never as
pages). Each is checked as the gateway would start it, with what it needs from
the gateway asked of `server_model`: whether it refuses the script (DS601), the
folder and ``PATH`` the script runs with (DS603) and the user it runs as
(DS606). The rest is how the system runs a program: the ``#!`` line (DS602-DS604)
and the permission bits (DS605, DS606).

Invariants:
- No script is run: the first line of each is read, and the interpreters it
  names (and the folders above them) are looked at, nothing else outside the tree.
- A folder is checked for world-writability once, however many scripts are in it.
"""

from __future__ import annotations

import os
import shutil
import stat

from devserve import _cgi
from devserve._paths import is_within
from devserve.check.exposure import read_head
from devserve.check.report import Findings
from devserve.check.server_model import ServerModel


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
        interpreters: list[str] = []
        if first.startswith(b"#!"):
            line = _cgi.shebang(fs) or ""
            if first.endswith(b"\r"):
                self.add("DS604", rel, f"#!{line}<CR>: the interpreter's name ends with a CR")
            else:
                interpreters = _interpreter(
                    line, self.server.script_folder(fs), self.server.script_search_path()
                )
                missing = next((path for path in interpreters if not _is_program(path)), None)
                if not interpreters or missing is not None:
                    self.add("DS603", rel, f"#!{line}: {missing or 'no interpreter'} not found")
                    interpreters = []
        elif not binary:
            self.add("DS602", rel, "no #! line: the system cannot tell how to run it")
        self._world_writable(fs, rel, st, cgi_root)
        if not refused and self.user is not None:
            why = _nobody_cannot_run(fs, st, interpreters, binary, self.user)
            if why is not None:
                self.add("DS606", rel, why)

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


def _interpreter(line: str, script_dir: str, search_path: str) -> list[str]:
    """The programs a #! line runs: the interpreter, and what ``env`` looks up on PATH.

    Relative paths are looked up from the script's folder (its working directory),
    names ``env`` runs on ``search_path`` (the PATH the script is given). An empty
    list when the line names no program.
    """
    words = line.split()
    if not words:
        return []
    program = words[0]
    if not os.path.isabs(program):
        program = os.path.join(script_dir, program)
    programs = [program]
    if os.path.basename(program) == "env":
        args = words[1:]
        if args and args[0].startswith("-S"):
            args = [args[0][2:], *args[1:]] if len(args[0]) > 2 else args[1:]
        name = next((a for a in args if not a.startswith("-") and "=" not in a), None)
        if name is not None:
            found = shutil.which(name, path=search_path) if "/" not in name else name
            programs.append(found or name)
    return programs


def _is_program(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _user_can(st: os.stat_result, want: int, user: tuple[int, int]) -> bool:
    """Whether ``user`` (uid, gid, no other groups) has ``want`` (rwx bits) on it."""
    uid, gid = user
    if st.st_uid == uid:
        bits = st.st_mode >> 6
    elif st.st_gid == gid:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


def _nobody_cannot_run(
    script: str, st: os.stat_result, interpreters: list[str], binary: bool, user: tuple[int, int]
) -> str | None:
    """Why nobody could not run ``script`` (folders, script, interpreter), or None."""
    checks: list[tuple[str, int, str]] = []
    for path in (os.path.abspath(script), os.path.realpath(script), *interpreters):
        parent = os.path.dirname(path)
        while True:
            checks.append((parent, 1, "search"))
            if parent == os.path.dirname(parent):
                break
            parent = os.path.dirname(parent)
    checks.append((script, 1 if binary else 5, "execute" if binary else "read and execute"))
    checks.extend((path, 1, "execute") for path in interpreters)
    for path, want, what in checks:
        try:
            info = st if path == script else os.stat(path)
        except OSError:
            continue
        if not _user_can(info, want, user):
            owner = _owner(info.st_uid)
            return (
                f"nobody cannot {what} {path} ({stat.filemode(info.st_mode)} {owner}): "
                "the script would fail with 403"
            )
    return None


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
