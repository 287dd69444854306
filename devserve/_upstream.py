"""Connections to ``--proxy`` backends: opened on demand, kept alive, reused.

`Proxy` is what a server holds for its routes: the `Routes` (which requests go
where, `devserve._proxy`) and one `Upstream` per backend. An `Upstream` keeps up
to `MAX_IDLE` idle connections to its backend and hands out the most recently
used one first; `devserve._handler_proxy` does the relaying over them.

Invariants:
- A connection is idle in a pool only between two exchanges: its last response
  was read whole, the request was sent whole, and both sides allowed another
  (`devserve._proxy_response.backend_keeps_alive`). Anything else closes it.
- An idle connection is never handed out once it has been idle `IDLE_SECONDS`
  (backends close theirs after a few seconds: uvicorn after 5, Node after 5),
  nor when it has something to read (the backend closed it, or sent bytes nobody
  asked for), whether those bytes wait in the socket or already in the reader's
  buffer (`BackendConnection.quiet`): else they would be read as the next
  client's response. Such a connection is not even put back. The pools are
  swept by the server's `service_actions`.
- Every failure talking to a backend is a `BackendError` (never a bare OSError),
  so the relaying code can tell a backend's failure from its client's.
- Where a connection goes is the route's scheme, host and port, fixed at start-up.
"""

from __future__ import annotations

import contextlib
import io
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from devserve._io import TLS_WOULD_BLOCK
from devserve._proxy import ProxyRoute, Routes

if TYPE_CHECKING:
    import ssl

    from devserve.config import ProxyConfig

# Idle connections kept per backend (more in use at once are opened, then closed).
MAX_IDLE = 16
# Seconds an idle connection is trusted: less than the keep-alive timeouts of
# common backends, so devserve is usually the one that lets go first.
IDLE_SECONDS = 4.0
# How often the pools are swept for connections idle too long (seconds).
SWEEP_SECONDS = 1.0
READ_BUFFER = 64 * 1024


