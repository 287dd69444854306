"""An event loop in front of the threaded server: idle connections wait in one
epoll set, and repeat requests for small files are answered from there.

Why: with a thread per connection every syscall is a GIL hand-off, and 32 busy
keep-alive connections convoy on it (py-spy on the threaded server shows request
threads waiting to re-take the GIL, not running Python). Here one thread accepts,
reads request heads, and *replays* responses for small files that the threaded
handler already produced in full; anything else goes to a handler thread exactly
as before, and once that request is answered a kept-alive connection comes back
to the loop ("parking"), so threads exist only while requests run.

Invariants:
- A replay is byte for byte the response the handler gave for the same request
  target (only ``Date`` and the keep-alive ``Connection`` header are redone), and
  only for a plain ``GET``/``HEAD``: no body, no conditional or range header, a
  well-formed head. Anything else, or anything unusual, goes to a thread.
- The file behind a replay is re-checked with one ``os.stat`` per request; its
  device, inode, size, mtime, ctime and mode must match what the handler served
  (the small-file cache's rule), otherwise the request goes to a thread, which
  applies every serving policy again.
- The loop steps aside for handlers that override what it would bypass: no
  replay unless every class that overrides a request hook declares itself
  replay-safe, and no loop at all for handlers that override
  ``setup``/``handle``/``finish`` (they run the plain threaded server).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from devserve._protocol import http_date

# The mixin's ``socket`` attribute (the listening socket) hides the module in its body.
Socket = socket.socket

# Methods a replay would skip; a class overriding one turns replays off unless it
# declares ``_replay_safe = True`` in its own body (it then promises that its
# overrides give the same response and report the request through the server).
REPLAY_HOOKS = frozenset(
    {
        "setup", "handle", "finish", "handle_one_request", "parse_request",
        "handle_expect_100", "do_GET", "do_HEAD", "send_head", "copyfile",
        "translate_path", "guess_type", "send_response", "send_response_only",
        "send_header", "end_headers", "flush_headers", "log_request", "log_message",
        "log_error", "version_string", "date_time_string", "address_string",
        "_send_file_head", "_from_cache", "_serve_opened", "_open_servable",
        "_may_serve", "_offer_replay", "MessageClass",
    }
)  # fmt: skip
# Overriding one of these means the handler manages the connection itself.
LOOP_HOOKS = frozenset({"setup", "handle", "finish"})

# A request head is read in the loop only up to this size; a longer one is a
# thread's to answer (it knows the 414 and 431 rules).
HEAD_LIMIT = 16 * 1024
RECV_SIZE = 64 * 1024
# How often deadlines are checked (seconds).
SWEEP_INTERVAL = 0.1
# Seconds a client may take to read a replayed response before it is dropped.
WRITE_TIMEOUT = 60.0
ACCEPT_BATCH = 64
# Seconds accepting pauses when accept fails for want of descriptors.
ACCEPT_PAUSE = 0.05
MAX_REPLIES = 4096
# Bodies up to this size are copied behind the head and sent as one buffer.
COPY_LIMIT = 16 * 1024
# As in the threaded parser (http.client's limit): more header lines go to a thread.
MAX_FIELDS = 100

# Header fields: a token, a colon, then visible characters, spaces and tabs.
# No obs-fold, no bare CR or LF, no NUL: anything else goes to a thread.
_FIELDS = re.compile(rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
# Request headers that make a response depend on more than the target.
_NOT_REPLAYED = (b"\ncontent-length:", b"\ntransfer-encoding:", b"\nrange:", b"\nif-", b"\nexpect:")
_KEEP_ALIVE = b"Connection: keep-alive\r\n"

_LISTENER = object()
_WAKER = object()


def handler_allows(handler_class: Any, hooks: Iterable[str], opt_in: bool = False) -> bool:
    """Whether no class of ``handler_class`` overrides ``hooks`` without being replay-safe.

    The walk stops at a class that declares ``_replay_base = True`` (the core
    handler classes whose behaviour the loop reproduces). With ``opt_in``, some
    class must also declare ``_replay_safe = True``: it promises that the server's
    ``replayed`` hook reports requests the way its own logging would.
    """
    cls = getattr(handler_class, "func", handler_class)  # functools.partial(Handler, ...)
    if not isinstance(cls, type):
        return False
    names = frozenset(hooks)
    declared = False
    for klass in cls.__mro__:
        own = vars(klass)
        if own.get("_replay_base", False):
            return declared or not opt_in
        if own.get("_replay_safe", False):
            declared = True
            if names & LOOP_HOOKS & own.keys():
                return False  # replay-safe is no promise about the connection
        elif names & own.keys():
            return False
    return False


class _Reply:
    """A recorded response: its head around the Date line, and how to get the body."""

    __slots__ = ("body", "path", "post", "pre")

    def __init__(
        self, path: str, pre: bytes, post: bytes, body: Callable[[Any], bytes | None]
    ) -> None:
        self.path = path
        self.pre = pre
        self.post = post
        self.body = body  # called with os.stat(path): the cached bytes, or None if stale


class _Conn:
    """A connection the loop holds: its unread input and unsent output."""

    __slots__ = ("addr", "buf", "close_after", "deadline", "fd", "in_head", "out", "sock")

    def __init__(self, sock: Socket, addr: Any, buf: bytes, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.addr = addr
        self.buf = bytearray(buf)
        self.out: list[memoryview] | None = None  # what the socket has not taken yet
        self.close_after = False
        self.deadline = deadline
        self.in_head = False  # the request_timeout for a partial head is running


class EventLoopMixIn:
    """Mix in before ThreadingHTTPServer: serve_forever runs the loop (see the module doc).

    ``replayed`` is called for every replayed response; override it to log and
    count them, since the handler's logging hooks do not run for them.
    """

    # Provided by the server classes this is mixed into.
    socket: Socket
    RequestHandlerClass: Any
    request_timeout: float | None
    idle_timeout: float | None
    _accepted: set[Socket]
    _reaped: set[Socket]
    _connections_lock: threading.Lock

    replay_count = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: dict[int, _Conn] = {}
        self._replies: dict[bytes, _Reply] = {}
        self._handed_input: dict[Socket, bytes] = {}
        self._returning: dict[Socket, bytes] = {}
        self._adoptions: deque[tuple[Socket, Any, bytes]] = deque()
        self._loop_lock = threading.Lock()
        self._loop_running = False
        self._loop_stop = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._selector: selectors.BaseSelector | None = None
        self._waker: tuple[Socket, Socket] | None = None
        self._date = (0, b"")
        self._accept_paused_until = 0.0
        super().__init__(*args, **kwargs)
        handler = self.RequestHandlerClass
        self._loop_usable = not hasattr(self.socket, "do_handshake") and handler_allows(
            handler, LOOP_HOOKS
        )
        self._replay_usable = self._loop_usable and handler_allows(handler, REPLAY_HOOKS, True)
        timeout = getattr(getattr(handler, "func", handler), "timeout", None)
        self._write_timeout = timeout if timeout else WRITE_TIMEOUT
        if self._loop_usable:
            waker = socket.socketpair()
            for end in waker:
                end.setblocking(False)
            self._waker = waker

    # ------------------------------------------------------------------ hooks

    def replayed(
        self, client_address: Any, method: str, path: str, size: int, when: float, duration: float
    ) -> None:
        """Called after each replayed 200 response (override to log it)."""

    # ------------------------------------------------------------------ the loop

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until shutdown() (the socketserver contract), from the loop."""
        if not self._loop_usable:
            super().serve_forever(poll_interval)  # type: ignore[misc]
            return
        self._loop_done.clear()
        selector = selectors.DefaultSelector()
        self._selector = selector
        try:
            self.socket.setblocking(False)
            selector.register(self.socket, selectors.EVENT_READ, _LISTENER)
            assert self._waker is not None
            selector.register(self._waker[0], selectors.EVENT_READ, _WAKER)
            with self._loop_lock:
                self._loop_running = True
            next_sweep = 0.0
            timeout = min(poll_interval, SWEEP_INTERVAL)
            while not self._loop_stop:
                for key, mask in selector.select(timeout):
                    data = key.data
                    if data is _LISTENER:
                        self._accept()
                    elif data is _WAKER:
                        self._adopt_returned()
                    else:
                        self._ready(data, mask)
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + SWEEP_INTERVAL
                    self._sweep(now)
                    self._resume_accepting(now)
                self.service_actions()  # type: ignore[attr-defined]
        finally:
            with self._loop_lock:
                self._loop_running = False
                returned = list(self._adoptions)
                self._adoptions.clear()
            for conn in list(self._conns.values()):
                self._close(conn)
            for sock, _, _ in returned:
                self.shutdown_request(sock)  # type: ignore[attr-defined]
            selector.close()
            self._selector = None
            self._loop_stop = False
            self._loop_done.set()

    def shutdown(self) -> None:
        """Stop serve_forever and wait until it has (the socketserver contract)."""
        if not self._loop_usable:
            super().shutdown()  # type: ignore[misc]
            return
        self._loop_stop = True
        self._wake()
        self._loop_done.wait()

    def _wake(self) -> None:
        if self._waker is not None:
            with contextlib.suppress(OSError):
                self._waker[1].send(b"\0")

    def _accept(self) -> None:
        now = time.monotonic()
        limit = self.request_timeout
        deadline = now + limit if limit is not None else math.inf
        selector = self._selector
        assert selector is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError:
                # Out of descriptors (or memory): stop accepting for a moment
                # instead of spinning on a listener that stays readable.
                selector.unregister(self.socket)
                self._accept_paused_until = now + ACCEPT_PAUSE
                return
            if not self.verify_request(sock, addr):  # type: ignore[attr-defined]
                self.shutdown_request(sock)  # type: ignore[attr-defined]
                continue
            try:
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
                conn = _Conn(sock, addr, b"", deadline)
                selector.register(sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError):
                self.shutdown_request(sock)  # type: ignore[attr-defined]
                continue
            self._conns[conn.fd] = conn

    def _resume_accepting(self, now: float) -> None:
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            assert self._selector is not None
            self._selector.register(self.socket, selectors.EVENT_READ, _LISTENER)

    def _ready(self, conn: _Conn, mask: int) -> None:
        try:
            if conn.out is not None:
                if mask & selectors.EVENT_WRITE:
                    self._flush(conn)
                return
            try:
                data = conn.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(conn)
                return
            if not data:
                if conn.buf:
                    self._hand_off(conn)  # a head cut short: the handler answers it as is
                else:
                    self._close(conn)
                return
            conn.buf += data
            self._process(conn)
        except Exception:
            self.handle_error(conn.sock, conn.addr)  # type: ignore[attr-defined]
            self._close(conn)

    def _process(self, conn: _Conn) -> None:
        """Answer what ``conn.buf`` holds: replay complete requests, hand off the rest."""
        while conn.buf:
            buf = conn.buf
            line_end = buf.find(b"\n")
            if line_end < 0:
                if len(buf) > HEAD_LIMIT:
                    self._hand_off(conn)
                else:
                    self._await_head(conn)
                return
            target = _target(buf, line_end) if self._replay_usable else b""
            reply = self._replies.get(target) if target else None
            if reply is None:
                self._hand_off(conn)
                return
            end = buf.find(b"\r\n\r\n", line_end - 1)
            if end < 0:
                if len(buf) > HEAD_LIMIT or b"\n\n" in buf:
                    self._hand_off(conn)
                else:
                    self._await_head(conn)
                return
            if not self._replay(conn, target, reply, bytes(buf[: end + 2]), line_end):
                self._hand_off(conn)
                return
            del buf[: end + 4]
            conn.in_head = False
            if conn.out is not None:
                return  # the rest waits until the client has read this
            if conn.close_after:
                self._close(conn)
                return
        self._set_deadline(conn, self.idle_timeout)

    def _await_head(self, conn: _Conn) -> None:
        """Part of a request head is here: the rest must come within request_timeout."""
        if not conn.in_head:
            conn.in_head = True
            self._set_deadline(conn, self.request_timeout)

    @staticmethod
    def _set_deadline(conn: _Conn, limit: float | None) -> None:
        conn.deadline = time.monotonic() + limit if limit is not None else math.inf

    def _replay(
        self, conn: _Conn, target: bytes, reply: _Reply, head: bytes, line_end: int
    ) -> bool:
        """Send the recorded reply for ``head`` if every condition holds; False if not."""
        started = time.perf_counter()
        when = time.time()
        method = head[: head.index(b" ")]
        version = head[line_end - 9 : line_end - 1]
        fields = head[line_end + 1 :]
        if not _FIELDS.fullmatch(fields) or fields.count(b"\n") >= MAX_FIELDS:
            return False
        lowered = b"\n" + fields.lower()
        if any(name in lowered for name in _NOT_REPLAYED):
            return False
        close = version == b"HTTP/1.0"
        at = lowered.find(b"\nconnection:")
        if at >= 0:
            if lowered.find(b"\nconnection:", at + 1) >= 0:
                return False
            value = lowered[at + 12 : lowered.find(b"\r", at)].decode("latin-1")
            tokens = {token.strip() for token in value.split(",")}  # as parse_request reads it
            if "close" in tokens:
                close = True
            elif "keep-alive" in tokens:
                close = False
        try:
            body = reply.body(os.stat(reply.path))
        except (OSError, ValueError):
            body = None
        if body is None:
            self._replies.pop(target, None)
            return False
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, http_date().encode("ascii"))
        connection = _KEEP_ALIVE if version == b"HTTP/1.0" and not close else b""
        head = b"".join(
            (reply.pre, b"Date: ", self._date[1], b"\r\n", reply.post, connection, b"\r\n")
        )
        size = len(head)
        if method != b"GET":
            out = [memoryview(head)]
        elif len(body) <= COPY_LIMIT:
            out = [memoryview(head + body)]  # one buffer: cheaper than a gather for little
            size += len(body)
        else:
            # The cached bytes themselves go out: a client that reads slowly
            # holds a view of them, not a copy.
            out = [memoryview(head), memoryview(body)]
            size += len(body)
        conn.close_after = close
        self._send(conn, out)
        self.replay_count += 1
        self.replayed(
            conn.addr,
            method.decode("ascii"),
            target.decode("latin-1"),
            size,
            when,
            time.perf_counter() - started,
        )
        return True

    def _send(self, conn: _Conn, out: list[memoryview]) -> None:
        """Send ``out``; what the socket does not take now waits for it to be writable."""
        try:
            sent = conn.sock.send(out[0]) if len(out) == 1 else conn.sock.sendmsg(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            conn.close_after = True
            conn.out = None
            return
        rest = _unsent(out, sent)
        if rest:
            if conn.out is None:
                assert self._selector is not None
                self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            conn.out = rest
            conn.deadline = time.monotonic() + self._write_timeout
        elif conn.out is not None:
            conn.out = None
            assert self._selector is not None
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _flush(self, conn: _Conn) -> None:
        out = conn.out
        assert out is not None
        self._send(conn, out)
        if conn.out is not None:
            return
        if conn.close_after:
            self._close(conn)
            return
        self._process(conn)

    def _sweep(self, now: float) -> None:
        """Close connections past their deadline (idle, slow head, or not reading).

        A request head that did not arrive in time goes to a handler thread marked
        as reaped and shut down, as the threaded reaper leaves it: the handler logs
        the timeout exactly as for a connection it held itself.
        """
        for conn in [c for c in self._conns.values() if c.deadline < now]:
            self._expire(conn)

    def _expire(self, conn: _Conn) -> None:
        try:
            if conn.buf and conn.out is None:
                with self._connections_lock:
                    self._reaped.add(conn.sock)
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
                self._hand_off(conn)
            else:
                self._close(conn)
        except Exception:
            self.handle_error(conn.sock, conn.addr)  # type: ignore[attr-defined]
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if self._conns.get(conn.fd) is not conn:
            return  # closed already, or handed off: no longer the loop's
        del self._conns[conn.fd]
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        self.shutdown_request(conn.sock)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ threads

    def _hand_off(self, conn: _Conn) -> None:
        """Give the connection, with what it sent so far, to a handler thread."""
        sock = conn.sock
        if self._conns.get(conn.fd) is not conn:
            return
        del self._conns[conn.fd]
        try:
            if self._selector is not None:
                self._selector.unregister(sock)
            sock.setblocking(True)
            if conn.buf:
                self._handed_input[sock] = bytes(conn.buf)
            self.process_request(sock, conn.addr)  # type: ignore[attr-defined]
        except Exception:
            self._handed_input.pop(sock, None)
            self.handle_error(sock, conn.addr)  # type: ignore[attr-defined]
            self.shutdown_request(sock)  # type: ignore[attr-defined]

    def _take_input(self, sock: Socket) -> bytes:
        """What the loop read from ``sock`` before handing it off (the handler reads it first)."""
        return self._handed_input.pop(sock, b"")

    def _park(self, sock: Socket, unread: bytes) -> bool:
        """A handler is done with a kept-alive connection: return it to the loop if it runs."""
        if not self._loop_running:
            return False
        self._returning[sock] = unread
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Run the handler (ThreadingMixIn's contract); then park or close the connection."""
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            self._handed_input.pop(request, None)
            unread = self._returning.pop(request, None)
            if unread is None or not self._return(request, client_address, unread):
                self.shutdown_request(request)  # type: ignore[attr-defined]

    def _return(self, sock: Socket, addr: Any, unread: bytes) -> bool:
        with self._loop_lock:
            if not self._loop_running:
                return False
            try:
                sock.setblocking(False)
            except OSError:
                return False
            self._adoptions.append((sock, addr, unread))
        self._wake()
        return True

    def _adopt_returned(self) -> None:
        assert self._waker is not None
        with contextlib.suppress(OSError):
            while self._waker[0].recv(4096):
                pass
        selector = self._selector
        assert selector is not None
        limit = self.idle_timeout
        while True:
            with self._loop_lock:
                if not self._adoptions:
                    return
                sock, addr, unread = self._adoptions.popleft()
            deadline = time.monotonic() + limit if limit is not None else math.inf
            conn = _Conn(sock, addr, unread, deadline)
            try:
                self._conns[conn.fd] = conn
                selector.register(sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError):
                self._conns.pop(conn.fd, None)
                self.shutdown_request(sock)  # type: ignore[attr-defined]
                continue
            if conn.buf:
                self._ready_buffered(conn)

    def _ready_buffered(self, conn: _Conn) -> None:
        try:
            self._process(conn)
        except Exception:
            self.handle_error(conn.sock, conn.addr)  # type: ignore[attr-defined]
            self._close(conn)

    # ------------------------------------------------------------------ recording

    def remember_reply(self, handler: Any, path: str, body: Callable[[Any], bytes | None]) -> None:
        """Record the full 200 response ``handler`` is sending for a small file, to replay it."""
        if not self._replay_usable:
            return
        requestline = bytes(handler.raw_requestline).rstrip(b"\r\n")
        parts = requestline.split(b" ")
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
            return
        if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return
        lines: list[bytes] = list(handler._headers_buffer)
        if (
            len(lines) < 4
            or not lines[0].startswith(b"HTTP/1.1 200 ")
            or not lines[2].startswith(b"Date: ")
            or lines[-1] != b"\r\n"
        ):
            return
        fields = lines[3:-1]
        if parts[2] == b"HTTP/1.0" and fields and fields[-1] == _KEEP_ALIVE:
            fields.pop()  # end_headers' answer to an HTTP/1.0 keep-alive request
        if any(line[:11].lower() == b"connection:" for line in fields):
            return
        if len(self._replies) >= MAX_REPLIES:
            self._replies.clear()
        self._replies[parts[1]] = _Reply(path, b"".join(lines[:2]), b"".join(fields), body)

    # ------------------------------------------------------------------ bookkeeping

    def connection_count(self) -> int:
        """How many client connections are open, in threads or waiting in the loop."""
        threaded: int = super().connection_count()  # type: ignore[misc]
        return threaded + len(self._conns) + len(self._adoptions)

    def close_connections(self, idle_only: bool = True) -> int:
        """Shut down connections (by default only idle ones); the loop's are idle unless writing."""
        count: int = super().close_connections(idle_only)  # type: ignore[misc]
        for conn in list(self._conns.values()):
            if idle_only and (conn.out is not None or conn.buf):
                continue
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            count += 1
        return count

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        if self._waker is not None:
            for end in self._waker:
                end.close()


def _unsent(buffers: list[memoryview], sent: int) -> list[memoryview]:
    """What is left of ``buffers`` once ``sent`` bytes of them went out."""
    for index, buffer in enumerate(buffers):
        if sent < len(buffer):
            return [buffer[sent:], *buffers[index + 1 :]]
        sent -= len(buffer)
    return []


def _target(buf: bytearray, line_end: int) -> bytes:
    """The request target of a ``GET``/``HEAD`` request line ending at ``line_end``, or b""."""
    line = bytes(buf[:line_end])
    parts = line.split(b" ")
    if (
        len(parts) == 3
        and parts[0] in (b"GET", b"HEAD")
        and parts[2] in (b"HTTP/1.1\r", b"HTTP/1.0\r")
    ):
        return parts[1]
    return b""
