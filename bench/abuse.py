#!/usr/bin/env python3
"""Abuse test: slow heads and silent event streams against default settings.

    bench/abuse.py [--slow 1000] [--streams 200] [--seconds 15] [--json]

Starts `python -m devserve serve --reload` on port 0 with its default limits
(1024 connections), then holds SLOW connections that trickle a request head a
byte a second (reconnecting whenever the server drops them) and STREAMS
live-reload event streams that never read a byte, while one normal client opens
a fresh connection every 0.2 s and asks for a small file. Loopback only, bounded
in time and in connection count.

It reports the normal client's worst and median latency and failures, and the
server's threads, descriptors and RSS before, at the peak, and a few seconds
after the abusers let go. Exit status 0 when the normal client was always
answered within 1 s and threads and descriptors came back to their baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import read_response  # bench/ is not a package

REPO = Path(__file__).resolve().parent.parent
# tcpi_state values (linux/tcp_states.h): reset, and the peer's FIN received.
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8
# Memory freed by the threads that served the abuse is not all returned to the
# system at once (allocator arenas): RSS may stay this far above the baseline.
RSS_SLACK_MIB = 8.0
EVENTS = b"GET /__devserve__/events HTTP/1.1\r\nHost: abuse\r\nAccept: text/event-stream\r\n\r\n"


@dataclass
class Process:
    """One sample of the server process."""

    threads: int
    fds: int
    rss_mib: float

    @classmethod
    def of(cls, pid: int) -> Process:
        status = Path(f"/proc/{pid}/status").read_text()
        threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M)[1])  # type: ignore[index]
        rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M)[1]) / 1024  # type: ignore[index]
        return cls(threads, len(os.listdir(f"/proc/{pid}/fd")), round(rss, 1))


@dataclass
class Totals:
    normal: list[float] = field(default_factory=list)
    normal_failures: int = 0
    slow_dropped: int = 0
    streams_ended: int = 0
    peak: Process = field(default_factory=lambda: Process(0, 0, 0.0))

    def sample(self, pid: int) -> None:
        now = Process.of(pid)
        self.peak = Process(
            max(self.peak.threads, now.threads),
            max(self.peak.fds, now.fds),
            max(self.peak.rss_mib, now.rss_mib),
        )


async def slow_head(port: int, stop: float, totals: Totals) -> None:
    """Trickle a request head a byte a second; reconnect when the server drops us."""
    while time.monotonic() < stop:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /index.html HTTP/1.1\r\n")
            while time.monotonic() < stop and not reader.at_eof():
                await asyncio.sleep(1)
                writer.write(b"X")
                await writer.drain()
            if time.monotonic() < stop:
                totals.slow_dropped += 1
        except OSError:
            totals.slow_dropped += 1
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.close()


async def silent_stream(port: int, stop: float, totals: Totals) -> None:
    """Open an event stream and never read it; reopen it when the server ends it."""
    while time.monotonic() < stop:
        writer = None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
            transport = writer.transport
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # truly silent: the bytes stay in the kernel
            writer.write(EVENTS)
            sock = writer.get_extra_info("socket")
            while time.monotonic() < stop:
                await asyncio.sleep(0.5)
                if _peer_closed(sock):
                    totals.streams_ended += 1
                    break
        except OSError:
            totals.streams_ended += 1
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.close()


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (read from TCP_INFO, without reading data)."""
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return True
    return state in (TCP_CLOSE, TCP_CLOSE_WAIT)


async def normal_client(port: int, stop: float, totals: Totals) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /index.html HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n")
            status = await asyncio.wait_for(read_response(reader), 10)
            writer.close()
            if status != 200:
                totals.normal_failures += 1
            totals.normal.append(time.monotonic() - started)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            totals.normal_failures += 1
        await asyncio.sleep(0.2)


async def attack(port: int, pid: int, slow: int, streams: int, seconds: float) -> Totals:
    totals = Totals()
    stop = time.monotonic() + seconds
    tasks = [asyncio.create_task(silent_stream(port, stop, totals)) for _ in range(streams)]
    for i in range(slow):
        tasks.append(asyncio.create_task(slow_head(port, stop, totals)))
        if i % 100 == 99:
            await asyncio.sleep(0.1)
    # The normal client starts once the house is full.
    tasks.append(asyncio.create_task(normal_client(port, stop, totals)))
    while time.monotonic() < stop:
        totals.sample(pid)
        await asyncio.sleep(0.25)
    await asyncio.wait(tasks, timeout=15)
    for task in tasks:
        task.cancel()
    return totals


def warm_up(port: int) -> None:
    """One page and one event stream first: what the server starts once (its deadline
    reaper) is part of the baseline."""
    for request in (b"GET /index.html HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n", EVENTS):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            sock.recv(65536)
    time.sleep(1.0)


def settle(pid: int, baseline: Process, seconds: float) -> Process:
    """Sample until threads and descriptors are back at the baseline, or time runs out."""
    deadline = time.monotonic() + seconds
    now = Process.of(pid)
    while time.monotonic() < deadline:
        now = Process.of(pid)
        if now.threads <= baseline.threads and now.fds <= baseline.fds:
            break
        time.sleep(0.25)
    return now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if not (0 <= args.slow <= 3000 and 0 <= args.streams <= 1000 and args.seconds <= 120):
        parser.error("bounded: at most 3000 slow heads, 1000 streams, 120 s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.slow + args.streams + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))

    with tempfile.TemporaryDirectory() as root:
        Path(root, "index.html").write_text("<!doctype html><title>abuse</title><p>hello\n")
        command = [sys.executable, "-m", "devserve", "serve", root, "--port", "0", "--reload"]
        server = subprocess.Popen(
            [*command, "--quiet"],
            cwd=REPO,
            env={**os.environ, "NO_COLOR": "1"},
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stderr is not None
            port = 0
            deadline = time.monotonic() + 20
            while not port and time.monotonic() < deadline:
                found = re.search(r"127\.0\.0\.1:(\d+)", server.stderr.readline())
                port = int(found[1]) if found else 0
            if not port:
                print("devserve did not start", file=sys.stderr)
                return 2
            warm_up(port)
            baseline = Process.of(server.pid)
            totals = asyncio.run(attack(port, server.pid, args.slow, args.streams, args.seconds))
            after = settle(server.pid, baseline, 20)
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(15)
            if server.poll() is None:
                server.kill()
            if server.stderr is not None:
                server.stderr.close()

    latencies = sorted(totals.normal)
    result = {
        "slow": args.slow,
        "streams": args.streams,
        "seconds": args.seconds,
        "normal_requests": len(latencies),
        "normal_failures": totals.normal_failures,
        "normal_max_s": round(latencies[-1], 4) if latencies else None,
        "normal_p50_s": round(statistics.median(latencies), 4) if latencies else None,
        "slow_dropped_by_server": totals.slow_dropped,
        "streams_ended_by_server": totals.streams_ended,
        "baseline": baseline.__dict__,
        "peak": totals.peak.__dict__,
        "after": after.__dict__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    ok = (
        totals.normal_failures == 0
        and bool(latencies)
        and latencies[-1] < 1.0
        and after.threads <= baseline.threads
        and after.fds <= baseline.fds
        and after.rss_mib <= baseline.rss_mib + RSS_SLACK_MIB
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
