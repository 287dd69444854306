"""bench/proxy.py - what ``--proxy`` costs: requests through devserve against the backend direct.

One command (from anywhere; only 127.0.0.1 is contacted):

    python bench/proxy.py                      # 3 rounds of 5 s wrk runs, 256 MiB body
    python bench/proxy.py --duration 3 --rounds 1 --size-mib 64 --json /tmp/proxy.json

It starts the tests' backend (``tests/proxy_backend.py``: a small ASGI app under
uvicorn, the same one the tests use), devserve with ``--proxy /api/=BACKEND/``
and, for the static path, devserve without any route, all three at once; the
runs below are interleaved, ``--rounds`` times, and the medians reported:

1. a small GET (``/echo``, about 400 bytes of JSON) on 1 keep-alive connection,
   direct and proxied: req/s, the overhead per request in µs (the difference
   of the times per request, 1/(req/s)) and the ratio of req/s;
2. the same on 16 connections (req/s and the ratio);
3. a large streamed body (``/big``, 256 MiB with a Content-Length) read by curl,
   direct and proxied: MiB/s (best of 3);
4. a 1 KiB static file on 1 and 32 connections, devserve with no route against
   devserve with a route: the fast path must not slow down when routes exist.

wrk does the request runs (a Python keep-alive client when wrk is missing);
devserve runs with its request log on (to a file), as users run it. Every
process started is ended by its PID; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def started(
    args: list[str], ready: str, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``args`` (output to ``log``), wait for a line matching ``ready``, yield its match."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(ready, log.read_text(errors="replace"))
            if found:
                yield process, found[1]
                return
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"{args[:4]} did not start; see {log}")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def devserve(
    root: Path, log: Path, *extra: str
) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[bytes], str]]:
    args = [
        sys.executable,
        "-m",
        "devserve",
        "serve",
        str(root),
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
    ]
    return started([*args, *extra], r"(http://127\.0\.0\.1:\d+)/", log)


def wrk(url: str, connections: int, duration: float) -> float:
    """req/s of ``url`` under ``connections`` keep-alive connections."""
    if shutil.which("wrk") is None:
        return python_client(url, connections, duration)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"wrk saw errors for {url}:\n{out}")
    return rps


def python_client(url: str, connections: int, duration: float) -> float:
    """A keep-alive GET loop on one connection (used when wrk is missing; ``connections`` is 1)."""
    host, port_path = url.removeprefix("http://").split(":", 1)
    port, _, path = port_path.partition("/")
    request = f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    count = 0
    with socket.create_connection((host, int(port))) as sock:
        reader = sock.makefile("rb")
        started_at = time.perf_counter()
        while time.perf_counter() - started_at < duration:
            sock.sendall(request)
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            count += 1
        elapsed = time.perf_counter() - started_at
    return count / elapsed


def download(url: str, size: int) -> float:
    """MiB/s of curl reading ``url`` (``size`` bytes) to /dev/null, best of 3."""
    best = 0.0
    for _ in range(3):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout.split()  # fmt: skip
        if int(out[0]) != size:
            raise SystemExit(f"{url}: {out[0]} bytes instead of {size}")
        best = max(best, size / float(out[1]) / 2**20)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--size-mib", type=int, default=256, help="the large body's size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--outdir", type=Path, help="server logs (default: a temporary folder)")
    options = parser.parse_args()
    outdir = options.outdir or Path(tempfile.mkdtemp(prefix="devserve-bench-proxy-"))
    outdir.mkdir(parents=True, exist_ok=True)
    root = outdir / "root"
    root.mkdir(exist_ok=True)
    (root / "small-1k.txt").write_bytes(os.urandom(512).hex().encode())
    size = options.size_mib * 2**20
    duration = options.duration
    many = shutil.which("wrk") is not None  # the multi-connection runs need wrk
    runs: dict[str, list[float]] = {}

    def measure(name: str, value: float) -> None:
        runs.setdefault(name, []).append(value)

    backend_args = [sys.executable, "-m", "tests.proxy_backend"]
    with (
        started(backend_args, r"^(\d+)\s*$", outdir / "backend.log") as (_, backend_port),
        devserve(
            root,
            outdir / "devserve-proxy.log",
            "--proxy",
            f"/api/=http://127.0.0.1:{backend_port}/",
        ) as (_, proxied),
        devserve(root, outdir / "devserve-static.log") as (_, plain),
    ):
        backend = f"http://127.0.0.1:{backend_port}"
        targets = {"direct": backend, "proxied": proxied + "/api"}
        statics = {"plain": plain, "route": proxied}
        for url in targets.values():
            wrk(url + "/echo/warm-up", 4, 1)
        for url in statics.values():
            wrk(url + "/small-1k.txt", 4, 1)
        # Interleaved rounds: the machine's drift (and its neighbours) fall on both sides.
        for _ in range(options.rounds):
            for name, url in targets.items():
                measure(f"small_c1_{name}_rps", wrk(url + "/echo/x", 1, duration))
                if many:
                    measure(f"small_c16_{name}_rps", wrk(url + "/echo/x", 16, duration))
                measure(f"big_{name}_mibs", download(f"{url}/big?size={size}", size))
            for name, url in statics.items():
                measure(f"static_c1_{name}_rps", wrk(url + "/small-1k.txt", 1, duration))
                if many:
                    measure(f"static_c32_{name}_rps", wrk(url + "/small-1k.txt", 32, duration))

    figures = {name: statistics.median(values) for name, values in runs.items()}
    print(report(figures, options.size_mib, duration, options.rounds))
    if options.json is not None:
        options.json.write_text(json.dumps({"medians": figures, "runs": runs}, indent=2) + "\n")


def report(f: dict[str, float], size_mib: int, duration: float, rounds: int) -> str:
    # On one connection a request takes 1/(req/s): the difference is what devserve adds.
    overhead = 1e6 / f["small_c1_proxied_rps"] - 1e6 / f["small_c1_direct_rps"]
    lines = [
        "## proxy: requests through devserve --proxy against the backend direct",
        "",
        f"Backend: tests/proxy_backend.py under uvicorn (h11). Medians of {rounds} interleaved "
        f"runs of {duration:g} s, 127.0.0.1, devserve's request log on (to a file).",
        "",
        "| workload | direct | through devserve | ratio |",
        "|---|---:|---:|---:|",
        f"| small GET, 1 connection: req/s | {f['small_c1_direct_rps']:,.0f} | "
        f"{f['small_c1_proxied_rps']:,.0f} | "
        f"{f['small_c1_proxied_rps'] / f['small_c1_direct_rps']:.2f} |",
        f"| small GET, 1 connection: time per request | {1e6 / f['small_c1_direct_rps']:,.0f} µs | "
        f"{1e6 / f['small_c1_proxied_rps']:,.0f} µs | +{overhead:,.0f} µs per request |",
    ]
    if "small_c16_direct_rps" in f:
        lines.append(
            f"| small GET, 16 connections: req/s | {f['small_c16_direct_rps']:,.0f} | "
            f"{f['small_c16_proxied_rps']:,.0f} | "
            f"{f['small_c16_proxied_rps'] / f['small_c16_direct_rps']:.2f} |"
        )
    lines.append(
        f"| {size_mib} MiB streamed body (curl, best of 3): MiB/s | {f['big_direct_mibs']:,.0f} | "
        f"{f['big_proxied_mibs']:,.0f} | {f['big_proxied_mibs'] / f['big_direct_mibs']:.2f} |"
    )
    lines += [
        "",
        "| static 1 KiB file | devserve, no route | devserve with a route | ratio |",
        "|---|---:|---:|---:|",
        f"| 1 connection: req/s | {f['static_c1_plain_rps']:,.0f} | "
        f"{f['static_c1_route_rps']:,.0f} | "
        f"{f['static_c1_route_rps'] / f['static_c1_plain_rps']:.2f} |",
    ]
    if "static_c32_plain_rps" in f:
        lines.append(
            f"| 32 connections: req/s | {f['static_c32_plain_rps']:,.0f} | "
            f"{f['static_c32_route_rps']:,.0f} | "
            f"{f['static_c32_route_rps'] / f['static_c32_plain_rps']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
