"""`LoopHTTPServer`: one event-loop thread answers every static request; threads run the rest.

Why: with a thread per connection every syscall is a GIL hand-off, and busy
keep-alive connections convoy on it (py-spy on the threaded server shows request
threads waiting to re-take the GIL, not running Python). Here one thread
accepts, reads request heads, and answers each request its `Site` serves
(files, index pages, listings, redirects, 404s, ranges, conditional requests,
HEAD, live-reload pages) by calling `Site.respond` itself, with non-blocking
sends (``sendfile`` for large files). Anything else (a request body, CGI, the
live-reload event stream, another method, a head it will not read) goes to a
handler thread with the bytes already read put back in front; once answered, a
kept-alive connection comes back to the loop ("parking"), so threads exist only
while user code or a blocking request runs.

Invariants:
- The loop answers a request exactly as devserve's threaded handler would: both
  call `Site.respond` for the reply and `Site.finish_head` for the configured
  headers, and read the head with the same `devserve._protocol` rules
  (`tests/test_loop.py` compares the two paths on a property-based mix).
- A head the strict rules refuse, or any head the loop does not answer, goes to
  a thread, which answers it through the documented handler (so a 400 is the
  handler's 400, logged by it).
- Every request is reported once to the `Journal`, by whichever side answered it.
- The loop never waits on a client: reads and writes are non-blocking, with the
  idle, request and write deadlines checked every `SWEEP_INTERVAL`.
- The loop steps aside for handler classes that override a hook the site
  bypasses (`reproduces`), and runs no loop at all for handlers that override
  ``setup``/``handle``/``finish``.
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from devserve._io import CLIENT_GONE
from devserve._loop_conns import Conn, ConnTable
from devserve._loop_handoff import Handoff
from devserve._loop_output import Out, Shrank, discard, send_out
from devserve._loop_replies import Again, ReplyWriter, Reports
from devserve._overrides import LOOP_HOOKS, reproduces
from devserve._protocol import (
    ProtocolError,
    check_request_target,
    head_end,
    parse_request_line,
    read_plain_head,
)
from devserve._reply import Reply, SiteRequest
from devserve._servers import ThreadingHTTPServer
from devserve._site import Site
from devserve._static_rules import keeps_alive
from devserve.events import Journal, refusal

# A request head is read in the loop only up to this size; a longer one is a
# thread's to answer (it knows the 414 and 431 rules).
HEAD_LIMIT = 16 * 1024
RECV_SIZE = 64 * 1024
# How often deadlines are checked (seconds).
SWEEP_INTERVAL = 0.1
# Seconds a client may take to read a response before it is dropped.
WRITE_TIMEOUT = 60.0
ACCEPT_BATCH = 64
# Seconds accepting pauses when accept fails for want of descriptors.
ACCEPT_PAUSE = 0.05

_LISTENER = object()
_WAKER = object()


class LoopHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with an event loop in front (see the module doc).

    ``site`` is what the loop answers itself (None: it only holds idle
    connections); ``journal`` hears of every request the loop answers. The
    protocol and server versions are the handler's unless given (a handler that
    takes them from its server's context says so here).
    """

    parks_connections = True
    # Seconds shutdown() gives responses the loop is still sending to finish.
    drain_grace = 5.0

    def __init__(
        self,
        server_address: tuple[Any, ...],
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
        *,
        site: Site | None = None,
        journal: Journal | None = None,
        protocol_version: str | None = None,
        server_version: str | None = None,
    ) -> None:
        self._conns = ConnTable()
        self._handoff = Handoff()
        self._loop_stop = False
        self._abandoned = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._selector: selectors.BaseSelector | None = None
        self._accept_paused_until = 0.0
        self.answered_in_loop = 0
        self._waker: tuple[socket.socket, socket.socket] | None = None
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)
        handler = getattr(RequestHandlerClass, "func", RequestHandlerClass)
        self._loop_usable = not hasattr(self.socket, "do_handshake") and reproduces(
            handler, LOOP_HOOKS
        )
        self.site = site if self._loop_usable and reproduces(handler) else None
        self.journal = journal
        self.reports = Reports(journal) if journal is not None else None
        self._protocol = protocol_version or str(getattr(handler, "protocol_version", "HTTP/1.0"))
        # A request line without a version is HTTP/0.9 only if the handler assumes so.
        self._simple_ok = getattr(handler, "default_request_version", "") == "HTTP/0.9"
        self.replies: ReplyWriter | None = None
        if self.site is not None:
            server = f"{server_version or handler.server_version} {handler.sys_version}"
            self.replies = ReplyWriter(self.site, self._protocol, server)
        timeout = getattr(handler, "timeout", None)
        self._write_timeout = timeout if timeout else WRITE_TIMEOUT
        if self._loop_usable:
            waker = socket.socketpair()
            for end in waker:
                end.setblocking(False)
            self._waker = waker

    # ------------------------------------------------------------------ the loop

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until shutdown() (the socketserver contract), from the loop."""
        if not self._loop_usable:
            super().serve_forever(poll_interval)
            return
        self._loop_done.clear()
        selector = selectors.DefaultSelector()
        self._selector = selector
        try:
            self.socket.setblocking(False)
            selector.register(self.socket, selectors.EVENT_READ, _LISTENER)
            assert self._waker is not None
            selector.register(self._waker[0], selectors.EVENT_READ, _WAKER)
            self._handoff.open()
            next_sweep = 0.0
            timeout = min(poll_interval, SWEEP_INTERVAL)
            while not self._loop_stop:
                events = selector.select(timeout)
                self._new_turn()
                for key, mask in events:
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
                self.service_actions()
            self._drain(selector)
        finally:
            returned = self._handoff.close()
            for conn in list(self._conns.values()):
                self._close(conn)
            for sock in returned:
                self.shutdown_request(sock)
            selector.close()
            self._selector = None
            self._loop_stop = self._abandoned = False
            self._loop_done.set()

    def _drain(self, selector: selectors.BaseSelector) -> None:
        """Stopping: accept nothing more, close idle connections, finish what is being sent.

        Responses in flight get `drain_grace` seconds (`abandon` cuts that short);
        connections handlers return meanwhile are closed, not parked.
        """
        for sock in self._handoff.close():  # given back, not adopted yet: closed here
            self.shutdown_request(sock)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(self.socket)
        deadline = time.monotonic() + self.drain_grace
        while not self._abandoned:
            for conn in list(self._conns.values()):
                if conn.out is None:
                    self._close(conn)
                else:
                    conn.close_after = True
            if not self._conns or time.monotonic() >= deadline:
                return
            events = selector.select(SWEEP_INTERVAL)
            self._new_turn()
            for key, mask in events:
                if isinstance(key.data, Conn):
                    self._ready(key.data, mask)
                elif key.data is _WAKER:
                    self._adopt_returned()
            self._sweep(time.monotonic())

    def abandon(self) -> None:
        """Stop draining at once: what is still being sent is cut off."""
        self._abandoned = True
        self._wake()

    def shutdown(self) -> None:
        """Stop serve_forever and wait until it has (the socketserver contract).

        What the loop is still sending gets up to `drain_grace` seconds first.
        """
        if not self._loop_usable:
            super().shutdown()
            return
        self._loop_stop = True
        self._wake()
        self._loop_done.wait()

    def _new_turn(self) -> None:
        """Every select starts a turn: what replies came from is checked anew (once each)."""
        if self.replies is not None:
            self.replies.new_turn()

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
            if not self.verify_request(sock, addr):
                self.shutdown_request(sock)
                continue
            try:
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
                conn = Conn(sock, addr, b"", deadline)
                conn.in_head = True  # the request_timeout runs from the connection's start
                selector.register(sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError):
                self.shutdown_request(sock)
                continue
            self._conns[conn.fd] = conn

    def _resume_accepting(self, now: float) -> None:
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            assert self._selector is not None
            self._selector.register(self.socket, selectors.EVENT_READ, _LISTENER)

    def _ready(self, conn: Conn, mask: int) -> None:
        if self._conns.get(conn.fd) is not conn:
            return  # closed or handed off since the selector reported it
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
            self._failed(conn)

    def _failed(self, conn: Conn) -> None:
        self.handle_error(conn.sock, conn.addr)
        self._close(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report a failure to the journal (when there is one); a client gone is no failure."""
        journal = self.journal
        if journal is None:
            super().handle_error(request, client_address)
        elif not isinstance(sys.exc_info()[1], CLIENT_GONE):
            client = str(client_address[0]) if client_address else ""
            journal.failed(client, traceback.format_exc())

    def shed(self, client: str | None) -> bool:
        """Make room (see `HTTPServer.shed`), from the loop's connections first.

        Oldest first (the loop's table is in order of arrival): a connection still
        sending its head, then one idle between requests; then the threads' own.
        Called by the loop thread only (from `_accept`), like every change to
        the table. What connections have sent already is read first: a request
        that arrived but was not read yet does not make its sender look slow.
        """
        self._catch_up()
        victim = self._conns.cheapest(client)
        if victim is None:
            return super().shed(client)
        self._close(victim)
        return True

    def _catch_up(self) -> None:
        selector = self._selector
        if selector is None:
            return
        events = selector.select(0)
        self._new_turn()
        for key, mask in events:
            if isinstance(key.data, Conn):
                self._ready(key.data, mask)

    def refused(self, client_address: Any) -> None:
        """A connection over the limit got 503: the journal hears of it like any request."""
        if self.journal is not None:
            client = str(client_address[0]) if client_address else ""
            self.journal.answered(refusal(client, time.time()))

    # ------------------------------------------------------------------ requests

    def _process(self, conn: Conn) -> None:
        """Answer the requests ``conn.buf`` holds, in order; hand off what the loop does not."""
        while conn.buf and conn.out is None:
            buf = conn.buf
            end = head_end(buf)
            if end < 0:
                if len(buf) > HEAD_LIMIT:
                    self._hand_off(conn)
                elif not self._answer_simple(conn):
                    self._await_head(conn)
                return
            head = bytes(buf[:end])
            again = self.replies.recall(head) if self.replies is not None else None
            if again is not None:
                self._answer_again(conn, again)
            elif not self._answer(conn, head):
                self._hand_off(conn)
                return
            del buf[:end]
            conn.in_head = False
            if conn.close_after and conn.out is None:
                self._close(conn)
                return
        if not conn.buf and conn.out is None:
            conn.set_deadline(self.idle_timeout)

    def _await_head(self, conn: Conn) -> None:
        """Part of a request head is here: the rest must come within request_timeout."""
        if not conn.in_head:
            conn.in_head = True
            conn.set_deadline(self.request_timeout)

    def _answer(self, conn: Conn, head: bytes) -> bool:
        """Answer one complete request head if the site serves it; False: a thread must."""
        site = self.site
        if site is None:
            return False
        started = time.perf_counter()
        when = time.time()
        request = read_plain_head(head)
        if request is None:
            return False
        line, fields = request
        method, target = line.command, line.path
        if not site.answers(method, target):
            return False
        reply = site.respond(SiteRequest(method, target, fields))
        close = not keeps_alive(line.version_number, self._protocol, fields.get("connection"))
        assert self.replies is not None
        conn.close_after = close
        out, size = self.replies.compose(head, reply, close, method, line.version)
        self._put(conn, out)
        self._report(conn, method, target, reply, size, when, time.perf_counter() - started)
        return True

    def _answer_again(self, conn: Conn, again: Again) -> None:
        """Send a reply computed earlier for the very same head, its inputs unchanged."""
        started = time.perf_counter()
        when = time.time()
        assert self.replies is not None
        conn.close_after = again.close
        out, size = self.replies.compose_again(again)
        self._put(conn, out)
        duration = time.perf_counter() - started
        self._report(conn, again.method, again.target, again.reply, size, when, duration)

    def _answer_simple(self, conn: Conn) -> bool:
        """Answer an HTTP/0.9 request (``GET /path`` and no version) without waiting for more.

        Such a request has no header lines; its answer is the body alone.
        """
        site = self.site
        buf = conn.buf
        line_end = buf.find(b"\n")
        if site is None or line_end < 0:
            return False
        started = time.perf_counter()
        when = time.time()
        try:
            parsed = parse_request_line(buf[:line_end].decode("latin-1").rstrip("\r"))
            if parsed is not None:
                check_request_target(parsed.command, parsed.path)
        except ProtocolError:
            return False  # the handler's to answer
        if parsed is None or parsed.version or parsed.command != "GET" or not self._simple_ok:
            return False
        if not site.answers("GET", parsed.path):
            return False
        reply = site.respond(SiteRequest("GET", parsed.path, _NO_FIELDS))
        out = ReplyWriter.body(reply)
        size = reply.length
        del buf[: line_end + 1]
        conn.close_after = True
        self._send(conn, out)
        self._report(conn, "GET", parsed.path, reply, size, when, time.perf_counter() - started)
        if conn.out is None:
            self._close(conn)
        return True

    def _put(self, conn: Conn, out: bytes | deque[Out]) -> None:
        if isinstance(out, bytes):
            self._send_bytes(conn, out)
        else:
            self._send(conn, out)

    def _send_bytes(self, conn: Conn, data: bytes) -> None:
        """Send ``data`` now if the socket takes it all (the usual case), else queue the rest."""
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            conn.close_after = True
            return
        if sent < len(data):
            self._send(conn, deque([memoryview(data)[sent:]]))

    def _report(
        self,
        conn: Conn,
        method: str,
        target: str,
        reply: Reply,
        size: int,
        when: float,
        duration: float,
    ) -> None:
        self.answered_in_loop += 1
        if self.reports is not None:
            self.reports.report(conn.client, method, target, reply, size, when, duration)

    # ------------------------------------------------------------------ output

    def _send(self, conn: Conn, out: deque[Out]) -> None:
        """Send what ``out`` holds; what the socket does not take waits for it to be writable."""
        try:
            send_out(conn.sock, out)
        except OSError as error:
            if isinstance(error, Shrank) and self.journal is not None:
                self.journal.error(str(error))
            discard(out)
            conn.close_after = True
            if conn.out is not None:
                conn.out = None
            return
        selector = self._selector
        assert selector is not None
        if out:
            if conn.out is None:
                selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            conn.out = out
            conn.deadline = time.monotonic() + self._write_timeout
        elif conn.out is not None:
            conn.out = None
            selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _flush(self, conn: Conn) -> None:
        out = conn.out
        assert out is not None
        self._send(conn, out)
        if conn.out is not None:
            return
        if conn.close_after:
            self._close(conn)
            return
        self._process(conn)

    # ------------------------------------------------------------------ deadlines

    def _sweep(self, now: float) -> None:
        """Close connections past their deadline (idle, slow head, or not reading).

        A request head that did not arrive in time goes to a handler thread marked
        as reaped and shut down, as the threaded reaper leaves it: the handler logs
        the timeout exactly as for a connection it held itself.
        """
        for conn in self._conns.late(now):
            self._expire(conn)

    def _expire(self, conn: Conn) -> None:
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
            self._failed(conn)

    def _close(self, conn: Conn) -> None:
        if self._conns.get(conn.fd) is not conn:
            return  # closed already, or handed off: no longer the loop's
        del self._conns[conn.fd]
        if conn.out is not None:
            discard(conn.out)
            conn.out = None
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        self.shutdown_request(conn.sock)

    # ------------------------------------------------------------------ threads

    def _hand_off(self, conn: Conn) -> None:
        """Give the connection, with what it sent so far, to a handler thread."""
        sock = conn.sock
        if self._conns.get(conn.fd) is not conn:
            return
        del self._conns[conn.fd]
        try:
            if self._selector is not None:
                self._selector.unregister(sock)
            sock.setblocking(True)
            self._handoff.give(sock, bytes(conn.buf))
            self.process_request(sock, conn.addr)
        except Exception:
            self._handoff.take_input(sock)
            self.handle_error(sock, conn.addr)
            self.shutdown_request(sock)

    def take_input(self, connection: socket.socket) -> bytes:
        """What the loop read from ``connection`` before handing it off (read it first)."""
        return self._handoff.take_input(connection)

    def park(self, connection: socket.socket, unread: bytes) -> bool:
        """A handler is done with a kept-alive connection: return it to the loop if it runs."""
        return self._handoff.park(connection, unread)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Run the handler (ThreadingMixIn's contract); then park or close the connection."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            unread = self._handoff.thread_done(request)
            if unread is not None and self._handoff.give_back(request, client_address, unread):
                self._wake()
            else:
                self.shutdown_request(request)

    def _adopt_returned(self) -> None:
        assert self._waker is not None
        with contextlib.suppress(OSError):
            while self._waker[0].recv(4096):
                pass
        selector = self._selector
        assert selector is not None
        limit = self.idle_timeout
        while True:
            returned, running = self._handoff.next_back()
            if returned is None:
                return
            sock, addr, unread = returned
            if not running:
                self.shutdown_request(sock)
                continue
            deadline = time.monotonic() + limit if limit is not None else math.inf
            conn = Conn(sock, addr, unread, deadline)
            try:
                self._conns[conn.fd] = conn
                selector.register(sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError):
                self._conns.pop(conn.fd, None)
                self.shutdown_request(sock)
                continue
            if conn.buf:
                try:
                    self._process(conn)
                except Exception:
                    self._failed(conn)

    # ------------------------------------------------------------------ bookkeeping

    def connection_count(self) -> int:
        """How many client connections are open, in threads or waiting in the loop."""
        return super().connection_count() + len(self._conns) + self._handoff.waiting()

    def close_connections(self, idle_only: bool = True) -> int:
        """Shut down connections (by default only idle ones); the loop's are idle unless busy."""
        count = super().close_connections(idle_only)
        for conn in list(self._conns.values()):
            if idle_only and not conn.idle:
                continue
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            count += 1
        return count

    def server_close(self) -> None:
        super().server_close()
        if self._waker is not None:
            for end in self._waker:
                end.close()


_NO_FIELDS: dict[str, str] = {}
