"""The backend connection pool (devserve._upstream) over real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from devserve._proxy import parse_route
from devserve._upstream import IDLE_SECONDS, MAX_IDLE, BackendError, Upstream


class Listener:
    """Accepts connections and keeps them (closing one on demand)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.accepted) < count:
            assert time.monotonic() < deadline, f"{len(self.accepted)} of {count} accepted"
            time.sleep(0.005)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux)
        self.sock.close()
        self._thread.join(5)  # then nothing more is accepted
        for conn in self.accepted:
            conn.close()


@contextlib.contextmanager
def listening() -> Iterator[Listener]:
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


def upstream_for(port: int) -> Upstream:
    return Upstream(parse_route(f"/api=http://127.0.0.1:{port}"), 2.0, 2.0)


def test_a_released_connection_is_reused_until_it_has_idled_too_long() -> None:
    with listening() as listener:
        upstream = upstream_for(listener.port)
        first = upstream.acquire()
        assert not first.reused
        upstream.release(first)
        again = upstream.acquire()
        assert again is first
        assert again.reused
        upstream.release(again)
        upstream.expire(time.monotonic() + IDLE_SECONDS)
        fresh = upstream.acquire()
        assert fresh is not first
        assert upstream.opened == 2
        fresh.close()
        upstream.close()


def test_a_connection_the_backend_closed_is_never_handed_out() -> None:
    with listening() as listener:
        upstream = upstream_for(listener.port)
        conn = upstream.acquire()
        upstream.release(conn)
        listener.wait_for(1)
        listener.accepted[0].close()  # the backend lets go while it is idle
        deadline = time.monotonic() + 5
        while not conn.readable(0):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        fresh = upstream.acquire()
        assert fresh is not conn
        assert not fresh.reused
        fresh.close()
        upstream.close()


def test_idle_connections_are_bounded_and_closed_with_the_pool() -> None:
    with listening() as listener:
        upstream = upstream_for(listener.port)
        conns = [upstream.acquire() for _ in range(MAX_IDLE + 3)]
        for conn in conns:
            upstream.release(conn)
        closed = [conn for conn in conns if conn.sock.fileno() == -1]
        assert len(closed) == 3  # the ones past MAX_IDLE
        upstream.close()
        assert all(conn.sock.fileno() == -1 for conn in conns)
        late = upstream.acquire()
        upstream.release(late)  # released after close: closed, not kept
        assert late.sock.fileno() == -1


def test_a_refused_connection_is_a_backend_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: refused
        upstream = upstream_for(unused.getsockname()[1])
        with pytest.raises(BackendError, match="refused the connection") as refused:
            upstream.acquire()
    assert not refused.value.timeout
