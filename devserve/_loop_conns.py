"""The connections `LoopHTTPServer` holds, and which of them are cheap to lose.

A `Conn` is a socket with what it sent that was not answered yet (``buf``) and
what it was sent that it has not taken yet (``out``). The `ConnTable` keeps them
by descriptor in order of arrival, which is what shedding goes by: at the
connection cap the oldest connection still sending its request head goes first,
then the oldest one idle between requests; one with a reply on its way never.
Only the loop thread touches the table.
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from devserve._loop_output import Out
from devserve._servers import client_key


class Conn:
    """A connection the loop holds: its unread input and unsent output."""

    __slots__ = (
        "addr",
        "buf",
        "client",
        "close_after",
        "deadline",
        "fd",
        "in_head",
        "out",
        "sock",
    )

    def __init__(self, sock: socket.socket, addr: Any, buf: bytes, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.addr = addr
        self.client = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
        self.buf = bytearray(buf)
        self.out: deque[Out] | None = None  # what the socket has not taken yet
        self.close_after = False
        self.deadline = deadline
        self.in_head = False  # the request_timeout for a (partial) head is running

    def set_deadline(self, limit: float | None) -> None:
        """The connection must move on within ``limit`` seconds (None: no limit)."""
        self.deadline = time.monotonic() + limit if limit is not None else math.inf

    @property
    def sending_head(self) -> bool:
        """Still sending a request head (or nothing yet), with no reply on its way."""
        return self.in_head and self.out is None

    @property
    def idle(self) -> bool:
        """Between requests: nothing unanswered, nothing unsent."""
        return not self.buf and self.out is None


class ConnTable(dict[int, Conn]):
    """The loop's connections by descriptor, in order of arrival."""

    def cheapest(self, client: str | None) -> Conn | None:
        """The connection to shed for a newcomer (of ``client`` only, unless None)."""

        def candidates() -> Iterator[Conn]:
            return (c for c in self.values() if client is None or client_key(c.addr) == client)

        head = next((conn for conn in candidates() if conn.sending_head), None)
        return head or next((conn for conn in candidates() if conn.idle), None)

    def late(self, now: float) -> list[Conn]:
        """The connections past their deadline."""
        return [conn for conn in self.values() if conn.deadline < now]
