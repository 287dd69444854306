"""The reload hub and its event stream: fan-out, disconnects, no leaked threads, raw sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devserve import _reporting, serving
from devserve.config import ReloadConfig, ServeConfig
from devserve.reload.handler import ReloadingHandler
from devserve.reload.hub import MESSAGES_KEPT, HubClosed, ReloadHub, sse_message
from devserve.server import ThreadingHTTPServer
from tests.support import (
    Collector,
    port_of,
    raw_exchange,
    read_to_end,
    running_devserve,
    serving_in_thread,
)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or the deadline passes; returns the last answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.01)
    return True


def _handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def messages(data: bytes) -> list[dict[str, object]]:
    """The JSON messages in an event-stream body."""
    return [json.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: ")]


# ----------------------------------------------------------------------------- the hub


def test_publish_reaches_every_subscriber_and_counts_them() -> None:
    hub = ReloadHub("srv")
    subscriptions = [hub.subscribe() for _ in range(50)]
    assert hub.subscriber_count == 50
    assert hub.publish(css_only=True) == 50
    assert hub.publish(css_only=False) == 50
    assert hub.seq == 2
    for subscription in subscriptions:
        assert [messages(m)[0] for m in subscription.take()] == [
            {"type": "change", "server": "srv", "seq": 1, "css": True},
            {"type": "change", "server": "srv", "seq": 2, "css": False},
        ]
        assert subscription.take() == []
        subscription.close()
        subscription.close()  # idempotent
    assert hub.subscriber_count == 0
    assert hub.publish(css_only=False) == 0


def test_hello_says_which_server_and_how_many_changes() -> None:
    hub = ReloadHub()
    hub.publish(css_only=False)
    assert messages(hub.hello()) == [{"type": "hello", "server": hub.server_id, "seq": 1}]
    assert ReloadHub().server_id != hub.server_id


def test_publish_never_blocks_on_a_subscriber_that_does_not_read() -> None:
    hub = ReloadHub()
    with hub.subscribe() as subscription:
        started = time.monotonic()
        for _ in range(20_000):  # far more wake-ups than a socket buffer holds
            hub.publish(css_only=False)
        assert time.monotonic() - started < 5
        kept = [messages(m)[0]["seq"] for m in subscription.take()]
        assert kept == list(range(20_000 - MESSAGES_KEPT + 1, 20_001))  # the latest, bounded
    assert hub.subscriber_count == 0


def test_a_new_stream_beyond_the_cap_ends_the_oldest() -> None:
    hub = ReloadHub(max_streams=2)
    first, second = hub.subscribe(), hub.subscribe()
    third = hub.subscribe()
    try:
        assert first.ended and not second.ended and not third.ended
        assert hub.subscriber_count == 2
        assert hub.publish(css_only=False) == 2
        assert first.take() == []  # the oldest hears nothing more
        assert len(second.take()) == len(third.take()) == 1
        first.close()  # its owner leaving later changes nothing for the others
        assert hub.subscriber_count == 2
    finally:
        for subscription in (first, second, third):
            subscription.close()
    assert hub.subscriber_count == 0


def test_close_ends_every_subscription_and_refuses_new_ones() -> None:
    hub = ReloadHub()
    subscription = hub.subscribe()
    hub.close()
    assert subscription.ended
    with pytest.raises(HubClosed):
        hub.subscribe()
    subscription.close()


def test_sse_message_framing() -> None:
    assert sse_message({"a": 1}) == b'data: {"a":1}\n\n'


# ----------------------------------------------------------------------------- the endpoint


@pytest.fixture
def hub() -> ReloadHub:
    return ReloadHub("endpoint-test")


@pytest.fixture
def server(
    tmp_path: Path, hub: ReloadHub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadingHTTPServer]:
    """`devserve serve --reload`'s server, built around this test's hub."""
    (tmp_path / "page.html").write_text("<body>page</body>")
    monkeypatch.setattr(ReloadingHandler, "reload_heartbeat", 0.2)
    config = ServeConfig(directory=tmp_path, port=0, reload=ReloadConfig(), quiet=True)
    journal = _reporting.ServerJournal(serving.Stats(), Collector(), quiet=True)
    context = serving.handler_context(config, tmp_path, journal, hub)
    running = serving.DevServer(("127.0.0.1", 0), config, context, journal)
    with serving_in_thread(running):
        try:
            yield running
        finally:
            hub.close()  # as serve() does: streams end before the server closes


class Stream:
    """A raw client of the event stream."""

    def __init__(self, port: int, request: bytes | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(request or b"GET /__devserve__/events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.data = b""

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.data:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.data += chunk
        return self.data

    def read_to_end(self) -> bytes:
        """All of the stream, once the server closes it (fails if it stays open)."""
        self.data += read_to_end(self.sock)
        return self.data

    def close(self) -> None:
        self.sock.close()


def test_stream_over_a_raw_socket(server: ThreadingHTTPServer, hub: ReloadHub) -> None:
    stream = Stream(port_of(server))
    head = stream.read_until(b'"seq":0}\n\n').partition(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    fields = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    assert fields["content-type"] == "text/event-stream; charset=utf-8"
    assert fields["cache-control"] == "no-store"
    assert fields["x-accel-buffering"] == "no"
    assert fields["connection"] == "close"
    assert "content-length" not in fields
    body = stream.data.partition(b"\r\n\r\n")[2]
    assert body.startswith(b"retry: 500\n\n")
    assert messages(body) == [{"type": "hello", "server": "endpoint-test", "seq": 0}]

    assert wait_for(lambda: hub.subscriber_count == 1)
    assert hub.publish(css_only=True) == 1
    stream.read_until(b'"seq":1')
    assert messages(stream.data)[-1] == {
        "type": "change",
        "server": "endpoint-test",
        "seq": 1,
        "css": True,
    }
    assert b": ping\n\n" in stream.read_until(b": ping\n\n", timeout=2)  # the heartbeat
    stream.close()
    assert wait_for(lambda: hub.subscriber_count == 0)


def test_disconnects_free_subscriptions_and_threads(
    server: ThreadingHTTPServer, hub: ReloadHub
) -> None:
    first = Stream(port_of(server))  # starts the server's deadline reaper, part of the baseline
    first.read_until(b'"seq":0}\n\n')
    first.close()
    assert wait_for(lambda: hub.subscriber_count == 0)
    assert any(thread.name == "devserve-reaper" for thread in threading.enumerate())
    # the first stream's handler thread ends once its client is gone
    assert wait_for(lambda: not _handler_threads())
    baseline = threading.active_count()
    streams = [Stream(port_of(server)) for _ in range(40)]
    for stream in streams:
        stream.read_until(b'"seq":0}\n\n')
    assert wait_for(lambda: hub.subscriber_count == 40)
    assert threading.active_count() >= baseline + 40  # one handler thread per stream
    assert hub.publish(css_only=False) == 40
    for stream in streams:
        assert b'"seq":1' in stream.read_until(b'"seq":1')
        stream.close()
    # a closed client is noticed at once, not at the next heartbeat or write
    assert wait_for(lambda: hub.subscriber_count == 0, timeout=2)
    assert wait_for(lambda: threading.active_count() <= baseline, timeout=2)


def test_a_client_that_half_closes_is_gone(server: ThreadingHTTPServer, hub: ReloadHub) -> None:
    stream = Stream(port_of(server))
    stream.read_until(b'"seq":0}\n\n')
    assert wait_for(lambda: hub.subscriber_count == 1)
    stream.sock.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: hub.subscriber_count == 0, timeout=2)
    stream.close()


def test_closing_the_hub_ends_open_streams(server: ThreadingHTTPServer, hub: ReloadHub) -> None:
    streams = [Stream(port_of(server)) for _ in range(5)]
    for stream in streams:
        stream.read_until(b'"seq":0}\n\n')
    assert wait_for(lambda: hub.subscriber_count == 5)
    hub.close()
    for stream in streams:
        stream.read_to_end()  # the server closes the connection: no timeout
        stream.close()
    late = exchange(port_of(server), b"GET /__devserve__/events HTTP/1.0\r\n\r\n")
    assert late.startswith(b"HTTP/1.1 503 ")


def exchange(port: int, request: bytes) -> bytes:
    stream = Stream(port, request)
    try:
        return stream.read_to_end()
    finally:
        stream.close()


def test_head_worker_and_unknown_reserved_paths(server: ThreadingHTTPServer) -> None:
    port = port_of(server)
    head = exchange(port, b"HEAD /__devserve__/events HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"text/event-stream" in head
    assert head.endswith(b"\r\n\r\n")

    worker = exchange(port, b"GET /__devserve__/worker.js HTTP/1.0\r\n\r\n")
    headers, _, body = worker.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Type: text/javascript; charset=utf-8" in headers
    assert b"Cache-Control: no-store" in headers
    assert f"Content-Length: {len(body)}".encode() in headers
    assert b"new EventSource(" in body

    # a body sent with the GET is read and dropped, not taken for the next request
    smuggled = b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n"
    twice = exchange(
        port,
        b"GET /__devserve__/worker.js HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
        b"GET /__devserve__/worker.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        % (len(smuggled), smuggled),
    )
    assert twice.count(b"HTTP/1.1 200 ") == 2
    assert b"<body>page</body>" not in twice

    for target in (b"/__devserve__/", b"/__devserve__/events/x", b"/__devserve__/../page.html"):
        reply = exchange(port, b"GET " + target + b" HTTP/1.0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 404 "), target


def test_silent_event_streams_cannot_fill_the_server(tmp_path: Path) -> None:
    """Event streams get a quarter of the connection cap; the oldest makes way."""
    (tmp_path / "page.html").write_text("<body>page</body>")
    config = ServeConfig(directory=tmp_path, reload=ReloadConfig(), max_connections=8, quiet=True)
    with running_devserve(config) as (server, _, _):
        hub = server.context.site.hub
        assert hub is not None and hub.max_streams == config.max_event_streams == 2
        port = port_of(server)
        streams = [Stream(port) for _ in range(12)]  # more than the whole connection cap
        try:
            assert wait_for(lambda: hub.subscriber_count == 2)
            time.sleep(0.3)
            # All but two were ended (a browser would reconnect by itself).
            ended = [s for s in streams if _closed(s)]
            alive = [s for s in streams if s not in ended]
            assert len(alive) == 2 and len(ended) == 10
            reply = raw_exchange(port, b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 200 ")
            assert hub.publish(css_only=False) == 2
            for stream in alive:
                assert b'"seq":1' in stream.read_until(b'"seq":1')
        finally:
            for stream in streams:
                stream.close()


def _closed(stream: Stream) -> bool:
    """Whether the server has closed ``stream``: what it sent is read, then end-of-file
    (an open stream goes quiet instead)."""
    stream.sock.settimeout(0.2)
    try:
        while stream.sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def test_a_stream_gives_up_on_a_browser_that_stops_acknowledging() -> None:
    """Two heartbeats without an acknowledgement end the connection (TCP_USER_TIMEOUT)."""
    from devserve.reload import sse

    hub = ReloadHub()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        server_side, _ = listener.accept()
        with client, server_side, hub.subscribe() as subscription:
            runner = threading.Thread(
                target=sse.stream, args=(subscription, server_side, server_side.sendall, 0.2)
            )
            runner.start()
            assert b": ping" in client.recv(100)  # the heartbeat flows
            timeout = server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            assert timeout == 500  # milliseconds: two heartbeats and a half
            client.close()
            runner.join(5)
            assert not runner.is_alive()
