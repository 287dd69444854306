"""Shared test plumbing: run a server on 127.0.0.1 port 0 in a thread, talk to it raw."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import queue
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from devserve._loop import LoopHTTPServer
from devserve.events import LogEvent, ReadyInfo, RequestRecord, Summary

if TYPE_CHECKING:
    from devserve._handler_dev import HandlerContext
    from devserve._site import Site
    from devserve.config import ServeConfig
    from devserve.serving import DevServer, DevTLSServer, Stats

ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)


@contextlib.contextmanager
def serving_in_thread(server: ServerT) -> Iterator[ServerT]:
    """Run ``server.serve_forever`` in a thread; on exit shut it down, close it, join the thread."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def running_server(
    server_class: Callable[..., socketserver.TCPServer],
    handler_class: Callable[..., Any],
    directory: str | None = None,
    **server_kwargs: Any,
) -> Iterator[socketserver.TCPServer]:
    """Serve on 127.0.0.1 with a port the server itself picks; shut down on exit.

    ``directory`` is passed to the handler the documented way (functools.partial).
    """
    handler: Callable[..., Any] = handler_class
    if directory is not None:
        handler = functools.partial(handler_class, directory=directory)
    with serving_in_thread(server_class(("127.0.0.1", 0), handler, **server_kwargs)) as server:
        yield server


@contextlib.contextmanager
def running_devserve(
    config: ServeConfig, log: Collector | None = None
) -> Iterator[tuple[DevServer | DevTLSServer, Collector, Stats]]:
    """`devserve serve`'s own server for ``config`` (on port 0), running in a thread."""
    from devserve import serving

    log = log if log is not None else Collector()
    stats = serving.Stats()
    server, _ = serving.create_server(dataclasses.replace(config, port=0), log, stats)
    with serving_in_thread(server):
        try:
            yield server, log, stats
        finally:
            hub = server.context.site.hub
            if hub is not None:
                hub.close()  # as serve() does: event streams end before the server closes


class WithContext(LoopHTTPServer):
    """A loop server for devserve's handlers; without a site, threads answer everything."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        context: HandlerContext,
        site: Site | None = None,
    ) -> None:
        self.context = context
        super().__init__(address, handler, site=site, journal=context.journal)


@contextlib.contextmanager
def both_paths(config: ServeConfig) -> Iterator[tuple[int, int, Collector]]:
    """Ports of `devserve serve`'s loop and of its threaded handler, on one shared context.

    Both serve ``config.directory`` from the same site (the same file table and,
    with --reload, the same hub), so their answers can be compared byte for byte.
    """
    from devserve import _reporting, serving
    from devserve.reload.hub import ReloadHub

    log = Collector()
    journal = _reporting.ServerJournal(serving.Stats(), log, config.quiet)
    hub = ReloadHub("parity") if config.reload is not None else None
    root = serving.check_directory(config.directory)
    context = serving.handler_context(config, root, journal, hub)
    loop = serving.DevServer(("127.0.0.1", 0), config, context, journal)
    with (
        serving_in_thread(loop),
        serving_in_thread(
            WithContext(("127.0.0.1", 0), loop.RequestHandlerClass, context)
        ) as threads,
    ):
        try:
            yield port_of(loop), port_of(threads), log
        finally:
            if hub is not None:
                hub.close()


def port_of(server: socketserver.TCPServer) -> int:
    """The port the server bound (read back, never chosen by the test)."""
    return int(server.server_address[1])


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, and read until the server closes the connection.

    Lenient where ``read_to_end`` is strict: a reset, or ``timeout`` seconds
    without a byte, ends the reading too, and what was read is the answer (a
    refusal may end in a reset).
    """
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            _receive_until_closed(sock, chunks)
    return b"".join(chunks)


