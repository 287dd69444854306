"""The bytes of a site reply as the event loop sends them, and replies it may send again.

`ReplyWriter.head` writes a reply's head exactly as devserve's threaded handler
writes it (status line, Server, Date, the reply's fields, the site's configured
headers through `Site.finish_head`, Connection, the blank line), memoized around
the Date line. `ReplyWriter.remember` keeps a reply whose inputs the site could
name (`Reply.deps`) under the exact request head it answered; `recall` gives it
back while every one of those inputs still stats the same.

Invariants:
- A recalled reply is byte for byte the one computed for the same head from the
  same file states (only Date is new): never one whose inputs changed since the
  loop last woke up (`new_turn`). Each input is stat'ed once per turn, however
  many requests of the turn depend on it (the rule files every reply names):
  a request whose first byte was sent after a change is never answered from
  before it.
- Both tables are bounded: heads by entries, remembered replies by bytes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import NamedTuple

from devserve._files import Dependencies, Dependency, still_true
from devserve._loop_output import CloseFile, FileChunk, Out
from devserve._protocol import ByteRange, http_date
from devserve._reply import Reply
from devserve._site import Site
from devserve._static_rules import closing_connection_field
from devserve.events import Journal, RequestRecord

# Response heads remembered (by status, fields and connection: a few hundred bytes each).
MAX_HEADS = 4096
# The bytes replies remembered by request head may hold in all (heads, bodies, keys).
ANSWERS_BYTES = 8 * 1024 * 1024
# Bodies up to this size are copied behind the head and sent as one buffer.
COPY_LIMIT = 16 * 1024
# Where the Date line goes in a head being assembled (never sent).
_DATE_MARK = b"Date: \x00\r\n"
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class Again(NamedTuple):
    """A reply computed for one exact request head, to send again while it holds."""

    pre: bytes  # the head up to the Date line
    post: bytes  # the head after it
    body: bytes | None
    deps: Dependencies  # what it was computed from (see `devserve._files.still_true`)
    close: bool
    method: str
    target: str
    reply: Reply  # for the request log
    cost: int  # the memory it holds, about


class ReplyWriter:
    """Writes a site's replies for the loop, and remembers them by request head."""

    def __init__(self, site: Site, protocol: str, server: str) -> None:
        self.site = site
        self.protocol = protocol
        self._server_line = f"Server: {server}\r\n".encode("latin-1")
        self._date = (0, b"")
        self._heads: dict[tuple[object, ...], tuple[bytes, bytes]] = {}
        self.answers: dict[bytes, Again] = {}
        self.answers_size = 0
        self._verified: set[Dependency] = set()  # inputs found unchanged this turn

    def date_line(self) -> bytes:
        """The Date line for now (made once a second)."""
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, f"Date: {http_date()}\r\n".encode("ascii"))
        return self._date[1]

    def head(self, reply: Reply, connection: str | None) -> tuple[bytes, bytes]:
        """A reply's head in two parts, before and after the Date line (memoized)."""
        key = (reply.status, reply.fields, reply.uncacheable, connection)
        around = self._heads.get(key)
        if around is None:
            around = self._write_head(reply, connection)
            if len(self._heads) >= MAX_HEADS:
                self._heads.clear()
            self._heads[key] = around
        return around

    def _write_head(self, reply: Reply, connection: str | None) -> tuple[bytes, bytes]:
        status = reply.status
        lines = [
            f"{self.protocol} {status} {_PHRASES.get(status, '')}\r\n".encode("latin-1"),
            self._server_line,
            _DATE_MARK,
        ]
        lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in reply.fields)
        self.site.finish_head(lines, status, reply.uncacheable)
        if connection is not None:
            lines.append(f"Connection: {connection}\r\n".encode("ascii"))
        lines.append(b"\r\n")
        at = lines.index(_DATE_MARK)
        return b"".join(lines[:at]), b"".join(lines[at + 1 :])

    def compose(
        self, request: bytes, reply: Reply, close: bool, method: str, version: str
    ) -> tuple[bytes | deque[Out], int]:
        """What answers ``request`` (a head) with ``reply``, and the bytes it amounts to.

        One buffer when the body is small (cheaper than a gather), else a queue of
        output items. The reply is remembered for ``request`` when it can be.
        """
        connection = closing_connection_field(close, True, reply.status, method, version)
        around = self.head(reply, connection)
        head = b"".join((around[0], self.date_line(), around[1]))
        body = self.body(reply) if method != "HEAD" else None
        self.remember(request, reply, around, body, close, method)
        if not body:
            return head, len(head)
        first = body[0]
        if len(body) == 1 and isinstance(first, memoryview) and len(first) <= COPY_LIMIT:
            data = head + first
            return data, len(data)
        body.appendleft(memoryview(head))
        return body, len(head) + reply.length

    def compose_again(self, again: Again) -> tuple[bytes | deque[Out], int]:
        """What sends a remembered reply again (with today's Date), and its size."""
        head = b"".join((again.pre, self.date_line(), again.post))
        body = again.body
        if body is None or len(body) <= COPY_LIMIT:
            data = head + body if body else head
            return data, len(data)
        return deque((memoryview(head), memoryview(body))), len(head) + len(body)

    @staticmethod
    def body(reply: Reply) -> deque[Out]:
        """The output items of a reply's body: views of memory, file chunks, a close."""
        out: deque[Out] = deque()
        source = reply.source
        data = memoryview(source.data) if source is not None and source.data is not None else None
        fd = source.fd if source is not None else None
        for part in reply.parts:
            if not isinstance(part, ByteRange):
                out.append(memoryview(part))
            elif data is not None:
                out.append(data[part.first : part.last + 1])
            elif fd is not None:
                assert source is not None
                out.append(FileChunk(fd, part.first, part.length, source.path))
        if fd is not None:
            out.append(CloseFile(fd))
        return out

    # -------------------------------------------------------------- sent again

    def remember(
        self,
        request: bytes,
        reply: Reply,
        around: tuple[bytes, bytes],
        body: deque[Out] | None,
        close: bool,
        method: str,
    ) -> None:
        """Keep the reply to ``request`` for the next identical head, if it can be.

        Only a reply the site named its inputs for, with its body in memory.
        """
        deps = reply.deps
        if deps is None or (body and isinstance(body[-1], CloseFile)):
            return
        data: bytes | None = None
        if body:
            views = [item for item in body if isinstance(item, memoryview)]
            source = reply.source
            whole = source.data if source is not None else None
            if len(views) == 1 and whole is not None and len(views[0]) == len(whole):
                data = whole  # the file's own bytes, not a copy
            else:
                data = b"".join(views)
        cost = len(around[0]) + len(around[1]) + len(data or b"") + len(request) + 256
        if cost > ANSWERS_BYTES // 16:
            return
        target = request.split(b" ", 2)[1].decode("latin-1")
        again = Again(around[0], around[1], data, deps, close, method, target, reply, cost)
        answers = self.answers
        old = answers.pop(request, None)
        if old is not None:
            self.answers_size -= old.cost
        answers[request] = again
        self.answers_size += cost
        while self.answers_size > ANSWERS_BYTES:
            self.answers_size -= answers.pop(next(iter(answers))).cost

    def new_turn(self) -> None:
        """The loop woke up (a select returned): inputs are checked again, once each."""
        self._verified.clear()

    def recall(self, request: bytes) -> Again | None:
        """The reply remembered for exactly this head, if everything it came from holds."""
        again = self.answers.get(request)
        if (
            again is not None
            and (again.reply.fresh_until is None or time.time() < again.reply.fresh_until)
            and still_true(again.deps, self._verified)
        ):
            return again
        return None


# Repeated log lines remembered (by client, request and answer), and the longest
# target remembered: a key a client chose cannot hold more than about 1 MiB.
REPEATERS = 1024
REPEAT_TARGET_LIMIT = 1024


class Reports:
    """The loop's reports to its journal: one per request, through prepared sinks for repeats."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._repeaters: dict[tuple[object, ...], Callable[[float, float], None]] = {}

    def report(
        self,
        client: str,
        method: str,
        target: str,
        reply: Reply,
        size: int,
        when: float,
        duration: float,
    ) -> None:
        """Report one answered request (plumbing that succeeded is left out, as by threads)."""
        if not reply.logged and reply.status < 400:
            return
        key = (client, method, target, reply.status, size, reply.served, reply.note)
        emit = self._repeaters.get(key)
        if emit is None:
            record = RequestRecord(
                when, client, method, target, reply.status, size, duration, reply.served,
                reply.note,
            )  # fmt: skip
            emit = self.journal.repeats(record)
            if len(target) <= REPEAT_TARGET_LIMIT:
                if len(self._repeaters) >= REPEATERS:
                    self._repeaters.clear()
                self._repeaters[key] = emit
        emit(when, duration)
