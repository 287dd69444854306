"""The event stream a browser listens on: Server-Sent Events over the handler's socket.

The stream's thread waits in one ``select`` for a message from the hub, for its
client to hang up (an event-stream client never sends anything after its
request, so a readable socket means it is gone), and for the heartbeat interval.
It returns when the client goes, when the hub ends, or when a write fails; the
caller closes the connection.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from collections.abc import Callable

from devserve._io import TLS_WOULD_BLOCK
from devserve.reload.hub import ReloadHub, Subscription

# Milliseconds a browser waits before reconnecting (a restarted server is found fast).
RETRY_MS = 500
# Seconds between comment lines that keep proxies and NATs from closing an idle stream.
HEARTBEAT = 15.0
# Seconds a write to a stalled client may block before the stream is given up.
SEND_TIMEOUT = 30.0

RESPONSE_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    # nginx buffers proxied responses unless told not to; an event stream must flow.
    ("X-Accel-Buffering", "no"),
)


def prelude(hub: ReloadHub) -> bytes:
    """What a stream starts with: the reconnection delay, then the hub's hello."""
    return b"retry: %d\n\n" % RETRY_MS + hub.hello()


def client_gone(sock: socket.socket) -> bool:
    """Whether a readable socket means the client closed (or broke) the connection."""
    previous = sock.gettimeout()
    sock.settimeout(0)
    try:
        return not sock.recv(4096)  # b"": an orderly close; anything else is ignored
    except (BlockingIOError, InterruptedError):
        return False
    except TLS_WOULD_BLOCK:
        return False  # a TLS record that carried no data
    except OSError:
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous)


def stream(
    subscription: Subscription,
    sock: socket.socket,
    write: Callable[[bytes], object],
    heartbeat: float = HEARTBEAT,
) -> None:
    """Relay the subscription's messages to the client until one side ends.

    A client that vanished without closing (a laptop that slept, a dropped Wi-Fi)
    never acknowledges the heartbeats; the kernel gives up on the connection after
    two of them (``TCP_USER_TIMEOUT``, Linux), so the stream's thread ends.
    """
    sock.settimeout(SEND_TIMEOUT)
    if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(heartbeat * 2500))
    with selectors.DefaultSelector() as selector:
        selector.register(subscription, selectors.EVENT_READ)
        selector.register(sock, selectors.EVENT_READ)
        while True:
            ready = selector.select(heartbeat)
            if not ready:
                write(b": ping\n\n")
                continue
            for key, _ in ready:
                if key.fileobj is sock and client_gone(sock):
                    return
            for message in subscription.take():
                write(message)
            if subscription.ended:
                return