def read_to_end(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends on ``sock`` until it closes the connection.

    Fails unless the peer closes it within ``timeout`` seconds: one that keeps it
    open, or keeps sending (an event stream's heartbeat), has not given an answer.
    """
    chunks: list[bytes] = []
    try:
        _receive_until_closed(sock, chunks, deadline=time.monotonic() + timeout)
    except TimeoutError:
        got = b"".join(chunks)
        raise AssertionError(
            f"the connection was still open after {timeout:g} s and {len(got)} bytes: {got[:300]!r}"
        ) from None
    return b"".join(chunks)


def _receive_until_closed(
    sock: socket.socket, chunks: list[bytes], deadline: float | None = None
) -> None:
    """Append what ``sock`` receives to ``chunks`` until the peer closes.

    Each receive waits as long as the socket's timeout allows; with a ``deadline``
    (time.monotonic), all of them end by then. A list joined once by the caller:
    ``data += chunk`` copies all that was read on every chunk (quadratic; it once
    made a single test take 80 s).
    """
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        if not chunk:
            return
        chunks.append(chunk)


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0 when there is no status line)."""
    line = response.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[1].isdigit():
        return 0
    return int(line[1])


ROOT = Path(__file__).resolve().parent.parent


def devserve_env(**extra: str) -> dict[str, str]:
    """The environment for a devserve subprocess: this checkout, plain output."""
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    return {**env, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra}


@contextlib.contextmanager
def devserve_process(
    *args: str, env: dict[str, str] | None = None, log: str = "stderr"
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start `python -m devserve ARGS...`, yield it and the first URL it printed on
    ``log`` (``stderr``, or ``stdout`` for the JSON log)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devserve", *args],
        env=devserve_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        chosen = process.stdout if log == "stdout" else process.stderr
        assert chosen is not None
        stream: IO[str] = chosen
        found_url: queue.Queue[str] = queue.Queue()

        def first_url() -> None:
            # A thread, so a stream that never says a URL cannot block the test.
            for line in stream:
                found = re.search(r"https?://[^\s\x1b\"]+", line)
                if found:
                    found_url.put(found[0])
                    return
            found_url.put("")

        threading.Thread(target=first_url, daemon=True).start()
        try:
            url = found_url.get(timeout=20)
        except queue.Empty:
            url = ""
        assert url, "devserve did not print its URL"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def stop_and_read(process: subprocess.Popen[str], log: str = "stderr") -> str:
    """SIGINT the server, check it exits 0, and return the rest of its ``log`` stream."""
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0
    stream = process.stdout if log == "stdout" else process.stderr
    assert stream is not None
    return stream.read()


class LogLines:
    """Lines a handler logged, collected from its ``log_message`` (thread-safe)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(self, needle: str, timeout: float = 5.0) -> list[str]:
        """The lines once one contains ``needle`` (or after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if any(needle in line for line in lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)

    def wait_for_text(self, needle: str, timeout: float = 5.0) -> str:
        """``wait_for``, joined into one text."""
        return "\n".join(self.wait_for(needle, timeout))


class Collector:
    """A Reporter (devserve.serving) that keeps what it is told."""

    def __init__(self) -> None:
        self.items: list[RequestRecord | LogEvent] = []

    def __call__(self, item: RequestRecord | LogEvent) -> None:
        self.items.append(item)

    def repeater(self, record: RequestRecord) -> Callable[[float, float], None]:
        def emit(when: float, duration: float) -> None:
            self(record._replace(when=when, duration=duration))

        return emit

    def ready(self, info: ReadyInfo) -> None:
        pass

    def stopped(self, summary: Summary) -> None:
        pass

    def records(self) -> list[RequestRecord]:
        return [item for item in self.items if isinstance(item, RequestRecord)]

    def warnings(self) -> list[str]:
        return [i.message for i in self.items if isinstance(i, LogEvent) and i.level == "warning"]


def self_signed_certificate(
    folder: Path, name: str = "localhost", password: str | None = None
) -> tuple[Path, Path]:
    """A throwaway certificate for ``name``, 127.0.0.1 and localhost, and its key
    (encrypted with ``password`` if one is given), made by openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    secret = ["-passout", f"pass:{password}"] if password is not None else ["-nodes"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", *secret, "-days", "2",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def run_main(args: list[str]) -> tuple[int, str]:
    """Run devserve's console-script entry point as a shell would: status and output."""
    from typer.testing import CliRunner

    from devserve.cli import main

    with CliRunner().isolation() as (_, _, output):
        try:
            main(args)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        text = output.getvalue().decode()
    return status, text


def without_date(response: bytes) -> bytes:
    """A response with its Date made fixed."""
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", response)


def normalized(response: bytes) -> bytes:
    """A response with its Date and a multipart boundary (random per response) made fixed."""
    response = without_date(response)
    found = re.search(rb"boundary=([0-9a-f]+)", response)
    if found:
        response = response.replace(found[1], b"BOUNDARY")
    return response


# Debian's chromium (.ci/run installs it), driven by Playwright; without it the
# browser tests fail, never skip.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
