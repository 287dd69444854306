"""The documented servers: HTTPServer, ThreadingHTTPServer and the HTTPS variants.

Part of the documented API re-exported by `devserve.server`; see there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from devserve._io import CLIENT_GONE, is_tls

if TYPE_CHECKING:
    import ssl


class HTTPServer(socketserver.TCPServer):
    """A TCPServer that stores ``server_name`` and ``server_port`` (documented).

    Beyond the stdlib: an IPv6 address selects AF_INET6 by itself (``::`` also
    accepts IPv4), the listen backlog is 1024 instead of 5, a client that
    disconnects mid-response is not reported as an error, and three optional
    limits (all off by default, as in the stdlib) bound what clients can hold:
    ``request_timeout``, ``idle_timeout``, ``max_connections`` and
    ``max_connections_per_client``.
    """

    allow_reuse_address = True
    # A burst of connections (a browser, a load test) must not overflow the
    # accept queue: a dropped SYN costs the client a 1 s retransmit. The kernel
    # caps this at net.core.somaxconn.
    request_queue_size = 1024
    # Seconds a client has to send its request line and headers (slowloris).
    request_timeout: float | None = None
    # Seconds a kept-alive connection may wait for its next request.
    idle_timeout: float | None = None
    # Open connections beyond this make room by shedding a cheap one (`shed`), or
    # are answered 503 and closed at once.
    max_connections: int | None = None
    # The same, for the connections of one client address. Loopback clients are
    # exempt: they are all this machine, so a per-address cap would only be a
    # second, smaller global one.
    max_connections_per_client: int | None = None
    server_name: str
    server_port: int

    def __init__(
        self,
        server_address: tuple[Any, ...],
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
    ) -> None:
        host = str(server_address[0]) if server_address else ""
        if ":" in host and self.address_family == socket.AF_INET:
            self.address_family = socket.AF_INET6
        # connection -> (state, deadline); states: first, next (waiting for a
        # request line), headers (reading them), busy (handling a request).
        self._connections: dict[socket.socket, tuple[str, float]] = {}
        # Connections counted against the limits -> their client key (None: loopback,
        # or no per-client cap), and how many each key holds.
        self._accepted: dict[socket.socket, str | None] = {}
        self._per_client: dict[str, int] = {}
        self._reaped: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._closing = threading.Event()
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def server_bind(self) -> None:
        """Bind, then record ``server_name`` and ``server_port`` (documented)."""
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(str(host))
        self.server_port = port

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report a handler failure, except a client that simply went away."""
        if isinstance(sys.exc_info()[1], CLIENT_GONE):
            return
        super().handle_error(request, client_address)

    # -- the connection limit

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Accept the connection unless a limit is reached and nothing cheap makes room.

        At ``max_connections`` (or a client's ``max_connections_per_client``) the
        oldest connection that is cheap to lose is shut first (`shed`): slow or idle
        clients cannot lock new ones out. Only when every connection is busy with a
        request is the new one answered 503 and closed.
        """
        if self.max_connections is None and self.max_connections_per_client is None:
            return True
        key = client_key(client_address) if self.max_connections_per_client is not None else None
        for attempt in range(2):
            with self._connections_lock:
                full, whose = self._full(key)
                if not full:
                    self._accepted[request] = key
                    if key is not None:
                        self._per_client[key] = self._per_client.get(key, 0) + 1
                    return True
            if attempt or not self.shed(whose):
                break
        _refuse_busy(request)
        self.refused(client_address)
        return False

    def _full(self, key: str | None) -> tuple[bool, str | None]:
        """Whether a new connection from ``key`` is over a limit, and whose connections
        would make room (None: anyone's). Called with the lock held."""
        per_client = self.max_connections_per_client
        if (
            key is not None
            and per_client is not None
            and self._per_client.get(key, 0) >= per_client
        ):
            return True, key
        limit = self.max_connections
        return limit is not None and len(self._accepted) >= limit, None

    def shed(self, client: str | None) -> bool:
        """Make room for a new connection: shut the oldest cheap one (of ``client``, or any).

        Cheap, in this order: waiting for or reading its first request head, then
        idle between requests. Its thread sees the connection close and ends; the
        connection stops counting at once. Returns whether one was shut.
        """
        with self._connections_lock:
            victim = None
            for states in (("first", "headers"), ("next",)):
                victim = next(
                    (
                        conn
                        for conn, (state, _) in self._connections.items()
                        if state in states
                        and (client is None or self._accepted.get(conn) == client)
                    ),
                    None,
                )
                if victim is not None:
                    break
            if victim is None:
                return False
            self._connections[victim] = ("busy", math.inf)  # the reaper leaves it alone
            self._release(victim)
        with contextlib.suppress(OSError):
            victim.shutdown(socket.SHUT_RDWR)
        return True

    def _release(self, request: Any) -> None:
        """Stop counting ``request`` against the limits (idempotent; lock held)."""
        if request not in self._accepted:
            return
        key = self._accepted.pop(request)
        if key is not None:
            left = self._per_client[key] - 1
            if left:
                self._per_client[key] = left
            else:
                del self._per_client[key]

    def refused(self, client_address: Any) -> None:
        """A connection over the limit was answered 503 (a hook: report it if you like)."""

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._release(request)
        super().shutdown_request(request)

    # -- connection bookkeeping: deadlines, and shutdowns that need not wait

    # -- the contract with devserve's handlers (BaseHTTPRequestHandler calls these)

    # Whether the server takes kept-alive connections back between requests (`park`).
    parks_connections = False

    def take_input(self, connection: socket.socket) -> bytes:
        """Bytes already read from ``connection`` that its handler must read first."""
        return b""

    def park(self, connection: socket.socket, unread: bytes) -> bool:
        """Take a kept-alive connection back from its handler (False: the handler keeps it)."""
        return False

    def track(self, connection: socket.socket, state: str) -> None:
        """Note what a connection is doing; its deadline follows from the state."""
        if state == "busy":
            deadline = math.inf
        else:
            limit = self.idle_timeout if state == "next" else self.request_timeout
            deadline = math.inf if limit is None else time.monotonic() + limit
        with self._connections_lock:
            self._connections[connection] = (state, deadline)
            if deadline != math.inf and self._reaper is None:
                self._reaper = threading.Thread(
                    target=self._reap, name="devserve-reaper", daemon=True
                )
                self._reaper.start()

    def untrack(self, connection: socket.socket) -> None:
        """Forget a connection its handler is done with."""
        with self._connections_lock:
            self._connections.pop(connection, None)
            self._reaped.discard(connection)

    def was_reaped(self, connection: socket.socket) -> bool:
        """Whether ``connection`` was closed for missing its deadline."""
        with self._connections_lock:
            return connection in self._reaped

    def _reap(self) -> None:
        """Close connections that outstayed their deadline (one thread for all)."""
        while not self._closing.wait(0.1):
            now = time.monotonic()
            with self._connections_lock:
                late = [c for c, (_, deadline) in self._connections.items() if deadline < now]
                for conn in late:
                    self._connections[conn] = ("busy", math.inf)
                    self._reaped.add(conn)
            for conn in late:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def connection_count(self) -> int:
        """How many client connections are open (busy or idle)."""
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self, idle_only: bool = True) -> int:
        """Shut down client connections (by default only those waiting for a request).

        Their handler threads then finish on their own; returns how many.
        """
        with self._connections_lock:
            chosen = [
                conn
                for conn, (state, _) in self._connections.items()
                if not idle_only or state in ("first", "next")
            ]
        for conn in chosen:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return len(chosen)

    def server_close(self) -> None:
        self._closing.set()
        self.close_connections(idle_only=True)
        super().server_close()


_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    b"Server is too busy.\n"
)


