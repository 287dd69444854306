#!/usr/bin/env python3
"""Load test: many keep-alive clients and slow clients at once, while a normal client
keeps asking. Loopback only, bounded in time and in connection count.

    bench/load.py [--keepalive 1000] [--slow 200] [--seconds 10] [--json]

It starts `python -m devserve serve` on port 0 (the interpreter running this
script), opens KEEPALIVE connections that each send a request every INTERVAL
seconds and read the answer, SLOW connections that trickle header bytes (a
slowloris), and one normal client that opens a fresh connection every 0.2 s.
It reports total requests, unexpected errors, the normal client's worst and p99
latency, and the server's peak RSS, thread count and open sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    slow_closed_by_server: int = 0
    normal_latencies: list[float] = field(default_factory=list)
    normal_failures: int = 0
    peak_rss_mib: float = 0.0
    peak_threads: int = 0
    peak_sockets: int = 0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response with a Content-Length body; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    if match:
        await reader.readexactly(int(match[1]))
    return status


async def keepalive_client(port: int, stop: float, interval: float, totals: Totals) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        totals.error(f"connect: {type(error).__name__}")
        return
    try:
        while time.monotonic() < stop:
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: load\r\n\r\n")
            status = await asyncio.wait_for(read_response(reader), 30)
            if status != 200:
                totals.error(f"status {status}")
                return
            totals.requests += 1
            await asyncio.sleep(interval)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
        totals.error(f"keep-alive: {type(error).__name__}")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


async def slow_client(port: int, stop: float, totals: Totals) -> None:
    """Trickle a header byte a second; reconnect when the server gives up on us."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as error:
            totals.error(f"slow connect: {type(error).__name__}")
            return
        try:
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: slow\r\n")
            while time.monotonic() < stop:
                await asyncio.sleep(1)
                writer.write(b"X")
                await writer.drain()
                if reader.at_eof():
                    break
            else:
                return
            totals.slow_closed_by_server += 1
        except (OSError, ConnectionError):
            totals.slow_closed_by_server += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


async def normal_client(port: int, stop: float, totals: Totals) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n")
            status = await asyncio.wait_for(read_response(reader), 10)
            writer.close()
            if status != 200:
                totals.normal_failures += 1
            totals.normal_latencies.append(time.monotonic() - started)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            totals.normal_failures += 1
        await asyncio.sleep(0.2)


def sample_server(pid: int, totals: Totals) -> None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            totals.peak_rss_mib = max(totals.peak_rss_mib, int(line.split()[1]) / 1024)
        elif line.startswith("Threads:"):
            totals.peak_threads = max(totals.peak_threads, int(line.split()[1]))
    sockets = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    totals.peak_sockets = max(totals.peak_sockets, sockets)


async def run(port: int, pid: int, keepalive: int, slow: int, seconds: float) -> Totals:
    totals = Totals()
    ramp = min(3.0, seconds / 3)
    stop = time.monotonic() + seconds
    tasks = []
    for i in range(keepalive):
        interval = 0.5
        tasks.append(asyncio.create_task(keepalive_client(port, stop, interval, totals)))
        if i % 100 == 99:
            await asyncio.sleep(ramp * 100 / max(keepalive, 1))
    tasks += [asyncio.create_task(slow_client(port, stop, totals)) for _ in range(slow)]
    tasks.append(asyncio.create_task(normal_client(port, stop, totals)))
    while time.monotonic() < stop:
        sample_server(pid, totals)
        await asyncio.sleep(0.25)
    await asyncio.wait(tasks, timeout=40)
    for task in tasks:
        task.cancel()
    sample_server(pid, totals)
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keepalive", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args()
    if not (0 <= args.keepalive <= 5000 and 0 <= args.slow <= 1000 and args.seconds <= 120):
        parser.error("bounded: at most 5000 keep-alive, 1000 slow connections, 120 s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.keepalive + args.slow + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))

    with tempfile.TemporaryDirectory() as root:
        Path(root, "small.txt").write_bytes(b"x" * 1024)
        # every client below holds a connection: lift the default cap of 1024
        cap = str(args.keepalive + args.slow + 64)
        command = [sys.executable, "-m", "devserve", "serve", root, "--port", "0", "--quiet"]
        server = subprocess.Popen(
            [*command, "--max-connections", cap],
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
            totals = asyncio.run(run(port, server.pid, args.keepalive, args.slow, args.seconds))
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(15)
            if server.poll() is None:
                server.kill()
            if server.stderr is not None:
                server.stderr.close()

    latencies = sorted(totals.normal_latencies)
    result = asdict(totals)
    result.pop("normal_latencies")
    result["normal_requests"] = len(latencies)
    result["normal_max_s"] = round(latencies[-1], 4) if latencies else None
    result["normal_p50_s"] = round(statistics.median(latencies), 4) if latencies else None
    result["normal_p99_s"] = (
        round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 4)
        if latencies
        else None
    )
    result["keepalive"], result["slow"], result["seconds"] = (
        args.keepalive,
        args.slow,
        args.seconds,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    ok = totals.errors == 0 and totals.normal_failures == 0 and latencies and latencies[-1] < 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