class BackendError(Exception):
    """Talking to a backend failed; ``timeout``: it did not answer in time."""

    def __init__(self, message: str, *, timeout: bool = False, closed: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        # The backend closed the connection before sending anything.
        self.closed = closed


_WOULD_BLOCK: tuple[type[BaseException], ...] = (BlockingIOError, *TLS_WOULD_BLOCK)


def describe(error: OSError) -> str:
    """A short, lower-case account of a socket error, for a 502 page and the log."""
    if isinstance(error, ConnectionRefusedError):
        return "refused the connection (is the backend running?)"
    if isinstance(error, TimeoutError):
        return "did not answer in time"
    if isinstance(error, socket.gaierror):
        return f"cannot be found ({error.strerror})"
    if isinstance(error, ConnectionResetError):
        return "reset the connection"
    name = type(error).__name__
    if name.startswith("SSL"):
        reason = getattr(error, "reason", None) or str(error)
        return f"failed the TLS handshake ({reason})"
    return f"failed: {error.strerror or error}"


class BackendConnection:
    """One connection to a backend: its socket and a buffered reader over it."""

    def __init__(self, sock: socket.socket, reused: bool = False) -> None:
        self.sock = sock
        self.reader: io.BufferedReader = sock.makefile("rb", READ_BUFFER)  # type: ignore[assignment]
        self.reused = reused
        self.idle_since = 0.0

    def send(self, data: bytes | memoryview) -> None:
        """Send ``data`` whole, or BackendError."""
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise BackendError(describe(error), timeout=isinstance(error, TimeoutError)) from None

    def readable(self, timeout: float) -> bool:
        """Whether the backend sent something (or closed) within ``timeout`` seconds."""
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return True
        # poll, not select: a server near its connection cap has descriptors past 1024.
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(timeout * 1000))
        except (OSError, ValueError):
            return True  # the next read says what is wrong

    def quiet(self) -> bool:
        """Whether nothing waits to be read: not in the reader's buffer, not on the
        socket, and the backend has not closed it. Never blocks."""
        timeout = self.sock.gettimeout()
        try:
            self.sock.settimeout(0.0)
            # The buffer's bytes, else one non-blocking read: b"" when the read
            # would block and also at the end of input, which the poll then tells.
            waiting = self.reader.peek(1)
        except _WOULD_BLOCK:
            waiting = b""
        except (OSError, ValueError):
            return False
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(timeout)
        return not waiting and not self.readable(0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class Upstream:
    """A backend and its idle connections (thread-safe)."""

    def __init__(
        self,
        route: ProxyRoute,
        connect_timeout: float,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.origin = route.host, route.port, route.origin
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._tls = tls
        self._idle: deque[BackendConnection] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # connections opened so far (the bench and tests read it)

    def acquire(self) -> BackendConnection:
        """An idle connection that still looks open, else a new one (or BackendError)."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if now - conn.idle_since < IDLE_SECONDS and conn.quiet():
                    conn.reused = True
                    return conn
                conn.close()
        return self.connect()

    def connect(self) -> BackendConnection:
        """A new connection (TLS handshake done for https://), or BackendError."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as error:
            raise BackendError(describe(error), timeout=isinstance(error, TimeoutError)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.timeout)
        except OSError as error:
            sock.close()
            raise BackendError(describe(error), timeout=isinstance(error, TimeoutError)) from None
        with self._lock:
            self.opened += 1
        return BackendConnection(sock)

    def release(self, conn: BackendConnection) -> None:
        """Keep ``conn`` for the next request (its exchange ended cleanly), or close it.

        Closed instead when it holds bytes past the response (a body longer than its
        length, one sent after a HEAD): they must never reach another request.
        """
        if not conn.quiet():
            conn.close()
            return
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
                return
        conn.close()

    def expire(self, now: float) -> None:
        """Close connections idle for `IDLE_SECONDS` or more (the oldest are on the left)."""
        with self._lock:
            while self._idle and now - self._idle[0].idle_since >= IDLE_SECONDS:
                self._idle.popleft().close()

    def close(self) -> None:
        """Close every idle connection; those in use are closed when released."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, deque()
        for conn in idle:
            conn.close()


class Proxy:
    """A server's ``--proxy`` routes, settings and backend connections."""

    def __init__(self, config: ProxyConfig, reserved: str | None = None) -> None:
        self.routes = Routes(config.routes, reserved)
        self.keep_host = config.keep_host
        self.timeout = config.timeout
        tls = _tls_context(config.ca) if any(r.scheme == "https" for r in config.routes) else None
        # A connect that takes longer than the read timeout is no better.
        connect_timeout = min(config.connect_timeout, config.timeout)
        self._upstreams: dict[tuple[str, str, int], Upstream] = {}
        for route in config.routes:
            key = (route.scheme, route.host, route.port)
            if key not in self._upstreams:
                context = tls if route.scheme == "https" else None
                self._upstreams[key] = Upstream(route, connect_timeout, config.timeout, context)
        self._next_sweep = 0.0
        self._streams: set[socket.socket] = set()
        self._streams_lock = threading.Lock()
        self.ending = False  # the server is stopping (end_streams was called)

    @contextlib.contextmanager
    def endless(self, *socks: socket.socket) -> Iterator[None]:
        """Mark a WebSocket tunnel or an event stream over ``socks`` while it runs: it has
        no end of its own, so `end_streams` ends it when the server stops."""
        with self._streams_lock:
            ending = self.ending
            self._streams.update(socks)
        if ending:
            _shut(socks)
        try:
            yield
        finally:
            with self._streams_lock:
                self._streams.difference_update(socks)

    def end_streams(self) -> None:
        """The server is stopping: end every tunnel and event stream now (not after the
        grace given to requests in flight), and any that starts from now on."""
        with self._streams_lock:
            self.ending = True
            socks = list(self._streams)
        _shut(socks)

    def upstream(self, route: ProxyRoute) -> Upstream:
        """The backend ``route`` goes to."""
        return self._upstreams[(route.scheme, route.host, route.port)]

    def upstreams(self) -> list[Upstream]:
        return list(self._upstreams.values())

    def sweep(self) -> None:
        """Close connections idle too long (cheap to call often: it acts once a second)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for upstream in self._upstreams.values():
            upstream.expire(now)

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()


def _shut(socks: Iterable[socket.socket]) -> None:
    """Shut connections down, waking whoever reads them (beneath TLS: a TLS socket's own
    shutdown is not safe while another thread reads it)."""
    for sock in socks:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _tls_context(ca: Path | None) -> ssl.SSLContext:
    """Certificates are verified: the system's, or only those in ``--proxy-ca``."""
    import ssl

    if ca is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca))