def client_key(client_address: Any) -> str | None:
    """The address a per-client connection cap counts by (None: loopback, never capped)."""
    host = str(client_address[0]) if isinstance(client_address, tuple) and client_address else ""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host or None  # a Unix socket or an unusual family: count by its name
    mapped = getattr(address, "ipv4_mapped", None)
    return None if (mapped or address).is_loopback else str(mapped or address)


def _refuse_busy(request: Any) -> None:
    """Tell an over-the-limit client 503 without ever blocking the accept loop."""
    if is_tls(request):
        return  # no handshake yet: the plain close is all it can get
    with contextlib.suppress(OSError):
        request.setblocking(False)
        request.send(_BUSY_RESPONSE)


class ThreadingHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    """HTTPServer handling each connection in its own thread (documented)."""

    daemon_threads = True


class HTTPSServer(HTTPServer):
    """HTTPServer over TLS (documented since Python 3.14).

    The TLS handshake runs in the handler (its thread, for the threading
    variant), so a slow or silent client cannot stall ``accept``.
    """

    def __init__(
        self,
        server_address: tuple[Any, ...],
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
        *,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        password: Any = None,
        alpn_protocols: Iterable[str] | None = None,
    ) -> None:
        try:
            import ssl
        except ImportError:
            raise RuntimeError("SSL module is missing; HTTPS support is unavailable") from None
        self.ssl = ssl
        self.certfile = certfile
        self.keyfile = keyfile
        self.password = password
        self.alpn_protocols = ["http/1.1"] if alpn_protocols is None else list(alpn_protocols)
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def server_activate(self) -> None:
        """Listen, then wrap the listening socket for TLS."""
        super().server_activate()
        context = self._create_context()
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def _create_context(self) -> ssl.SSLContext:
        context = tls_context(self.certfile, self.keyfile, self.password)
        context.set_alpn_protocols(self.alpn_protocols)
        return context


def tls_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    password: Any = None,
) -> ssl.SSLContext:
    """The server-side TLS context HTTPSServer serves with, its certificate and key loaded.

    ImportError without the ssl module; ssl.SSLError for a pair that does not load.
    """
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile, password)
    return context


class ThreadingHTTPSServer(socketserver.ThreadingMixIn, HTTPSServer):
    """HTTPSServer handling each connection in its own thread (documented)."""

    daemon_threads = True
