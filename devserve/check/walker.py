"""`check` and its walk: every entry the server would serve, handed to the checks that judge it.

`check` validates the flags (`server_model.served_directory`, the ``--ignore``
codes), builds the server model and a `Walker`, and reports what it found.

`Walker.run` walks the tree as URLs reach it: hidden names are entered only
when the server would serve them, a symlink is followed only where the server
would follow it (both asked of `server_model`), and a folder reached twice
(through a link inside the tree) is walked once. On the way it reports what
needs no page parsed: names (DS7xx), symlinks (DS2xx), exposed folders and
files by name or by the secrets in their text (`exposure`), huge files
(DS505), the folder count for the reload watcher (DS504), and, when the
configuration serves plain HTTP to other machines, scripts that use APIs only
secure contexts have (DS901, `secure_context`; pages get it too). Then it
checks the pages and stylesheets it listed (`pages`) and the CGI scripts
(`cgi_scripts`).

Invariants:
- Nothing is written, nothing printed; the tree is read (names, sizes, the
  first 256 KiB of served text files, pages and stylesheets, and with DS901
  the first 4 MiB of scripts), outside it only
  the targets of symlinks.
- Memory grows with the number of findings, of pages and stylesheets (their
  paths are listed during the walk) and of distinct link targets, not with the
  size of the files: pages are read and parsed one at a time.
- Progress is reported every 1024 entries scanned and every 25 pages checked,
  then once more with the totals.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import time
from dataclasses import dataclass

from devserve._paths import is_within
from devserve.check.cgi_scripts import ScriptChecker
from devserve.check.exposure import (
    CREDENTIAL_DIRS,
    VCS_DIRS,
    FileHead,
    exposure,
    file_secrets,
)
from devserve.check.host_files import HostFileChecker
from devserve.check.markup import JS_TYPES
from devserve.check.pages import PageChecker, file_type_problem
from devserve.check.report import (
    CheckConfig,
    Finding,
    Findings,
    Progress,
    Report,
    build_report,
    check_ignore,
    display,
)
from devserve.check.secure_context import (
    SCRIPT_LIMIT,
    SecureContextChecker,
    plain_http_to_others,
)
from devserve.check.server_model import ServerModel, read_watch_limit, served_directory

# A served file larger than this is reported (DS505).
HUGE_FILE = 100 * 1024 * 1024


def check(config: CheckConfig, progress: Progress | None = None) -> Report:
    """Check ``config.directory`` as the server would serve it; never prints.

    Raises CheckError when the directory cannot be checked or an option is invalid.
    """
    started = time.perf_counter()
    root = served_directory(config)
    check_ignore(config.ignore)
    walker = Walker(config, root, ServerModel.for_config(config, root), progress or no_progress)
    findings = walker.run()
    return build_report(
        root,
        config,
        findings,
        files=walker.file_count,
        pages=len(walker.pages),
        links=walker.link_count,
        seconds=time.perf_counter() - started,
    )


def no_progress(stage: str, done: int, total: int | None) -> None:
    """No progress display."""


def name_problems(name: str) -> list[tuple[str, str]]:
    """(code, message) for a name that breaks URLs or tools."""
    problems = []
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):
        problems.append(("DS702", "name is not valid UTF-8"))
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        problems.append(("DS701", "name has a control character"))
    if name != name.strip():
        problems.append(("DS703", "name starts or ends with a space"))
    return problems


@dataclass(frozen=True)
class _Dir:
    fs: str  # where it is on disk (lexically: through the links it was reached by)
    url: str  # decoded URL path, ending with "/"
    rel: str  # path relative to the root for findings, "" or ending with "/"
    real: str  # resolved path
    cgi_root: str | None  # the CGI folder it is in (every file below is a script)


class Walker:
    """One run of the checks over one tree; collects findings, never prints."""

    def __init__(
        self, config: CheckConfig, root: str, server: ServerModel, progress: Progress
    ) -> None:
        self.config = config
        self.root = root
        self.server = server
        self.progress = progress
        self.findings = Findings()
        self.add = self.findings.add
        how = plain_http_to_others(config)
        self.secure = SecureContextChecker(self.findings, how) if how is not None else None
        self.page_checker = PageChecker(server, self.findings, self.secure)
        self.script_checker = ScriptChecker(server, self.findings, root, config.runs_as_root)
        self.pages: list[tuple[str, str, str]] = []  # fs path, decoded URL, relative path
        self.stylesheets: list[tuple[str, str, str]] = []
        self.scripts: list[tuple[str, str, str]] = []  # fs path, relative path, CGI folder
        self.file_count = 0
        self.dir_count = 0
        self._scanned = 0
        # Resolved folders already walked, and directory links still to walk.
        self._walked: set[str] = set()
        self._deferred: list[_Dir] = []

    @property
    def link_count(self) -> int:
        """References resolved in pages and stylesheets (external ones not counted)."""
        return self.page_checker.link_count

    def run(self) -> list[Finding]:
        """Walk, then check pages, stylesheets and scripts; the findings in the order found."""
        real_root = self.server.real_root
        self.dir_count = 1
        self._walked.add(real_root)
        self._walk(_Dir(self.root, "/", "", real_root, None))
        while self._deferred:
            linked = self._deferred.pop(0)
            if linked.real not in self._walked:
                self._walked.add(linked.real)
                self._walk(linked)
        self.progress("scan", self._scanned, self._scanned)
        self._check_watch_limit()
        self.script_checker.check_folders()
        HostFileChecker(self.server, self.findings).check()
        total = len(self.pages) + len(self.stylesheets)
        done = 0
        for check_one, items in (
            (self.page_checker.check_page, self.pages),
            (self.page_checker.check_stylesheet, self.stylesheets),
        ):
            for fs, url, rel in items:
                check_one(fs, url, rel)
                done += 1
                if done % 25 == 0:
                    self.progress("pages", done, total)
        self.progress("pages", total, total)
        for script in self.scripts:
            self.script_checker.check_script(*script)
        return self.findings.items

    # -- walking the served tree

    def _walk(self, start: _Dir) -> None:
        """Every entry the server would serve below ``start`` (hidden ones only counted)."""
        stack = [start]
        listed = self.server.listed
        serves_file = self.server.serves_file
        while stack:
            where = stack.pop()
            try:
                with os.scandir(where.fs) as scan:
                    entries = sorted(scan, key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                self._scanned += 1
                if self._scanned % 1024 == 0:
                    self.progress("scan", self._scanned, None)
                name = entry.name
                visible = listed(name)
                rel = where.rel + name
                if entry.is_symlink():
                    if visible:
                        self._names(name, rel)
                        self._link(entry.path, name, where, rel)
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    regular = not is_dir and serves_file(entry)
                    size = entry.stat(follow_symlinks=False).st_size if regular else 0
                except OSError:
                    continue
                if is_dir:
                    self.dir_count += 1
                    if visible:
                        self._names(name, rel)
                    if not visible or name in VCS_DIRS:
                        if visible:
                            self._exposed("DS102", rel + "/", "version-control folder")
                        self.dir_count += _count_dirs(entry.path)
                        continue
                    if name in CREDENTIAL_DIRS and where.cgi_root is None:
                        self._exposed("DS106", rel + "/", "credential folder")
                    real = os.path.join(where.real, name)
                    self._walked.add(real)
                    stack.append(self._subdir(entry.path, where.url + name, rel, real, where))
                elif visible:
                    self._names(name, rel)
                    if regular:  # FIFOs, sockets and devices are never served
                        self._file(entry.path, where.url + name, rel, name, where, size)

    def _subdir(self, fs: str, url: str, rel: str, real: str, parent: _Dir) -> _Dir:
        cgi_root = parent.cgi_root
        if cgi_root is None and self.server.is_cgi_folder(url):
            cgi_root = fs
        return _Dir(fs, url + "/", rel + "/", real, cgi_root)

    def _link(self, path: str, name: str, where: _Dir, rel: str) -> None:
        """A symlink the server would be asked for: broken, a loop, refused, or served."""
        target = display(_readlink(path))
        try:
            st = os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                self.add("DS204", rel, f"symlink loop: {name} -> {target} never resolves")
            else:
                self.add("DS203", rel, f"broken symlink: {name} -> {target} (target missing)")
            return
        real = os.path.realpath(path)
        inside = self.server.is_inside(real)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not self.server.may_serve(path):
            self.add("DS201", rel, f"{name} -> {display(real)} leaves the folder: refused (404)")
            return
        if not inside:
            self.add(
                "DS202",
                rel,
                f"{name} -> {display(real)} serves a {'folder' if is_dir else 'file'} "
                "from outside the folder (--follow-symlinks)",
            )
        real_name = os.path.basename(real)
        if is_dir:
            if is_within(os.path.realpath(where.fs), real):
                self.add(
                    "DS205",
                    rel,
                    f"{name} -> {target} leads back to a folder above it: "
                    f"{where.url}{name}/.../{name}/ never ends",
                )
            elif real_name in VCS_DIRS:
                self._exposed(
                    "DS102", rel + "/", f"version-control folder ({real_name})", not inside
                )
            elif real_name in CREDENTIAL_DIRS:
                self._exposed("DS106", rel + "/", f"credential folder ({real_name})", not inside)
            elif inside:  # an outside tree is not walked: DS202 says what it exposes
                self._deferred.append(self._subdir(path, where.url + name, rel, real, where))
        elif self.server.serves_file(st):
            self._file(path, where.url + name, rel, name, where, st.st_size, real, not inside)

    def _file(
        self,
        fs: str,
        url: str,
        rel: str,
        name: str,
        where: _Dir,
        size: int,
        real: str | None = None,
        outside: bool = False,
    ) -> None:
        """A file the server would send: size, secrets, types, and the pages to parse."""
        self.file_count += 1
        if where.cgi_root is not None:
            self.scripts.append((fs, rel, where.cgi_root))
            return
        if size > HUGE_FILE:
            self.add("DS505", rel, f"{_size(size)}: usually served by accident")
        names = [(name, posixpath.basename(where.rel.rstrip("/")))]
        if real is not None:
            names.append((os.path.basename(real), os.path.basename(os.path.dirname(real))))
        content_type = self.server.content_type(fs)
        head = FileHead(fs)  # read once, if at all, for the secrets and the magic number
        if self.secure is not None and content_type in JS_TYPES:  # read further: one read
            self.secure.check(rel, head.read(SCRIPT_LIMIT).decode("utf-8", "replace"))
        found = file_secrets(head, content_type, names)
        for code, what, line in found:
            self._exposed(code, rel, what, outside, line)
        if found:  # a page linking to it gets no advice to rename it (DS407)
            self.page_checker.secrets.add(fs)
        if content_type == "text/html":
            self.pages.append((fs, url, rel))
        elif content_type == "text/css":
            self.stylesheets.append((fs, url, rel))
        else:
            problem = file_type_problem(name, content_type, head)
            if problem is not None:
                self.add(problem[0], rel, problem[1])

    def _exposed(
        self, code: str, rel: str, what: str, outside: bool = False, line: int | None = None
    ) -> None:
        """A secret-looking file is served; say which flag serves it."""
        hidden = self.server.needs_show_hidden(rel)
        message, fix = exposure(code, what, hidden, outside)
        self.add(code, rel, message, line, fix)

    def _names(self, name: str, rel: str) -> None:
        for code, message in name_problems(name):
            self.add(code, rel, f"{message}: {display(name)!r}")

    def _check_watch_limit(self) -> None:
        """DS504: more folders than --reload's watcher can watch (one watch each)."""
        limit = self.config.watch_limit
        if limit is None:
            limit = read_watch_limit()
        if limit is not None and self.dir_count > limit:
            self.add(
                "DS504",
                "",
                f"{self.dir_count} folders to watch, the inotify limit is {limit}: "
                "--reload would poll instead",
            )


def _size(size: int) -> str:
    """A file size for people: "150 MiB", "2.5 GiB"."""
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GiB"
    return f"{size / (1 << 20):.0f} MiB"


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _count_dirs(path: str) -> int:
    """Folders below ``path`` (links not followed): each is one inotify watch."""
    count = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as scan:
                for entry in scan:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            count += 1
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return count
