"""bench/proxy.py - what ``--proxy`` costs: requests through devserve against the backend direct.

One command (from anywhere; only 127.0.0.1 is contacted):

    python bench/proxy.py                      # 5 s per wrk run, 256 MiB body
    python bench/proxy.py --duration 3 --size-mib 64 --json /tmp/proxy.json

It starts the tests' backend (``tests/proxy_backend.py``: a small ASGI app under
uvicorn, the same one the tests use), devserve with ``--proxy /api/=BACKEND/``
and, for the static path, devserve without any route. Then:

1. a small GET (``/echo``, about 400 bytes of JSON) on 1 keep-alive connection,
   direct and proxied: req/s and mean latency, the overhead per request in µs
   (the difference of the mean latencies) and the ratio of req/s;
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


def wrk(url: str, connections: int, duration: float) -> dict[str, float]:
    """req/s and mean latency (µs) of ``url`` under ``connections`` keep-alive connections."""
    if shutil.which("wrk") is None:
        return python_client(url, connections, duration)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out)[1])  # type: ignore[index]
    value, unit = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    latency = float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"wrk saw errors for {url}:\n{out}")
    return {"rps": rps, "latency_us": latency}


def python_client(url: str, connections: int, duration: float) -> dict[str, float]:
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
    return {"rps": count / elapsed, "latency_us": elapsed / count * 1e6}


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
    figures: dict[str, float] = {}

    backend_args = [sys.executable, "-m", "tests.proxy_backend"]
    with started(backend_args, r"^(\d+)\s*$", outdir / "backend.log") as (_, backend_port):
        backend = f"http://127.0.0.1:{backend_port}"
        route = f"/api/={backend}/"
        with devserve(root, outdir / "devserve-proxy.log", "--proxy", route) as (_, proxied):
            for name, url in (("direct", backend), ("proxied", proxied + "/api")):
                wrk(url + "/echo/warm-up", 4, 1)
                figures[f"small_c1_{name}_rps"] = (one := wrk(url + "/echo/x", 1, duration))["rps"]
                figures[f"small_c1_{name}_us"] = one["latency_us"]
                if shutil.which("wrk"):
                    figures[f"small_c16_{name}_rps"] = wrk(url + "/echo/x", 16, duration)["rps"]
                figures[f"big_{name}_mibs"] = download(f"{url}/big?size={size}", size)
            figures["static_c1_route_rps"] = wrk(proxied + "/small-1k.txt", 1, duration)["rps"]
            if shutil.which("wrk"):
                figures["static_c32_route_rps"] = wrk(proxied + "/small-1k.txt", 32, duration)[
                    "rps"
                ]
    with devserve(root, outdir / "devserve-static.log") as (_, plain):
        wrk(plain + "/small-1k.txt", 4, 1)
        figures["static_c1_plain_rps"] = wrk(plain + "/small-1k.txt", 1, duration)["rps"]
        if shutil.which("wrk"):
            figures["static_c32_plain_rps"] = wrk(plain + "/small-1k.txt", 32, duration)["rps"]

    print(report(figures, options.size_mib, duration))
    if options.json is not None:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


def report(f: dict[str, float], size_mib: int, duration: float) -> str:
    overhead = f["small_c1_proxied_us"] - f["small_c1_direct_us"]
    lines = [
        "## proxy: requests through devserve --proxy against the backend direct",
        "",
        f"Backend: tests/proxy_backend.py under uvicorn (h11). {duration:g} s per run, "
        "127.0.0.1, devserve's request log on (to a file).",
        "",
        "| workload | direct | through devserve | ratio |",
        "|---|---:|---:|---:|",
        f"| small GET, 1 connection: req/s | {f['small_c1_direct_rps']:,.0f} | "
        f"{f['small_c1_proxied_rps']:,.0f} | "
        f"{f['small_c1_proxied_rps'] / f['small_c1_direct_rps']:.2f} |",
        f"| small GET, 1 connection: mean latency | {f['small_c1_direct_us']:,.0f} µs | "
        f"{f['small_c1_proxied_us']:,.0f} µs | +{overhead:,.0f} µs per request |",
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
