"""A WebSocket tunnel: bytes copied both ways between a client and a backend, in one thread.

After a backend's ``101 Switching Protocols`` devserve only copies bytes
(`devserve._handler_proxy` relays the handshake, then calls `tunnel`).

Why one thread with non-blocking sockets and not a thread per direction: a TLS
socket (a client on ``--tls-cert``, an ``https://`` backend) must not be read in
one thread while another writes it; OpenSSL's connection state is not shared
safely, and the stream breaks now and then (seen: one run in about twenty).

Invariants:
- At most `LIMIT` bytes wait for each side: a side that does not read makes the
  other side's reading stop (the sender is held back by TCP, not by memory).
- Either side closing or failing ends the tunnel: what the other side has not
  been sent yet gets up to `FLUSH_SECONDS` to go, then both are shut down.
- ``idle`` seconds with no byte either way end it too.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time

from devserve._io import TLS_WOULD_BLOCK

CHUNK = 64 * 1024
LIMIT = 256 * 1024
FLUSH_SECONDS = 2.0

_WOULD_BLOCK: tuple[type[BaseException], ...] = (BlockingIOError, *TLS_WOULD_BLOCK)


def tunnel(
    client: socket.socket,
    backend: socket.socket,
    idle: float,
    client_early: bytes = b"",
    backend_early: bytes = b"",
) -> None:
    """Copy bytes between ``client`` and ``backend`` until either ends or ``idle`` passes.

    ``client_early``/``backend_early``: bytes each side sent that were read
    before the tunnel began (they go first). Both sockets are shut down on return.
    """
    peer = {client: backend, backend: client}
    # What waits to be written to each socket.
    waiting = {client: bytearray(backend_early), backend: bytearray(client_early)}
    selector = selectors.DefaultSelector()
    registered: dict[socket.socket, int] = {}
    try:
        for sock in (client, backend):
            sock.setblocking(False)
        last = time.monotonic()
        while True:
            wanted = {}
            for sock in (client, backend):
                mask = selectors.EVENT_READ if len(waiting[peer[sock]]) < LIMIT else 0
                if waiting[sock]:
                    mask |= selectors.EVENT_WRITE
                wanted[sock] = mask
                _watch(selector, registered, sock, mask)
            # Bytes TLS has decrypted already do not make the socket readable.
            decrypted = [
                sock
                for sock in (client, backend)
                if wanted[sock] & selectors.EVENT_READ and _pending(sock)
            ]
            timeout = 0.0 if decrypted else _left(last, idle)
            ready: dict[socket.socket, int] = {}
            for key, mask in selector.select(timeout):
                assert isinstance(key.fileobj, socket.socket)
                ready[key.fileobj] = mask
            for sock in decrypted:
                ready[sock] = ready.get(sock, 0) | selectors.EVENT_READ
            if not ready:
                if time.monotonic() - last >= idle:
                    return
                continue
            for sock, mask in ready.items():
                if mask & selectors.EVENT_WRITE and waiting[sock] and _send(sock, waiting[sock]):
                    last = time.monotonic()
                if mask & selectors.EVENT_READ and wanted[sock] & selectors.EVENT_READ:
                    data = _receive(sock)
                    if data == b"":
                        _flush(peer[sock], waiting[peer[sock]])
                        return
                    if data:
                        waiting[peer[sock]] += data
                        last = time.monotonic()
    except OSError:
        return
    finally:
        selector.close()
        for sock in (client, backend):
            # Beneath TLS: no close_notify is owed to a connection being dropped.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(
    selector: selectors.BaseSelector,
    registered: dict[socket.socket, int],
    sock: socket.socket,
    mask: int,
) -> None:
    """Have ``selector`` report ``mask``'s events for ``sock`` (none: it is not watched)."""
    now = registered.get(sock, 0)
    if mask == now:
        return
    if not mask:
        selector.unregister(sock)
        del registered[sock]
    elif not now:
        selector.register(sock, mask)
        registered[sock] = mask
    else:
        selector.modify(sock, mask)
        registered[sock] = mask


def _pending(sock: socket.socket) -> bool:
    pending = getattr(sock, "pending", None)
    return pending is not None and bool(pending())


def _left(last: float, idle: float) -> float:
    return max(0.0, last + idle - time.monotonic())


def _receive(sock: socket.socket) -> bytes | None:
    """What ``sock`` has (b"": it closed; None: nothing yet)."""
    try:
        return sock.recv(CHUNK)
    except _WOULD_BLOCK:
        return None


def _send(sock: socket.socket, data: bytearray) -> int:
    """Send what ``sock`` takes of ``data`` now, and drop it from ``data``."""
    try:
        sent = sock.send(data[:CHUNK])
    except _WOULD_BLOCK:
        return 0
    del data[:sent]
    return sent


def _flush(sock: socket.socket, data: bytearray) -> None:
    """One side closed: give the other what it is still owed, briefly."""
    if not data:
        return
    with contextlib.suppress(OSError):
        sock.settimeout(FLUSH_SECONDS)
        sock.sendall(data)
