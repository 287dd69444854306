"""The CGI scripts a server started, so that every one of them can be ended.

A script runs in a process group of its own, and ``killpg`` ends the group. A
descendant that calls ``setsid`` leaves the group, though, and can go on
holding the script's output (so the reply never ends) or simply keep running,
as ``nobody``, after devserve is gone. So each run carries a mark in its
environment, ``DEVSERVE_SCRIPT=<server token>.<run>``, which its descendants
inherit wherever they go; ending a run kills its group and then every process
whose environment has the run's mark (Linux: read from ``/proc``), and ending
the group of runs does the same for the server's token.

Limits: a process that replaced its whole environment (``execve`` with a new
one) loses the mark; that takes a deliberate effort no stray child makes.
Reading another user's ``/proc/PID/environ`` needs that user's uid or root,
which is what devserve has over its scripts (the same user, or root running
them as ``nobody``).

Ending a run also cancels its output: a reader waiting on the script's stdout
(`ScriptStdout`) returns end-of-file at once, whatever still holds the pipe.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import select
import signal
import subprocess
import threading
from typing import IO, Protocol

MARK = "DEVSERVE_SCRIPT"
# Seconds a reader waits on a script's output between checks for cancellation.
_POLL_SLICE = 0.2
# Bytes still read from the pipe once the run was ended (what was written before).
_AFTER_END = 1024 * 1024


class ScriptRun:
    """One run of a script: its process, its mark, and whether it was ended."""

    def __init__(self, group: ScriptGroup | None, mark: str) -> None:
        self.group = group
        self.mark = mark
        self.process: subprocess.Popen[bytes] | None = None
        self.ended = threading.Event()

    def end(self) -> None:
        """Kill the script, its process group and every process carrying its mark."""
        self.ended.set()
        process = self.process
        if process is not None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
        if self.mark:
            kill_marked(f"{MARK}={self.mark}".encode(), exact=True)

    def finished(self) -> None:
        """The reply is done: the run no longer needs ending when the server stops."""
        if self.group is not None:
            self.group.forget(self)


class ScriptGroup:
    """Every script run one server started (devserve's gateway keeps one)."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self._counter = itertools.count(1)
        self._runs: set[ScriptRun] = set()
        self._lock = threading.Lock()

    def new_run(self, env: dict[str, str]) -> ScriptRun:
        """A run whose mark is added to ``env`` (the script's environment)."""
        run = ScriptRun(self, f"{self.token}.{next(self._counter)}")
        env[MARK] = run.mark
        with self._lock:
            self._runs.add(run)
        return run

    def forget(self, run: ScriptRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def end_all(self) -> int:
        """The server is stopping: end every run, and anything left from earlier runs.

        Returns how many processes were killed by their mark.
        """
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.ended.set()
            if run.process is not None:
                with contextlib.suppress(OSError):
                    os.killpg(run.process.pid, signal.SIGKILL)
        return kill_marked(f"{MARK}={self.token}.".encode(), exact=False)


def unmarked_run() -> ScriptRun:
    """A run outside any group (the documented handler's): ended by its group only."""
    return ScriptRun(None, "")


def kill_marked(mark: bytes, exact: bool) -> int:
    """SIGKILL every process whose environment holds ``mark`` (a ``NAME=value`` entry,
    or its prefix when not ``exact``); returns how many. Linux only (elsewhere 0)."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0
    me = os.getpid()
    killed = 0
    for pid in pids:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                entries = file.read().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        if any(entry == mark if exact else entry.startswith(mark) for entry in entries):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


class ScriptOutput(Protocol):
    """What the gateway reads a script's reply from (`ScriptStdout`, or a filter of it)."""

    def readline(self, limit: int = -1, /) -> bytes: ...

    def read1(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class ScriptStdout:
    """A script's stdout, read so that ending its run ends the reading.

    ``readline`` and ``read1`` behave as a buffered reader's, except that once
    ``run.ended`` is set they stop waiting: what the pipe already holds is still
    read (up to a bound), then end-of-file, even if a process that escaped the
    run holds the pipe open.
    """

    def __init__(self, pipe: IO[bytes], run: ScriptRun) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._run = run
        self._buffer = bytearray()
        self._eof = False
        self._after_end = _AFTER_END

    def _fill(self) -> bool:
        """Read more into the buffer; False at end-of-file (or once the run ended)."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._eof:
            ended = self._run.ended.is_set()
            if not poller.poll(0 if ended else _POLL_SLICE * 1000):
                self._eof = ended
                continue
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if ended:
                self._after_end -= len(data)
                if self._after_end < 0:
                    data = b""
            if not data:
                self._eof = True
                break
            self._buffer += data
            return True
        return False

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            if not self._fill():
                return self._take(len(self._buffer))

    def read1(self, size: int = -1) -> bytes:
        if not self._buffer:
            self._fill()
        return self._take(len(self._buffer) if size < 0 else min(size, len(self._buffer)))

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        return self._take(len(self._buffer) if size < 0 else min(size, len(self._buffer)))

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def close(self) -> None:
        close = getattr(self._pipe, "close", None)
        if close is not None:
            close()
