"""What the event loop sends, without ever blocking: output items and non-blocking sends.

A response waiting for its socket is a queue of `Out` items: views of memory,
`FileChunk`s still to ``sendfile``, and a `CloseFile` that closes a body's
descriptor once everything before it went out. `send_out` sends as much as the
socket takes now, within a budget, so one fast client of a large file cannot
hold the loop.

Invariants:
- Every descriptor queued in a `CloseFile` is closed exactly once: sent past, or
  dropped by `discard`.
- A file that shrinks under a response raises `Shrank`: the response cannot be
  completed, so the connection must close.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import deque

# The most bytes one sendfile call may move, and one connection may send before the
# loop turns to the others, so a large file on a fast client cannot hold the loop.
SENDFILE_CHUNK = 1024 * 1024
SEND_BUDGET = 4 * 1024 * 1024


class FileChunk:
    """Bytes still to send from an open file: ``sendfile`` from ``offset``."""

    __slots__ = ("count", "fd", "offset", "path")

    def __init__(self, fd: int, offset: int, count: int, path: str) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count
        self.path = path


class CloseFile:
    """Close a body's descriptor once everything before it went out."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd


class Shrank(ConnectionAbortedError):
    """The file being sent got shorter than the response promised: the connection must close."""


Out = memoryview | FileChunk | CloseFile


def send_out(sock: socket.socket, out: deque[Out]) -> None:
    """Send what ``out`` holds until the socket is full or the budget is spent.

    What is sent leaves ``out``. Raises OSError (`Shrank` among them) when the
    connection cannot go on; BlockingIOError never escapes.
    """
    budget = SEND_BUDGET
    fd = sock.fileno()
    try:
        while out and budget > 0:
            item = out[0]
            if isinstance(item, CloseFile):
                out.popleft()
                os.close(item.fd)
                continue
            if isinstance(item, FileChunk):
                wanted = min(item.count, SENDFILE_CHUNK)
                sent = os.sendfile(fd, item.fd, item.offset, wanted)
                if sent == 0:
                    raise Shrank(f"{item.path}: file shrank while being sent")
                item.offset += sent
                item.count -= sent
                if item.count == 0:
                    out.popleft()
            else:
                views = _views(out)
                wanted = sum(len(v) for v in views)
                sent = sock.send(views[0]) if len(views) == 1 else sock.sendmsg(views)
                _consume(out, sent)
            budget -= sent
            if sent < wanted:
                return  # the socket is full
    except (BlockingIOError, InterruptedError):
        return


def discard(out: deque[Out]) -> None:
    """Drop what is left to send, closing the descriptors it still holds."""
    for item in out:
        if isinstance(item, CloseFile):
            with contextlib.suppress(OSError):
                os.close(item.fd)
    out.clear()


def _views(out: deque[Out]) -> list[memoryview]:
    """The memory views at the front of ``out`` (up to the first file chunk)."""
    views = []
    for item in out:
        if not isinstance(item, memoryview):
            break
        views.append(item)
        if len(views) == 64:
            break
    return views


def _consume(out: deque[Out], sent: int) -> None:
    """Drop what ``sent`` bytes of the views at the front of ``out`` covered."""
    while sent:
        item = out[0]
        assert isinstance(item, memoryview)
        if sent < len(item):
            out[0] = item[sent:]
            return
        sent -= len(item)
        out.popleft()
