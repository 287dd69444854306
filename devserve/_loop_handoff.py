"""What passes between the event loop and handler threads (`LoopHTTPServer`'s hand-offs).

The loop hands a connection to a thread together with the bytes it already read
from it (`give`); the handler reads those first (`take_input`). A handler done
with a kept-alive connection asks to park it (`park`); when its thread ends the
connection goes back to the loop (`give_back`), which adopts it (`next_back`).

Invariants: while the loop is not running (`opened` is False) nothing is parked
or given back, so the thread closes the connection itself; every connection
given back is either adopted by the loop or returned by `close` for closing.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from typing import Any

Returned = tuple[socket.socket, Any, bytes]  # a connection, its address, bytes read ahead


class Handoff:
    """The loop's side of the exchange; one lock guards what both sides touch."""

    def __init__(self) -> None:
        self._input: dict[socket.socket, bytes] = {}
        self._parked: dict[socket.socket, bytes] = {}
        self._back: deque[Returned] = deque()
        self._lock = threading.Lock()
        self.opened = False

    def open(self) -> None:
        """The loop runs: connections may be parked and given back."""
        with self._lock:
            self.opened = True

    def close(self) -> list[socket.socket]:
        """The loop stops: nothing more is taken back. Returns what was waiting to be."""
        with self._lock:
            self.opened = False
            waiting = [sock for sock, _, _ in self._back]
            self._back.clear()
        return waiting

    def waiting(self) -> int:
        """How many connections are on their way back to the loop."""
        return len(self._back)

    # -- loop -> thread

    def give(self, sock: socket.socket, data: bytes) -> None:
        """``sock`` goes to a thread; ``data`` is what the loop read from it already."""
        if data:
            self._input[sock] = data

    def take_input(self, sock: socket.socket) -> bytes:
        """What the loop read from ``sock`` before handing it over (read it first)."""
        return self._input.pop(sock, b"")

    # -- thread -> loop

    def park(self, sock: socket.socket, unread: bytes) -> bool:
        """A handler is done with kept-alive ``sock``: take it back when its thread ends."""
        if not self.opened:
            return False
        self._parked[sock] = unread
        return True

    def thread_done(self, sock: socket.socket) -> bytes | None:
        """The thread that had ``sock`` ended: its unread bytes if it was parked, else None."""
        self._input.pop(sock, None)
        return self._parked.pop(sock, None)

    def give_back(self, sock: socket.socket, addr: Any, unread: bytes) -> bool:
        """Queue ``sock`` for the loop to adopt (False: the loop is not running)."""
        with self._lock:
            if not self.opened:
                return False
            try:
                sock.setblocking(False)
            except OSError:
                return False
            self._back.append((sock, addr, unread))
        return True

    def next_back(self) -> tuple[Returned | None, bool]:
        """The next connection given back (None: none), and whether the loop still runs."""
        with self._lock:
            return (self._back.popleft() if self._back else None), self.opened
