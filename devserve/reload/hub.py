"""The reload hub: tells every connected browser what changed.

Each browser's event stream runs in that connection's own handler thread (the
server's thread per connection); the hub starts no thread of its own. A
`Subscription` is a queue with a wake-up socket, so the stream's thread can wait
for a message and for its client to hang up in the same ``select``, and leaves
as soon as either happens.

Invariants: `publish` never blocks on a client (it only queues and wakes);
`close` ends every stream; a subscription's descriptors are closed exactly once,
by the thread that owns it. At most ``max_streams`` streams are open (the
server's configuration says how many): a new one
ends the oldest (a browser that is still there reconnects by itself), so silent
or forgotten streams cannot hold threads and descriptors without bound. A
stream's queue keeps only the latest few messages (any change means "reload").
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
from collections import deque
from types import TracebackType

# Messages a stream that is not keeping up holds (the older ones say nothing more).
MESSAGES_KEPT = 8


class HubClosed(Exception):
    """The server is stopping: no new event streams."""


def sse_message(data: dict[str, object]) -> bytes:
    """One Server-Sent Events message carrying ``data`` as JSON (no ``event:`` name)."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode("ascii") + b"\n\n"


class Subscription:
    """One browser's queue of messages (use as a context manager, or call `close`)."""

    def __init__(self, hub: ReloadHub) -> None:
        self._hub = hub
        self._messages: deque[bytes] = deque(maxlen=MESSAGES_KEPT)
        self._reader, self._waker = socket.socketpair()
        self._reader.setblocking(False)
        self._waker.setblocking(False)
        self.ended = False  # the hub closed: the stream should finish

    def fileno(self) -> int:
        """Readable when there are messages to take or the hub has ended."""
        return self._reader.fileno()

    def _deliver(self, message: bytes | None) -> None:
        """Queue ``message`` (None: the end) and wake the owner; called with the hub's lock."""
        if message is None:
            self.ended = True
        else:
            self._messages.append(message)
        with contextlib.suppress(OSError):  # full or closed: it is awake already
            self._waker.send(b"\0")

    def take(self) -> list[bytes]:
        """The messages queued since the last call (and clears the wake-up)."""
        with contextlib.suppress(OSError):
            while self._reader.recv(4096):
                pass
        taken = []
        while self._messages:
            taken.append(self._messages.popleft())
        return taken

    def close(self) -> None:
        """Leave the hub and release the descriptors (idempotent)."""
        self._hub._remove(self)
        self._reader.close()
        self._waker.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ReloadHub:
    """Counts changes and fans each one out to every subscribed browser."""

    def __init__(self, server_id: str | None = None, max_streams: int | None = None) -> None:
        # Tells a restarted server from the one a page came from.
        self.server_id = server_id or secrets.token_hex(8)
        self.max_streams = max_streams
        self._seq = 0
        # In order of subscription (a dict keeps it): the first is the oldest.
        self._subscribers: dict[Subscription, None] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def seq(self) -> int:
        """How many changes have been published (a page remembers the figure it was built at)."""
        return self._seq

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def hello(self) -> bytes:
        """The first message of every stream: which server this is, and its change count."""
        return sse_message({"type": "hello", "server": self.server_id, "seq": self._seq})

    def subscribe(self) -> Subscription:
        """A new subscription (ending the oldest beyond ``max_streams``), or HubClosed
        once the server is stopping."""
        subscription = Subscription(self)
        with self._lock:
            if not self._closed:
                while self.max_streams is not None and len(self._subscribers) >= max(
                    1, self.max_streams
                ):
                    oldest = next(iter(self._subscribers))
                    del self._subscribers[oldest]
                    oldest._deliver(None)
                self._subscribers[subscription] = None
                return subscription
        subscription.close()
        raise HubClosed

    def publish(self, css_only: bool) -> int:
        """Announce one change (stylesheets only, or anything); returns how many were told."""
        with self._lock:
            self._seq += 1
            message = sse_message(
                {"type": "change", "server": self.server_id, "seq": self._seq, "css": css_only}
            )
            for subscription in self._subscribers:
                subscription._deliver(message)
            return len(self._subscribers)

    def close(self) -> None:
        """End every stream; later subscriptions are refused."""
        with self._lock:
            self._closed = True
            for subscription in self._subscribers:
                subscription._deliver(None)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.pop(subscription, None)
